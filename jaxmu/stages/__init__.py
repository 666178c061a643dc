"""Stages: loops (finetune, sequence, repeat, best_of) and probes writing to ``aux``."""

from jaxmu.stages._loops import (
    adam,
    best_of,
    finetune,
    init_optimizer,
    lr_multiplier,
    repeat,
    sequence,
    sgd,
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
    "adam",
    "best_of",
    "class_weights",
    "finetune",
    "init_optimizer",
    "lr_multiplier",
    "repeat",
    "sequence",
    "sgd",
    "snapshot",
    "sum_gradients",
]
