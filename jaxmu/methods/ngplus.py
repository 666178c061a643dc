"""NG+ (NegGrad+): descent on retain batches and ascent on cycled forget batches."""

import dataclasses

from jaxmu import losses
from jaxmu.methods._checks import BN, batch, non_negative, positive, unit
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, UNIT, WD, MethodConfig, hparam
from jaxmu.methods._core import register
from jaxmu.stages import finetune, sequence, snapshot
from jaxmu.train import torch_sgd


@dataclasses.dataclass(frozen=True, kw_only=True)
class NgplusConfig(MethodConfig):
    """NG+'s hyperparameters: the common search space and ``alpha``; the proximal weight
    ``prox`` and the BatchNorm mode ``bn`` are not searched."""

    lr: float = LR(0.01, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(0.0, check=non_negative)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = EPOCHS(10, check=positive)
    alpha: float = UNIT(0.95, check=unit)
    prox: float = hparam(0.0, check=non_negative)
    bn: str = hparam("eval", check=BN)
    touches = "all"


@register("ngplus", config=NgplusConfig,
          summary="retain batches zipped with cycled forget batches; alpha*CE_r - "
                  "(1-alpha)*CE_f (+ alpha*prox/2*|theta-theta0|^2); eval-mode BN; SGD",
          paper="Deep Unlearn (004), after Kurmanji et al. (SCRUB) NegGrad+",
          section="docs/methods.md#ngplus")
def ngplus(c: NgplusConfig):
    """NegGrad+.

    One epoch is one shuffled pass over D_r; each retain batch is paired with the next batch
    of a shuffled, cycled pass over D_f (both at ``batch_size``). The loss is

        alpha * (CE(x_r, y_r) + prox/2 * ||theta - theta_0||^2) - (1 - alpha) * CE(x_f, y_f)

    with ``theta_0`` the parameters at the start of unlearning. SGD with momentum and coupled
    weight decay, no schedule. BatchNorm runs in eval mode by default (running statistics,
    never updated), as in the reference; ``bn="train"`` uses and updates batch statistics.

    Differences from the reference:
        * The proximal weight ``prox`` is a real hyperparameter (default 0, which is what the
          reference effectively runs: its ``cfg.weight_decay`` is a class attribute that
          is not a config field and equals 0). It is not searched.
        * The BatchNorm mode is exposed (``bn``); the default keeps the reference's eval mode.
        * Batches are full (the last batch of an epoch wraps around).

    References:
        Kurmanji et al., Towards Unbounded Machine Unlearning (2023); Cadet et al., Deep
        Unlearn (2024); the reference code: docs/methods.md#ngplus.
    """
    alpha = c.alpha
    loss = alpha * losses.ce() - (1.0 - alpha) * losses.ce(second=True)
    if c.prox > 0:
        loss = loss + alpha * losses.proximal("anchor", l2=c.prox)
    train = finetune(loss, torch_sgd(c.lr, c.momentum, c.weight_decay), split="retain",
                     second="forget", epochs=c.epochs, batch_size=c.batch_size, bn=c.bn)
    return sequence(snapshot("anchor"), train) if c.prox > 0 else train
