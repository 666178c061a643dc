"""Loop stages: ``finetune`` (the workhorse), ``sequence`` and ``repeat``.

``finetune`` runs ``lax.scan`` over epochs and over steps inside an epoch, entirely inside
the method's jit, so a whole method stays one pure, vmappable function. Optimisers are optax
"direction" transforms; the loop multiplies by ``-lr * schedule`` itself, so PyTorch-style
coupled weight decay is ``optax.chain(scale_by_mask(...), add_decayed_weights(wd),
trace(momentum))`` (see :func:`sgd`).

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

from jaxmu.losses import Loss, LossInputs
from jaxmu.train import (
    cosine,
    epoch_indices,
    load_batch,
    ordered_indices,
    step_decay,
    steps_per_epoch,
    triangular,
)
from jaxmu.types import Splits, Stage, UnlearnState


def sgd(momentum: float = 0.0, weight_decay: float = 0.0, *pre: optax.GradientTransformation):
    """PyTorch SGD as a direction: ``pre`` transforms (masks, projections), then coupled
    weight decay, then heavy-ball momentum. The loop applies ``-lr``."""
    return optax.chain(*pre, optax.add_decayed_weights(weight_decay), optax.trace(momentum))


def adam(weight_decay: float = 0.0, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
         *pre: optax.GradientTransformation):
    """PyTorch Adam (coupled L2 weight decay) as a direction."""
    return optax.chain(*pre, optax.add_decayed_weights(weight_decay),
                       optax.scale_by_adam(b1=b1, b2=b2, eps=eps))


def lr_multiplier(schedule: str | Callable, i, total, **kw):
    """Evaluates a schedule (name or ``fn(i, total)``) at step/epoch ``i`` of ``total``."""
    if callable(schedule):
        return schedule(i, total)
    if schedule == "constant":
        return jnp.float32(1.0)
    if schedule == "cosine":
        return cosine(i, total, kw.get("eta_min_ratio", 0.0))
    if schedule == "triangular":
        return triangular(i, total)
    if schedule == "step":
        return step_decay(i, total, kw.get("decay_rate", 0.1), kw.get("one_indexed", False))
    raise ValueError(f"unknown schedule {schedule!r}")


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


def _batch(splits: Splits, idx, key, augment, relabel_forget):
    x, y = load_batch(splits.pool, idx, key, augment_data=augment)
    is_f = splits.forget[idx].astype(jnp.float32)
    if relabel_forget:
        k = splits.pool.num_classes
        rnd = jax.random.randint(jax.random.fold_in(key, 7), y.shape, 0, k)
        y = jnp.where(is_f > 0, rnd, y)
    return x, y, is_f


def finetune(
    loss: Loss,
    tx: optax.GradientTransformation,
    *,
    lr: float,
    split: str = "retain",
    epochs: float = 1,
    batch_size: int = 64,
    second: str | None = None,
    second_batch_size: int | None = None,
    schedule: str | Callable = "constant",
    schedule_per: str = "epoch",
    schedule_kw: dict | None = None,
    offset: int = 0,
    total: int | None = None,
    bn: str = "train",
    augment: bool = False,
    shuffle: bool = True,
    relabel_forget: bool = False,
    select: Any = None,
    extra_steps: int = 0,
) -> Stage:
    """Trains with ``loss`` over a split for ``epochs`` epochs (fractions allowed).

    Args:
        loss: a :class:`~jaxmu.losses.Loss`.
        tx: optax direction transform (may read ``aux=...`` extra args, e.g. ``scale_by_mask``).
        lr: base learning rate.
        split: primary stream: ``retain``, ``forget``, ``val``, or ``train`` (forget and retain
            mixed, with ``is_forget`` flags).
        epochs: passes over the primary split; fractional -> ``floor(steps * epochs)`` steps.
        batch_size: primary batch size (capped at the split size).
        second: optional secondary split, cycled alongside the primary (NG+, FCS).
        second_batch_size: its batch size (default ``batch_size``).
        schedule: ``constant``, ``cosine``, ``triangular``, ``step`` or ``fn(i, total)``.
        schedule_per: ``epoch`` or ``step``.
        schedule_kw: e.g. ``eta_min_ratio``, ``decay_rate``, ``one_indexed``.
        offset, total: the schedule sees epoch ``offset + e`` of ``total`` (default
            ``epochs``), for schedules that continue across loops.
        bn: ``train`` (batch statistics, updated) or ``eval`` (running statistics, frozen).
        augment: random crop/flip on the batches.
        shuffle: shuffle the primary split every epoch (else pool order).
        relabel_forget: replace forget-row labels by uniform random labels (SRL, SalUn).
        select: a :class:`~jaxmu.models.Selector`; only selected params are updated, the
            rest stay bit-identical.
        extra_steps: run this many steps more than the epochs give (PRMQ's faithful
            off-by-one).

    Returns:
        A stage. Guarantees: params outside ``select`` are bit-identical to the input.
    """
    if bn not in ("train", "eval"):
        raise ValueError(f"bn must be 'train' or 'eval', got {bn!r}")
    if epochs <= 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")
    if schedule_per not in ("epoch", "step"):
        raise ValueError(f"schedule_per must be 'epoch' or 'step', got {schedule_per!r}")
    tx = optax.with_extra_args_support(tx)
    skw = dict(schedule_kw or {})
    train_mode = bn == "train"

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model = state.model
        n = splits.size(split)
        if n == 0:
            raise ValueError(f"finetune: split {split!r} is empty")
        spe = steps_per_epoch(n, batch_size)
        n_steps = int(math.floor(spe * epochs)) + extra_steps
        n_epochs = math.ceil(n_steps / spe)
        sched_total = total if total is not None else (
            max(1, math.ceil(epochs)) if schedule_per == "epoch" else n_steps)
        flags = select(model, state.params) if select is not None else None
        n2 = splits.size(second) if second else 0
        b2 = min(second_batch_size or batch_size, n2) if second else 0
        if second and n2 == 0:
            raise ValueError(f"finetune: secondary split {second!r} is empty")
        opt_state = tx.init(state.params)

        def step(carry, inp):
            params, model_state, opt_state, s_glob = carry
            bidx, bidx2, k, e = inp
            k_b, k_b2, k_drop, k_drop2, k_loss = jax.random.split(k, 5)
            x, y, is_f = _batch(splits, bidx, k_b, augment, relabel_forget)
            if second:
                x2, y2, _ = _batch(splits, bidx2, k_b2, augment, False)

            def loss_fn(p):
                logits, ms = model.apply(p, model_state, x, train=train_mode, key=k_drop)
                logits2 = None
                if second and loss.needs_second:
                    logits2, ms = model.apply(p, ms, x2, train=train_mode, key=k_drop2)
                inp_ = LossInputs(logits=logits, y=y, x=x, is_forget=is_f, params=p,
                                  aux=state.aux, model=model, model_state=ms, key=k_loss,
                                  logits2=logits2, y2=y2 if second else None,
                                  x2=x2 if second else None)
                return loss(inp_), ms

            (loss_v, ms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            d, new_opt = tx.update(grads, opt_state, params, aux=state.aux)
            if schedule_per == "epoch":
                mult = lr_multiplier(schedule, offset + e, sched_total, **skw)
            else:
                mult = lr_multiplier(schedule, offset + s_glob, sched_total, **skw)
            new_params = jax.tree.map(lambda p, g: p - (lr * mult) * g, params, d)
            if flags is not None:
                new_params = jax.tree.map(lambda f, a, b: a if f else b, flags, new_params, params)
            if not train_mode:
                ms = model_state
            valid = s_glob < n_steps
            new = (new_params, ms, new_opt)
            old = (params, model_state, opt_state)
            out = jax.tree.map(lambda a, b: jnp.where(valid, a, b), new, old)
            return (*out, s_glob + 1), jnp.where(valid, loss_v, 0.0)

        def epoch(carry, e):
            ke = jax.random.fold_in(key, e)
            if shuffle:
                idx = epoch_indices(jax.random.fold_in(ke, 0), splits.mask(split), n, batch_size)
            else:
                idx = ordered_indices(splits.mask(split), n, batch_size)
            if second:
                idx2 = epoch_indices(jax.random.fold_in(ke, 1), splits.mask(second), n2, b2)
                idx2 = idx2[jnp.arange(spe) % idx2.shape[0]]
            else:
                idx2 = jnp.zeros((spe, 1), jnp.int32)
            keys = jax.random.split(jax.random.fold_in(ke, 2), spe)
            es = jnp.full((spe,), e)
            return jax.lax.scan(step, carry, (idx, idx2, keys, es))

        carry = (state.params, state.model_state, opt_state, jnp.int32(0))
        (params, model_state, _, _), losses = jax.lax.scan(epoch, carry, jnp.arange(n_epochs))
        return state.replace(params=params, model_state=model_state).with_aux(
            last_loss=jnp.sum(losses) / n_steps)

    return run
