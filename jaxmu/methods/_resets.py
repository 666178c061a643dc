"""PyTorch's ``reset_parameters()`` as a stage (the layer resets of KDE and RNI)."""

from __future__ import annotations

import math
from typing import Any

import jax

from jaxmu.models import Selector, flat_uniform, path_str, torch_default_kernel_init
from jaxmu.types import Splits, Stage, UnlearnState


def _fan_in(kernel_shape: tuple[int, ...]) -> int:
    """Fan-in of a flax kernel: ``[in, out]`` dense or ``[kh, kw, in / groups, out]`` conv."""
    return math.prod(kernel_shape[:-1])


def torch_reset(select: Selector) -> Stage:
    """Re-draws the selected layers as PyTorch's ``Linear``/``Conv2d.reset_parameters()``.

    A selected ``kernel`` (2-D dense or 4-D conv) gets kaiming-uniform with ``a = sqrt(5)``,
    i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = in_features`` or
    ``kh * kw * in_channels / groups`` (std ``1/sqrt(3 fan_in)``: about 0.048 for a
    7x7x3 stem). A selected ``bias`` next to a kernel gets the same bound from that kernel's
    fan-in. Any other selected leaf (e.g. a norm scale or bias that a model's stem selector
    includes) gets a fresh draw of the model's own initialiser. BatchNorm running statistics
    are kept, as ``reset_parameters`` of a conv does not touch the following BatchNorm.

    Leaf ``i`` of the params tree draws from ``fold_in(key, i)``.

    Args:
        select: the layers to reset (e.g. ``stem_conv | classifier``).

    Returns:
        A stage; unselected parameters stay bit-identical.
    """
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model, params = state.model, state.params
        flags = select(model, params)
        flat, treedef = jax.tree_util.tree_flatten_with_path(params)
        paths = [path_str(p) for p, _ in flat]
        leaves = [v for _, v in flat]
        shapes = {p: v.shape for p, v in zip(paths, leaves, strict=True)}
        fl = jax.tree.leaves(flags)
        out: list[Any] = list(leaves)
        others = []
        for i, (f, path, v) in enumerate(zip(fl, paths, leaves, strict=True)):
            if not f:
                continue
            k = jax.random.fold_in(key, i)
            prefix, _, leaf = path.rpartition("/")
            sibling = f"{prefix}/kernel" if prefix else "kernel"
            if leaf == "kernel" and v.ndim in (2, 4):
                out[i] = torch_default_kernel_init(k, v.shape, v.dtype)
            elif leaf == "bias" and sibling in shapes:
                b = 1.0 / math.sqrt(max(_fan_in(shapes[sibling]), 1))
                out[i] = flat_uniform(k, v.shape, v.dtype, -b, b)
            else:
                others.append(i)
        if others:  # the model's own init, drawn only when a selected leaf needs it
            fresh = jax.tree.leaves(model.init(key)[0])
            for i in others:
                out[i] = fresh[i]
        return state.replace(params=jax.tree.unflatten(treedef, out))

    return run
