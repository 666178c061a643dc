"""Learning-rate multipliers, usable with Python ints (host loops) or traced arrays.

All take a 0-indexed epoch (or step) ``i`` and the total ``total``; the result multiplies a
base learning rate.

References:
    The schedules of Deep Unlearn's code: cosine per epoch (original and retrained models,
    FT, CFW, CT, KDE), cosine per step (FCS forget optimiser), triangular per epoch (MSG),
    step decay (SCRUB with 1-indexed epochs, CF-k with 0-indexed).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

SCHEDULES = ("constant", "cosine", "triangular", "step")


def cosine(i, total, eta_min_ratio: float = 0.0):
    """``CosineAnnealingLR(T_max=total)`` after ``i`` scheduler steps (``eta_min`` as a
    fraction of the base lr)."""
    c = 0.5 * (1 + jnp.cos(jnp.pi * i / total)) if not isinstance(i, int) else 0.5 * (
        1 + math.cos(math.pi * i / total)
    )
    return eta_min_ratio + (1 - eta_min_ratio) * c


def triangular(i, total):
    """MSG's "LinearAnnealingLR": ramps up to epoch ``A = (E+1)//2`` then down; e.g. E = 5
    gives 1/3, 2/3, 1, 2/3, 1/3."""
    a = (total + 1) // 2
    t = total + 1
    up = (i + 1) / a
    down = (t - (i + 1)) / (t - a)
    if isinstance(i, int):
        return up if i + 1 <= a else down
    return jnp.where(i + 1 <= a, up, down)


def step_decay(i, total, rate: float = 0.1, one_indexed: bool = False):
    """``rate ** #{d in [0.5E, 0.8E, 0.9E] (floored) : e > d}`` with ``e`` = ``i`` or
    ``i + 1`` (SCRUB counts epochs from 1, CF-k/EU-k from 0)."""
    e = i + 1 if one_indexed else i
    ds = [math.floor(0.5 * total), math.floor(0.8 * total), math.floor(0.9 * total)]
    if isinstance(e, int):
        return rate ** sum(e > d for d in ds)
    return rate ** sum((e > d).astype(jnp.float32) for d in ds)


def epoch_multiplier(kind: str, i, total: int):
    """Dispatch by name: constant, cosine, triangular or step (0-indexed, CF-k style; call
    :func:`step_decay` with ``one_indexed=True`` for SCRUB)."""
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        return cosine(i, total)
    if kind == "triangular":
        return triangular(i, total)
    if kind == "step":
        return step_decay(i, total)
    raise ValueError(f"unknown schedule {kind!r}; valid: {SCHEDULES}")
