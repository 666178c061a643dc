"""Execution strategies mapping a per-model function over a leading model axis.

``map_models(f, strategy, chunk)(*args)`` applies ``f`` to every model of stacked
arguments (``in_axes`` as in ``jax.vmap``):

* ``vmap``: one batched program (best for MLPs everywhere and for conv nets on GPU);
* ``chunked``: ``lax.map(vmap(f), batch_size=chunk)`` — bounded memory;
* ``sequential``: ``lax.map`` one model at a time inside one program (best for conv nets
  on XLA:CPU, where vmapped convs with per-model inputs become slow grouped convs);
* ``sharded``: ``shard_map(vmap(f))`` over a 1-D ``'models'`` mesh of all devices; M is
  padded to a multiple of the device count (padding = copies of model 0, dropped after).
* ``auto``: picks one of the above per backend and model (see :func:`auto_strategy`).

Model i's randomness comes from ``fold_in(root, i)`` computed by the caller, so results do
not depend on the strategy, chunk size or device count (up to floating-point
re-association of batched vs unbatched kernels; tests check it).

References:
    docs/design.md#population-engine (strategies, and how to choose one per backend and
    model).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from jaxmu._names import STRATEGIES


def _flat_axes(in_axes: Any, args: tuple) -> list:
    """Per-leaf axes (0 or None) of ``args`` for an ``in_axes`` prefix tree."""
    if not isinstance(in_axes, tuple):
        in_axes = (in_axes,) * len(args)
    if len(in_axes) != len(args):
        raise ValueError(f"in_axes has {len(in_axes)} entries for {len(args)} arguments")
    out: list = []
    for ax, a in zip(in_axes, args, strict=True):
        jax.tree.map(lambda axis, sub: out.extend([axis] * len(jax.tree.leaves(sub))),
                     ax, a, is_leaf=lambda x: x is None)
    return out


def num_models(in_axes: Any, args: tuple) -> int:
    """Size of the model axis of the mapped arguments."""
    flat = jax.tree.leaves(args)
    axes = _flat_axes(in_axes, args)
    sizes = {x.shape[0] for x, ax in zip(flat, axes, strict=True) if ax == 0}
    if len(sizes) != 1:
        raise ValueError(f"mapped arguments must share one model-axis size, got {sorted(sizes)}")
    return sizes.pop()


def map_models(
    f: Callable[..., Any],
    strategy: str = "vmap",
    chunk: int | None = None,
    in_axes: Any = 0,
    devices: list | None = None,
) -> Callable[..., Any]:
    """Returns a function applying ``f`` over the leading model axis with ``strategy``.

    Args:
        f: per-model function.
        strategy: one of :data:`STRATEGIES` except ``auto`` (resolve it first with
            :func:`auto_strategy`).
        chunk: models per chunk for ``chunked``.
        in_axes: as for ``jax.vmap`` (0 = mapped, None = shared), a prefix of the args.
        devices: devices for ``sharded`` (default all).
    """
    if strategy == "vmap":
        return jax.vmap(f, in_axes=in_axes)
    if strategy == "sequential":
        return _lax_map(f, in_axes, 1)
    if strategy == "chunked":
        if not chunk or chunk < 1:
            raise ValueError(f"chunked needs chunk >= 1, got {chunk}")
        return _lax_map(f, in_axes, chunk)
    if strategy == "sharded":
        return _sharded(f, in_axes, devices)
    raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")


def _split_args(in_axes, args):
    flat, treedef = jax.tree.flatten(args)
    axes = _flat_axes(in_axes, args)
    mapped = [x for x, a in zip(flat, axes, strict=True) if a == 0]
    return flat, treedef, axes, mapped


def _merge(flat, treedef, axes, mapped):
    it = iter(mapped)
    return jax.tree.unflatten(treedef, [next(it) if a == 0 else x
                                        for x, a in zip(flat, axes, strict=True)])


def _lax_map(f, in_axes, batch_size):
    def run(*args):
        flat, treedef, axes, mapped = _split_args(in_axes, args)
        return jax.lax.map(lambda m: f(*_merge(flat, treedef, axes, m)), mapped,
                           batch_size=batch_size if batch_size > 1 else None)

    return run


def _sharded(f, in_axes, devices):
    from jax import shard_map

    devs = devices or jax.devices()
    mesh = Mesh(np.array(devs), ("models",))

    def run(*args):
        m = num_models(in_axes, args)
        pad = padding("sharded", m, devs)
        flat, treedef, axes, mapped = _split_args(in_axes, args)
        if pad:
            mapped = [jnp.concatenate([x, jnp.repeat(x[:1], pad, 0)]) for x in mapped]
        shared = [x for x, a in zip(flat, axes, strict=True) if a != 0]

        def body(mapped_blk, shared_blk):
            it_s = iter(shared_blk)
            it_m = iter(mapped_blk)
            leaves = [next(it_m) if a == 0 else next(it_s) for a in axes]
            per = jax.tree.unflatten(treedef, leaves)
            vaxes = jax.tree.unflatten(treedef, [0 if a == 0 else None for a in axes])
            return jax.vmap(f, in_axes=tuple(vaxes))(*per)

        specs_m = [PartitionSpec("models")] * len(mapped)
        specs_s = [PartitionSpec()] * len(shared)
        out = shard_map(body, mesh=mesh, in_specs=(specs_m, specs_s),
                        out_specs=PartitionSpec("models"), check_vma=False)(mapped, shared)
        return jax.tree.map(lambda x: x[:m], out) if pad else out

    return run


def padding(strategy: str, m: int, devices: Any = None) -> int:
    """Models added by ``strategy`` to run ``m`` models: for ``sharded``, copies of model 0
    that fill M up to a multiple of the device count (computed, then dropped); else 0."""
    if strategy != "sharded":
        return 0
    return (-int(m)) % len(devices or jax.devices())


def has_conv(params: Any, stacked: bool = False) -> bool:
    """Whether a params tree holds 2-D conv kernels (4-D, or 5-D when ``stacked`` on a
    leading model axis)."""
    want = 5 if stacked else 4
    return any(getattr(x, "ndim", 0) == want for x in jax.tree.leaves(params))


@functools.cache
def auto_strategy(backend: str, conv: bool, num_models: int, device_count: int = 1) -> str:
    """Calibrated rule (measured with ``benchmarks/population.py``, see docs/benchmarks.md):

    * several devices -> ``sharded``;
    * CPU, conv net -> ``sequential``: best at every M measured (1-256); vmapped convs with
      per-model inputs become grouped convs (0.29-0.59x of a loop at M = 8-256);
    * CPU, no conv, M < 256 -> ``sequential`` (best or within 3% at M = 1, 8, 64);
    * CPU, no conv, M >= 256 -> ``vmap`` (1.33x a loop vs 1.11x for sequential at M = 256);
    * GPU/TPU -> ``vmap`` (batched kernels fill the device; not yet measured by jaxmu).
    """
    if device_count > 1 and num_models >= device_count:
        return "sharded"
    if backend == "cpu":
        return "vmap" if not conv and num_models >= 256 else "sequential"
    return "vmap"


def resolve_strategy(strategy: str, params: Any, m: int) -> str:
    """Resolves ``auto`` for stacked ``params`` with ``m`` models on the default backend."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if strategy != "auto":
        return strategy
    return auto_strategy(jax.default_backend(), has_conv(params, stacked=True), m,
                         jax.device_count())
