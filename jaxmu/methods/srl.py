"""SRL: successive random labels (CE on retain and randomly relabelled forget rows)."""

import dataclasses

from jaxmu import losses
from jaxmu.methods._checks import batch, non_negative, positive
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, WD, MethodConfig
from jaxmu.methods._core import register
from jaxmu.stages import finetune
from jaxmu.train import relabel_forget, torch_sgd


@dataclasses.dataclass(frozen=True, kw_only=True)
class SrlConfig(MethodConfig):
    """SRL's hyperparameters (the common search space)."""

    lr: float = LR(0.1, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(5e-4, check=non_negative)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = EPOCHS(5, check=positive)
    touches = "all"


@register("srl", config=SrlConfig,
          summary="CE on retain + forget with uniformly random forget labels (mixed stream); "
                  "SGD",
          paper="Deep Unlearn (004), after Jia et al. Unlearn-Saliency (RL)",
          section="docs/methods.md#srl")
def srl(c: SrlConfig):
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
    return finetune(losses.ce(), torch_sgd(c.lr, c.momentum, c.weight_decay), split="train",
                    epochs=c.epochs, batch_size=c.batch_size, transform=relabel_forget)
