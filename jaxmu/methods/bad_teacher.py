"""BT (Bad Teacher): distil from the original on retain rows and from a randomly initialised
copy of the architecture on forget rows."""

import dataclasses

import jax
import jax.numpy as jnp

from jaxmu.losses import Loss, LossInputs, teacher_logits
from jaxmu.methods._checks import batch, clip_temperature, non_negative, positive
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, TEMPERATURE, WD, MethodConfig
from jaxmu.methods._core import register
from jaxmu.stages import finetune, sequence, snapshot
from jaxmu.train import torch_adam
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class BadTeacherConfig(MethodConfig):
    """Bad Teacher's hyperparameters: the common search space (``momentum`` is ignored:
    Adam) and ``temperature``."""

    lr: float = LR(0.01, check=positive)
    momentum: float = MOMENTUM(0.9)
    weight_decay: float = WD(0.0, check=non_negative)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = EPOCHS(10, check=positive)
    temperature: float = TEMPERATURE(1.0, check=non_negative)
    touches = "all"


@register("bad_teacher", config=BadTeacherConfig,
          summary="mixed retain/forget stream; KL('mean') to the original on retain rows and "
                  "to a random init of the same architecture on forget rows; Adam",
          paper="Deep Unlearn (004), after Chundawat et al. Bad Teaching",
          section="docs/methods.md#bad_teacher")
def bad_teacher(c: BadTeacherConfig):
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
    # c.momentum is ignored (Adam), as in the reference.
    return sequence(
        snapshot("teacher"),
        fresh_teacher("incompetent"),
        finetune(bad_teacher_kl(clip_temperature(c.temperature)),
                 torch_adam(c.lr, c.weight_decay), split="train", epochs=c.epochs,
                 batch_size=c.batch_size),
    )
