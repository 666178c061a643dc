"""jaxmu: machine unlearning for image classifiers in JAX/Flax.

Curated public API; submodules (``jaxmu.data``, ``jaxmu.models``, ``jaxmu.train``,
``jaxmu.metrics``, ``jaxmu.io``, ...) hold the rest.

The names below are loaded on first use (PEP 562): ``import jaxmu`` itself imports
neither jax nor any subpackage, so a command line can build its parser and answer
``--help`` at once, and ``jaxmu.fit`` or ``from jaxmu import fit`` imports what ``fit``
needs when it is first asked for. ``dir(jaxmu)`` and ``__all__`` list every name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "data",
    "evaluation",
    "experiment",
    "io",
    "losses",
    "methods",
    "metrics",
    "models",
    "population",
    "report",
    "scenarios",
    "stages",
    "sweep",
    "train",
    "transforms",
)

# public name -> the module it comes from
_NAMES = {
    "evaluate": "jaxmu._evaluate",
    "run": "jaxmu.experiment",
    "RunRecord": "jaxmu.experiment",
    "Dataset": "jaxmu.data",
    "load_dataset": "jaxmu.data",
    "random_splits": "jaxmu.data",
    "scenario_splits": "jaxmu.data",
    "Method": "jaxmu.methods",
    "get_method": "jaxmu.methods",
    "list_methods": "jaxmu.methods",
    "get_model": "jaxmu.models",
    "TrainConfig": "jaxmu.train",
    "fit": "jaxmu.train",
    "predict": "jaxmu.train",
    "split_accuracies": "jaxmu.train",
    "Model": "jaxmu.types",
    "Pool": "jaxmu.types",
    "Splits": "jaxmu.types",
    "Stage": "jaxmu.types",
    "UnlearnState": "jaxmu.types",
    "as_key": "jaxmu.types",
}

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ below imports these
    from jaxmu import (
        data,
        evaluation,
        experiment,
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
    from jaxmu.experiment import RunRecord, run
    from jaxmu.methods import Method, get_method, list_methods
    from jaxmu.models import get_model
    from jaxmu.train import TrainConfig, fit, predict, split_accuracies
    from jaxmu.types import Model, Pool, Splits, Stage, UnlearnState, as_key


def __getattr__(name: str) -> Any:
    """Imports a public name (a subpackage or a curated function/class) on first access."""
    if name in _SUBPACKAGES:
        value = importlib.import_module(f"jaxmu.{name}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'jaxmu' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Dataset",
    "Method",
    "Model",
    "Pool",
    "RunRecord",
    "Splits",
    "Stage",
    "TrainConfig",
    "UnlearnState",
    "as_key",
    "data",
    "evaluate",
    "evaluation",
    "experiment",
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
    "run",
    "scenario_splits",
    "scenarios",
    "split_accuracies",
    "stages",
    "sweep",
    "train",
    "transforms",
]
