"""NG+ (NegGrad+): descent on retain batches and ascent on cycled forget batches."""

from jaxmu import losses
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, UNIT, register
from jaxmu.stages import finetune, sequence, sgd, snapshot


@register(
    "ngplus",
    defaults=dict(epochs=10, batch_size=256, lr=0.01, momentum=0.9, weight_decay=0.0,
                  alpha=0.95, prox=0.0, bn="eval"),
    space={**COMMON, "alpha": UNIT},
    summary="retain batches zipped with cycled forget batches; "
            "alpha*CE_r - (1-alpha)*CE_f (+ alpha*prox/2*|theta-theta0|^2); eval-mode BN; SGD",
    paper="Deep Unlearn (004), after Kurmanji et al. (SCRUB) NegGrad+",
    section="docs/methods.md#ngplus",
    touches="all",
)
def ngplus(epochs, batch_size, lr, momentum, weight_decay, alpha, prox, bn):
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
    _checks.unit("alpha", alpha)
    _checks.non_negative("prox", prox)
    if bn not in ("train", "eval"):
        raise ValueError(f"bn must be 'train' or 'eval', got {bn!r}")
    loss = alpha * losses.ce() - (1.0 - alpha) * losses.ce(second=True)
    if prox > 0:
        loss = loss + alpha * losses.proximal("anchor", l2=prox)
    tx = sgd(_checks.non_negative("momentum", momentum),
             _checks.non_negative("weight_decay", weight_decay))
    train = finetune(loss, tx, lr=_checks.positive("lr", lr), split="retain", second="forget",
                     epochs=_checks.positive("epochs", epochs),
                     batch_size=_checks.batch("batch_size", batch_size), bn=bn)
    return sequence(snapshot("anchor"), train) if prox > 0 else train
