"""One-shot weight edits as stages, and saliency masks.

Every edit touches only the leaves its static ``select`` picks (and, where given, the
entries an ``aux`` mask marks); everything else stays bit-identical.

Used by MSG (re-initialise small-gradient entries), CFW (the Gaussian confuser), PRMQ
(prune, re-initialise, fp16 round trip), CT (transpose conv kernels), KDE and RNI (layer
resets), SalUn (the saliency mask) and their presets; docs/methods.md describes each method.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxmu.models import ALL, Selector, conv_kernels, flat_normal, flat_uniform, path_str
from jaxmu.types import Splits, Stage, UnlearnState


def _leaf_keys(key: jax.Array, tree: Any) -> Any:
    leaves, treedef = jax.tree.flatten(tree)
    return jax.tree.unflatten(treedef, [jax.random.fold_in(key, i) for i in range(len(leaves))])


def _edit(select: Selector, fn, allow_empty: bool = False) -> Stage:
    """A stage applying ``fn(leaf, key) -> leaf`` to the selected leaves."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        flags = select(state.model, state.params, allow_empty=allow_empty)
        keys = _leaf_keys(key, state.params)
        params = jax.tree.map(lambda f, p, k: fn(p, k) if f else p, flags, state.params, keys)
        return state.replace(params=params)

    return run


def transpose_conv(select: Selector = conv_kernels, allow_empty: bool = False) -> Stage:
    """Swaps the two spatial axes of every selected conv kernel (CT; 1x1 unchanged).

    ``allow_empty=True`` makes it a no-op on models without convs (e.g. an MLP)."""
    return _edit(select, lambda p, k: jnp.swapaxes(p, 0, 1) if p.ndim == 4 else p, allow_empty)


def gaussian_deviation(std: float, select: Selector = conv_kernels) -> Stage:
    """Adds ``std * N(0, 1)`` to every entry of the selected leaves (CFW's confuser)."""
    if not isinstance(std, jax.core.Tracer) and std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    return _edit(select, lambda p, k: p + std * flat_normal(k, p.shape, p.dtype))


def quantize_round_trip(dtype: Any = jnp.float16) -> Stage:
    """Rounds every float param and model-state leaf to ``dtype`` and back (PRMQ)."""
    def cast(x):
        if jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype).astype(x.dtype)
        return x

    def run(state, splits, key):
        return state.replace(params=jax.tree.map(cast, state.params),
                             model_state=jax.tree.map(cast, state.model_state))

    return run


def _fan_in(path: str, p: jax.Array) -> int:
    if p.ndim == 4:  # flax conv kernel [kh, kw, in/groups, out]
        return p.shape[0] * p.shape[1] * p.shape[2]
    if p.ndim == 2:
        return p.shape[0]
    return 1


def uniform_fan_in(p: jax.Array, key: jax.Array) -> jax.Array:
    """PyTorch's default init for conv/linear weights: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    b = 1.0 / math.sqrt(_fan_in("", p))
    return flat_uniform(key, p.shape, p.dtype, -b, b)


def kaiming_normal_fan_out(p: jax.Array, key: jax.Array) -> jax.Array:
    """``kaiming_normal(mode='fan_out', nonlinearity='relu')`` for conv kernels (MSG)."""
    fan_out = p.shape[0] * p.shape[1] * p.shape[3] if p.ndim == 4 else p.shape[-1]
    return flat_normal(key, p.shape, p.dtype) * math.sqrt(2.0 / fan_out)


INITS = {"uniform_fan_in": uniform_fan_in, "kaiming_normal_fan_out": kaiming_normal_fan_out}


def reinit(select: Selector, init: str = "model", where: str | None = None,
           reset_batch_stats: bool = False) -> Stage:
    """Re-initialises the selected leaves.

    Args:
        select: static selector.
        init: ``"model"`` (a fresh ``model.init`` draw, i.e. the model's own default init),
            ``"uniform_fan_in"`` or ``"kaiming_normal_fan_out"``.
        where: optional aux key of an elementwise mask; only entries where it is 1 change.
        reset_batch_stats: also reset BatchNorm running statistics of selected modules to
            mean 0 / var 1 (the reference's EU-k does not; jaxmu's ``euk`` does).
    """
    if init not in ("model", *INITS):
        raise ValueError(f"unknown init {init!r}; valid: model, {', '.join(INITS)}")

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model = state.model
        flags = select(model, state.params)
        if init == "model":
            fresh, fresh_state = model.init(key)
        else:
            keys = _leaf_keys(key, state.params)
            fresh = jax.tree.map(lambda f, p, k: INITS[init](p, k) if f else p,
                                 flags, state.params, keys)
            fresh_state = None
        if where is not None:
            m = state.aux[where]
            new = jax.tree.map(lambda f, p, q, w: jnp.where(w > 0, q, p) if f else p,
                               flags, state.params, fresh, m)
        else:
            new = jax.tree.map(lambda f, p, q: q if f else p, flags, state.params, fresh)
        ms = state.model_state
        if reset_batch_stats and "batch_stats" in ms:
            fresh_bs = fresh_state["batch_stats"] if fresh_state else jax.tree.map(
                lambda x: x, ms["batch_stats"])
            prefixes = {path_str(p).rsplit("/", 1)[0] for p, f in
                        jax.tree_util.tree_flatten_with_path(flags)[0] if f}
            bs = jax.tree_util.tree_map_with_path(
                lambda p, old, newv: newv if path_str(p).rsplit("/", 1)[0] in prefixes else old,
                ms["batch_stats"], fresh_bs)
            ms = {**ms, "batch_stats": bs}
        return state.replace(params=new, model_state=ms)

    return run


def _topk_mask(values: jax.Array, k: Any, largest: bool) -> jax.Array:
    """Float mask with exactly ``k`` ones at the smallest (or largest) ``values``; ``k`` may
    be traced (the mask is "rank < k", rank = position in the sorted order)."""
    flat = values.reshape(-1)
    order = jnp.argsort(-flat if largest else flat)
    rank = jnp.zeros(flat.shape, jnp.int32).at[order].set(jnp.arange(flat.size, dtype=jnp.int32))
    return (rank < k).astype(jnp.float32).reshape(values.shape)


def saliency_mask(scores: Any, flags: Any, fraction: float, largest: bool, scope: str,
                  fill: float = 1.0) -> Any:
    """Elementwise {0, 1} mask over the selected leaves of a params-shaped ``scores`` tree.

    ``scope="layer"``: per leaf, ``round(fraction * numel)`` entries; ``"global"``:
    ``floor(fraction * total)`` entries across all selected leaves. Unselected leaves get the
    scalar ``fill``.
    """
    traced = isinstance(fraction, jax.core.Tracer)
    if not traced and not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    leaves, treedef = jax.tree.flatten(scores)
    fl = jax.tree.leaves(flags)
    if scope == "layer":
        count = (lambda n: jnp.round(fraction * n)) if traced else (
            lambda n: int(round(fraction * n)))
        out = [_topk_mask(s, count(s.size), largest) if f else jnp.float32(fill)
               for s, f in zip(leaves, fl, strict=True)]
        return jax.tree.unflatten(treedef, out)
    sel = [s.reshape(-1) for s, f in zip(leaves, fl, strict=True) if f]
    allv = jnp.concatenate(sel)
    k = (jnp.floor(fraction * allv.size) if traced
         else int(math.floor(fraction * allv.size)))
    m = _topk_mask(allv, k, largest)
    out, off = [], 0
    for s, f in zip(leaves, fl, strict=True):
        if f:
            out.append(m[off: off + s.size].reshape(s.shape))
            off += s.size
        else:
            out.append(jnp.float32(fill))
    return jax.tree.unflatten(treedef, out)


def mask_by_gradient_saliency(
    src: str,
    name: str,
    fraction: float,
    *,
    largest: bool = False,
    select: Selector = ALL,
    scope: str = "layer",
    fill: float = 1.0,
) -> Stage:
    """Writes ``aux[name]``: a {0,1} mask of the ``fraction`` entries with the smallest (or
    largest) ``|aux[src]|`` among the selected leaves (per layer or global)."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        flags = select(state.model, state.params)
        scores = jax.tree.map(jnp.abs, state.aux[src])
        return state.with_aux(**{name: saliency_mask(scores, flags, fraction, largest, scope,
                                                    fill)})

    return run


def prune_l1_and_reinit(fraction: float, select: Selector, scope: str = "global",
                        init: str = "uniform_fan_in") -> Stage:
    """Magnitude pruning of the selected leaves, then re-initialisation of pruned weights.

    The ``fraction`` of entries with the smallest ``|w|`` (across all selected leaves for
    ``scope="global"``, per leaf for ``"layer"``) are zeroed; pruned kernel entries (ndim >= 2)
    are re-drawn from ``init``, pruned biases stay 0 (as PRMQ's reference does). No mask is
    kept: everything is trainable afterwards.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        flags = select(state.model, state.params)
        scores = jax.tree.map(jnp.abs, state.params)
        pruned = saliency_mask(scores, flags, fraction, largest=False, scope=scope, fill=0.0)
        keys = _leaf_keys(key, state.params)

        def edit(f, p, m, k):
            if not f:
                return p
            fresh = INITS[init](p, k) if p.ndim >= 2 else jnp.zeros_like(p)
            return jnp.where(m > 0, fresh, p)

        return state.replace(params=jax.tree.map(edit, flags, state.params, pruned, keys))

    return run
