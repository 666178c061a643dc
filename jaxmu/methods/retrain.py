"""R: retrain from scratch on the retain set (the gold standard of exact unlearning)."""

from jaxmu import losses
from jaxmu.methods import _checks
from jaxmu.methods._core import BATCH, LR, WD, register
from jaxmu.models import ALL
from jaxmu.stages import finetune, sequence, sgd
from jaxmu.transforms import reinit


@register(
    "retrain",
    defaults=dict(epochs=30, batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4,
                  augment=True),
    space=dict(lr=LR, weight_decay=WD, batch_size=BATCH),
    summary="re-initialise everything; SGD 0.1/0.9/5e-4 + cosine on retain with augmentation",
    paper="Deep Unlearn (004)", section="docs/methods.md#retrain",
    touches="all",
)
def retrain(epochs, batch_size, lr, momentum, weight_decay, augment):
    """Fresh init (from the method key), then Deep Unlearn's recipe on retain.

    The experiments train R with :func:`jaxmu.train.fit` from the same init seed as O (the
    reference's shared initialisation); this method is the jittable, vmappable equivalent
    used inside populations (SISA, U-LiRA), with a fresh init drawn from its key.

    The reference's recipe (SGD 0.1 / 0.9 / 5e-4, cosine per epoch, batch 256, augmented,
    182 epochs on CIFAR, 50 on MNIST-sized data) is in docs/methods.md#retrain.

    References:
        Cadet et al., Deep Unlearn (2024).
    """
    _checks.batch("batch_size", batch_size)
    return sequence(
        reinit(ALL, init="model", reset_batch_stats=True),
        finetune(losses.ce(), sgd(momentum, weight_decay), lr=_checks.positive("lr", lr),
                 split="retain", epochs=epochs, batch_size=batch_size, schedule="cosine",
                 augment=augment),
    )


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
