"""Augmentation: random crop (zero padding) and horizontal flip vs a numpy reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.data import augment


def _np_crop(x, offs, p):
    """torchvision RandomCrop(size, padding=p) with explicit top/left offsets."""
    b, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    return np.stack([xp[i, o[0]:o[0] + h, o[1]:o[1] + w] for i, o in enumerate(offs)])


def _draws(key, b, p):
    """The offsets and flips ``augment`` draws (same key derivation)."""
    k_crop, k_flip = jax.random.split(key)
    offs = np.asarray(jax.random.randint(k_crop, (b, 2), 0, 2 * p + 1)) if p else None
    flips = np.asarray(jax.random.bernoulli(k_flip, 0.5, (b,)))
    return offs, flips


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(1, 256, (16, 6, 5, 3), dtype=np.uint8)  # non-square, no zeros


def test_identity_when_disabled(images):
    out = augment(jax.random.key(0), jnp.asarray(images), 0, False)
    np.testing.assert_array_equal(out, images)


def test_crop_matches_numpy_for_fixed_offsets(images):
    p = 2
    key = jax.random.key(3)
    offs, _ = _draws(key, len(images), p)
    out = jax.jit(augment, static_argnums=(2, 3))(key, jnp.asarray(images), p, False)
    assert out.shape == images.shape and out.dtype == jnp.uint8
    np.testing.assert_array_equal(out, _np_crop(images, offs, p))
    # offsets differ across the batch and cover the range
    assert len({tuple(o) for o in offs}) > 1
    assert offs.min() >= 0 and offs.max() <= 2 * p


def test_crop_hand_example():
    x = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3, 1)
    np.testing.assert_array_equal(_np_crop(x, [(0, 0)], 1)[0, ..., 0],
                                  [[0, 0, 0], [0, 1, 2], [0, 4, 5]])
    np.testing.assert_array_equal(_np_crop(x, [(2, 1)], 1)[0, ..., 0],
                                  [[4, 5, 6], [7, 8, 9], [0, 0, 0]])
    # find a key whose crop offset for this single image is (2, 1) and compare
    offs = jax.jit(jax.vmap(lambda s: jax.random.randint(
        jax.random.split(jax.random.key(s))[0], (1, 2), 0, 3)[0]))(jnp.arange(200))
    hits = np.flatnonzero((np.asarray(offs) == [2, 1]).all(-1))
    assert hits.size, "no key with offset (2, 1) among 200"
    out = augment(jax.random.key(int(hits[0])), jnp.asarray(x), 1, False)
    np.testing.assert_array_equal(out[0, ..., 0], [[4, 5, 6], [7, 8, 9], [0, 0, 0]])


def test_flip_matches_numpy(images):
    key = jax.random.key(5)
    _, flips = _draws(key, len(images), 0)
    out = np.asarray(augment(key, jnp.asarray(images), 0, True))
    expect = np.where(flips[:, None, None, None], images[:, :, ::-1, :], images)
    np.testing.assert_array_equal(out, expect)
    assert 0 < flips.sum() < len(flips)  # both outcomes occur in this batch


def test_crop_then_flip_matches_numpy(images):
    p = 1
    key = jax.random.key(11)
    offs, flips = _draws(key, len(images), p)
    out = np.asarray(augment(key, jnp.asarray(images), p, True))
    c = _np_crop(images, offs, p)
    np.testing.assert_array_equal(out, np.where(flips[:, None, None, None], c[:, :, ::-1], c))


def test_float_inputs_and_determinism(images):
    x = jnp.asarray(images, jnp.float32) / 255.0
    a = augment(jax.random.key(1), x, 2, True)
    b = augment(jax.random.key(1), x, 2, True)
    c = augment(jax.random.key(2), x, 2, True)
    assert a.dtype == jnp.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_statistics_over_many_draws():
    x = jnp.ones((4000, 3, 3, 1), jnp.uint8)
    out = np.asarray(augment(jax.random.key(0), x, 1, False))
    # a crop keeps the centre pixel; the top-left pixel is padding iff an offset is 0
    assert (out[:, 1, 1] == 1).all()
    frac_pad = np.mean(out[:, 0, 0, 0] == 0)
    assert abs(frac_pad - (1 - (2 / 3) ** 2)) < 0.03  # P(row off 0 or col off 0) = 5/9
    y = np.zeros((4000, 1, 2, 1), np.uint8)
    y[:, 0, 1] = 1
    flipped = np.asarray(augment(jax.random.key(1), jnp.asarray(y), 0, True))[:, 0, 0, 0]
    assert abs(flipped.mean() - 0.5) < 0.03
