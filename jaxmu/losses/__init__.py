"""Loss terms for unlearning loops (composable with ``+``, ``-`` and scalar ``*``)."""

from jaxmu.losses._basic import accuracy, cross_entropy
from jaxmu.losses._terms import (
    Loss,
    LossInputs,
    ce,
    class_weighted_ce,
    contrastive_forget,
    entropy,
    entropy_match,
    kl_div,
    kl_to,
    neg,
    proximal,
    soft_ce,
    teacher_logits,
    uniform_kl,
)

__all__ = [
    "Loss",
    "LossInputs",
    "accuracy",
    "ce",
    "class_weighted_ce",
    "contrastive_forget",
    "cross_entropy",
    "entropy",
    "entropy_match",
    "kl_div",
    "kl_to",
    "neg",
    "proximal",
    "soft_ce",
    "teacher_logits",
    "uniform_kl",
]
