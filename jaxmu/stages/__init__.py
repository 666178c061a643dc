"""Stages: loops (finetune, sequence, repeat) and probes writing to ``aux``."""

from jaxmu.stages._loops import adam, finetune, lr_multiplier, repeat, sequence, sgd
from jaxmu.stages._probes import (
    accumulate_gradients,
    activation_means,
    class_weights,
    snapshot,
)

__all__ = [
    "accumulate_gradients",
    "activation_means",
    "adam",
    "class_weights",
    "finetune",
    "lr_multiplier",
    "repeat",
    "sequence",
    "sgd",
    "snapshot",
]
