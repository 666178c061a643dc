"""Loop stages: ``finetune`` (the workhorse), ``sequence`` and ``repeat``.

``finetune`` runs ``lax.scan`` over epochs of :func:`jaxmu.train.train_pass` of a
:func:`jaxmu.train.train_step`, entirely inside the method's jit, so a whole method stays one
pure, vmappable function. The optimizer is a stock optax one and owns the learning rate and
its schedule (``optax.sgd(0.1)`` steps with 0.1); PyTorch-style coupled weight decay is
:func:`jaxmu.train.torch_sgd`. ``finetune(..., opt_state=name)`` keeps the optimizer state in
``aux[name]`` so several stages share one optimizer. Schedules are optax schedules
(``optax.cosine_decay_schedule``, :func:`jaxmu.train.per_epoch`,
:func:`jaxmu.train.triangular_schedule`, :func:`jaxmu.train.step_decay_schedule`); a schedule
counted in epochs needs the steps per epoch, so ``finetune`` also takes an optimizer factory
``fn(steps_per_epoch) -> optimizer``.

The conventions these loops reproduce from the PyTorch reference (BatchNorm mode per stage,
weight decay after masking, full batches, the schedules' formulas) are described in
docs/methods.md#conventions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxmu.losses import Loss
from jaxmu.train import (
    StepKeys,
    batch_loader,
    epoch_indices,
    ordered_indices,
    steps_per_epoch,
    train_pass,
    train_step,
)
from jaxmu.types import Splits, Stage, UnlearnState


def init_optimizer(name: str, tx: optax.GradientTransformation) -> Stage:
    """Writes ``tx.init(params)`` to ``aux[name]``: the shared optimizer state that
    :func:`finetune` stages with ``opt_state=name`` continue from. Needed before a
    :func:`repeat` (whose body must keep the structure of ``aux``); a plain
    :func:`sequence` may let its first ``finetune`` initialise it."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        return state.with_aux(**{name: tx.init(state.params)})

    return run


def sequence(*stages: Stage, start: int = 0) -> Stage:
    """Runs stages in order; stage ``i`` gets the key ``fold_in(key, start + i)`` (``start``
    continues the numbering of stages run before with the same key)."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        for i, s in enumerate(stages, start):
            state = s(state, splits, jax.random.fold_in(key, i))
        return state

    return run


def repeat(stage: Stage, times: int) -> Stage:
    """Runs ``stage`` ``times`` times (``lax.fori_loop``), key ``fold_in(key, i)`` each."""
    def run(state, splits, key):
        return jax.lax.fori_loop(
            0, times, lambda i, s: stage(s, splits, jax.random.fold_in(key, i)), state
        )

    return run


def best_of(stage: Stage, times: int, score: Callable[[UnlearnState, Splits], Any], *,
            include_start: bool = True, name: str = "best_of") -> Stage:
    """Runs ``stage`` ``times`` times and keeps the candidate with the lowest score.

    Candidates are the state after each run (and the starting state when
    ``include_start``); ``score(state, splits)`` maps one to a scalar. The selection is a
    ``lax.scan`` carrying the best ``(params, model_state)`` with ``jnp.where`` (constant
    memory, no Python control flow, so it jits and vmaps); ties go to the earliest
    candidate; NaN scores never win. The returned state continues from the last run's aux
    and optimizer-free state but holds the best params and model state, with
    ``aux[f"{name}_index"]`` (0 = the start, i = after run i) and ``aux[f"{name}_scores"]``.
    ``stage`` must keep the structure of ``aux`` (write aux before ``best_of``, e.g. a
    snapshot). SCRUB's checkpoint selection (the epoch whose forget error is closest to a
    forget-validation error measured after the last epoch) needs a target known only at the
    end, so it replays the trajectory instead (see :func:`jaxmu.methods.scrub`).
    """
    if int(times) != times or times < 1:
        raise ValueError(f"times must be a positive integer, got {times}")

    def run(state: UnlearnState, splits: Splits, key) -> UnlearnState:
        raw0 = jnp.asarray(score(state, splits), jnp.float32) if include_start else (
            jnp.float32(jnp.nan))
        s0 = jnp.where(jnp.isnan(raw0), jnp.inf, raw0)

        def body(carry, i):
            cur, best, best_s, best_i = carry
            cur = stage(cur, splits, jax.random.fold_in(key, i))
            sc = jnp.asarray(score(cur, splits), jnp.float32)
            # False for NaN: NaN never wins, ties keep the earlier one; without the start,
            # the first run is always a candidate (so the result is one of the runs).
            better = (sc < best_s) | ((i == 0) & (not include_start))
            sc_key = jnp.where(jnp.isnan(sc), jnp.inf, sc)  # a NaN best is beaten by anything
            best = jax.tree.map(lambda a, b: jnp.where(better, a, b),
                                (cur.params, cur.model_state), best)
            return (cur, best, jnp.where(better, sc_key, best_s),
                    jnp.where(better, i + 1, best_i)), sc

        start = (state, (state.params, state.model_state), s0, jnp.int32(0))
        (cur, best, _, best_i), scores = jax.lax.scan(body, start, jnp.arange(times))
        all_scores = jnp.concatenate([raw0[None], scores])
        return cur.replace(params=best[0], model_state=best[1]).with_aux(
            **{f"{name}_index": best_i, f"{name}_scores": all_scores})

    return run


def finetune(
    loss: Loss,
    tx: optax.GradientTransformation | Callable[[int], optax.GradientTransformation],
    *,
    split: str = "retain",
    epochs: float = 1,
    batch_size: int = 64,
    second: str | None = None,
    second_batch_size: int | None = None,
    bn: str = "train",
    augment: bool = False,
    shuffle: bool = True,
    select: Any = None,
    transform: Callable | None = None,
    opt_state: str | None = None,
    steps: int | Callable[[int], int] | None = None,
    record_loss: str | None = None,
) -> Stage:
    """Trains with ``loss`` over a split for ``epochs`` epochs (fractions allowed).

    Each epoch shuffles the split (``epoch_indices``), optionally cycles a second split
    alongside it, and runs :func:`jaxmu.train.train_pass` of a
    :func:`jaxmu.train.train_step`; epochs are a ``lax.scan``, so the stage jits and vmaps.

    Args:
        loss: a :class:`~jaxmu.losses.Loss`.
        tx: an optax optimizer, which owns the learning rate and its schedule (e.g.
            ``optax.sgd(0.1, momentum=0.9)`` or :func:`jaxmu.train.torch_sgd`), or a
            function ``fn(steps_per_epoch) -> optimizer`` for schedules counted in epochs
            (``lambda spe: torch_sgd(per_epoch(optax.cosine_decay_schedule(lr, E), spe))``).
            It may read ``aux=...`` extra arguments (e.g. ``scale_by_mask``).
        split: primary stream: ``retain``, ``forget``, ``val``, or ``train`` (forget and retain
            mixed, with ``is_forget`` flags).
        epochs: passes over the primary split; fractional -> ``floor(steps * epochs)`` steps.
        batch_size: primary batch size (capped at the split size).
        second: optional secondary split, cycled alongside the primary (NG+, FCS).
        second_batch_size: its batch size (default ``batch_size``).
        bn: ``train`` (batch statistics, updated) or ``eval`` (running statistics, frozen).
        augment: random crop/flip on the batches.
        shuffle: shuffle the primary split every epoch (else pool order).
        select: a :class:`~jaxmu.models.Selector`; only selected params are updated, the
            rest stay bit-identical.
        transform: a batch transform ``fn(batch, key, pool) -> batch`` applied to the
            primary batches (e.g. :func:`jaxmu.train.relabel_forget`).
        opt_state: a name: the optimizer state is read from ``aux[opt_state]`` when present
            (else initialised) and written back there, so several stages (the phases of a
            method) share one optimizer, its momentum and its schedule's step count.
        steps: the number of steps, an int or ``fn(steps_per_epoch) -> int``; default
            ``floor(steps_per_epoch * epochs)``.
        record_loss: a name: write the mean loss over the steps to ``aux[record_loss]``.

    Returns:
        A stage. Guarantees: params outside ``select`` are bit-identical to the input.
    """
    if bn not in ("train", "eval"):
        raise ValueError(f"bn must be 'train' or 'eval', got {bn!r}")
    if epochs <= 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model = state.model
        n = splits.size(split)
        if n == 0:
            raise ValueError(f"finetune: split {split!r} is empty")
        spe = steps_per_epoch(n, batch_size)
        if steps is None:
            n_steps = int(math.floor(spe * epochs))
        else:
            n_steps = int(steps(spe) if callable(steps) else steps)
        n_epochs = math.ceil(n_steps / spe)
        n2 = splits.size(second) if second else 0
        b2 = min(second_batch_size or batch_size, n2) if second else 0
        if second and n2 == 0:
            raise ValueError(f"finetune: secondary split {second!r} is empty")
        opt = tx(spe) if callable(tx) else tx
        step = train_step(loss, opt, model=model, bn=bn, select=select)
        load = batch_loader(splits.pool, splits.forget, augment=augment, transform=transform)
        load2 = batch_loader(splits.pool, splits.forget, augment=augment)
        if opt_state is not None and opt_state in state.aux:
            o0 = state.aux[opt_state]
        else:
            o0 = opt.init(state.params)
        partial = n_epochs * spe != n_steps

        def epoch(carry, e):
            c, s0 = carry
            ke = jax.random.fold_in(key, e)
            if shuffle:
                idx = epoch_indices(jax.random.fold_in(ke, 0), splits.mask(split), n, batch_size)
            else:
                idx = ordered_indices(splits.mask(split), n, batch_size)
            idx2 = None
            if second:
                idx2 = epoch_indices(jax.random.fold_in(ke, 1), splits.mask(second), n2, b2)
                idx2 = idx2[jnp.arange(spe) % idx2.shape[0]]
            keys = StepKeys.split_many(jax.random.fold_in(ke, 2), spe)
            valid = (s0 + jnp.arange(spe)) < n_steps if partial else None
            c, losses = train_pass(step, c, load, idx, keys, idx2=idx2, load2=load2,
                                   aux=state.aux, valid=valid)
            return (c, s0 + spe), losses

        start = ((state.params, state.model_state, o0), jnp.int32(0))
        ((params, model_state, o), _), losses = jax.lax.scan(epoch, start,
                                                             jnp.arange(n_epochs))
        out = state.replace(params=params, model_state=model_state)
        if opt_state is not None:
            out = out.with_aux(**{opt_state: o})
        if record_loss is not None:
            out = out.with_aux(**{record_loss: jnp.sum(losses) / n_steps})
        return out

    return run
