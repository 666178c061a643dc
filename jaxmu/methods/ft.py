"""FT: fine-tune on the retain set."""

import dataclasses
import math

import optax

from jaxmu import losses
from jaxmu.methods._checks import batch, positive
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, WD, MethodConfig
from jaxmu.methods._core import register
from jaxmu.stages import finetune
from jaxmu.train import per_epoch, torch_sgd


@dataclasses.dataclass(frozen=True, kw_only=True)
class FtConfig(MethodConfig):
    """FT's hyperparameters (the common search space)."""

    lr: float = LR(0.1, check=positive)
    momentum: float = MOMENTUM(0.9)
    weight_decay: float = WD(5e-4)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = EPOCHS(5)
    touches = "all"


@register("ft", config=FtConfig, summary="CE on retain; SGD with cosine per epoch",
          paper="Deep Unlearn (004)", section="docs/methods.md#ft")
def ft(c: FtConfig):
    """E epochs of CE on D_r in train mode, SGD + cosine annealing per epoch.

    References:
        Cadet et al., Deep Unlearn (2024); the reference code: docs/methods.md#ft.
    """
    return finetune(losses.ce(), lambda spe: torch_sgd(
                        per_epoch(optax.cosine_decay_schedule(c.lr, math.ceil(c.epochs)), spe),
                        c.momentum, c.weight_decay),
                    split="retain", epochs=c.epochs, batch_size=c.batch_size)
