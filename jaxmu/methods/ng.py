"""NG: negative gradient on a mixed retain/forget stream (per-sample CE, sign flipped on
forget rows)."""

import dataclasses
import math

import jax.numpy as jnp
import optax

from jaxmu.losses import Loss, LossInputs
from jaxmu.methods._checks import batch, non_negative, positive
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, WD, MethodConfig
from jaxmu.methods._core import register
from jaxmu.stages import finetune
from jaxmu.train import per_epoch, torch_sgd


def signed_ce(faithful: bool = False) -> Loss:
    """Mean over the batch of ``s_i * CE_i`` with ``s_i = -1`` on forget rows, ``+1`` else.

    ``faithful=True`` clamps every signed value to ``[0, 1/C]`` before averaging, as the
    reference does (which zeroes every forget gradient: a forget value is ``<= 0``).
    """
    def fn(i: LossInputs):
        per = optax.softmax_cross_entropy_with_integer_labels(i.logits.astype(jnp.float32), i.y)
        per = jnp.where(i.is_forget > 0, -per, per)
        if faithful:
            per = jnp.clip(per, 0.0, 1.0 / i.logits.shape[-1])
        return per.mean()

    return Loss(fn, "signed_ce" + ("[clamped]" if faithful else ""))


@dataclasses.dataclass(frozen=True, kw_only=True)
class NgConfig(MethodConfig):
    """NG's hyperparameters: the common search space; ``faithful`` restores the clamp."""

    lr: float = LR(0.1, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(5e-4, check=non_negative)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = EPOCHS(5, check=positive)
    faithful: bool = False
    touches = "all"


@register("ng", config=NgConfig,
          summary="mixed retain/forget stream; per-sample CE with the sign flipped on forget "
                  "rows; SGD + cosine",
          paper="Deep Unlearn (004), negative gradient (not benchmarked there)",
          section="docs/methods.md#ng")
def ng(c: NgConfig):
    """Negative gradient.

    E epochs over one shuffled stream mixing D_r and D_f (train-mode BatchNorm). The loss is
    the batch mean of the per-sample CE, with the sign flipped on forget rows: descent on the
    retain rows and ascent on the forget rows in the same step, weighted by their share of
    the batch. SGD with momentum and coupled weight decay, cosine annealing per epoch.

    Differences from the reference:
        * Fixed (default): the reference clamps every per-sample value to ``[0, 1/C]`` before
          averaging. A forget value ``-CE <= 0`` is then clamped to 0 with zero gradient, so
          the forget term never contributes, and retain rows contribute only while their CE
          is below ``1/C``. jaxmu drops the clamp;
          ``faithful=True`` restores it.
        * Batches are full (the last batch of an epoch wraps around).

    References:
        Cadet et al., Deep Unlearn (2024), whose code has NG but does not benchmark it;
        docs/methods.md#ng.
    """
    return finetune(signed_ce(c.faithful),
                    lambda spe: torch_sgd(
                        per_epoch(optax.cosine_decay_schedule(c.lr, math.ceil(c.epochs)), spe),
                        c.momentum, c.weight_decay),
                    split="train", epochs=c.epochs, batch_size=c.batch_size)
