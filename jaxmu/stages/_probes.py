"""Probe stages: they read the model and data and write named results to ``aux``.

Used by SalUn (the forget-gradient saliency), MSG (the retain/forget gradient probe), CFW and
PRMQ (class weights over the retain set) and activation pruning (mean activations over the
forget set); docs/methods.md describes each method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmu.losses import Loss, LossInputs
from jaxmu.train import epoch_indices, load_batch, member_order, ordered_indices
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
    part = GradientPart(split, batch_size, sign, subset)

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        batches = _part_batches(part, splits, key, shuffle)
        g, ms = _sum_part(state, splits, loss, bn == "train", part.sign, batches,
                          state.model_state)
        if add_to is not None:
            g = jax.tree.map(jnp.add, state.aux[add_to], g)
        return state.replace(model_state=ms).with_aux(**{name: g})

    return run


class GradientPart(NamedTuple):
    """One split of :func:`sum_gradients`, with the meaning of the same-named arguments of
    :func:`accumulate_gradients`."""

    split: str
    batch_size: int = 64
    sign: float = 1.0
    subset: int | str | None = None


def sum_gradients(name: str, loss: Loss, parts: Sequence[GradientPart], *, bn: str = "eval",
                  shuffle: bool = True) -> Stage:
    """Sums the gradient sums of several splits, one split after another, into ``aux[name]``.

    Bitwise the same as ``sequence(p_0, p_1, ...)`` where ``p_0`` is
    ``accumulate_gradients(name, loss, ...)`` with the arguments of ``parts[0]`` and the
    later ones add theirs with ``add_to=name``: part ``i`` draws from ``fold_in(key, i)``
    (the key ``sequence`` gives its stage ``i``), the BatchNorm statistics (``bn="train"``)
    are updated batch after batch in that order, and the result is
    ``(g_0 + g_1) + ...``. The loss sees the stage's input ``aux`` (not the partial sums).

    When every part has the same batch shapes (e.g. MSG's retain subset of |forget| rows
    and its forget set, both in batches of 64), the parts run as one ``lax.scan`` over the
    parts, so the forward and backward pass are compiled once per batch shape instead of
    once per part (MSG's probe compiles about half as much); otherwise the parts run one
    after another.

    Args:
        name: aux key of the result (a params-shaped pytree).
        loss: loss term (e.g. ``ce()``).
        parts: the splits, in order (at least one).
        bn: ``eval`` or ``train``, as in :func:`accumulate_gradients`.
        shuffle: as in :func:`accumulate_gradients`.
    """
    parts = tuple(GradientPart(*p) for p in parts)
    if not parts:
        raise ValueError("sum_gradients needs at least one part")
    train_mode = bn == "train"

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        batches = [_part_batches(p, splits, jax.random.fold_in(key, i), shuffle)
                   for i, p in enumerate(parts)]
        ms = state.model_state
        if len({(b[0].shape, b[1]) for b in batches}) > 1:  # shapes differ: one by one
            sums = []
            for p, b in zip(parts, batches, strict=True):
                g, ms = _sum_part(state, splits, loss, train_mode, p.sign, b, ms)
                sums.append(g)
        else:
            idx = jnp.stack([b[0] for b in batches])
            part_keys = jnp.stack([b[2] for b in batches])
            signs = tuple(p.sign for p in parts)

            def one(ms, inp):
                i, idx, part_key = inp
                # each part's own constant sign: the same arithmetic as one part alone
                sign = signs[0] if len(set(signs)) == 1 else (
                    lambda a, c: _select(i, [a + s * c for s in signs]))
                return _sum_part(state, splits, loss, train_mode, sign,
                                 (idx, batches[0][1], part_key), ms)[::-1]

            ms, g_all = jax.lax.scan(one, ms, (jnp.arange(len(parts)), idx, part_keys))
            sums = [jax.tree.map(lambda a, i=i: a[i], g_all) for i in range(len(parts))]
        g = sums[0]
        for s in sums[1:]:
            g = jax.tree.map(jnp.add, g, s)
        return state.replace(model_state=ms).with_aux(**{name: g})

    return run


def _part_batches(part: GradientPart, splits: Splits, key: jax.Array, shuffle: bool):
    """``(idx [steps, b], r, key)``: the part's batches, each member once (the last batch
    holds its first ``r`` entries, ``r`` static), and the part's key."""
    mask = splits.mask(part.split)
    n = splits.size(part.split)
    if n == 0:
        raise ValueError(f"accumulate_gradients: split {part.split!r} is empty")
    if part.subset is not None:
        m = splits.n_forget if part.subset == "forget" else int(part.subset)
        m = min(m, n)
        keep = member_order(jax.random.fold_in(key, 1), mask, n)[:m]
        mask = jnp.zeros_like(mask).at[keep].set(True)
        n = m
    if shuffle:
        idx = epoch_indices(jax.random.fold_in(key, 2), mask, n, part.batch_size)
    else:
        idx = ordered_indices(mask, n, part.batch_size)
    # Each member exactly once, as a PyTorch loader without drop_last: full batches of
    # b, then (if b does not divide n) one smaller batch of the r = n - (steps - 1) * b
    # remaining members (static size), instead of the wrap-around repeats.
    steps, b = idx.shape
    return idx, n - (steps - 1) * b, key


def _select(i, options):
    """``options[i]`` for a traced index ``i`` (exact: no arithmetic on the values)."""
    out = options[-1]
    for k in range(len(options) - 2, -1, -1):
        out = jnp.where(i == k, options[k], out)
    return out


def _sum_part(state: UnlearnState, splits: Splits, loss: Loss, train_mode: bool, sign,
              batches, ms):
    """``(sum of sign * grad(loss) over the batches, model state after them)``; ``sign`` is
    a number or ``update(acc, grad) -> acc`` (per leaf)."""
    model = state.model
    idx, r, key = batches
    b = idx.shape[1]

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
        update = sign if callable(sign) else (lambda a, c: a + sign * c)
        return (jax.tree.map(update, g_acc, g), ms), None

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    full = idx if r == b else idx[:-1]
    (g, ms), _ = jax.lax.scan(step, (zeros, ms), full)
    if r < b:
        (g, ms), _ = step((g, ms), idx[-1, :r])
    return g, ms


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


