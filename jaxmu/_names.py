"""Names that command lines offer as choices, and the per-dataset defaults they show,
importable without jax.

A CLI builds its parser (and answers ``--help``) from these objects before it imports
anything heavy; :data:`jaxmu.models.MODELS`, :data:`jaxmu.models.MODEL_VARIANTS`,
:data:`jaxmu.data.SCENARIOS` and :data:`jaxmu.data.DATASET_DEFAULTS` are these same objects.
This module must import nothing beyond the standard library.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

MODELS = ("mlp", "small_cnn", "resnet18", "resnet18_cifar", "tinyvit")
"""Model names accepted by :func:`jaxmu.models.get_model`."""

SCENARIOS = ("random", "classwise:<c>[,<c>...]", "red:<size>", "label_skew:<class>")
"""Forget-set scenario strings accepted by :func:`jaxmu.data.scenario_splits`."""

AUDIT_EVALS = ("klom", "rmia", "relearn", "shadow-curve", "all")
"""The audits an experiment can run on one cached population (``"all"``: every audit and
U-LiRA): :class:`jaxmu.experiment.Evaluation` kinds."""

EVALS = ("single", "fscore", "ulira", *AUDIT_EVALS)
"""Every :class:`jaxmu.experiment.Evaluation` kind: one model, the competition F-score,
U-LiRA, or an audit."""

STRATEGIES = ("auto", "vmap", "chunked", "sequential", "sharded")
"""How a population of models is trained (:data:`jaxmu.population.STRATEGIES`; results do
not depend on it)."""


@dataclasses.dataclass(frozen=True)
class ModelVariant:
    """A named variant of a model: a name of :data:`MODELS` built with fixed keyword
    arguments (e.g. other channel widths).

    :func:`jaxmu.models.build_model` builds it and names the result after the variant, so
    results and cache entries tell the variants apart.

    Attributes:
        base: the model name in :data:`MODELS`.
        kwargs: keyword arguments of :func:`jaxmu.models.get_model` for ``base``
            (stored read-only).

    Raises:
        ValueError: if ``base`` is not in :data:`MODELS` or ``kwargs`` is not a mapping
            with string keys.
    """

    base: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.base not in MODELS:
            raise ValueError(f"base: unknown model {self.base!r}; valid: {', '.join(MODELS)}")
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str)
                                                           for k in self.kwargs):
            raise ValueError(f"kwargs: expected a mapping with string keys, got "
                             f"{self.kwargs!r}")
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))


MODEL_VARIANTS: Mapping[str, ModelVariant] = MappingProxyType({
    "small_cnn_c32_64_128": ModelVariant("small_cnn", {"channels": (32, 64, 128)}),
})
"""Model names beyond :data:`MODELS` (read-only): name -> :class:`ModelVariant`."""


@dataclasses.dataclass(frozen=True)
class DatasetDefaults:
    """The default experiment setting of one dataset: the model and the recipe that train
    the original and the retrained models.

    Attributes:
        model: a name of :data:`MODELS` or :data:`MODEL_VARIANTS`.
        epochs: training epochs (at least 1).
        batch_size: training batch size (at least 1).
        lr: training learning rate (a finite number > 0).
        augment: whether training augments the images (random crop and flip,
            ``jaxmu.train.TrainConfig.augment``).

    Raises:
        ValueError: on an unknown model or an out-of-range number.
    """

    model: str
    epochs: int
    batch_size: int
    lr: float = 0.1
    augment: bool = True

    def __post_init__(self) -> None:
        if self.model not in (*MODELS, *MODEL_VARIANTS):
            raise ValueError(f"model: unknown model {self.model!r}; valid: "
                             f"{', '.join((*MODELS, *MODEL_VARIANTS))}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
        if (isinstance(self.lr, bool) or not isinstance(self.lr, int | float)
                or not 0 < self.lr < math.inf):
            raise ValueError(f"lr: expected a finite number > 0, got {self.lr!r}")
        if not isinstance(self.augment, bool):
            raise ValueError(f"augment: expected a bool, got {self.augment!r}")


DATASET_DEFAULTS: Mapping[str, DatasetDefaults] = MappingProxyType({
    "digits": DatasetDefaults("mlp", 30, 64, lr=0.05, augment=False),
    "mnist": DatasetDefaults("resnet18", 50, 256),
    # A conv net: test accuracy 0.912 after 15 epochs, 56 s/epoch on 2 CPU cores (README,
    # Fashion-MNIST); model "resnet18" with 50 epochs is the paper's setting.
    "fashion_mnist": DatasetDefaults("small_cnn_c32_64_128", 15, 256),
    "cifar10": DatasetDefaults("resnet18", 182, 256),
    "cifar100": DatasetDefaults("resnet18", 182, 256),
})
"""Per-dataset defaults of the experiment CLIs and of :func:`jaxmu.score.export_task`
(read-only): dataset name -> :class:`DatasetDefaults`."""

REFERENCES = ("original", "retrain")
"""Reference "methods" (the original model, the model retrained on the retain set): reported
next to the methods, never swept or ranked."""
