"""Datasets (digits embedded; IDX files; tfds; user .npz), split builders and augmentation,
and the per-dataset experiment defaults (:data:`DATASET_DEFAULTS`)."""

from jaxmu._names import DATASET_DEFAULTS, DatasetDefaults
from jaxmu.data._augment import augment
from jaxmu.data._dataset import DataNotFoundError, Dataset, load_digits, make_dataset
from jaxmu.data._idx import IDX_DATASETS, find_idx_files, load_idx, read_idx, write_idx
from jaxmu.data._load import DATASETS, SYSTEM_IDX_DIRS, load_dataset
from jaxmu.data._splits import (
    DEFAULT_SPLIT_SEED,
    SCENARIOS,
    classwise_splits,
    label_skewed_splits,
    random_splits,
    red_dominance,
    scenario_splits,
    targeted_splits,
)
from jaxmu.data._subset import subset_dataset
from jaxmu.data._tfds import TFDS_SPECS, load_npz, load_tfds

__all__ = [
    "DATASETS",
    "DATASET_DEFAULTS",
    "DEFAULT_SPLIT_SEED",
    "DataNotFoundError",
    "Dataset",
    "DatasetDefaults",
    "IDX_DATASETS",
    "SCENARIOS",
    "SYSTEM_IDX_DIRS",
    "TFDS_SPECS",
    "augment",
    "classwise_splits",
    "find_idx_files",
    "label_skewed_splits",
    "load_dataset",
    "load_digits",
    "load_idx",
    "load_npz",
    "load_tfds",
    "make_dataset",
    "random_splits",
    "read_idx",
    "red_dominance",
    "scenario_splits",
    "subset_dataset",
    "targeted_splits",
    "write_idx",
]
