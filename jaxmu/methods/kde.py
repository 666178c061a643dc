"""KDE: reset the stem conv and the head, distil the original on the validation split
(warm-up), then distil + CE on retain with cosine annealing.

A NeurIPS-2023 Kaggle challenge solution benchmarked by Deep Unlearn (docs/methods.md#kaggle).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmu import losses
from jaxmu.losses import Loss, LossInputs, teacher_logits
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, EPOCHS, LR, MOMENTUM, TEMPERATURE, WD, register
from jaxmu.methods._resets import torch_reset
from jaxmu.models import classifier, stem_conv
from jaxmu.stages import finetune, sequence, sgd, snapshot

WARMUP_SPLITS = ("val", "retain")


def soft_ce_tempered(teacher: str, temperature: float) -> Loss:
    """``mean_i -sum_c softmax(t_i / T)_c log_softmax(s_i / T)_c`` (KDE's SoftCE; the reference
    re-applies log_softmax to log-probabilities, which is idempotent)."""
    def fn(i: LossInputs):
        p = jax.nn.softmax(teacher_logits(i, teacher) / temperature)
        lq = jax.nn.log_softmax(i.logits.astype(jnp.float32) / temperature)
        return jnp.mean(-jnp.sum(p * lq, -1))

    return Loss(fn, "soft_ce_tempered")


def warmup_loss(temperature: float) -> Loss:
    """Warm-up: ``KL(softmax(t/T) || softmax(s/T))``, batchmean, no ``T^2`` factor."""
    return losses.kl_to("teacher", temperature, "batchmean")


def retain_loss(temperature: float) -> Loss:
    """Retain phase: ``SoftCE_T(t, s) + CE(s, y) + KL_T(t || s)`` (batch means)."""
    return soft_ce_tempered("teacher", temperature) + losses.ce() + warmup_loss(temperature)


@register(
    "kde",
    defaults=dict(epochs=3, batch_size=64, lr=9e-4, momentum=0.9, weight_decay=5e-4,
                  retain_epochs=3, retain_lr=1e-3, retain_momentum=0.9,
                  retain_weight_decay=5e-4, temperature=5.0, warmup_split="val"),
    space={**COMMON, "temperature": TEMPERATURE, "retain_epochs": EPOCHS, "retain_lr": LR,
           "retain_momentum": MOMENTUM, "retain_weight_decay": WD},
    summary="reset stem conv + head (PyTorch default init); KD (KL/T, batchmean) warm-up on "
            "val; SoftCE + CE + KL on retain, SGD + cosine",
    paper="Deep Unlearn (004), Kaggle NeurIPS-2023 7th place", section="docs/methods.md#kde",
    touches="all",
)
def kde(epochs, batch_size, lr, momentum, weight_decay, retain_epochs, retain_lr,
        retain_momentum, retain_weight_decay, temperature, warmup_split):
    """Knowledge-distillation unlearning after resetting the first and last layers.

    1. Teacher = a frozen snapshot of the original (eval mode).
    2. Reset the stem conv and the classifier as PyTorch's ``reset_parameters()`` does
       (:func:`~jaxmu.methods._resets.torch_reset`): kernels and biases
       ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, whatever the model's own initialiser is
       (ResNet's stem conv: std about 0.048 instead of torchvision's kaiming-normal
       fan-out 0.025; TinyViT's head: the ``Linear`` default instead of timm's truncated
       normal).
    3. Warm-up on ``warmup_split`` (default D_v, pool order, no shuffle, no augmentation) for
       ``epochs`` epochs, train mode: ``KL(softmax(t/T) || softmax(s/T))`` batchmean, no
       ``T^2`` factor; SGD(``lr``, ``momentum``, ``weight_decay``), no schedule.
    4. Retain phase: ``retain_epochs`` epochs on D_r (train mode) of
       ``SoftCE(softmax(t/T), log_softmax(s/T)) + CE(s, y) + KL_T(t || s)``, SGD(``retain_*``)
       with cosine annealing per epoch (T_max = ``retain_epochs``).

    The warm-up trains on the validation split, which the Deep Unlearn HP objective also
    scores (val accuracy, Val-MIA): KDE's HP selection is biased by that leak. This is the
    method as published, so it is the default; ``warmup_split="retain"``
    is a leak-free variant.

    Differences from the reference:
        * The reference resets ``conv1`` only when the model has one (ResNet; nothing on
          TinyViT) and ``fc``/``head``; jaxmu resets the model's stem selector (TinyViT: the
          patch-embedding convs, PyTorch default, and their BN affine parameters, a fresh
          draw of the model's init, i.e. 1 / 0; MLP: the first dense layer) and the
          classifier. BatchNorm running statistics are kept (``reset_parameters`` does not
          touch the following BN either).
        * ``temperature`` is clipped to >= 1e-3 (the search space includes 0).

    References:
        Cadet et al., Deep Unlearn (2024); Kaggle "unlearning by resetting layers" (7th
        place); Comparative Analysis of Machine Unlearning Approaches for Data Protection,
        §IV-B1 ("Distillation"); the reference code: docs/methods.md#kde.
    """
    if warmup_split not in WARMUP_SPLITS:
        raise ValueError(f"warmup_split must be one of {WARMUP_SPLITS}, got {warmup_split!r}")
    for name, v in (("epochs", epochs), ("retain_epochs", retain_epochs)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v}")
    for name, v in (("momentum", momentum), ("weight_decay", weight_decay),
                    ("retain_momentum", retain_momentum),
                    ("retain_weight_decay", retain_weight_decay)):
        _checks.non_negative(name, v)
    tau = _checks.temperature("temperature", temperature)
    b = _checks.batch("batch_size", batch_size)
    return sequence(
        snapshot("teacher"),
        torch_reset(stem_conv | classifier),
        finetune(warmup_loss(tau), sgd(momentum, weight_decay), lr=_checks.positive("lr", lr),
                 split=warmup_split, epochs=int(epochs), batch_size=b, shuffle=False),
        finetune(retain_loss(tau),
                 sgd(retain_momentum, retain_weight_decay),
                 lr=_checks.positive("retain_lr", retain_lr), split="retain",
                 epochs=int(retain_epochs), batch_size=b, schedule="cosine"),
    )
