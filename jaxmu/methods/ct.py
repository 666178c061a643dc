"""CT (Convolution Transpose): transpose every conv kernel spatially, then fine-tune on retain.

A NeurIPS-2023 Kaggle challenge solution benchmarked by Deep Unlearn (docs/methods.md#kaggle).
"""

from jaxmu import losses
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, Need, register
from jaxmu.models import conv_kernels
from jaxmu.stages import finetune, sequence, sgd
from jaxmu.transforms import transpose_conv


@register(
    "ct",
    defaults=dict(epochs=3, batch_size=64, lr=1e-3, momentum=0.9, weight_decay=5e-4),
    space=COMMON,
    summary="transpose conv kernels (h<->w); CE on retain, SGD + cosine",
    paper="Deep Unlearn (004), Kaggle NeurIPS-2023 solution", section="docs/methods.md#ct",
    touches="all",
    needs=(Need("conv kernels", "fine-tuning (FT)"),),
)
def ct(epochs, batch_size, lr, momentum, weight_decay):
    """Swap the spatial axes of every conv kernel (1x1 unchanged), then E epochs of CE on D_r
    (train mode) with SGD and cosine annealing per epoch. Models without convs (MLP) are
    only fine-tuned.

    References:
        Cadet et al., Deep Unlearn (2024); the reference code: docs/methods.md#ct.
    """
    return sequence(
        transpose_conv(conv_kernels, allow_empty=True),
        finetune(losses.ce(), sgd(momentum, weight_decay), lr=_checks.positive("lr", lr),
                 split="retain", epochs=epochs,
                 batch_size=_checks.batch("batch_size", batch_size), schedule="cosine"),
    )

