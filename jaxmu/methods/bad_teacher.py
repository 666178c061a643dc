"""BT (Bad Teacher): distil from the original on retain rows and from a randomly initialised
copy of the architecture on forget rows."""

import jax
import jax.numpy as jnp

from jaxmu.losses import Loss, LossInputs, teacher_logits
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, TEMPERATURE, register
from jaxmu.stages import adam, finetune, sequence, snapshot
from jaxmu.types import Splits, Stage, UnlearnState


def fresh_teacher(name: str = "incompetent") -> Stage:
    """Stores a freshly initialised model of the same architecture at ``aux[name]``, drawn
    from the stage key (``model.init(key)``)."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        params, model_state = state.model.init(key)
        return state.with_aux(**{name: {"params": params, "model_state": model_state}})

    return run


def bad_teacher_kl(temperature: float, competent: str = "teacher",
                   incompetent: str = "incompetent") -> Loss:
    """``F.kl_div(log_softmax(s/T), p, reduction='mean')``: p = softmax(incompetent/T) on
    forget rows and softmax(competent/T) on retain rows; the sum over the batch divided by
    ``B * C`` (PyTorch's default 'mean', i.e. batchmean / C), no ``T^2`` factor."""
    def fn(i: LossInputs):
        t = temperature
        p_good = jax.nn.softmax(teacher_logits(i, competent) / t)
        p_bad = jax.nn.softmax(teacher_logits(i, incompetent) / t)
        f = i.is_forget[:, None]
        p = f * p_bad + (1.0 - f) * p_good
        lq = jax.nn.log_softmax(i.logits.astype(jnp.float32) / t)
        # xlogy: 0 * log 0 = 0, as PyTorch's kl_div.
        per = jnp.sum(jax.scipy.special.xlogy(p, p) - p * lq, -1)
        return per.mean() / i.logits.shape[-1]

    return Loss(fn, "bad_teacher_kl")


@register(
    "bad_teacher",
    defaults=dict(epochs=10, batch_size=256, lr=0.01, momentum=0.9, weight_decay=0.0,
                  temperature=1.0),
    space={**COMMON, "temperature": TEMPERATURE},
    summary="mixed retain/forget stream; KL('mean') to the original on retain rows and to a "
            "random init of the same architecture on forget rows; Adam",
    paper="Deep Unlearn (004), after Chundawat et al. Bad Teaching",
    section="docs/methods.md#bad_teacher",
    touches="all",
)
def bad_teacher(epochs, batch_size, lr, momentum, weight_decay, temperature):
    """Bad Teacher (incompetent-teacher distillation).

    The competent teacher is a frozen snapshot of the original model; the incompetent
    teacher is a freshly initialised model of the same architecture as the student, drawn
    from the method key and stored in ``aux``; both run in eval mode. The student (train-mode
    BatchNorm) is trained for E epochs over one shuffled stream mixing D_r and D_f, to match
    softmax(teacher / T) with the teacher chosen per row (incompetent on forget rows,
    competent on retain rows). The loss is PyTorch's ``kl_div(..., reduction='mean')``: the
    summed KL divided by ``B * C`` (the batch mean divided by C), without a ``T^2``
    factor. Adam with coupled (L2) weight decay; ``momentum`` is accepted and ignored, as in
    the reference (it is in the common search space).

    Differences from the reference:
        * The incompetent teacher has the student's architecture (a fresh ``model.init``);
          the reference always builds a torchvision ResNet18, even for TinyViT.
        * No checkpoint is written every epoch (the reference's writes sit in the timed
          region).
        * Batches are full (the last batch of an epoch wraps around).
        * ``temperature`` 0 (allowed by the reference's range) is clipped to 1e-3.

    References:
        Chundawat et al., Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks
        using an Incompetent Teacher (AAAI 2023); Cadet et al., Deep Unlearn (2024); the
        reference code: docs/methods.md#bad_teacher.
    """
    del momentum  # Adam: the reference ignores it too
    t = _checks.temperature("temperature", temperature)
    tx = adam(_checks.non_negative("weight_decay", weight_decay))
    return sequence(
        snapshot("teacher"),
        fresh_teacher("incompetent"),
        finetune(bad_teacher_kl(t), tx, lr=_checks.positive("lr", lr), split="train",
                 epochs=_checks.positive("epochs", epochs),
                 batch_size=_checks.batch("batch_size", batch_size)),
    )
