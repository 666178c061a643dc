"""Training and inference: ``fit`` (resumable), ``cached_fit``, ``predict``, accuracies,
schedules, batching.

References:
    Deep Unlearn's recipe for the original and retrained models
    (``munl/unlearning/original.py``, ``naive.py``);
    docs/evaluation.md#the-deep-unlearn-setting.
"""

from jaxmu.train._batches import (
    epoch_indices,
    load_batch,
    member_order,
    ordered_indices,
    steps_per_epoch,
)
from jaxmu.train._cached import cached_fit
from jaxmu.train._fit import (
    FitResult,
    TrainConfig,
    fit,
    init_keys,
    make_train_step,
    train_epoch,
)
from jaxmu.train._predict import labels, predict, predict_mask, split_accuracies
from jaxmu.train._schedules import SCHEDULES, cosine, epoch_multiplier, step_decay, triangular
from jaxmu.train._step import (
    Batch,
    StepKeys,
    batch_loader,
    per_epoch,
    relabel_forget,
    step_decay_schedule,
    torch_adam,
    torch_sgd,
    train_pass,
    train_step,
    triangular_schedule,
)

__all__ = [
    "Batch",
    "FitResult",
    "SCHEDULES",
    "StepKeys",
    "batch_loader",
    "TrainConfig",
    "cached_fit",
    "cosine",
    "epoch_indices",
    "epoch_multiplier",
    "fit",
    "init_keys",
    "labels",
    "load_batch",
    "make_train_step",
    "member_order",
    "ordered_indices",
    "per_epoch",
    "predict",
    "predict_mask",
    "relabel_forget",
    "split_accuracies",
    "step_decay",
    "step_decay_schedule",
    "steps_per_epoch",
    "torch_adam",
    "torch_sgd",
    "train_epoch",
    "train_pass",
    "train_step",
    "triangular",
    "triangular_schedule",
]
