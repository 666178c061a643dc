"""CT (Convolution Transpose): transpose every conv kernel spatially, then fine-tune on retain.

A NeurIPS-2023 Kaggle challenge solution benchmarked by Deep Unlearn (docs/methods.md#kaggle).
"""

import dataclasses
import math

import optax

from jaxmu import losses
from jaxmu.methods._checks import batch, positive
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, WD, MethodConfig, Need
from jaxmu.methods._core import register
from jaxmu.models import conv_kernels
from jaxmu.stages import finetune, sequence
from jaxmu.train import per_epoch, torch_sgd
from jaxmu.transforms import transpose_conv


@dataclasses.dataclass(frozen=True, kw_only=True)
class CtConfig(MethodConfig):
    """CT's hyperparameters (the common search space); without conv kernels CT is FT."""

    lr: float = LR(1e-3, check=positive)
    momentum: float = MOMENTUM(0.9)
    weight_decay: float = WD(5e-4)
    batch_size: int = BATCH(64, check=batch)
    epochs: int = EPOCHS(3)
    touches = "all"
    needs = (Need("conv kernels", "fine-tuning (FT)"),)


@register("ct", config=CtConfig,
          summary="transpose conv kernels (h<->w); CE on retain, SGD + cosine",
          paper="Deep Unlearn (004), Kaggle NeurIPS-2023 solution",
          section="docs/methods.md#ct")
def ct(c: CtConfig):
    """Swap the spatial axes of every conv kernel (1x1 unchanged), then E epochs of CE on D_r
    (train mode) with SGD and cosine annealing per epoch. Models without convs (MLP) are
    only fine-tuned.

    References:
        Cadet et al., Deep Unlearn (2024); the reference code: docs/methods.md#ct.
    """
    return sequence(
        transpose_conv(conv_kernels, allow_empty=True),
        finetune(losses.ce(), lambda spe: torch_sgd(
                     per_epoch(optax.cosine_decay_schedule(c.lr, math.ceil(c.epochs)), spe),
                     c.momentum, c.weight_decay),
                 split="retain", epochs=c.epochs, batch_size=c.batch_size),
    )

