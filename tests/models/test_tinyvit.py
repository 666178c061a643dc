"""TinyViT-11M port: shapes, modes, drop-path, unmasked window padding, size, selectors.

Forward passes use a tiny configuration at 32x32 and are jitted once per mode (XLA compile
time dominates on CPU); the full-size model is only traced (``jax.eval_shape``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmu.models as jm
from jaxmu.models import _tinyvit as tv

TINY = dict(embed_dims=(8, 16, 16, 16), num_heads=(1, 2, 2, 2), depths=(1, 1, 1, 1))
FULL_PARAMS_10 = 10_552_462  # PyTorch TinyViT-11M with 10 classes (analytic count below)
FULL_PARAMS_1000 = 10_996_972  # tiny_vit_11m_224, 1000 classes ("11.0M" in timm / the paper)


def _on(flags) -> set[str]:
    return {jm.path_str(p) for p, v in jax.tree_util.tree_flatten_with_path(flags)[0] if v}


def _all(tree) -> set[str]:
    return {jm.path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


class _Jitted:
    """One compilation per (model, mode)."""

    def __init__(self, model):
        self.model = model
        self.eval = jax.jit(lambda p, s, x: model.apply(p, s, x, train=False))
        self.train = jax.jit(lambda p, s, x, k: model.apply(p, s, x, train=True, key=k))
        self.train_nokey = jax.jit(lambda p, s, x: model.apply(p, s, x, train=True))


@pytest.fixture(scope="module")
def tiny():
    model = jm.tinyvit_11m(10, (32, 32, 3), **TINY)
    # rbg keys: the threefry init graph takes about 3x longer for XLA:CPU to compile
    params, state = jax.jit(model.init)(jax.random.key(0, impl="rbg"))
    x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    return _Jitted(model), params, state, x


@pytest.fixture(scope="module")
def tiny_acts(tiny):
    f, params, state, x = tiny
    return jax.jit(lambda p, s, x: f.model.activations(p, s, x))(params, state, x)


# ----------------------------------------------------------------------------- forward


def test_shapes_names_and_init(tiny, tiny_acts):
    f, params, state, x = tiny
    model = f.model
    assert model.name.startswith("tinyvit_11m_img32_cfg")
    assert jm.tinyvit_11m(10).name == "tinyvit_11m_img32"
    assert jm.tinyvit_11m(5, (224, 224, 3)).name == "tinyvit_11m_img224"
    assert jm.get_model("tinyvit", 10, (32, 32, 3), **TINY).name == model.name
    for logits in (f.eval(params, state, x)[0], f.train_nokey(params, state, x)[0]):
        assert logits.shape == (4, 10) and bool(jnp.all(jnp.isfinite(logits)))
    # reference init: last MBConv BN gamma 0, attention biases 0, Linear bias 0 / std 0.02
    mb = params["layers_0"]["blocks_0"]
    assert float(jnp.abs(mb["conv3"]["bn"]["scale"]).max()) == 0.0
    assert float(jnp.abs(mb["conv1"]["bn"]["scale"] - 1).max()) == 0.0
    assert float(jnp.abs(params["layers_2"]["blocks_0"]["attn"]["attention_biases"]).max()) == 0
    assert float(jnp.abs(params["layers_2"]["blocks_0"]["mlp"]["fc1"]["bias"]).max()) == 0
    assert 0.015 < float(jnp.std(params["layers_2"]["blocks_0"]["mlp"]["fc1"]["kernel"])) < 0.025
    assert "bias" not in params["patch_embed"]["seq_0"]["c"]
    assert model.num_params(params) == _torch_param_count(10, **TINY)
    # token grids at 32x32: 8 -> 4 -> 2 -> 1
    assert tiny_acts["layers_0"]["blocks_0"]["act3"].shape == (4, 8, 8, 8)
    assert tiny_acts["layers_1"]["blocks_0"]["mlp"]["act"].shape == (4, 4, 4, 64)
    assert tiny_acts["layers_2"]["blocks_0"]["mlp"]["act"].shape == (4, 2, 2, 64)
    assert tiny_acts["layers_3"]["blocks_0"]["mlp"]["act"].shape == (4, 1, 1, 64)


def test_train_vs_eval_batch_stats(tiny):
    f, params, state, x = tiny
    e1, s_eval = f.eval(params, state, x)
    e2, _ = f.eval(params, state, x)
    assert bool(jnp.all(e1 == e2))
    assert jax.tree.all(jax.tree.map(lambda u, v: bool(jnp.all(u == v)), s_eval, state))
    t, s_train = f.train_nokey(params, state, x)
    assert not bool(jnp.allclose(t, e1))  # batch statistics instead of running ones
    old, new = state["batch_stats"], s_train["batch_stats"]
    assert jax.tree.structure(old) == jax.tree.structure(new)
    mean_old = old["patch_embed"]["seq_0"]["bn"]["mean"]
    mean_new = new["patch_embed"]["seq_0"]["bn"]["mean"]
    assert float(jnp.abs(mean_old).max()) == 0.0 and float(jnp.abs(mean_new).max()) > 0
    # flax momentum 0.9 == torch momentum 0.1: new = 0.9 * 0 + 0.1 * batch mean
    kernel = params["patch_embed"]["seq_0"]["c"]["kernel"]
    conv = jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(mean_new, 0.1 * conv.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)


def test_drop_path_deterministic_given_key(tiny):
    f0, params, state, x = tiny
    f = _Jitted(jm.tinyvit_11m(10, (32, 32, 3), drop_path_rate=0.6, **TINY))
    k1, k2 = jax.random.key(11), jax.random.key(12)
    a, sa = f.train(params, state, x, k1)
    b, sb = f.train(params, state, x, k1)
    c, _ = f.train(params, state, x, k2)
    assert bool(jnp.all(a == b))
    assert jax.tree.all(jax.tree.map(lambda u, v: bool(jnp.all(u == v)), sa, sb))
    assert not bool(jnp.allclose(a, c))
    # without a key, train mode skips drop-path (Probe test below; no-key run: train_vs_eval)
    assert not bool(jnp.allclose(a, f0.train_nokey(params, state, x)[0]))


def test_drop_path_is_timm_stochastic_depth():
    class Probe(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            return tv._drop_path(self, x, 0.25, train)

    x = jnp.ones((4000, 3, 2))
    y = Probe().apply({}, x, True, rngs={"dropout": jax.random.key(0)})
    per_sample = np.asarray(y).reshape(4000, -1)
    assert np.all(per_sample == per_sample[:, :1])  # one draw per sample
    np.testing.assert_allclose(np.unique(per_sample), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs((per_sample[:, 0] > 0).mean() - 0.75) < 0.03
    assert bool(jnp.all(Probe().apply({}, x, False, rngs={"dropout": jax.random.key(0)}) == x))
    assert bool(jnp.all(Probe().apply({}, x, True) == x))  # no rng: skipped


def test_drop_path_rates_ramp():
    # torch.linspace(0, 0.1, sum(depths)) split per layer; the MBConv blocks take the first
    rates = tv._drop_path_rates((2, 2, 6, 2), 0.1)
    assert [len(r) for r in rates] == [2, 2, 6, 2]
    flat = [r for layer in rates for r in layer]
    assert flat[0] == 0.0 and abs(flat[-1] - 0.1) < 1e-7
    np.testing.assert_allclose(np.diff(flat), 0.1 / 11, rtol=1e-5)


# ------------------------------------------------------------------ window attention


def _np_layer_norm(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _np_windowed_attention(x, p, heads, ws):
    """Reference: explicit zero tokens, per-window loops, offsets numbered from scratch."""
    bsz, h, w, c = x.shape
    hd = c // heads
    ph, pw = -(-h // ws) * ws, -(-w // ws) * ws
    grid = np.zeros((bsz, ph, pw, c))
    grid[:, :h, :w] = x  # explicit zero tokens bottom/right
    pos = [(r, cc) for r in range(ws) for cc in range(ws)]
    offsets: dict = {}
    for r1, c1 in pos:
        for r2, c2 in pos:
            offsets.setdefault((abs(r1 - r2), abs(c1 - c2)), len(offsets))
    out = np.zeros_like(grid)
    for bi in range(bsz):
        for wr in range(0, ph, ws):
            for wc in range(0, pw, ws):
                tok = np.stack([grid[bi, wr + r, wc + cc] for r, cc in pos])
                t = _np_layer_norm(tok, p["norm"]["scale"], p["norm"]["bias"])
                qkv = (t @ p["qkv"]["kernel"] + p["qkv"]["bias"]).reshape(len(pos), heads, -1)
                o = np.zeros((len(pos), heads, hd))
                for hh in range(heads):
                    q, k, v = np.split(qkv[:, hh], 3, axis=-1)
                    s = q @ k.T * hd**-0.5
                    for i, (r1, c1) in enumerate(pos):
                        for j, (r2, c2) in enumerate(pos):
                            s[i, j] += p["attention_biases"][hh,
                                                             offsets[abs(r1 - r2), abs(c1 - c2)]]
                    a = np.exp(s - s.max(-1, keepdims=True))
                    o[:, hh] = (a / a.sum(-1, keepdims=True)) @ v
                o = o.reshape(len(pos), c) @ p["proj"]["kernel"] + p["proj"]["bias"]
                for i, (r, cc) in enumerate(pos):
                    out[bi, wr + r, wc + cc] = o[i]
    return out[:, :h, :w]


def _random_attention_params(heads, ws, c, seed=0):
    """Non-trivial values everywhere so that padded tokens (LN(0) = beta) matter."""
    rng = np.random.default_rng(seed)
    n = lambda *shape: rng.normal(size=shape).astype(np.float32)
    return {"norm": {"scale": 1 + 0.3 * n(c), "bias": 0.5 * n(c)},
            "qkv": {"kernel": 0.3 * n(c, 3 * c), "bias": 0.1 * n(3 * c)},
            "proj": {"kernel": 0.3 * n(c, c), "bias": 0.1 * n(c)},
            "attention_biases": 0.5 * n(heads, ws * ws)}


@jax.jit
def _jax_windowed(params, x):
    heads, ws2 = params["attention_biases"].shape
    ws = int(round(ws2**0.5))
    win, padded = tv.window_partition(x, ws)
    y = tv.Attention(heads, ws).apply({"params": params}, win, False)
    return tv.window_reverse(y, ws, x.shape[0], padded, x.shape[1:3])


@pytest.mark.parametrize("grid,ws", [((5, 4), 3), ((2, 2), 4), ((3, 3), 3)])
def test_window_attention_pads_with_unmasked_zero_tokens(grid, ws):
    heads, c = 2, 8
    params = _random_attention_params(heads, ws, c)
    x = np.random.default_rng(1).normal(size=(2, *grid, c)).astype(np.float32)
    # the module's own parameter shapes are what the reference builds
    shapes = jax.eval_shape(lambda: tv.Attention(heads, ws).init(
        jax.random.key(0), jnp.zeros((1, ws * ws, c)), False))["params"]
    assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(np.shape, params)
    got = _jax_windowed(params, x)
    want = _np_windowed_attention(x.astype(np.float64), params, heads, ws)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_padding_is_not_masked():
    # 2x2 tokens in a 4x4 window: masking the 12 zero tokens would give a different result
    heads, c = 2, 8
    params = _random_attention_params(heads, 4, c)
    x = np.random.default_rng(2).normal(size=(1, 2, 2, c)).astype(np.float32)
    got = _jax_windowed(params, x)
    small = dict(params, attention_biases=params["attention_biases"][:, [0, 1, 4, 5]])
    masked = _jax_windowed(small, x)  # a 2x2 window: attention over the real tokens only
    assert not bool(jnp.allclose(got, masked, atol=1e-3))


def test_attention_bias_index_matches_reference_order():
    idx, n = tv.attention_bias_index(7)
    assert n == 49 and idx.shape == (49, 49)
    np.testing.assert_array_equal(idx[0], np.arange(49))  # offsets from (0, 0): first seen
    np.testing.assert_array_equal(idx, idx.T)
    assert idx[8, 0] == 8 and idx[1, 7] == 8  # (|dr|, |dc|) = (1, 1) either way
    assert tv.attention_bias_index(14)[1] == 196


def test_attention_biases_frozen_in_eval_mode(tiny):
    heads, ws, c = 2, 3, 8
    params = _random_attention_params(heads, ws, c)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, ws * ws, c)), jnp.float32)

    @jax.jit
    def bias_grads(params):  # (train, freeze): frozen eval, train, unfrozen eval
        out = []
        for train, freeze in ((False, True), (True, True), (False, False)):
            loss = lambda p, a=tv.Attention(heads, ws, freeze), t=train: (
                a.apply({"params": p}, x, t) ** 2).sum()
            g = jax.grad(loss)(params)
            out.append((jnp.abs(g["attention_biases"]).max(), jnp.abs(g["qkv"]["kernel"]).max()))
        return out

    (eval_ab, eval_qkv), (train_ab, _), (unfrozen_ab, _) = bias_grads(params)
    assert float(eval_ab) == 0.0 and float(eval_qkv) > 0  # the reference's cached table
    assert float(train_ab) > 0 and float(unfrozen_ab) > 0

    # the full model passes the flag down: in eval mode the logits do not depend on any
    # attention_biases to first order (traced only; the jvp never reads the bias tangents)
    f, p, s, xi = tiny

    def bias_tangent_is_read(model, train):
        t = jax.tree_util.tree_map_with_path(
            lambda path, v: jnp.ones_like(v) * ("attention_biases" in jm.path_str(path)), p)
        logits = lambda q: model.apply(q, s, xi, train=train)[0]
        jaxpr = jax.make_jaxpr(lambda t: jax.jvp(logits, (p,), (t,))[1])(t).jaxpr
        used = {v for eqn in jaxpr.eqns for v in eqn.invars if isinstance(v, jex_core.Var)}
        leaves = jax.tree_util.tree_flatten_with_path(t)[0]
        return [bool(var in used) for (path, _), var in zip(leaves, jaxpr.invars, strict=True)
                if "attention_biases" in jm.path_str(path)]

    assert bias_tangent_is_read(f.model, train=False) == [False] * 3
    unfrozen = jm.tinyvit_11m(10, (32, 32, 3), freeze_attention_biases_in_eval=False, **TINY)
    assert bias_tangent_is_read(unfrozen, train=False) == [True] * 3


# ------------------------------------------------------------------------ full size


def _torch_param_count(num_classes, embed_dims=(64, 128, 256, 448), depths=(2, 2, 6, 2),
                       num_heads=(2, 4, 8, 14), window_sizes=(7, 7, 14, 7), mlp=4, expand=4):
    """Parameters of the PyTorch reference, module by module (BN running stats excluded)."""

    def cbn(a, b, k, g=1):  # Conv2d(bias=False) + BatchNorm2d
        return a // g * b * k * k + 2 * b

    n = cbn(3, embed_dims[0] // 2, 3) + cbn(embed_dims[0] // 2, embed_dims[0], 3)
    for i, d in enumerate(embed_dims):
        for _ in range(depths[i]):
            if i == 0:
                hid = d * expand
                n += cbn(d, hid, 1) + cbn(hid, hid, 3, hid) + cbn(hid, d, 1)
            else:
                hid = d * mlp
                n += 2 * d + d * 3 * d + 3 * d + d * d + d + num_heads[i] * window_sizes[i] ** 2
                n += cbn(d, d, 3, d) + 2 * d + d * hid + hid + hid * d + d
        if i < len(embed_dims) - 1:
            o = embed_dims[i + 1]
            n += cbn(d, o, 1) + cbn(o, o, 3, o) + cbn(o, o, 1)
    return n + 2 * embed_dims[-1] + embed_dims[-1] * num_classes + num_classes


def test_full_model_param_count_and_224_trace():
    assert _torch_param_count(10) == FULL_PARAMS_10
    assert _torch_param_count(1000) == FULL_PARAMS_1000
    assert FULL_PARAMS_1000 - FULL_PARAMS_10 == 448 * 990 + 990
    key = jax.random.key(0)
    m32 = jm.tinyvit_11m(10, (32, 32, 3))
    p32, _ = jax.eval_shape(m32.init, key)
    assert m32.num_params(p32) == FULL_PARAMS_10
    m224 = jm.tinyvit_11m(1000, (224, 224, 3))
    p224, s224 = jax.eval_shape(m224.init, key)
    assert m224.num_params(p224) == FULL_PARAMS_1000
    assert p224["layers_2"]["blocks_0"]["attn"]["attention_biases"].shape == (8, 196)
    assert p224["layers_3"]["blocks_1"]["attn"]["attention_biases"].shape == (14, 49)
    out = jax.eval_shape(lambda p, s, x: m224.apply(p, s, x, train=True, key=key)[0],
                         p224, s224, jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32))
    assert out.shape == (2, 1000)
    acts = jax.eval_shape(lambda p, s, x: m224.activations(p, s, x), p224, s224,
                          jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
    # 224: 56 -> 28 -> 14 -> 7 tokens, windows 7/14/7 divide exactly
    assert acts["layers_0"]["blocks_1"]["act3"].shape == (1, 56, 56, 64)
    assert acts["layers_1"]["blocks_0"]["mlp"]["act"].shape == (1, 28, 28, 512)
    assert acts["layers_2"]["blocks_5"]["mlp"]["act"].shape == (1, 14, 14, 1024)
    assert acts["layers_3"]["blocks_1"]["mlp"]["act"].shape == (1, 7, 7, 1792)


# ------------------------------------------------------------------ selectors / sites


def test_selectors(tiny):
    f, params, _, _ = tiny
    model = f.model
    every = _all(params)
    convs = _on(jm.conv_kernels(model, params))
    assert convs == {p for p in every if p.endswith("/c/kernel")}
    assert len(convs) == 2 + 3 + 3 * 3 + 3  # patch embed, MBConv, 3 PatchMerging, local convs
    assert "layers_1/blocks_0/local_conv/c/kernel" in convs
    assert params["layers_0"]["blocks_0"]["conv2"]["c"]["kernel"].shape == (3, 3, 1, 32)
    assert not any("qkv" in p or "head" in p or "fc1" in p for p in convs)

    stem = _on(jm.stem_conv(model, params))
    assert stem == {p for p in every if p.startswith("patch_embed/")}
    assert {"patch_embed/seq_0/c/kernel", "patch_embed/seq_2/c/kernel"} <= stem

    assert _on(jm.classifier(model, params)) == {"head/kernel", "head/bias"}

    last2 = _on(jm.last_k_blocks(2)(model, params))
    assert last2 == {p for p in every if p.startswith(("layers_2/", "layers_3/", "head/"))}
    assert "layers_2/downsample/conv1/c/kernel" in last2
    assert not any(p.startswith(("norm_head", "layers_0", "layers_1", "patch_embed"))
                   for p in last2)
    blocks = _on(jm.last_k_blocks(10, with_classifier=False)(model, params))
    assert blocks == {p for p in every if p.startswith(("layers_1/", "layers_2/", "layers_3/"))}


def test_activation_sites_and_masks(tiny, tiny_acts):
    f, params, state, x = tiny
    expected = {"patch_embed/act", "layers_0/blocks_0/act1", "layers_0/blocks_0/act2",
                "layers_0/blocks_0/act3"}
    expected |= {f"layers_{i}/downsample/act{j}" for i in range(3) for j in (1, 2)}
    expected |= {f"layers_{i}/blocks_0/mlp/act" for i in (1, 2, 3)}
    assert _all(tiny_acts) == expected  # every GELU, each under its own name
    assert tiny_acts["patch_embed"]["act"].shape == (4, 16, 16, 4)
    assert tiny_acts["layers_0"]["blocks_0"]["act1"].shape == (4, 8, 8, 32)
    # a zero activation mask at a site changes the output; an all-ones mask does not
    shape = tiny_acts["layers_3"]["blocks_0"]["mlp"]["act"].shape[1:]
    masked_eval = jax.jit(lambda m: f.model.apply(
        params, {**state, "act_masks": {"layers_3": {"blocks_0": {"mlp": {"act": m}}}}}, x,
        train=False)[0])
    base = f.eval(params, state, x)[0]
    assert not bool(jnp.allclose(base, masked_eval(jnp.zeros(shape))))
    np.testing.assert_allclose(masked_eval(jnp.ones(shape)), base, rtol=1e-5, atol=1e-6)
