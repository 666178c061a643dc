"""Training augmentation in JAX: random crop with zero padding and horizontal flip."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def augment(key: jax.Array, x: jax.Array, crop_pad: int, hflip: bool) -> jax.Array:
    """Random crop (zero padding ``crop_pad``) and 50% horizontal flip, per example.

    Matches torchvision's ``RandomCrop(size, padding=crop_pad)`` followed by
    ``RandomHorizontalFlip()`` applied to the uint8 image (padding value 0).

    Args:
        key: PRNG key.
        x: images ``[B, H, W, C]`` (any dtype).
        crop_pad: padding; 0 disables the crop.
        hflip: whether to flip.
    """
    b, h, w, c = x.shape
    k_crop, k_flip = jax.random.split(key)
    if crop_pad > 0:
        p = crop_pad
        xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        offs = jax.random.randint(k_crop, (b, 2), 0, 2 * p + 1)
        x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c)))(
            xp, offs
        )
    if hflip:
        flip = jax.random.bernoulli(k_flip, 0.5, (b,))
        x = jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    return x
