"""CF-k: catastrophic forgetting of the last k blocks (fine-tune only them, proximal SGD)."""

from __future__ import annotations

import dataclasses
import math

from jaxmu import losses
from jaxmu.methods._checks import BN, batch, integer, non_negative, positive, unit
from jaxmu.methods._config import (
    BATCH,
    EPOCHS,
    HP,
    LR,
    MOMENTUM,
    UNIT,
    WD,
    MethodConfig,
    hparam,
)
from jaxmu.methods._core import register
from jaxmu.models import Selector, last_k_blocks
from jaxmu.stages import finetune, sequence, snapshot
from jaxmu.train import per_epoch, step_decay_schedule, torch_sgd
from jaxmu.types import Stage

ANCHOR = "prox_anchor"


@dataclasses.dataclass(frozen=True, kw_only=True)
class CfKConfig(MethodConfig):
    """CF-k's hyperparameters (not the common space: ``sgda_learning_rate`` and
    ``momentum`` are searched by the reference but unused, dead here). EU-k extends it."""

    epochs: int = EPOCHS(10, check=positive)
    batch_size: int = BATCH(256, check=batch)
    sgda_decay_rate: float = UNIT(0.1, check=unit)
    sgda_learning_rate: float = LR(5e-4, dead=True)
    sgda_weight_decay: float = WD(0.1, check=non_negative)
    lr: float = LR(0.01, check=positive)
    momentum: float = MOMENTUM(0.9, dead=True)
    num_blocks: int = HP("int", 1, 10)(1, check=integer)
    bn: str = hparam("eval", check=BN)

    def touches(self) -> Selector:
        """The last ``num_blocks`` blocks and the classifier."""
        return last_k_blocks(int(self.num_blocks))


def last_k_finetune(c: CfKConfig, augment: bool = False) -> Stage:
    """Snapshot the anchor, then SGD (momentum 0, wd 0) on CE + (lambda/2)|theta -
    theta_anchor|^2 over the last ``num_blocks`` blocks + classifier, 0-indexed step decay."""
    return sequence(
        snapshot(ANCHOR),
        finetune(losses.ce() + losses.proximal(ANCHOR, l2=c.sgda_weight_decay),
                 lambda spe: torch_sgd(per_epoch(step_decay_schedule(
                     c.lr, math.ceil(c.epochs), c.sgda_decay_rate, one_indexed=False), spe)),
                 split="retain", epochs=c.epochs, batch_size=int(c.batch_size),
                 bn=c.bn, augment=augment, select=last_k_blocks(int(c.num_blocks))),
    )


@register("cf_k", config=CfKConfig,
          summary="train only the last k blocks + head on retain: SGD(lr, momentum 0) + prox "
                  "(lambda/2)|theta - theta_start|^2, 0-indexed step decay, eval-mode BN",
          paper="Deep Unlearn (004), after Goel et al. / SCRUB code",
          section="docs/methods.md#cf_k")
def cf_k(c: CfKConfig):
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
    return last_k_finetune(c)
