"""Pseudo-labelling combined with Rotate (a Kaggle solution re-run by the Comparative Analysis
paper): relabel forget, retrain head, fine-tune."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxmu import losses
from jaxmu.losses import Loss, LossInputs, entropy, teacher_logits
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, EPOCHS, LR, UNIT, Need, register
from jaxmu.models import ALL, classifier, conv_kernels
from jaxmu.stages import finetune, sequence, sgd, snapshot
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


@register(
    "pseudo_label",
    defaults=dict(ft_epochs=2, ft_lr=0.01, scratch_epochs=3, scratch_lr=0.1,
                  entropy_threshold=0.5, head_epochs=2, head_lr=0.01, epochs=3, lr=1e-3,
                  batch_size=64, momentum=0.9, weight_decay=5e-4),
    space={**COMMON, "ft_epochs": EPOCHS, "scratch_epochs": EPOCHS, "head_epochs": EPOCHS,
           "head_lr": LR, "entropy_threshold": UNIT},
    summary="pseudo-label forget from a retain-fine-tuned and a brief from-scratch model; "
            "transpose convs, re-init head, CE on pseudo-labelled forget (head only), CE on "
            "retain",
    paper="Comparative Analysis of Machine Unlearning Approaches (000), Kaggle solution",
    section="docs/methods.md#pseudo_label",
    touches="all",
    needs=(Need("conv kernels for its rotate step", "pseudo-labelling without the rotation"),),
)
def pseudo_label(ft_epochs, ft_lr, scratch_epochs, scratch_lr, entropy_threshold,
                 head_epochs, head_lr, epochs, lr, batch_size, momentum, weight_decay):
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
    for name, v in dict(ft_epochs=ft_epochs, scratch_epochs=scratch_epochs,
                        head_epochs=head_epochs, epochs=epochs, ft_lr=ft_lr,
                        scratch_lr=scratch_lr, head_lr=head_lr, lr=lr).items():
        _checks.positive(name, v)
    _checks.unit("entropy_threshold", entropy_threshold)
    batch_size = _checks.batch("batch_size", batch_size)
    _checks.non_negative("momentum", momentum)
    _checks.non_negative("weight_decay", weight_decay)
    tx = sgd(momentum, weight_decay)

    def retain_ce(lr_, epochs_):
        return finetune(losses.ce(), tx, lr=lr_, split="retain", epochs=epochs_,
                        batch_size=batch_size, schedule="cosine")

    return sequence(
        snapshot(ORIGINAL),
        retain_ce(ft_lr, ft_epochs),
        snapshot(FINETUNED),
        reinit(ALL, init="model", reset_batch_stats=True),
        retain_ce(scratch_lr, scratch_epochs),
        snapshot(SCRATCH),
        restore(ORIGINAL),
        transpose_conv(conv_kernels, allow_empty=True),
        reinit(classifier, init="model"),
        finetune(pseudo_label_ce(entropy_threshold), tx, lr=head_lr, split="forget",
                 epochs=head_epochs, batch_size=batch_size, bn="eval", select=classifier),
        retain_ce(lr, epochs),
    )
