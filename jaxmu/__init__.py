"""jaxmu: machine unlearning for image classifiers in JAX/Flax.

Curated public API; submodules (``jaxmu.data``, ``jaxmu.models``, ``jaxmu.train``,
``jaxmu.metrics``, ``jaxmu.io``, ...) hold the rest.
"""

from jaxmu import (
    data,
    io,
    losses,
    methods,
    metrics,
    models,
    population,
    report,
    scenarios,
    stages,
    sweep,
    train,
    transforms,
)
from jaxmu._evaluate import evaluate
from jaxmu.data import Dataset, load_dataset, random_splits, scenario_splits
from jaxmu.methods import Method, get_method, list_methods
from jaxmu.models import get_model
from jaxmu.train import TrainConfig, fit, predict, split_accuracies
from jaxmu.types import Model, Pool, Splits, Stage, UnlearnState, as_key

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "Method",
    "Model",
    "Pool",
    "Splits",
    "Stage",
    "TrainConfig",
    "UnlearnState",
    "as_key",
    "data",
    "evaluate",
    "fit",
    "get_method",
    "get_model",
    "io",
    "list_methods",
    "load_dataset",
    "losses",
    "methods",
    "metrics",
    "models",
    "population",
    "predict",
    "random_splits",
    "report",
    "scenario_splits",
    "scenarios",
    "split_accuracies",
    "stages",
    "sweep",
    "train",
    "transforms",
]
