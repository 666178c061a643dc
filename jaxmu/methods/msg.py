"""MSG: Masked Small Gradients.

A NeurIPS-2023 Kaggle challenge solution benchmarked by Deep Unlearn (docs/methods.md#kaggle).
"""

import dataclasses
import math

from jaxmu import losses
from jaxmu.methods._checks import batch, positive, unit
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, UNIT, WD, MethodConfig
from jaxmu.methods._core import register
from jaxmu.models import conv_kernels, weights
from jaxmu.stages import GradientPart, finetune, sequence, sum_gradients
from jaxmu.train import per_epoch, torch_sgd, triangular_schedule
from jaxmu.transforms import mask_by_gradient_saliency, reinit, scale_by_mask


@dataclasses.dataclass(frozen=True, kw_only=True)
class MsgConfig(MethodConfig):
    """MSG's hyperparameters: the common search space and ``init_rate``."""

    lr: float = LR(1e-3, check=positive)
    momentum: float = MOMENTUM(0.9)
    weight_decay: float = WD(5e-4)
    batch_size: int = BATCH(64, check=batch)
    epochs: int = EPOCHS(5)
    init_rate: float = UNIT(0.3, check=unit)
    kept_scale: float = 0.1
    probe_batch_size: int = 64
    touches = "all"


@register("msg", config=MsgConfig,
          summary="probe G = sum grad CE_r(subset) - sum grad CE_f; re-init the init_rate "
                  "smallest-|G| conv entries; CE on retain, kept entries' grads x0.1, "
                  "triangular lr",
          paper="Deep Unlearn (004), Kaggle NeurIPS-2023 solution",
          section="docs/methods.md#msg")
def msg(c: MsgConfig):
    """Masked Small Gradients.

    1. Probe (train-mode BN, as the reference): G = sum of CE gradients over a random retain
       subset of size |D_f| (batch 64) minus the sum over D_f (batch ``batch_size``).
    2. Per conv kernel, the ``round(init_rate * numel)`` entries with the smallest |G| are
       re-drawn with kaiming-normal (fan_out, relu).
    3. Fine-tune on D_r (train mode), SGD with coupled weight decay applied *after* scaling the
       kept entries' gradients by ``kept_scale`` (0.1), triangular lr per epoch.

    Models without conv kernels (MLP) use their dense kernels instead, so the method stays
    meaningful on the embedded digits MLP (the reference only has conv nets).

    References:
        Cadet et al., Deep Unlearn (2024); the reference code: docs/methods.md#msg.
    """
    def run(state, splits, key):
        import jax

        has_conv = any(jax.tree.leaves(conv_kernels(state.model, state.params,
                                                    allow_empty=True)))
        select = conv_kernels if has_conv else weights
        # Both probes in one loop when their batch shapes agree (one compiled forward and
        # backward instead of two); part i draws from fold_in(key, i), as stage i of a
        # sequence would, so the stages after them start at 2.
        probe = sum_gradients("g", losses.ce(), [
            GradientPart("retain", c.probe_batch_size, subset="forget"),
            GradientPart("forget", c.batch_size, sign=-1.0),
        ], bn="train")
        rest = sequence(
            mask_by_gradient_saliency("g", "reinit", c.init_rate, largest=False,
                                      select=select, scope="layer", fill=1.0),
            reinit(select, init="kaiming_normal_fan_out", where="reinit"),
            finetune(losses.ce(),
                     lambda spe: torch_sgd(
                         per_epoch(triangular_schedule(c.lr, math.ceil(c.epochs)), spe),
                         c.momentum, c.weight_decay,
                         pre=(scale_by_mask("reinit", 1.0, c.kept_scale),)),
                     split="retain", epochs=c.epochs, batch_size=c.batch_size),
            start=2,
        )
        return rest(probe(state, splits, key), splits, key)

    return run
