"""R: retrain from scratch on the retain set (the gold standard of exact unlearning)."""

import dataclasses
import math

import optax

from jaxmu import losses
from jaxmu.methods._checks import batch, positive
from jaxmu.methods._config import BATCH, LR, WD, MethodConfig
from jaxmu.methods._core import Reference, register
from jaxmu.models import ALL
from jaxmu.stages import finetune, sequence
from jaxmu.train import per_epoch, torch_sgd
from jaxmu.transforms import reinit


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetrainConfig(MethodConfig):
    """R's hyperparameters: the recipe; ``lr``, ``weight_decay`` and ``batch_size`` are
    searched."""

    lr: float = LR(0.1, check=positive)
    weight_decay: float = WD(5e-4)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = 30
    momentum: float = 0.9
    augment: bool = True
    touches = "all"


def recipe_hparams(config) -> dict:
    """``retrain`` hyperparameters equal to a :class:`jaxmu.train.TrainConfig` recipe, so the
    population ``retrain`` (U-LiRA, F-score) retrains exactly as the experiment trained R.

    >>> from jaxmu.train import TrainConfig
    >>> recipe_hparams(TrainConfig(epochs=3, augment=False))["epochs"]
    3
    """
    return {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
            "momentum": config.momentum, "weight_decay": config.weight_decay,
            "augment": config.augment}


def _is_r(trained):
    """An experiment's answer for ``retrain``: the R it trained, costing R's training time
    (compilation reported apart)."""
    return trained.retrained, trained.retrain_seconds, trained.retrain_compile_seconds


@register("retrain", config=RetrainConfig,
          summary="re-initialise everything; SGD 0.1/0.9/5e-4 + cosine on retain with "
                  "augmentation",
          paper="Deep Unlearn (004)", section="docs/methods.md#retrain",
          reference=Reference(_is_r, from_recipe=recipe_hparams))
def retrain(c: RetrainConfig):
    """Fresh init (from the method key), then Deep Unlearn's recipe on retain.

    A reference method: the experiments train R with :func:`jaxmu.train.fit` from the same
    init seed as O (the reference's shared initialisation) and report it, with R's
    training time, as this method's answer (never searched or ranked). This stage is the
    jittable, vmappable equivalent used inside populations (SISA, U-LiRA, audits), with a
    fresh init drawn from its key and, there, the task's recipe (:func:`recipe_hparams`).

    The reference's recipe (SGD 0.1 / 0.9 / 5e-4, cosine per epoch, batch 256, augmented,
    182 epochs on CIFAR, 50 on MNIST-sized data) is in docs/methods.md#retrain.

    References:
        Cadet et al., Deep Unlearn (2024).
    """
    return sequence(
        reinit(ALL, init="model", reset_batch_stats=True),
        finetune(losses.ce(), lambda spe: torch_sgd(
                     per_epoch(optax.cosine_decay_schedule(c.lr, math.ceil(c.epochs)), spe),
                     c.momentum, c.weight_decay),
                 split="retain", epochs=c.epochs, batch_size=c.batch_size, augment=c.augment),
    )
