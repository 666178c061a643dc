"""PRMQ: Prune (99% global L1) + re-init, Retrain with weighted CE and entropy matching to the
original, then a fp16 round trip ("Quantise").

A NeurIPS-2023 Kaggle challenge solution benchmarked by Deep Unlearn (docs/methods.md#kaggle).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxmu import losses
from jaxmu.methods._checks import batch, non_negative, positive, unit
from jaxmu.methods._config import (
    BATCH,
    EPOCHS_FLOAT,
    LR,
    MOMENTUM,
    UNIT,
    WD,
    MethodConfig,
)
from jaxmu.methods._core import register
from jaxmu.models import path_str
from jaxmu.stages import class_weights, finetune, sequence, snapshot
from jaxmu.train import torch_sgd
from jaxmu.transforms import prune_l1_and_reinit, quantize_round_trip


def _is_kernel(leaf: Any) -> bool:
    return getattr(leaf, "ndim", 0) in (2, 4)


def conv_dense_weights_and_biases(model: Any, params: Any, *, allow_empty: bool = False) -> Any:
    """Selector-like callable: every conv/dense kernel and the bias of the same module
    (PyTorch's ``Conv2d``/``Linear`` ``weight`` and ``bias``). Norm-layer scales/biases and
    other 1-D parameters (attention biases) are left out."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [path_str(p) for p, _ in flat]
    kernels = {p.rsplit("/", 1)[0] for p, (_, leaf) in zip(paths, flat, strict=True)
               if p.rsplit("/", 1)[-1] == "kernel" and _is_kernel(leaf)}
    flags = []
    for p, (_, leaf) in zip(paths, flat, strict=True):
        mod, _, name = p.rpartition("/")
        flags.append((name == "kernel" and _is_kernel(leaf)) or (name == "bias" and mod in kernels))
    if not allow_empty and not any(flags):
        raise ValueError(f"no conv/dense weights in {getattr(model, 'name', model)}")
    return jax.tree.unflatten(treedef, flags)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrmqConfig(MethodConfig):
    """PRMQ's hyperparameters: the common search space with fractional ``epochs``, and
    ``prune_amount``."""

    lr: float = LR(5e-4, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(5e-4, check=non_negative)
    batch_size: int = BATCH(64, check=batch)
    epochs: float = EPOCHS_FLOAT(3.2, check=positive)
    prune_amount: float = UNIT(0.99, check=unit)
    faithful: bool = False
    touches = "all"


@register("prmq", config=PrmqConfig,
          summary="global L1 prune (99%) of conv/dense weights+biases, re-init pruned weights "
                  "U(+-1/sqrt(fan_in)); weighted CE + entropy MSE to O on retain; fp16 round "
                  "trip",
          paper="Deep Unlearn (004), Kaggle NeurIPS-2023 4th place",
          section="docs/methods.md#prmq")
def prmq(c: PrmqConfig):
    """Prune, Retrain, (Mask), Quantise.

    1. Teacher O' = a frozen snapshot of the original (evaluated in eval mode).
    2. Class weights ``w_c = count_c ** -0.1`` over D_r (not normalised).
    3. Global L1 unstructured pruning of every conv/dense kernel *and* its bias: the
       ``prune_amount`` fraction of entries with the smallest ``|.|`` across all of them is
       zeroed; pruned kernel entries are re-drawn from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
       pruned biases stay 0. No mask is kept (everything trains afterwards).
    4. ``floor(|retain_loader| * epochs)`` SGD steps on D_r (train mode, no schedule;
       fractional epochs allowed) of ``weighted CE + MSE(H(f(x)), H(O'(x)))`` with ``H`` the
       per-sample prediction entropy; the weighted CE is PyTorch's ``CrossEntropyLoss(weight=
       w)``, i.e. ``sum w_y l / sum w_y``.
    5. Cast every parameter and BatchNorm statistic to float16 and back.

    Differences from the reference:
        * The reference's loop runs ``max_iters + 1`` steps (``num_iters > max_iters``);
          jaxmu runs ``max_iters``; ``faithful=True`` restores the extra step.
        * The reference's final runs truncate the float ``epochs`` to an int (a pipeline bug:
          its search samples fractional epochs); jaxmu uses the value given.
        * Classes absent from D_r get weight 0 (the reference builds a shorter weight vector,
          which PyTorch rejects when a whole class is forgotten).

    References:
        Cadet et al., Deep Unlearn (2024); Comparative Analysis of Machine Unlearning
        Approaches for Data Protection, §IV-B4 ("Pruning"); the reference code:
        docs/methods.md#prmq.
    """
    loss = losses.class_weighted_ce("prmq_weights", "weighted") + losses.entropy_match("teacher")
    return sequence(
        snapshot("teacher"),
        class_weights("prmq_weights", "retain", power=-0.1),
        prune_l1_and_reinit(c.prune_amount, conv_dense_weights_and_biases, scope="global",
                            init="uniform_fan_in"),
        finetune(loss, torch_sgd(c.lr, c.momentum, c.weight_decay), split="retain",
                 epochs=float(c.epochs), batch_size=c.batch_size,
                 steps=(lambda spe: math.floor(spe * c.epochs) + 1) if c.faithful else None),
        quantize_round_trip(jnp.float16),
    )
