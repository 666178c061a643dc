"""Datasets (digits embedded; tfds; user .npz), split builders and augmentation.

References:
    methods-spec §2.1-§2.2, §12.8.
"""

from jaxmu.data._augment import augment
from jaxmu.data._dataset import DataNotFoundError, Dataset, load_digits, make_dataset
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
from jaxmu.data._tfds import DATASETS, TFDS_SPECS, load_dataset, load_npz, load_tfds

__all__ = [
    "DATASETS",
    "DEFAULT_SPLIT_SEED",
    "DataNotFoundError",
    "Dataset",
    "SCENARIOS",
    "TFDS_SPECS",
    "augment",
    "classwise_splits",
    "label_skewed_splits",
    "load_dataset",
    "load_digits",
    "load_npz",
    "load_tfds",
    "make_dataset",
    "random_splits",
    "red_dominance",
    "scenario_splits",
    "targeted_splits",
]
