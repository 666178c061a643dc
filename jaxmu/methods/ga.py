"""GA: gradient ascent on the forget set."""

from jaxmu import losses
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, register
from jaxmu.stages import finetune, sgd


@register(
    "ga",
    defaults=dict(epochs=10, batch_size=256, lr=0.01, momentum=0.9, weight_decay=5e-4),
    space=COMMON,
    summary="-CE on forget; SGD, no schedule",
    paper="Deep Unlearn (004), after Jia et al. Unlearn-Sparse", section="docs/methods.md#ga",
    touches="all",
)
def ga(epochs, batch_size, lr, momentum, weight_decay):
    """E epochs of ``-CE`` on D_f in train mode, plain SGD (no retain term, no schedule).

    References:
        Jia et al., Model Sparsity Can Simplify Machine Unlearning (2023); Cadet et al.,
        Deep Unlearn (2024); the reference code: docs/methods.md#ga.
    """
    return finetune(losses.neg(losses.ce()), sgd(momentum, weight_decay),
                    lr=_checks.positive("lr", lr), split="forget", epochs=epochs,
                    batch_size=_checks.batch("batch_size", batch_size))
