"""Stages: loops (finetune, sequence, repeat, best_of) and probes writing to ``aux``."""

from jaxmu.stages._loops import (
    best_of,
    finetune,
    init_optimizer,
    repeat,
    sequence,
)
from jaxmu.stages._probes import (
    GradientPart,
    accumulate_gradients,
    activation_means,
    class_weights,
    snapshot,
    sum_gradients,
)

__all__ = [
    "GradientPart",
    "accumulate_gradients",
    "activation_means",
    "best_of",
    "class_weights",
    "finetune",
    "init_optimizer",
    "repeat",
    "sequence",
    "snapshot",
    "sum_gradients",
]
