"""The CPU-fast layers: conv2d (im2col), depthwise conv, max_pool and PyTorch BatchNorm,
checked against jax's own ops (``reference_ops``) and hand computation, on every model."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.losses import cross_entropy
from jaxmu.models import BatchNorm, conv2d, get_model, max_pool, reference_ops

DN = ("NHWC", "HWIO", "NHWC")


def _close(a, b, tol=1e-5):
    """Equal to float32 rounding: max |a - b| <= tol * max |b| (sums of many terms), or
    below 1e-7 (leaves that are zero up to cancellation, e.g. a bias before a BatchNorm)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    err = np.max(np.abs(a - b)) if a.size else 0.0
    assert err <= max(tol * np.max(np.abs(b), initial=0.0), 1e-7), err


def _native(x, w, stride, padding, groups=1):
    return jax.lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=DN,
                                        feature_group_count=groups)


CONV_CASES = [
    # x shape, kernel shape, stride, padding
    ((4, 9, 9, 3), (3, 3, 3, 5), (1, 1), ((1, 1), (1, 1))),
    ((3, 32, 32, 3), (7, 7, 3, 8), (2, 2), ((3, 3), (3, 3))),     # ResNet ImageNet stem
    ((4, 8, 8, 6), (1, 1, 6, 4), (2, 2), ((0, 0), (0, 0))),       # downsample 1x1 / 2
    ((2, 7, 7, 6), (3, 3, 6, 4), (2, 2), ((1, 1), (1, 1))),       # odd size, stride 2
    ((2, 2, 2, 4), (3, 3, 4, 5), (1, 1), ((1, 1), (1, 1))),       # 2x2 map: corner taps pad
    ((2, 2, 2, 4), (3, 3, 4, 5), (2, 2), ((1, 1), (1, 1))),       # 1x1 output: 4 taps used
    ((2, 1, 1, 4), (3, 3, 4, 5), (1, 1), ((1, 1), (1, 1))),       # 1x1 map: centre tap only
    ((2, 6, 5, 3), (3, 2, 3, 4), (1, 2), ((1, 0), (0, 1))),       # asymmetric everything
]


def _loss(conv, x, w):
    return jnp.sum(jnp.sin(conv(x, w)) * jnp.cos(jnp.arange(conv(x, w).size).reshape(
        conv(x, w).shape) * 0.1))


@pytest.mark.parametrize("xs,ws,stride,pad", CONV_CASES)
def test_conv2d_matches_lax_conv_values_and_grads(xs, ws, stride, pad):
    x = jax.random.normal(jax.random.key(0), xs)
    w = jax.random.normal(jax.random.key(1), ws)
    ours = jax.jit(jax.value_and_grad(
        lambda x, w: _loss(lambda a, b: conv2d(a, b, stride, pad), x, w), (0, 1)))
    ref = jax.jit(jax.value_and_grad(
        lambda x, w: _loss(lambda a, b: _native(a, b, stride, pad), x, w), (0, 1)))
    (v1, (dx1, dw1)), (v2, (dx2, dw2)) = ours(x, w), ref(x, w)
    _close(conv2d(x, w, stride, pad), _native(x, w, stride, pad))
    np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-4)  # a sum with cancellation
    _close(dx1, dx2)
    _close(dw1, dw2)


def test_conv2d_grads_inside_scan_equal_outside():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 6))
    g = jax.grad(lambda w: jnp.sum(conv2d(x, w, (1, 1), ((1, 1), (1, 1))) ** 2))

    def body(w, _):
        return w - 1e-3 * g(w), None

    scanned = jax.jit(lambda w: jax.lax.scan(body, w, None, length=3)[0])(w)
    looped = w
    step = jax.jit(lambda w: body(w, None)[0])
    for _ in range(3):
        looped = step(looped)
    np.testing.assert_allclose(scanned, looped, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("stride", [(1, 1), (2, 2)])
def test_depthwise_conv_matches_lax(stride):
    x = jax.random.normal(jax.random.key(0), (3, 9, 9, 6))
    w = jax.random.normal(jax.random.key(1), (3, 3, 1, 6))
    pad = ((1, 1), (1, 1))
    ours = jax.grad(lambda x, w: _loss(lambda a, b: conv2d(a, b, stride, pad, 6), x, w), (0, 1))
    ref = jax.grad(lambda x, w: _loss(lambda a, b: _native(a, b, stride, pad, 6), x, w), (0, 1))
    (dx1, dw1), (dx2, dw2) = jax.jit(ours)(x, w), jax.jit(ref)(x, w)
    np.testing.assert_array_equal(dx1, dx2)  # same transposed conv as jax's
    _close(dw1, dw2)


def test_conv2d_rejects_general_groups():
    with pytest.raises(ValueError, match="dense or depthwise"):
        conv2d(jnp.zeros((1, 4, 4, 4)), jnp.zeros((3, 3, 2, 4)), groups=2)


@pytest.mark.parametrize("shape,window,stride,pad", [
    ((4, 8, 8, 3), (2, 2), (2, 2), ((0, 0), (0, 0))),
    ((2, 7, 7, 2), (2, 2), (2, 2), ((0, 0), (0, 0))),
    ((4, 16, 16, 3), (3, 3), (2, 2), ((1, 1), (1, 1))),   # ResNet stem pool (overlapping)
    ((2, 9, 9, 2), (3, 3), (2, 2), ((1, 1), (1, 1))),
])
def test_max_pool_bitwise_equal_to_flax_with_ties(shape, window, stride, pad):
    x = jax.random.normal(jax.random.key(0), shape)
    x = jax.nn.relu(jnp.round(x * 2) / 2)  # many ties (zeros and repeated values)
    out = max_pool(x, window, stride, pad)
    ref = nn.max_pool(x, window, stride, pad)
    np.testing.assert_array_equal(out, ref)
    g = jax.random.normal(jax.random.key(3), out.shape)
    d1 = jax.jit(lambda x: jax.vjp(lambda a: max_pool(a, window, stride, pad), x)[1](g)[0])(x)
    d2 = jax.jit(lambda x: jax.vjp(lambda a: nn.max_pool(a, window, stride, pad), x)[1](g)[0])(x)
    np.testing.assert_array_equal(d1, d2)


def test_max_pool_gradient_goes_to_first_maximum_by_hand():
    x = jnp.array([[1.0, 3.0], [3.0, 0.0]]).reshape(1, 2, 2, 1)
    d = jax.grad(lambda x: jnp.sum(max_pool(x, (2, 2))))(x)
    np.testing.assert_array_equal(d.reshape(2, 2), [[0.0, 1.0], [0.0, 0.0]])


def test_batchnorm_matches_pytorch_semantics_by_hand():
    x = jax.random.normal(jax.random.key(0), (5, 3, 3, 2)) * 2 + 1
    bn = BatchNorm(use_running_average=False)
    v = bn.init(jax.random.key(1), x)
    assert set(v["batch_stats"]) == {"mean", "var"} and set(v["params"]) == {"scale", "bias"}
    np.testing.assert_array_equal(v["batch_stats"]["var"], np.ones(2))  # init untouched
    y, upd = bn.apply(v, x, mutable=["batch_stats"])
    h = np.asarray(x, np.float64).reshape(-1, 2)
    mu, var_b, var_u = h.mean(0), h.var(0), h.var(0, ddof=1)
    np.testing.assert_allclose(y.reshape(-1, 2), (h - mu) / np.sqrt(var_b + 1e-5), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * mu, rtol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * var_u, rtol=1e-6)
    ev = BatchNorm(use_running_average=True).apply({**v, **upd}, x)
    ref = (h - 0.1 * mu) / np.sqrt(0.9 + 0.1 * var_u + 1e-5)
    np.testing.assert_allclose(ev.reshape(-1, 2), ref, rtol=1e-5, atol=1e-5)


MODELS = [
    ("small_cnn", (12, 12, 1), {"channels": (4, 8)}),
    ("resnet18", (32, 32, 3), {"width": 8}),
    ("resnet18_cifar", (8, 8, 3), {"width": 4}),
    ("tinyvit", (32, 32, 3), {}),
]


@pytest.mark.parametrize("name,shape,kw", MODELS, ids=[m[0] for m in MODELS])
def test_every_model_matches_jax_reference_ops(name, shape, kw):
    """Loss, logits, new BN state and gradients of the fast layers equal those of jax's own
    conv/pool ops to float32 rounding (train mode, jitted)."""
    if name == "tinyvit":
        from jaxmu.models import tinyvit_11m
        model = tinyvit_11m(10, shape, embed_dims=(8, 16, 16, 16), num_heads=(1, 2, 2, 2),
                            depths=(1, 1, 1, 1))
    else:
        model = get_model(name, 10, shape, **kw)
    params, state = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (6, *shape))
    y = jnp.arange(6) % 10

    def f(p):
        logits, new = model.apply(p, state, x, train=True)
        return cross_entropy(logits, y), (logits, new)

    ours = jax.jit(jax.value_and_grad(f, has_aux=True))(params)
    with reference_ops():
        ref = jax.jit(jax.value_and_grad(f, has_aux=True))(params)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        _close(a, b, 1e-4)
