"""CF-k: catastrophic forgetting of the last k blocks (fine-tune only them, proximal SGD)."""

from __future__ import annotations

import dataclasses

from jaxmu import losses
from jaxmu.methods import _checks
from jaxmu.methods._core import BATCH, EPOCHS, HP, LR, MOMENTUM, UNIT, WD, register
from jaxmu.models import Selector, last_k_blocks
from jaxmu.stages import finetune, sequence, sgd, snapshot
from jaxmu.types import Stage

ANCHOR = "prox_anchor"

CFK_DEFAULTS = dict(epochs=10, batch_size=256, num_blocks=1, lr=0.01, sgda_learning_rate=5e-4,
                    sgda_decay_rate=0.1, sgda_weight_decay=0.1, momentum=0.9, bn="eval")
CFK_SPACE = dict(
    epochs=EPOCHS,
    batch_size=BATCH,
    sgda_decay_rate=UNIT,
    sgda_learning_rate=dataclasses.replace(LR, dead=True),
    sgda_weight_decay=WD,
    lr=LR,
    momentum=dataclasses.replace(MOMENTUM, dead=True),
    num_blocks=HP("int", 1, 10),
)


def last_k_touched(hparams) -> Selector:
    """What CF-k and EU-k may change: the last ``num_blocks`` blocks and the classifier."""
    return last_k_blocks(int(hparams["num_blocks"]))


def check_last_k(epochs, batch_size, num_blocks, lr, sgda_decay_rate, sgda_weight_decay, bn):
    """Validates the CF-k / EU-k hyperparameters (shared with ``eu_k``)."""
    _checks.positive("epochs", epochs)
    _checks.batch("batch_size", batch_size)
    if int(num_blocks) != num_blocks or num_blocks < 0:
        raise ValueError(f"num_blocks must be an integer >= 0, got {num_blocks}")
    _checks.positive("lr", lr)
    _checks.unit("sgda_decay_rate", sgda_decay_rate)
    _checks.non_negative("sgda_weight_decay", sgda_weight_decay)
    if bn not in ("train", "eval"):
        raise ValueError(f"bn must be 'train' or 'eval', got {bn!r}")


def last_k_finetune(epochs, batch_size, num_blocks, lr, sgda_decay_rate, sgda_weight_decay,
                    bn, augment: bool = False) -> Stage:
    """Snapshot the anchor, then SGD (momentum 0, wd 0) on CE + (lambda/2)|theta -
    theta_anchor|^2 over the last ``num_blocks`` blocks + classifier, 0-indexed step decay."""
    return sequence(
        snapshot(ANCHOR),
        finetune(losses.ce() + losses.proximal(ANCHOR, l2=sgda_weight_decay), sgd(0.0, 0.0),
                 lr=lr, split="retain", epochs=epochs, batch_size=int(batch_size),
                 schedule="step", schedule_kw=dict(decay_rate=sgda_decay_rate,
                                                   one_indexed=False),
                 bn=bn, augment=augment, select=last_k_blocks(int(num_blocks))),
    )


@register(
    "cf_k",
    defaults=CFK_DEFAULTS,
    space=CFK_SPACE,
    summary="train only the last k blocks + head on retain: SGD(lr, momentum 0) + prox "
            "(lambda/2)|theta - theta_start|^2, 0-indexed step decay, eval-mode BN",
    paper="Deep Unlearn (004), after Goel et al. / SCRUB code", section="docs/methods.md#cf_k",
    touches=last_k_touched,
)
def cf_k(epochs, batch_size, num_blocks, lr, sgda_learning_rate, sgda_decay_rate,
         sgda_weight_decay, momentum, bn):
    """Catastrophic forgetting of the last k blocks (CF-k).

    Everything but the last ``num_blocks`` blocks and the classifier is frozen (bit-identical
    output; k larger than the number of blocks means all blocks, the stem stays frozen).
    Fine-tune on D_r (no augmentation, shuffled, batch ``batch_size``) for ``epochs`` epochs
    with SGD(``lr``, momentum 0, weight decay 0) on
    ``CE + (sgda_weight_decay / 2) * |theta - theta_start|^2`` (theta_start = the parameters
    at the start of the fine-tune; frozen parameters contribute nothing), and a step decay
    ``lr * sgda_decay_rate ** #{d in [floor(.5E), floor(.8E), floor(.9E)] : e > d}`` over
    0-indexed epochs e.

    BatchNorm runs in eval mode (``bn="eval"``, the reference's behaviour: running
    statistics used and never updated, no dropout); ``bn="train"`` is the alternative.

    Differences from the reference: none in the update. ``sgda_learning_rate`` and
    ``momentum`` are sampled by the reference but unused (the schedule's base is ``lr``);
    they are kept in the search space, marked dead, and ignored here.

    References:
        Goel et al., Towards Adversarial Evaluation of Machine Unlearning (2022); Kurmanji
        et al., SCRUB (2023) code; Cadet et al., Deep Unlearn (2024); the reference code:
        docs/methods.md#cf_k.
    """
    check_last_k(epochs, batch_size, num_blocks, lr, sgda_decay_rate, sgda_weight_decay, bn)
    return last_k_finetune(epochs, batch_size, num_blocks, lr, sgda_decay_rate,
                           sgda_weight_decay, bn)
