"""The training-step primitive every jaxmu loop is built from.

Three pieces, used from the outside in:

* :func:`train_pass` scans a step over a sequence of batches (pool indices) of one split,
  optionally zipped with a second stream (e.g. forget batches next to retain batches);
* :func:`train_step` builds that step from a loss and an optax optimizer: forward pass(es),
  :class:`~jaxmu.losses.LossInputs`, ``value_and_grad``, ``tx.update``,
  ``optax.apply_updates``, with the BatchNorm mode and an optional selector of trainable
  leaves;
* :func:`batch_loader` gathers (and optionally augments) a :class:`Batch` from the pool.

The optimizer is a stock optax ``GradientTransformation`` and owns the learning rate and
its schedule: ``optax.sgd(0.1, momentum=0.9)`` steps with lr 0.1, a schedule is an optax
schedule (a function of the optimizer's update count) and a learning rate that a loop sets
between passes is an ``optax.inject_hyperparams`` hyperparameter. The optimizer state is
part of the carry ``(params, model_state, opt_state)``, so several passes (and several
phases of a method) can share one optimizer; :func:`jaxmu.stages.finetune` keeps it under a
name in ``UnlearnState.aux`` for that purpose.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmu.losses import LossInputs
from jaxmu.train._batches import load_batch
from jaxmu.train._schedules import step_decay, triangular
from jaxmu.types import Pool

Carry = tuple  # (params, model_state, opt_state)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Batch:
    """One training batch (normalised inputs), optionally with a second stream's batch.

    Attributes:
        x: inputs ``[B, ...]`` (normalised float).
        y: integer labels ``[B]``.
        is_forget: float ``[B]``, 1 for rows of the forget set, else 0.
        x2: inputs of the second stream's batch, or None.
        y2: its labels, or None.
    """

    x: jax.Array
    y: jax.Array
    is_forget: jax.Array
    x2: jax.Array | None = None
    y2: jax.Array | None = None

    def replace(self, **kw) -> Batch:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **kw)


class StepKeys(NamedTuple):
    """The PRNG keys of one step; a field left None means "not random".

    Attributes:
        batch: augmentation (and batch transforms such as relabelling) of the batch.
        batch2: augmentation of the second stream's batch.
        dropout: the model's stochastic layers on the batch.
        dropout2: the same on the second batch.
        loss: given to the loss as ``LossInputs.key`` (random targets).
    """

    batch: jax.Array | None = None
    batch2: jax.Array | None = None
    dropout: jax.Array | None = None
    dropout2: jax.Array | None = None
    loss: jax.Array | None = None

    @classmethod
    def split(cls, key: jax.Array) -> StepKeys:
        """The standard layout: ``jax.random.split(key, 5)`` in field order."""
        return cls(*jax.random.split(key, 5))

    @classmethod
    def split_many(cls, key: jax.Array, steps: int) -> StepKeys:
        """Keys of ``steps`` steps: :meth:`split` of each of ``jax.random.split(key,
        steps)``, stacked on a leading axis (what :func:`train_pass` scans over)."""
        return jax.vmap(cls.split)(jax.random.split(key, steps))


def batch_loader(pool: Pool, forget: jax.Array | None = None, *, augment: bool = False,
                 transform: Callable[[Batch, jax.Array, Pool], Batch] | None = None
                 ) -> Callable[[jax.Array, jax.Array | None], Batch]:
    """A function ``load(idx, key) -> Batch`` for :func:`train_pass`.

    Args:
        pool: the dataset.
        forget: optional bool ``[N]`` forget mask; it sets ``Batch.is_forget`` (zeros
            without it).
        augment: random crop and flip (uint8 space, before normalisation) with ``key``.
        transform: optional ``fn(batch, key, pool) -> batch`` applied after loading, with
            the same key (e.g. :func:`relabel_forget`).

    Returns:
        ``load(idx, key)``: the batch of pool rows ``idx`` ``[B]``.
    """
    def load(idx, key=None):
        x, y = load_batch(pool, idx, key, augment_data=augment)
        is_f = (forget[idx].astype(jnp.float32) if forget is not None
                else jnp.zeros(idx.shape, jnp.float32))
        batch = Batch(x, y, is_f)
        return transform(batch, key, pool) if transform is not None else batch

    return load


def relabel_forget(batch: Batch, key: jax.Array, pool: Pool) -> Batch:
    """A batch transform (for :func:`batch_loader`) giving every forget row a uniformly
    random label in ``[0, pool.num_classes)``, drawn with ``fold_in(key, 7)``; retain rows
    keep theirs. Used by SRL and SalUn."""
    rnd = jax.random.randint(jax.random.fold_in(key, 7), batch.y.shape, 0, pool.num_classes)
    return batch.replace(y=jnp.where(batch.is_forget > 0, rnd, batch.y))


def train_step(loss: Callable[[LossInputs], Any], tx: optax.GradientTransformation, *,
               model: Any, bn: str = "train", select: Any = None, has_aux: bool = False):
    """One optimisation step from a loss and an optax optimizer.

    The step runs the model on ``batch.x`` (and on ``batch.x2`` when the batch has a second
    stream and the loss reads it, threading the BatchNorm state through both passes),
    builds :class:`~jaxmu.losses.LossInputs`, differentiates the loss, and applies
    ``tx``'s updates with ``optax.apply_updates``: the learning rate is ``tx``'s, applied
    once. ``tx`` may read the method's named intermediates as the extra argument
    ``aux=`` (e.g. :func:`jaxmu.transforms.scale_by_mask`).

    Args:
        loss: ``fn(LossInputs) -> scalar`` (a :class:`~jaxmu.losses.Loss` or any callable);
            with ``has_aux``, ``fn(LossInputs) -> (scalar, extra)``. A loss with
            ``needs_second = False`` skips the second forward pass.
        tx: an optax optimizer (``optax.sgd(lr, momentum)``, ``optax.adam(lr)``,
            ``optax.chain(...)``, ``optax.inject_hyperparams(...)``).
        model: the model (``apply(params, model_state, x, *, train, key)``).
        bn: ``"train"`` (batch statistics, running statistics updated) or ``"eval"``
            (running statistics, model state returned unchanged).
        select: optional selector (``fn(model, params) -> pytree of bools``, e.g.
            :data:`jaxmu.models.classifier`); unselected params stay bit-identical (their
            optimizer state still updates).
        has_aux: the loss returns ``(value, extra)``.

    Returns:
        ``step(carry, batch, keys, aux=None) -> (carry, out)`` with ``carry = (params,
        model_state, opt_state)``, ``batch`` a :class:`Batch`, ``keys`` a
        :class:`StepKeys` (only ``dropout``, ``dropout2`` and ``loss`` are read) and ``out``
        the loss value (``(value, extra)`` with ``has_aux``). Jittable, vmappable, and
        usable as the body of ``lax.scan``.

    Example:
        >>> step = train_step(losses.ce(), optax.sgd(0.1, momentum=0.9), model=model)
        >>> carry = (params, model_state, optax.sgd(0.1, momentum=0.9).init(params))
        >>> carry, loss = step(carry, batch, StepKeys.split(key))
    """
    if bn not in ("train", "eval"):
        raise ValueError(f"bn must be 'train' or 'eval', got {bn!r}")
    train = bn == "train"
    tx = optax.with_extra_args_support(tx)
    needs_second = getattr(loss, "needs_second", True)

    def step(carry, batch: Batch, keys: StepKeys, aux: dict | None = None):
        params, model_state, opt_state = carry
        aux = {} if aux is None else aux
        second = batch.x2 is not None and needs_second

        def loss_fn(p):
            logits, ms = model.apply(p, model_state, batch.x, train=train, key=keys.dropout)
            logits2 = None
            if second:
                logits2, ms = model.apply(p, ms, batch.x2, train=train, key=keys.dropout2)
            inp = LossInputs(logits=logits, y=batch.y, x=batch.x, is_forget=batch.is_forget,
                             params=p, aux=aux, model=model, model_state=ms, key=keys.loss,
                             logits2=logits2, y2=batch.y2, x2=batch.x2)
            out = loss(inp)
            value, extra = out if has_aux else (out, None)
            return value, (ms, extra)

        (value, (ms, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params, aux=aux)
        new_params = optax.apply_updates(params, updates)
        if select is not None:
            flags = select(model, params)
            new_params = jax.tree.map(lambda f, a, b: a if f else b, flags, new_params, params)
        if not train:
            ms = model_state
        return (new_params, ms, opt_state), ((value, extra) if has_aux else value)

    return step


def train_pass(step: Callable, carry: Carry, load: Callable, idx: jax.Array, keys: StepKeys,
               *, idx2: jax.Array | None = None, load2: Callable | None = None,
               aux: dict | None = None, valid: jax.Array | None = None):
    """Runs ``step`` over the batches ``idx`` (a ``lax.scan``), with an optional second
    stream.

    Args:
        step: a step from :func:`train_step` (or any function with its signature).
        carry: ``(params, model_state, opt_state)``.
        load: ``load(idx, key) -> Batch`` (:func:`batch_loader`), called with
            ``keys.batch``.
        idx: pool indices ``[steps, B]``, one row per step (e.g.
            :func:`~jaxmu.train.epoch_indices`).
        keys: :class:`StepKeys` with a leading ``[steps]`` axis
            (:meth:`StepKeys.split_many`).
        idx2: optional second stream ``[steps, B2]``; its batch becomes ``Batch.x2``/``y2``.
        load2: loader of the second stream (default ``load``), called with ``keys.batch2``.
        aux: the method's named intermediates, passed to the loss and to ``tx``.
        valid: optional bool ``[steps]``; a step whose flag is False leaves the carry
            unchanged (params, model state and optimizer state, so an optax schedule does
            not advance) and reports a loss of 0.

    Returns:
        ``(carry, outs)``: the final carry and the per-step outputs of ``step`` stacked.
    """
    load2 = load if load2 is None else load2

    def body(c, inp):
        bidx, bidx2, k, ok = inp
        batch = load(bidx, k.batch)
        if bidx2 is not None:
            b2 = load2(bidx2, k.batch2)
            batch = batch.replace(x2=b2.x, y2=b2.y)
        new, out = step(c, batch, k, aux)
        if ok is not None:
            new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, c)
            out = jax.tree.map(lambda a: jnp.where(ok, a, jnp.zeros_like(a)), out)
        return new, out

    return jax.lax.scan(body, carry, (idx, idx2, keys, valid))


# ------------------------------------------------------------------------- optimizers


def torch_sgd(learning_rate: float | optax.Schedule, momentum: float = 0.0,
              weight_decay: float = 0.0, pre: tuple = ()) -> optax.GradientTransformation:
    """PyTorch's ``SGD(lr, momentum, weight_decay)`` as an optax optimizer.

    ``pre`` transforms (masks, projections) first, then coupled weight decay (``g + wd *
    param``), then ``optax.sgd(learning_rate, momentum)`` (heavy-ball ``trace``, then
    ``-learning_rate``). ``learning_rate`` may be an optax schedule of the update count.
    """
    return optax.chain(*pre, optax.add_decayed_weights(weight_decay),
                       optax.sgd(learning_rate, momentum))


def torch_adam(learning_rate: float | optax.Schedule, weight_decay: float = 0.0,
               b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
               pre: tuple = ()) -> optax.GradientTransformation:
    """PyTorch's ``Adam(lr, weight_decay)`` (coupled L2 weight decay) as an optax optimizer:
    ``pre``, then ``g + wd * param``, then ``optax.adam``."""
    return optax.chain(*pre, optax.add_decayed_weights(weight_decay),
                       optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))


# -------------------------------------------------------------------------- schedules


def per_epoch(schedule: Callable, steps_per_epoch: int, offset: int = 0) -> optax.Schedule:
    """An optax schedule that changes once per epoch: ``schedule(offset + count //
    steps_per_epoch)`` where ``count`` is the optimizer's update count (``schedule`` is a
    function of the epoch index, e.g. ``optax.cosine_decay_schedule(lr, epochs)``)."""
    return lambda count: schedule(offset + count // steps_per_epoch)


def triangular_schedule(init_value: float, total: int) -> optax.Schedule:
    """MSG's "LinearAnnealingLR" as an optax schedule of the epoch index ``i``:
    ``init_value * (i + 1) / A`` up to ``A = (total + 1) // 2``, then down as ``(total + 1
    - (i + 1)) / (total + 1 - A)``; e.g. total 5 gives 1/3, 2/3, 1, 2/3, 1/3."""
    return lambda i: init_value * triangular(i, total)


def step_decay_schedule(init_value: float, total: int, rate: float = 0.1,
                        one_indexed: bool = False) -> optax.Schedule:
    """Step decay as an optax schedule of the epoch index ``i``: ``init_value * rate **
    #{d in [floor(.5 total), floor(.8 total), floor(.9 total)] : e > d}`` with ``e = i``
    (CF-k, EU-k) or ``i + 1`` (``one_indexed``, SCRUB)."""
    return lambda i: init_value * step_decay(i, total, rate, one_indexed)


__all__ = ["Batch", "StepKeys", "batch_loader", "per_epoch", "relabel_forget",
           "step_decay_schedule", "torch_adam", "torch_sgd", "train_pass", "train_step",
           "triangular_schedule"]
