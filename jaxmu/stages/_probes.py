"""Probe stages: they read the model and data and write named results to ``aux``.

References:
    design.md §3; methods-spec §5.6 (SalUn mask gradients), §5.14 (MSG probe), §5.15-5.16
    (class weights), §12.4 (activation statistics).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmu.losses._terms import Loss, LossInputs
from jaxmu.train._batches import epoch_indices, load_batch, member_order, ordered_indices
from jaxmu.types import Splits, Stage, UnlearnState


def snapshot(name: str = "teacher") -> Stage:
    """Stores a frozen copy of the current params and model state at ``aux[name]``."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        return state.with_aux(**{name: {"params": state.params,
                                        "model_state": state.model_state}})

    return run


def accumulate_gradients(
    name: str,
    loss: Loss,
    split: str,
    *,
    batch_size: int = 64,
    sign: float = 1.0,
    subset: int | str | None = None,
    bn: str = "eval",
    shuffle: bool = True,
    add_to: str | None = None,
) -> Stage:
    """Sums ``sign * grad(loss)`` over the batches of a split into ``aux[name]``.

    Args:
        name: aux key of the result (a params-shaped pytree).
        loss: loss term (e.g. ``ce()``).
        split: split to iterate.
        batch_size: probe batch size.
        sign: +1 (descent direction) or -1 (ascent).
        subset: use a random subset of this size, or ``"forget"`` for |forget| (MSG).
        bn: ``eval`` (statistics frozen) or ``train`` (batch statistics; the reference's MSG
            probe runs in train mode and updates the running statistics, which jaxmu keeps).
        shuffle: shuffle the batches (irrelevant for the sum except for BN in train mode
            and for which members form the last, smaller batch).
        add_to: add the result to an existing ``aux[add_to]`` (G = sum grad_r - sum grad_f).
    """
    train_mode = bn == "train"

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model = state.model
        mask = splits.mask(split)
        n = splits.size(split)
        if n == 0:
            raise ValueError(f"accumulate_gradients: split {split!r} is empty")
        if subset is not None:
            m = splits.n_forget if subset == "forget" else int(subset)
            m = min(m, n)
            keep = member_order(jax.random.fold_in(key, 1), mask, n)[:m]
            mask = jnp.zeros_like(mask).at[keep].set(True)
            n = m
        if shuffle:
            idx = epoch_indices(jax.random.fold_in(key, 2), mask, n, batch_size)
        else:
            idx = ordered_indices(mask, n, batch_size)
        # Each member exactly once, as a PyTorch loader without drop_last: full batches of
        # b, then (if b does not divide n) one smaller batch of the r = n - (steps - 1) * b
        # remaining members (static size), instead of the wrap-around repeats.
        steps, b = idx.shape
        r = n - (steps - 1) * b

        def step(carry, bidx):
            g_acc, ms = carry
            x, y = load_batch(splits.pool, bidx)

            def f(p):
                logits, ms2 = model.apply(p, ms, x, train=train_mode)
                inp_ = LossInputs(logits=logits, y=y, x=x,
                                  is_forget=splits.forget[bidx].astype(jnp.float32), params=p,
                                  aux=state.aux, model=model, model_state=ms2,
                                  key=jax.random.fold_in(key, 3))
                return loss(inp_), ms2

            g, ms2 = jax.grad(f, has_aux=True)(state.params)
            ms = ms2 if train_mode else ms
            return (jax.tree.map(lambda a, c: a + sign * c, g_acc, g), ms), None

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        full = idx if r == b else idx[:-1]
        (g, ms), _ = jax.lax.scan(step, (zeros, state.model_state), full)
        if r < b:
            (g, ms), _ = step((g, ms), idx[-1, :r])
        if add_to is not None:
            g = jax.tree.map(jnp.add, state.aux[add_to], g)
        return state.replace(model_state=ms).with_aux(**{name: g})

    return run


def class_weights(name: str, split: str = "retain", power: float | None = None) -> Stage:
    """Per-class weights from the label counts of a split into ``aux[name]`` ``[K]``.

    ``power=None``: sklearn "balanced" ``n / (K * n_c)`` (CFW); otherwise ``n_c ** power``
    (PRMQ uses ``count ** -0.1``). Classes absent from the split get weight 0.
    """
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        k = splits.pool.num_classes
        counts = jnp.zeros(k).at[splits.pool.y].add(splits.mask(split).astype(jnp.float32))
        n = splits.size(split)
        present = counts > 0
        safe = jnp.where(present, counts, 1.0)
        w = n / (k * safe) if power is None else safe**power
        return state.with_aux(**{name: jnp.where(present, w, 0.0)})

    return run


def activation_means(name: str, split: str = "forget", batch_size: int = 256) -> Stage:
    """Mean activation over a split at every marked site (per channel and position) into
    ``aux[name]``, a pytree shaped like the model's activation sites (without batch)."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model = state.model
        n = splits.size(split)
        idx = ordered_indices(splits.mask(split), n, batch_size)
        valid = (jnp.arange(idx.size) < n).reshape(idx.shape).astype(jnp.float32)

        def one(inp):
            bidx, w = inp
            x, _ = load_batch(splits.pool, bidx)
            acts = model.activations(state.params, state.model_state, x)
            return jax.tree.map(lambda a: jnp.tensordot(w, a.astype(jnp.float32), 1), acts)

        sums = jax.lax.map(one, (idx, valid))
        means = jax.tree.map(lambda s: s.sum(0) / n, sums)
        return state.with_aux(**{name: means})

    return run


