"""Pseudo-labelling combined with Rotate (a Kaggle solution re-run by the Comparative Analysis
paper): relabel forget, retrain head, fine-tune."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from jaxmu import losses
from jaxmu.losses import Loss, LossInputs, entropy, teacher_logits
from jaxmu.methods._checks import batch, non_negative, positive, unit
from jaxmu.methods._config import (
    BATCH,
    EPOCHS,
    LR,
    MOMENTUM,
    UNIT,
    WD,
    MethodConfig,
    Need,
    hparam,
)
from jaxmu.methods._core import register
from jaxmu.models import ALL, classifier, conv_kernels
from jaxmu.stages import finetune, sequence, snapshot
from jaxmu.train import per_epoch, torch_sgd
from jaxmu.transforms import reinit, transpose_conv
from jaxmu.types import Splits, Stage, UnlearnState

ORIGINAL, FINETUNED, SCRATCH = "pl_original", "pl_finetuned", "pl_scratch"


def pseudo_labels(ft_logits, scratch_logits, y, entropy_threshold: float):
    """The paper's rule: the fine-tuned model's prediction, except where the fine-tuned
    model is right while the from-scratch model is wrong with a low entropy
    (``H(softmax) < entropy_threshold * log C``): there the from-scratch prediction."""
    k = ft_logits.shape[-1]
    pred_ft = jnp.argmax(ft_logits, -1)
    pred_sc = jnp.argmax(scratch_logits, -1)
    low = entropy(scratch_logits) < entropy_threshold * math.log(k)
    use_sc = (pred_ft == y) & (pred_sc != y) & low
    return jnp.where(use_sc, pred_sc, pred_ft)


def pseudo_label_ce(entropy_threshold: float) -> Loss:
    """Mean CE against :func:`pseudo_labels` computed on the batch from the frozen
    fine-tuned and from-scratch models in ``aux`` (eval mode, so equal to labels computed
    once up front)."""
    def fn(i: LossInputs):
        lab = pseudo_labels(teacher_logits(i, FINETUNED), teacher_logits(i, SCRATCH), i.y,
                            entropy_threshold)
        return losses.cross_entropy(i.logits, lab)

    return Loss(fn, "pseudo_label_ce")


def restore(name: str) -> Stage:
    """Sets params and model state back to the snapshot at ``aux[name]``."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        snap = state.aux[name]
        return state.replace(params=snap["params"], model_state=snap["model_state"])

    return run


@dataclasses.dataclass(frozen=True, kw_only=True)
class PseudoLabelConfig(MethodConfig):
    """Pseudo-labelling's hyperparameters: the common search space (the final retain
    fine-tune), the phases' epochs, ``head_lr`` and ``entropy_threshold``; ``ft_lr`` and
    ``scratch_lr`` are not searched. Without conv kernels the rotate step does nothing."""

    lr: float = LR(1e-3, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(5e-4, check=non_negative)
    batch_size: int = BATCH(64, check=batch)
    epochs: int = EPOCHS(3, check=positive)
    ft_epochs: int = EPOCHS(2, check=positive)
    scratch_epochs: int = EPOCHS(3, check=positive)
    head_epochs: int = EPOCHS(2, check=positive)
    head_lr: float = LR(0.01, check=positive)
    entropy_threshold: float = UNIT(0.5, check=unit)
    ft_lr: float = hparam(0.01, check=positive)
    scratch_lr: float = hparam(0.1, check=positive)
    touches = "all"
    needs = (Need("conv kernels for its rotate step", "pseudo-labelling without the rotation"),)


@register("pseudo_label", config=PseudoLabelConfig,
          summary="pseudo-label forget from a retain-fine-tuned and a brief from-scratch model; "
                  "transpose convs, re-init head, CE on pseudo-labelled forget (head only), CE "
                  "on retain",
          paper="Comparative Analysis of Machine Unlearning Approaches (000), Kaggle solution",
          section="docs/methods.md#pseudo_label")
def pseudo_label(c: PseudoLabelConfig):
    """Pseudo-labelling (with Rotate).

    1. Reference models, all SGD(momentum, weight_decay) with cosine per epoch on D_r:
       the original fine-tuned for ``ft_epochs`` at ``ft_lr``; a fresh model (new init from
       the method key, BN statistics reset) trained for ``scratch_epochs`` at
       ``scratch_lr``.
    2. Pseudo-labels on D_f (:func:`pseudo_labels`): the fine-tuned model's prediction,
       except where it is correct while the from-scratch model is wrong with low entropy
       (below ``entropy_threshold * log C``); there the from-scratch prediction.
    3. Back to the original: transpose every conv kernel (Rotate / CT; no-op without
       convs), re-initialise the classifier, train the classifier alone on the
       pseudo-labelled D_f for ``head_epochs`` at ``head_lr`` (BN in eval mode, so forget
       batches do not enter the running statistics).
    4. Fine-tune the whole model on D_r: ``epochs`` epochs of CE at ``lr``, cosine (CT's
       recipe; our completion of the paper's text).

    The paper also stores the original model's predictions on D_f, but its rule never reads
    them; jaxmu skips that forward pass. The thresholds, epochs and learning rates are not
    given by the paper and are jaxmu's choices; "low entropy" is read as a fraction of the
    maximal entropy log C.

    References:
        Comparative Analysis of Machine Unlearning Approaches for Data Protection, §IV-B3;
        docs/methods.md#pseudo_label; the Rotate step is CT (docs/methods.md#ct).
    """
    def retain_ce(lr_, epochs_):
        return finetune(losses.ce(), lambda spe: torch_sgd(
                        per_epoch(optax.cosine_decay_schedule(lr_, math.ceil(epochs_)), spe),
                        c.momentum, c.weight_decay),
                        split="retain", epochs=epochs_, batch_size=c.batch_size)

    return sequence(
        snapshot(ORIGINAL),
        retain_ce(c.ft_lr, c.ft_epochs),
        snapshot(FINETUNED),
        reinit(ALL, init="model", reset_batch_stats=True),
        retain_ce(c.scratch_lr, c.scratch_epochs),
        snapshot(SCRATCH),
        restore(ORIGINAL),
        transpose_conv(conv_kernels, allow_empty=True),
        reinit(classifier, init="model"),
        finetune(pseudo_label_ce(c.entropy_threshold),
                 torch_sgd(c.head_lr, c.momentum, c.weight_decay), split="forget",
                 epochs=c.head_epochs, batch_size=c.batch_size, bn="eval", select=classifier),
        retain_ce(c.lr, c.epochs),
    )
