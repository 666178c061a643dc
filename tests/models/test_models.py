"""MLP, small CNN and ResNet18: shapes, BatchNorm modes, activation masks, selectors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import flat_paths

import jaxmu.models as jm
from jaxmu.models import (
    ALL,
    classifier,
    conv_kernels,
    get_model,
    last_k_blocks,
    mlp,
    regex,
    resnet18,
    small_cnn,
    stem_conv,
    weights,
)
from jaxmu.types import Model

KEY = jax.random.key(0)


def _shapes(tree):
    return {k: tuple(v.shape) for k, v in flat_paths(tree).items()}


def _sel(selector, model, params, **kw):
    return {k for k, v in flat_paths(selector(model, params, **kw)).items() if v}


@pytest.fixture(scope="module")
def mlp_m():
    m = mlp((8, 8, 1), 10, hidden=(16, 12))
    return m, *jax.jit(m.init)(KEY)


@pytest.fixture(scope="module")
def cnn_m():
    m = small_cnn((8, 8, 1), 10, channels=(4, 8))
    return m, *jax.jit(m.init)(KEY)


@pytest.fixture(scope="module", params=["imagenet", "cifar"])
def resnet_m(request):
    """ResNet18 (width 8) with random params of the exact init shapes/dtypes.

    ``model.init`` takes ~30 CPU-seconds to compile on XLA:CPU (one threefry per leaf), so the
    values are drawn with numpy; shapes and dtypes come from ``jax.eval_shape(model.init)``.
    """
    m = resnet18(10, (32, 32, 3), stem=request.param, width=8)
    p_shape, s_shape = jax.eval_shape(m.init, KEY)
    rng = np.random.default_rng(0)

    def draw(path, leaf):
        name = jm.path_str(path)
        if name.endswith("var"):
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
        scale = 1.0 if name.endswith("scale") else 0.3
        return jnp.asarray(rng.normal(0, scale, leaf.shape), leaf.dtype)

    params = jax.tree_util.tree_map_with_path(draw, p_shape)
    state = jax.tree_util.tree_map_with_path(draw, s_shape)
    return m, params, state


def _x(shape, n=3, seed=1):
    return jax.random.normal(jax.random.key(seed), (n, *shape))


# ----------------------------------------------------------------------------- init / apply


def test_mlp_shapes(mlp_m):
    m, p, s = mlp_m
    assert isinstance(m, Model) and m.name == "mlp" and m.num_classes == 10
    assert _shapes(p) == {"dense0/kernel": (64, 16), "dense0/bias": (16,),
                          "dense1/kernel": (16, 12), "dense1/bias": (12,),
                          "head/kernel": (12, 10), "head/bias": (10,)}
    assert s == {}
    logits, s2 = jax.jit(lambda p, s, x: m.apply(p, s, x, train=True))(p, s, _x((8, 8, 1)))
    assert logits.shape == (3, 10) and logits.dtype == jnp.float32 and s2 == {}
    assert m.num_params(p) == 64 * 16 + 16 + 16 * 12 + 12 + 12 * 10 + 10
    # PyTorch default init: kernel and bias ~ U(+-1/sqrt(fan_in))
    assert float(jnp.abs(p["dense0"]["kernel"]).max()) <= 1 / 8 + 1e-7
    assert float(jnp.abs(p["dense0"]["bias"]).max()) <= 1 / 8 + 1e-7
    assert float(jnp.abs(p["head"]["bias"]).max()) <= 1 / np.sqrt(12) + 1e-7


def test_mlp_forward_by_hand(mlp_m):
    m, p, s = mlp_m
    x = _x((8, 8, 1))
    h = np.asarray(x).reshape(3, -1)
    for name in ("dense0", "dense1"):
        h = np.maximum(h @ np.asarray(p[name]["kernel"]) + np.asarray(p[name]["bias"]), 0)
    ref = h @ np.asarray(p["head"]["kernel"]) + np.asarray(p["head"]["bias"])
    np.testing.assert_allclose(m.apply(p, s, x, train=False)[0], ref, rtol=1e-5, atol=1e-5)


def test_small_cnn_shapes(cnn_m):
    m, p, s = cnn_m
    assert _shapes(p) == {"conv0/kernel": (3, 3, 1, 4), "bn0/scale": (4,), "bn0/bias": (4,),
                          "conv1/kernel": (3, 3, 4, 8), "bn1/scale": (8,), "bn1/bias": (8,),
                          "head/kernel": (8, 10), "head/bias": (10,)}
    assert _shapes(s) == {"batch_stats/bn0/mean": (4,), "batch_stats/bn0/var": (4,),
                          "batch_stats/bn1/mean": (8,), "batch_stats/bn1/var": (8,)}
    np.testing.assert_array_equal(s["batch_stats"]["bn0"]["var"], np.ones(4))
    np.testing.assert_array_equal(s["batch_stats"]["bn0"]["mean"], np.zeros(4))
    for train in (False, True):
        logits, _ = m.apply(p, s, _x((8, 8, 1)), train=train)
        assert logits.shape == (3, 10)


def test_resnet18_small_width_shapes(resnet_m):
    m, p, s = resnet_m
    stem = m.name.split("_")[1]
    assert m.name == f"resnet18_{stem}_w8"
    shp = _shapes(p)
    k = 7 if stem == "imagenet" else 3
    assert shp["conv1/kernel"] == (k, k, 3, 8)
    assert shp["fc/kernel"] == (64, 10) and shp["fc/bias"] == (10,)
    assert shp["layer1_0/conv1/kernel"] == (3, 3, 8, 8)
    assert "layer1_0/downsample_conv/kernel" not in shp
    for i, w in ((2, 16), (3, 32), (4, 64)):
        assert shp[f"layer{i}_0/downsample_conv/kernel"] == (1, 1, w // 2, w)
        assert f"layer{i}_1/downsample_conv/kernel" not in shp
    assert not any("bias" in k for k in shp if "conv" in k)  # convs have no bias
    logits, s2 = jax.jit(lambda p, s, x: m.apply(p, s, x, train=True))(p, s, _x((32, 32, 3), 2))
    assert logits.shape == (2, 10) and jax.tree.structure(s2) == jax.tree.structure(s)
    acts = jax.jit(m.activations)(p, s, _x((32, 32, 3), 2))
    # spatial path: imagenet stem 32 -> 16 (conv) -> 8 (pool) -> 8 -> 4 -> 2 -> 1
    if stem == "imagenet":
        assert acts["relu"].shape == (2, 16, 16, 8)
        assert acts["layer4_1"]["relu2"].shape == (2, 1, 1, 64)
    else:
        assert acts["relu"].shape == (2, 32, 32, 8)
        assert acts["layer4_1"]["relu2"].shape == (2, 4, 4, 64)


def test_resnet18_full_param_count():
    for stem in ("imagenet",):
        m = resnet18(10, (32, 32, 3), stem=stem)
        params, state = jax.eval_shape(m.init, KEY)
        assert sum(x.size for x in jax.tree.leaves(params)) == 11_181_642
        assert m.name == "resnet18_imagenet"
    m = resnet18(10, stem="cifar")
    params, _ = jax.eval_shape(m.init, KEY)
    # the cifar stem replaces the 7x7x3x64 kernel with a 3x3x3x64 one
    assert sum(x.size for x in jax.tree.leaves(params)) == 11_181_642 - (49 - 9) * 3 * 64


def test_resnet18_bad_stem():
    with pytest.raises(ValueError, match="stem must be 'imagenet' or 'cifar'"):
        resnet18(10, stem="vit")


def test_get_model_dispatch():
    assert get_model("mlp", 10, (8, 8, 1), hidden=(4,)).name == "mlp"
    assert get_model("small_cnn", 10, (8, 8, 1)).name == "small_cnn"
    assert get_model("resnet18", 10, (32, 32, 3), width=8).name == "resnet18_imagenet_w8"
    assert get_model("resnet18_cifar", 10, (32, 32, 3), width=8).name == "resnet18_cifar_w8"
    with pytest.raises(ValueError, match="unknown model 'vgg'; valid: mlp, small_cnn"):
        get_model("vgg", 10, (8, 8, 1))


def test_init_depends_on_key_only(mlp_m):
    m, _, _ = mlp_m
    keys = jnp.stack([jax.random.key(0), jax.random.key(0), jax.random.key(1)])
    p, _ = jax.jit(jax.vmap(m.init))(keys)
    for leaf in jax.tree.leaves(p):
        np.testing.assert_array_equal(leaf[0], leaf[1])
        assert not np.array_equal(leaf[0], leaf[2])
    # models are frozen and hashable (static jit arguments), equal by value
    assert hash(m) == hash(mlp((8, 8, 1), 10, hidden=(16, 12)))


# ----------------------------------------------------------------------------- BatchNorm modes


def _conv0(p, x):
    return jax.lax.conv_general_dilated(x, p["conv0"]["kernel"], (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_bn_train_mode_updates_running_stats(cnn_m):
    m, p, s = cnn_m
    x = _x((8, 8, 1), n=6)
    _, s2 = jax.jit(lambda p, s, x: m.apply(p, s, x, train=True))(p, s, x)
    h = np.asarray(_conv0(p, x), np.float64)
    # PyTorch BatchNorm2d: the running variance takes the unbiased batch variance
    mu, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2), ddof=1)
    np.testing.assert_allclose(s2["batch_stats"]["bn0"]["mean"], 0.1 * mu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s2["batch_stats"]["bn0"]["var"], 0.9 + 0.1 * var, rtol=1e-5)
    # the input state is not modified in place
    np.testing.assert_array_equal(s["batch_stats"]["bn0"]["mean"], np.zeros(4))


def test_bn_eval_mode_uses_running_stats_and_keeps_state(cnn_m):
    m, p, s = cnn_m
    x = _x((8, 8, 1), n=6)
    logits, s2 = m.apply(p, s, x, train=False)
    assert s2 is s  # eval mode returns the state unchanged
    acts = m.activations(p, s, x)
    h = np.asarray(_conv0(p, x))
    ref = np.maximum(h / np.sqrt(1 + 1e-5) * np.asarray(p["bn0"]["scale"])
                     + np.asarray(p["bn0"]["bias"]), 0)
    np.testing.assert_allclose(acts["relu0"], ref, rtol=1e-4, atol=1e-5)
    # eval mode: each example's logits are independent of the rest of the batch
    one, _ = m.apply(p, s, x[:1], train=False)
    np.testing.assert_allclose(one, logits[:1], rtol=1e-5, atol=1e-6)
    # train mode: batch statistics couple the examples
    t_all, _ = m.apply(p, s, x, train=True)
    t_two, _ = m.apply(p, s, x[:2], train=True)
    assert not np.allclose(t_all[:2], t_two, atol=1e-4)


def test_bn_train_mode_normalises_with_batch_stats(cnn_m):
    m, p, s = cnn_m
    x = _x((8, 8, 1), n=6)
    acts = m.activations(p, s, x, train=True)
    h = np.asarray(_conv0(p, x), np.float64)
    mu, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
    ref = np.maximum((h - mu) / np.sqrt(var + 1e-5) * np.asarray(p["bn0"]["scale"])
                     + np.asarray(p["bn0"]["bias"]), 0)
    np.testing.assert_allclose(acts["relu0"], ref, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- activation masks


def _ones_masks(m, p, s, x):
    acts = m.activations(p, s, x)
    return jax.tree.map(lambda a: jnp.ones(a.shape[1:], jnp.float32), acts)


def test_activation_mask_structure_and_identity(cnn_m):
    m, p, s = cnn_m
    x = _x((8, 8, 1))
    masks = _ones_masks(m, p, s, x)
    assert {k: v.shape for k, v in masks.items()} == {"relu0": (8, 8, 4), "relu1": (4, 4, 8)}
    base, _ = m.apply(p, s, x, train=False)
    out, s2 = m.apply(p, {**s, "act_masks": masks}, x, train=False)
    np.testing.assert_array_equal(out, base)
    # train mode keeps the masks in the returned state
    _, s3 = m.apply(p, {**s, "act_masks": masks}, x, train=True)
    assert "act_masks" in s3 and s3["act_masks"] is masks


def test_activation_mask_zeroes_units_mlp(mlp_m):
    m, p, s = mlp_m
    x = _x((8, 8, 1))
    masks = _ones_masks(m, p, s, x)
    assert {k: v.shape for k, v in masks.items()} == {"relu0": (16,), "relu1": (12,)}
    m0 = np.ones(16, np.float32)
    m0[[0, 3, 7]] = 0
    m1 = np.ones(12, np.float32)
    m1[5] = 0
    masked = {"relu0": jnp.asarray(m0), "relu1": jnp.asarray(m1)}
    out, _ = jax.jit(lambda p, s, x: m.apply(p, s, x, train=False))(
        p, {**s, "act_masks": masked}, x)
    h = np.asarray(x).reshape(3, -1)
    h = np.maximum(h @ np.asarray(p["dense0"]["kernel"]) + np.asarray(p["dense0"]["bias"]), 0)
    h = h * m0
    h = np.maximum(h @ np.asarray(p["dense1"]["kernel"]) + np.asarray(p["dense1"]["bias"]), 0)
    h = h * m1
    ref = h @ np.asarray(p["head"]["kernel"]) + np.asarray(p["head"]["bias"])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("which", ["cnn", "resnet"])
def test_activation_mask_zeroes_units_last_site(which, cnn_m, resnet_m):
    """Masking channels of the last site: logits = mean(acts * mask) @ W + b."""
    m, p, s = cnn_m if which == "cnn" else resnet_m
    shape = (8, 8, 1) if which == "cnn" else (32, 32, 3)
    head = "head" if which == "cnn" else "fc"
    x = _x(shape, 2)
    acts = jax.jit(m.activations)(p, s, x)
    masks = jax.tree.map(lambda a: jnp.ones(a.shape[1:], jnp.float32), acts)
    apply = jax.jit(lambda p, s, x: m.apply(p, s, x, train=False)[0])
    path = ("relu1",) if which == "cnn" else ("layer4_1", "relu2")
    last = acts
    for k in path:
        last = last[k]
    mk = np.ones(last.shape[1:], np.float32)
    mk[..., ::2] = 0  # every other channel
    mk[0, 0, 1] = 0  # and one unit
    sub = masks
    for k in path[:-1]:
        sub = sub[k]
    sub[path[-1]] = jnp.asarray(mk)
    out = apply(p, {**s, "act_masks": masks}, x)
    feat = (np.asarray(last) * mk).mean(axis=(1, 2))
    ref = feat @ np.asarray(p[head]["kernel"]) + np.asarray(p[head]["bias"])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    # all-zero mask at the last site: logits are the head bias
    sub[path[-1]] = jnp.zeros_like(sub[path[-1]])
    out0 = apply(p, {**s, "act_masks": masks}, x)
    np.testing.assert_allclose(out0, np.broadcast_to(p[head]["bias"], out0.shape), atol=1e-6)


def test_activation_masks_under_vmap_and_jit(mlp_m):
    """Masks are state arrays: a population of models with different masks vmaps."""
    m, p, s = mlp_m
    x = _x((8, 8, 1))
    masks = jnp.stack([jnp.ones(16), jnp.zeros(16)])
    f = jax.jit(jax.vmap(lambda mk: m.apply(p, {"act_masks": {"relu0": mk}}, x,
                                            train=False)[0]))
    out = f(masks)
    np.testing.assert_allclose(out[0], m.apply(p, s, x, train=False)[0], rtol=1e-5, atol=1e-7)
    h1 = np.maximum(np.asarray(p["dense1"]["bias"]), 0)
    ref0 = h1 @ np.asarray(p["head"]["kernel"]) + np.asarray(p["head"]["bias"])
    np.testing.assert_allclose(out[1], np.broadcast_to(ref0, (3, 10)), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- selectors


def test_conv_kernels_selector(cnn_m, mlp_m, resnet_m):
    m, p, _ = cnn_m
    assert _sel(conv_kernels, m, p) == {"conv0/kernel", "conv1/kernel"}
    m, p, _ = resnet_m
    sel = _sel(conv_kernels, m, p)
    assert len(sel) == 1 + 8 * 2 + 3 and all(k.endswith("kernel") and "fc" not in k for k in sel)
    m, p, _ = mlp_m
    with pytest.raises(ValueError, match="selector conv matches no parameter of mlp"):
        conv_kernels(m, p)
    flags = conv_kernels(m, p, allow_empty=True)
    assert not any(jax.tree.leaves(flags))
    assert jax.tree.structure(flags) == jax.tree.structure(p)


def test_stem_and_classifier_selectors(cnn_m, mlp_m, resnet_m):
    m, p, _ = resnet_m
    assert _sel(stem_conv, m, p) == {"conv1/kernel"}  # not layerX_Y/conv1
    assert _sel(classifier, m, p) == {"fc/kernel", "fc/bias"}
    m, p, _ = cnn_m
    assert _sel(stem_conv, m, p) == {"conv0/kernel"}
    assert _sel(classifier, m, p) == {"head/kernel", "head/bias"}
    m, p, _ = mlp_m
    assert _sel(stem_conv, m, p) == {"dense0/kernel", "dense0/bias"}
    assert _sel(classifier, m, p) == {"head/kernel", "head/bias"}


def test_last_k_blocks(resnet_m, cnn_m):
    m, p, _ = resnet_m
    every = set(flat_paths(p))
    l4 = {k for k in every if k.startswith("layer4_")}
    assert _sel(last_k_blocks(1), m, p) == l4 | {"fc/kernel", "fc/bias"}
    assert _sel(last_k_blocks(1, with_classifier=False), m, p) == l4
    l34 = {k for k in every if k.startswith(("layer3_", "layer4_"))}
    assert _sel(last_k_blocks(2), m, p) == l34 | {"fc/kernel", "fc/bias"}
    assert _sel(last_k_blocks(0), m, p) == {"fc/kernel", "fc/bias"}
    assert _sel(last_k_blocks(10), m, p) == every - {"conv1/kernel", "bn1/scale", "bn1/bias"}
    with pytest.raises(ValueError, match="k must be >= 0"):
        last_k_blocks(-1)
    with pytest.raises(ValueError, match="matches no parameter"):
        last_k_blocks(0, with_classifier=False)(m, p)
    m, p, _ = cnn_m
    assert _sel(last_k_blocks(1), m, p) == {"conv1/kernel", "bn1/scale", "bn1/bias",
                                            "head/kernel", "head/bias"}


def test_regex_weights_and_combinators(cnn_m, resnet_m):
    m, p, _ = cnn_m
    every = set(flat_paths(p))
    assert _sel(ALL, m, p) == every
    assert _sel(regex(r"^bn"), m, p) == {"bn0/scale", "bn0/bias", "bn1/scale", "bn1/bias"}
    assert _sel(weights, m, p) == {"conv0/kernel", "conv1/kernel", "head/kernel"}
    assert _sel(conv_kernels | classifier, m, p) == {"conv0/kernel", "conv1/kernel",
                                                     "head/kernel", "head/bias"}
    assert _sel(weights & ~conv_kernels, m, p) == {"head/kernel"}
    assert _sel(~weights, m, p) == every - _sel(weights, m, p)
    assert _sel(regex("bias") & (classifier | regex("bn1")), m, p) == {"head/bias", "bn1/bias"}
    sel = conv_kernels | (classifier & ~regex("bias"))
    assert sel.describe() == "(conv | (classifier & ~regex('bias')))"
    with pytest.raises(ValueError, match=r"selector \(conv & classifier\) matches no parameter"):
        (conv_kernels & classifier)(m, p)
    with pytest.raises(ValueError, match=r"selector regex\('nomatch'\) matches no parameter"):
        regex("nomatch")(m, p)
    import re

    with pytest.raises(re.error):
        regex("(")


def test_selectors_are_static_values():
    a = conv_kernels | last_k_blocks(2)
    b = jm.Selector("conv") | last_k_blocks(2)
    assert a == b and hash(a) == hash(b)
    assert a != conv_kernels | last_k_blocks(3)
    with pytest.raises(ValueError, match="unknown selector kind"):
        jm.Selector("nope").matches(None, "a", None)
    # usable as a static jit argument
    f = jax.jit(lambda sel, x: x + len(sel.describe()), static_argnums=0)
    assert float(f(a, 1.0)) == 1.0 + len(a.describe())


def test_flat_initializers_equal_the_plain_draws():
    key = jax.random.PRNGKey(3)
    shape = (3, 3, 4, 8)
    np.testing.assert_array_equal(jm.flat_normal(key, shape), jax.random.normal(key, shape))
    np.testing.assert_array_equal(jm.flat_uniform(key, shape, jnp.float32, -0.5, 0.5),
                                  jax.random.uniform(key, shape, jnp.float32, -0.5, 0.5))
    # PyTorch's kaiming_uniform(a=sqrt(5)): U(-b, b), b = 1/sqrt(fan_in), fan_in = 3*3*4
    k = jm.torch_default_kernel_init(key, shape)
    bound = 1.0 / np.sqrt(36.0)
    np.testing.assert_allclose(k, jax.random.uniform(key, shape, jnp.float32, -1.0) * bound,
                               rtol=1e-6)
    assert float(jnp.max(jnp.abs(k))) <= bound
    with pytest.raises(ValueError, match="shape: expected non-negative integer sizes"):
        jm.flat_normal(key, (2, -1))
    with pytest.raises(ValueError, match="at least 2 axes"):
        jm.torch_default_kernel_init(key, (4,))
