"""FT: fine-tune on the retain set."""

from jaxmu import losses
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, register
from jaxmu.stages import finetune, sgd


@register(
    "ft",
    defaults=dict(epochs=5, batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4),
    space=COMMON,
    summary="CE on retain; SGD with cosine per epoch",
    paper="Deep Unlearn (004)", section="docs/methods.md#ft",
    touches="all",
)
def ft(epochs, batch_size, lr, momentum, weight_decay):
    """E epochs of CE on D_r in train mode, SGD + cosine annealing per epoch.

    References:
        Cadet et al., Deep Unlearn (2024); the reference code: docs/methods.md#ft.
    """
    return finetune(losses.ce(), sgd(momentum, weight_decay), lr=_checks.positive("lr", lr),
                    split="retain", epochs=epochs, batch_size=_checks.batch("batch_size",
                                                                             batch_size),
                    schedule="cosine")
