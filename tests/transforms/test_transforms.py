"""Weight edits, saliency masks and optax gradient transforms, checked by hand."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import assert_tree_bitwise_equal, digits_subset_splits, flat_paths

import jaxmu.models as jm
from jaxmu.models import ALL, classifier, conv_kernels, last_k_blocks, mlp, small_cnn, weights
from jaxmu.train import torch_sgd
from jaxmu.transforms import (
    INITS,
    gaussian_deviation,
    kaiming_normal_fan_out,
    mask_by_gradient_saliency,
    project_out,
    project_out_vector,
    prune_l1_and_reinit,
    quantize_round_trip,
    reinit,
    saliency_mask,
    scale_by_mask,
    transpose_conv,
    uniform_fan_in,
)
from jaxmu.types import UnlearnState

CNN = small_cnn((8, 8, 1), 10, channels=(4, 8))
MLP = mlp((8, 8, 1), 10, hidden=(16,))


def _random_state(model, seed=0):
    """Random params/state with the model's init shapes (no init compile), BN stats random."""
    p_shape, s_shape = jax.eval_shape(model.init, jax.random.key(0))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if jm.path_str(path).endswith("var"):
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
        return jnp.asarray(rng.normal(0, 0.5, leaf.shape), leaf.dtype)

    return UnlearnState(jax.tree_util.tree_map_with_path(draw, p_shape),
                        jax.tree_util.tree_map_with_path(draw, s_shape), {}, model)


@pytest.fixture(scope="module")
def splits():
    return digits_subset_splits(64)


@pytest.fixture(scope="module")
def resnet_state():
    return _random_state(jm.resnet18(10, (8, 8, 3), stem="cifar", width=4))


@pytest.fixture(scope="module")
def cnn_state():
    return _random_state(CNN)


@pytest.fixture(scope="module")
def mlp_state():
    return _random_state(MLP)


def _run(stage, state, splits, key=0):
    return jax.jit(stage)(state, splits, jax.random.key(key))


def _unchanged_outside(new, old, selected: set[str]):
    fn, fo = flat_paths(new), flat_paths(old)
    assert fn.keys() == fo.keys()
    for k in fo:
        if k not in selected:
            assert fn[k].dtype == fo[k].dtype
            np.testing.assert_array_equal(fn[k], fo[k], err_msg=k)


def _selected(sel, state):
    return {k for k, v in flat_paths(sel(state.model, state.params)).items() if v}


# ----------------------------------------------------------------------------- transpose_conv


def test_transpose_conv(resnet_state, splits):
    st = resnet_state
    out = _run(transpose_conv(), st, splits)
    sel = _selected(conv_kernels, st)
    new, old = flat_paths(out.params), flat_paths(st.params)
    n3 = n1 = 0
    for k in sel:
        if old[k].shape[:2] == (1, 1):
            np.testing.assert_array_equal(new[k], old[k])  # 1x1 unchanged
            n1 += 1
        else:
            np.testing.assert_array_equal(new[k], np.swapaxes(np.asarray(old[k]), 0, 1))
            assert not np.array_equal(new[k], old[k])
            n3 += 1
    assert n1 == 3 and n3 == 17
    _unchanged_outside(out.params, st.params, sel)
    assert_tree_bitwise_equal(out.model_state, st.model_state)
    # transposing twice is the identity
    assert_tree_bitwise_equal(_run(transpose_conv(), out, splits).params, st.params)


def test_transpose_conv_selection_and_mlp(resnet_state, mlp_state, splits):
    out = _run(transpose_conv(jm.stem_conv), resnet_state, splits)
    _unchanged_outside(out.params, resnet_state.params, {"conv1/kernel"})
    k = np.asarray(resnet_state.params["conv1"]["kernel"])
    np.testing.assert_array_equal(out.params["conv1"]["kernel"], k.transpose(1, 0, 2, 3))
    assert_tree_bitwise_equal(_run(transpose_conv(allow_empty=True), mlp_state, splits).params,
                              mlp_state.params)
    with pytest.raises(ValueError, match="matches no parameter of mlp"):
        transpose_conv()(mlp_state, splits, jax.random.key(0))


# ----------------------------------------------------------------------------- gaussian_deviation


def test_gaussian_deviation_zero_std_is_identity(cnn_state, splits):
    out = _run(gaussian_deviation(0.0, ALL), cnn_state, splits)
    assert_tree_bitwise_equal(out.params, cnn_state.params)


def test_gaussian_deviation_statistics(splits):
    model = small_cnn((8, 8, 1), 10, channels=(64, 64))
    st = _random_state(model)
    out = _run(gaussian_deviation(0.3), st, splits, key=1)
    sel = _selected(conv_kernels, st)
    _unchanged_outside(out.params, st.params, sel)
    new, old = flat_paths(out.params), flat_paths(st.params)
    d = np.asarray(new["conv1/kernel"] - old["conv1/kernel"], np.float64).ravel()  # 36,864
    assert abs(d.mean()) < 0.3 * 5 / math.sqrt(d.size)
    assert d.std() == pytest.approx(0.3, rel=0.02)
    d0 = np.asarray(new["conv0/kernel"] - old["conv0/kernel"]).ravel()
    assert not np.allclose(d0[:10], d[:10])  # a different key per leaf
    again = _run(gaussian_deviation(0.3), st, splits, key=1)
    assert_tree_bitwise_equal(again.params, out.params)
    with pytest.raises(ValueError, match="std must be >= 0"):
        gaussian_deviation(-0.1)


# ----------------------------------------------------------------------------- prune + reinit


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_prune_l1_and_reinit_counts(mlp_state, splits, scope):
    st = mlp_state
    frac = 0.3
    out = _run(prune_l1_and_reinit(frac, ALL, scope=scope), st, splits, key=2)
    old, new = flat_paths(st.params), flat_paths(out.params)
    keys = sorted(old)
    if scope == "global":
        allv = np.concatenate([np.abs(np.asarray(old[k])).ravel() for k in keys])
        k_total = math.floor(frac * allv.size)
        thr = np.sort(allv)[k_total - 1]
        expect = {k: np.abs(np.asarray(old[k])) <= thr for k in keys}
        assert sum(int(m.sum()) for m in expect.values()) == k_total
    else:
        expect = {}
        for k in keys:
            a = np.abs(np.asarray(old[k])).ravel()
            m = np.zeros(a.size, bool)
            m[np.argsort(a)[: round(frac * a.size)]] = True
            expect[k] = m.reshape(old[k].shape)
    for k in keys:
        changed = np.asarray(new[k]) != np.asarray(old[k])
        np.testing.assert_array_equal(changed, expect[k], err_msg=k)
        if old[k].ndim == 1:  # pruned biases stay 0
            np.testing.assert_array_equal(np.asarray(new[k])[expect[k]], 0.0)
        else:  # pruned weights are re-drawn from U(+-1/sqrt(fan_in))
            bound = 1 / math.sqrt(old[k].shape[0])
            vals = np.asarray(new[k])[expect[k]]
            assert np.all(np.abs(vals) <= bound) and np.all(vals != 0)


def test_prune_l1_selection_and_bad_init(cnn_state, splits):
    out = _run(prune_l1_and_reinit(0.5, conv_kernels), cnn_state, splits)
    sel = _selected(conv_kernels, cnn_state)
    _unchanged_outside(out.params, cnn_state.params, sel)
    assert_tree_bitwise_equal(out.model_state, cnn_state.model_state)
    n_changed = sum(int(np.sum(np.asarray(flat_paths(out.params)[k])
                               != np.asarray(flat_paths(cnn_state.params)[k]))) for k in sel)
    assert n_changed == math.floor(0.5 * (9 * 4 + 9 * 4 * 8))
    with pytest.raises(ValueError, match="unknown init 'zeros'"):
        prune_l1_and_reinit(0.5, ALL, init="zeros")


# ----------------------------------------------------------------------------- reinit


def test_reinit_model_init(cnn_state, splits):
    out = _run(reinit(classifier), cnn_state, splits, key=3)
    fresh, _ = jax.jit(CNN.init)(jax.random.key(3))
    np.testing.assert_array_equal(out.params["head"]["kernel"], fresh["head"]["kernel"])
    np.testing.assert_array_equal(out.params["head"]["bias"], fresh["head"]["bias"])
    _unchanged_outside(out.params, cnn_state.params, {"head/kernel", "head/bias"})
    assert_tree_bitwise_equal(out.model_state, cnn_state.model_state)


def test_reinit_where_mask(cnn_state, splits):
    st = cnn_state
    m = jnp.asarray(np.random.default_rng(0).random((3, 3, 4, 8)) < 0.3, jnp.float32)
    mask = jax.tree.map(lambda _: jnp.float32(1.0), st.params)
    mask["conv1"]["kernel"] = m
    st = st.with_aux(m=mask)
    out = _run(reinit(jm.regex("^conv1/"), init="kaiming_normal_fan_out", where="m"), st, splits)
    new, old = np.asarray(out.params["conv1"]["kernel"]), np.asarray(st.params["conv1"]["kernel"])
    np.testing.assert_array_equal(new != old, np.asarray(m) > 0)
    _unchanged_outside(out.params, st.params, {"conv1/kernel"})


def test_reinit_reset_batch_stats(cnn_state, splits):
    st = cnn_state
    out = _run(reinit(last_k_blocks(1), reset_batch_stats=True), st, splits)
    bs, old = out.model_state["batch_stats"], st.model_state["batch_stats"]
    np.testing.assert_array_equal(bs["bn1"]["mean"], np.zeros(8))
    np.testing.assert_array_equal(bs["bn1"]["var"], np.ones(8))
    assert_tree_bitwise_equal(bs["bn0"], old["bn0"])  # not selected
    np.testing.assert_array_equal(out.params["bn1"]["scale"], np.ones(8))  # fresh BN params
    _unchanged_outside(out.params, st.params, _selected(last_k_blocks(1), st))
    kept = _run(reinit(last_k_blocks(1)), st, splits)
    assert_tree_bitwise_equal(kept.model_state, st.model_state)  # default: stats kept
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        reinit(ALL, init="xavier")


def test_init_functions_statistics():
    k = jnp.zeros((3, 3, 64, 128))
    w = np.asarray(kaiming_normal_fan_out(k, jax.random.key(0)), np.float64)
    assert w.std() == pytest.approx(math.sqrt(2 / (9 * 128)), rel=0.02)
    u = np.asarray(uniform_fan_in(k, jax.random.key(1)), np.float64)
    b = 1 / math.sqrt(9 * 64)
    assert np.abs(u).max() <= b and u.std() == pytest.approx(b / math.sqrt(3), rel=0.02)
    d = np.asarray(uniform_fan_in(jnp.zeros((100, 30)), jax.random.key(2)))
    assert np.abs(d).max() <= 0.1 and d.max() > 0.09
    assert set(INITS) == {"uniform_fan_in", "kaiming_normal_fan_out"}


# ----------------------------------------------------------------------------- quantize


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_quantize_round_trip(cnn_state, splits, dtype):
    st = cnn_state.replace(model_state={**cnn_state.model_state,
                                        "count": jnp.asarray([123457], jnp.int32)})
    out = _run(quantize_round_trip(dtype), st, splits)
    for new, old in ((out.params, st.params), (out.model_state, st.model_state)):
        for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old), strict=True):
            assert a.dtype == b.dtype
            if jnp.issubdtype(b.dtype, jnp.floating):
                np.testing.assert_array_equal(a, np.asarray(b.astype(dtype).astype(b.dtype)))
            else:
                np.testing.assert_array_equal(a, b)
    assert not np.array_equal(out.params["head"]["kernel"], st.params["head"]["kernel"])


# ----------------------------------------------------------------------------- saliency masks


def _scores():
    return ({"a": jnp.asarray([[0.5, 0.1], [0.3, 0.9]]), "b": jnp.asarray([0.2, 0.05, 0.7]),
             "c": jnp.asarray([5.0])}, {"a": True, "b": True, "c": False})


def test_saliency_mask_layer():
    s, f = _scores()
    m = saliency_mask(s, f, 0.5, largest=False, scope="layer", fill=7.0)
    np.testing.assert_array_equal(m["a"], [[0, 1], [1, 0]])
    np.testing.assert_array_equal(m["b"], [1, 1, 0])  # round(1.5) = 2 entries
    assert float(m["c"]) == 7.0 and m["c"].shape == ()
    m = saliency_mask(s, f, 0.25, largest=True, scope="layer")
    np.testing.assert_array_equal(m["a"], [[0, 0], [0, 1]])
    np.testing.assert_array_equal(m["b"], [0, 0, 1])  # round(0.75) = 1


def test_saliency_mask_global():
    s, f = _scores()
    m = saliency_mask(s, f, 0.5, largest=False, scope="global", fill=0.0)
    # floor(0.5 * 7) = 3 smallest of {0.5, 0.1, 0.3, 0.9, 0.2, 0.05, 0.7}: 0.05, 0.1, 0.2
    np.testing.assert_array_equal(m["a"], [[0, 1], [0, 0]])
    np.testing.assert_array_equal(m["b"], [1, 1, 0])
    assert float(m["c"]) == 0.0
    m = saliency_mask(s, f, 0.5, largest=True, scope="global")
    np.testing.assert_array_equal(m["a"], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(m["b"], [0, 0, 1])
    assert m["a"].dtype == jnp.float32
    none = saliency_mask(s, f, 0.0, largest=True, scope="global")
    assert float(none["a"].sum() + none["b"].sum()) == 0
    every = saliency_mask(s, f, 1.0, largest=True, scope="layer")
    assert float(every["a"].sum() + every["b"].sum()) == 7


@pytest.mark.parametrize("kw,match", [(dict(fraction=1.5), "fraction must lie in"),
                                      (dict(scope="net"), "scope must be")])
def test_saliency_mask_errors(kw, match):
    s, f = _scores()
    args = dict(fraction=0.5, largest=False, scope="layer")
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        saliency_mask(s, f, **args)


def test_mask_by_gradient_saliency_uses_abs(cnn_state, splits):
    st = cnn_state
    g = jax.tree.map(lambda p: -p, st.params)  # negative values: only |g| matters
    st = st.with_aux(g=g)
    out = _run(mask_by_gradient_saliency("g", "m", 0.3, select=weights, scope="layer"), st,
               splits)
    flags = weights(CNN, st.params)
    expect = saliency_mask(jax.tree.map(jnp.abs, g), flags, 0.3, False, "layer", 1.0)
    for a, b in zip(jax.tree.leaves(out.aux["m"]), jax.tree.leaves(expect), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(out.aux["m"]["bn0"]["scale"]) == 1.0  # unselected: fill
    assert_tree_bitwise_equal(out.params, st.params)


# ----------------------------------------------------------------------------- optax transforms


def test_scale_by_mask_hand_values():
    tx = scale_by_mask("m", on=1.0, off=0.1)
    g = {"w": jnp.asarray([2.0, 2.0, 2.0]), "b": jnp.asarray([4.0])}
    aux = {"m": {"w": jnp.asarray([1.0, 0.0, 1.0]), "b": jnp.float32(0.0)}}
    out, _ = tx.update(g, tx.init(g), None, aux=aux)
    np.testing.assert_allclose(out["w"], [2.0, 0.2, 2.0], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [0.4], rtol=1e-6)
    salun = scale_by_mask("m", 1.0, 0.0)
    out, _ = salun.update(g, salun.init(g), None, aux=aux)
    np.testing.assert_array_equal(out["w"], [2.0, 0.0, 2.0])
    with pytest.raises(ValueError, match=r"scale_by_mask needs aux\['m'\]"):
        tx.update(g, tx.init(g), None, aux={})


def test_scale_by_mask_before_coupled_weight_decay():
    """torch_sgd(pre=(scale_by_mask,)): the mask, then weight decay on the full param, then
    momentum and -lr."""
    tx = torch_sgd(1.0, 0.0, 0.5, pre=(scale_by_mask("m", 1.0, 0.1),))
    p = {"w": jnp.asarray([1.0, 1.0])}
    g = {"w": jnp.asarray([1.0, 1.0])}
    aux = {"m": {"w": jnp.asarray([1.0, 0.0])}}
    d, _ = tx.update(g, tx.init(p), p, aux=aux)
    np.testing.assert_allclose(d["w"], [-(1.0 + 0.5), -(0.1 + 0.5)], rtol=1e-6)


def test_project_out_vector_hand_and_orthogonality():
    g = {"a": jnp.asarray([1.0, 1.0]), "b": jnp.asarray([[2.0]])}
    basis = {"a": jnp.asarray([1.0, 0.0]), "b": jnp.asarray([[1.0]])}
    out = project_out_vector(g, basis)
    # coef = (1 + 2) / (1 + 1) = 1.5 over the whole flattened pytree
    np.testing.assert_allclose(out["a"], [-0.5, 1.0])
    np.testing.assert_allclose(out["b"], [[0.5]])
    dot = sum(float(jnp.vdot(x, y)) for x, y in zip(jax.tree.leaves(out),
                                                     jax.tree.leaves(basis), strict=True))
    assert dot == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    g = {"w": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)}
    b = {"w": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)}
    o = project_out_vector(g, b)
    assert float(jnp.vdot(o["w"], b["w"])) == pytest.approx(0.0, abs=1e-4)
    zero = project_out_vector(g, {"w": jnp.zeros((5, 4))})
    np.testing.assert_array_equal(zero["w"], g["w"])


def test_project_out_transform_and_only_conflicting():
    basis = {"w": jnp.asarray([1.0, 0.0])}
    agree = {"w": jnp.asarray([2.0, 3.0])}
    conflict = {"w": jnp.asarray([-2.0, 3.0])}
    always = project_out("b")
    pc = project_out("b", only_conflicting=True)
    aux = {"b": basis}
    for tx in (always, pc):
        out, _ = tx.update(conflict, tx.init(conflict), None, aux=aux)
        np.testing.assert_allclose(out["w"], [0.0, 3.0])
    out, _ = always.update(agree, always.init(agree), None, aux=aux)
    np.testing.assert_allclose(out["w"], [0.0, 3.0])
    out, _ = pc.update(agree, pc.init(agree), None, aux=aux)
    np.testing.assert_allclose(out["w"], [2.0, 3.0])  # not conflicting: unchanged
    with pytest.raises(ValueError, match=r"project_out needs aux\['b'\]"):
        always.update(agree, always.init(agree), None, aux=None)
    # usable in a jitted optax chain
    tx = optax.chain(project_out("b"), optax.scale(-1.0))
    f = jax.jit(lambda g: tx.update(g, tx.init(g), None, aux=aux)[0])
    np.testing.assert_allclose(f(agree)["w"], [0.0, -3.0])
