"""SRL: successive random labels (CE on retain and randomly relabelled forget rows)."""

from jaxmu import losses
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, register
from jaxmu.stages import finetune, sgd


@register(
    "srl",
    defaults=dict(epochs=5, batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4),
    space=COMMON,
    summary="CE on retain + forget with uniformly random forget labels (mixed stream); SGD",
    paper="Deep Unlearn (004), after Jia et al. Unlearn-Saliency (RL)",
    section="docs/methods.md#srl",
    touches="all",
)
def srl(epochs, batch_size, lr, momentum, weight_decay):
    """Successive random labels.

    E epochs of CE on one shuffled stream mixing D_r and D_f (train-mode BatchNorm); every
    time a forget row is drawn it gets a fresh label drawn uniformly from ``{0..C-1}`` (the
    true label included), so the forget rows are pulled towards chance. Plain SGD with
    momentum and PyTorch-style coupled weight decay, no learning-rate schedule.

    Differences from the reference:
        * The random labels come from the method key (a fresh draw per step), not from a
          ``RandomState(123)`` restarted every epoch; the distribution is the same.
        * Batches are full: the last batch of an epoch wraps around to the start of the
          shuffled order (jaxmu's static-shape batching) instead of being a smaller batch.
        * The reference's config lists a cosine scheduler that is never created; jaxmu
          simply has none.

    References:
        Cadet et al., Deep Unlearn (2024); Jia et al., Model Sparsity Can Simplify Machine
        Unlearning (2023); the reference code: docs/methods.md#srl.
    """
    tx = sgd(_checks.non_negative("momentum", momentum),
             _checks.non_negative("weight_decay", weight_decay))
    return finetune(losses.ce(), tx, lr=_checks.positive("lr", lr), split="train",
                    epochs=_checks.positive("epochs", epochs),
                    batch_size=_checks.batch("batch_size", batch_size),
                    relabel_forget=True)
