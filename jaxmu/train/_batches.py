"""Static-shape batching over membership masks (jittable and vmappable).

A split of static size ``n`` inside a pool is sampled without replacement by sorting
random keys with the members first; an epoch is ``ceil(n / b)`` contiguous slices of that
order, with ``b = min(batch_size, n)``. The last slice wraps around to the start of the
order, so every batch is full (no padding, BatchNorm sees only real examples); a few
examples are seen twice per epoch when ``b`` does not divide ``n``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxmu.data import augment
from jaxmu.types import Pool


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Number of steps of one epoch over ``n`` members at ``batch_size``."""
    return math.ceil(n / min(batch_size, n))


def member_order(key: jax.Array, mask: jax.Array, n: int) -> jax.Array:
    """A uniformly random permutation of the ``n`` members of ``mask`` (static ``n``)."""
    u = jax.random.uniform(key, mask.shape)
    return jnp.argsort(jnp.where(mask, u, 2.0))[:n]


def epoch_indices(key: jax.Array, mask: jax.Array, n: int, batch_size: int) -> jax.Array:
    """Pool indices of one shuffled epoch, shape ``[steps, min(batch_size, n)]``."""
    b = min(batch_size, n)
    steps = steps_per_epoch(n, batch_size)
    order = member_order(key, mask, n)
    return order[jnp.arange(steps * b) % n].reshape(steps, b)


def ordered_indices(mask: jax.Array, n: int, batch_size: int) -> jax.Array:
    """Like :func:`epoch_indices` but in pool order (no shuffle)."""
    b = min(batch_size, n)
    steps = steps_per_epoch(n, batch_size)
    order = jnp.nonzero(mask, size=n, fill_value=0)[0]
    return order[jnp.arange(steps * b) % n].reshape(steps, b)


def load_batch(
    pool: Pool, idx: jax.Array, key: jax.Array | None = None, *, augment_data: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Gathers a batch, optionally augments it (uint8 space), and normalises it."""
    x = pool.x[idx]
    if augment_data:
        if key is None:
            raise ValueError("augmentation needs a key")
        x = augment(key, x, pool.crop_pad, pool.hflip)
    return pool.normalize(x), pool.y[idx]
