"""GA: gradient ascent on the forget set."""

import dataclasses

from jaxmu import losses
from jaxmu.methods._checks import batch, positive
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, WD, MethodConfig
from jaxmu.methods._core import register
from jaxmu.stages import finetune
from jaxmu.train import torch_sgd


@dataclasses.dataclass(frozen=True, kw_only=True)
class GaConfig(MethodConfig):
    """GA's hyperparameters (the common search space)."""

    lr: float = LR(0.01, check=positive)
    momentum: float = MOMENTUM(0.9)
    weight_decay: float = WD(5e-4)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = EPOCHS(10)
    touches = "all"


@register("ga", config=GaConfig, summary="-CE on forget; SGD, no schedule",
          paper="Deep Unlearn (004), after Jia et al. Unlearn-Sparse",
          section="docs/methods.md#ga")
def ga(c: GaConfig):
    """E epochs of ``-CE`` on D_f in train mode, plain SGD (no retain term, no schedule).

    References:
        Jia et al., Model Sparsity Can Simplify Machine Unlearning (2023); Cadet et al.,
        Deep Unlearn (2024); the reference code: docs/methods.md#ga.
    """
    return finetune(losses.neg(losses.ce()), torch_sgd(c.lr, c.momentum, c.weight_decay),
                    split="forget", epochs=c.epochs, batch_size=c.batch_size)
