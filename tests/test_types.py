"""Core types: keys, Pool, Splits (as pytrees, accessors), UnlearnState, Model protocol."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu import Model, Pool, Splits, UnlearnState, as_key
from jaxmu.models import mlp
from jaxmu.types import SPLIT_NAMES


def _pool(n=10, k=3, c=1, hw=4):
    x = np.arange(n * hw * hw * c, dtype=np.int64).reshape(n, hw, hw, c) % 256
    y = np.arange(n) % k
    return Pool(jnp.asarray(x, jnp.uint8), jnp.asarray(y, jnp.int32), num_classes=k,
                mean=(0.5,) * c, std=(0.25,) * c)


# ----------------------------------------------------------------------------- keys


def test_as_key_int_typed_and_raw():
    k = as_key(3)
    assert jnp.issubdtype(k.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(k), jax.random.key_data(jax.random.key(3)))
    assert as_key(k) is k
    raw = jax.random.PRNGKey(3)  # legacy uint32[2]
    k2 = as_key(raw)
    assert jnp.issubdtype(k2.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(k2), raw)
    # numpy raw keys are accepted too, and batched raw keys stay batched
    k3 = as_key(np.asarray(jax.random.split(raw, 4)))
    assert k3.shape == (4,)


@pytest.mark.parametrize("bad", [np.zeros(2, np.float32), np.zeros(3, np.uint32),
                                 jnp.zeros((2,), jnp.int32)])
def test_as_key_rejects_non_keys(bad):
    with pytest.raises(ValueError, match="PRNG key"):
        as_key(bad)


def test_as_key_inside_jit():
    f = jax.jit(lambda k: jax.random.uniform(as_key(k)))
    assert float(f(jax.random.key(0))) == float(jax.random.uniform(jax.random.key(0)))


# ----------------------------------------------------------------------------- Pool


def test_pool_properties_and_normalize():
    p = _pool(n=6, c=2)
    assert p.size == 6 and p.image_shape == (4, 4, 2)
    x = jnp.asarray([[[[0, 255]]]], jnp.uint8)
    out = p.normalize(x)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out).ravel(), [(0 - 0.5) / 0.25, (1 - 0.5) / 0.25])
    assert p.validate() is p


@pytest.mark.parametrize("kw,match", [
    (dict(x=np.zeros((4, 4, 4), np.uint8)), r"\[N, H, W, C\]"),
    (dict(x=np.zeros((4, 4, 4, 1), np.float32)), "uint8"),
    (dict(y=np.zeros(3, np.int32)), "Pool.y must have shape"),
    (dict(mean=(0.5, 0.5)), "mean/std"),
    (dict(num_classes=1), "num_classes"),
    (dict(y=np.array([0, 1, 2, 3], np.int32)), r"labels must lie in \[0, 2\]"),
    (dict(y=np.array([0, -1, 2, 1], np.int32)), "labels must lie"),
])
def test_pool_validate_errors(kw, match):
    base = dict(x=np.zeros((4, 4, 4, 1), np.uint8), y=np.array([0, 1, 2, 1], np.int32),
                num_classes=3, mean=(0.5,), std=(0.5,))
    base.update(kw)
    p = Pool(jnp.asarray(base.pop("x")), jnp.asarray(base.pop("y")), **base)
    with pytest.raises(ValueError, match=match):
        p.validate()


def test_pool_is_pytree_with_static_metadata():
    p = _pool()
    leaves, treedef = jax.tree.flatten(p)
    assert len(leaves) == 2  # x and y; everything else is static
    q = jax.tree.unflatten(treedef, leaves)
    assert q.num_classes == p.num_classes and q.mean == p.mean and q.name == p.name
    # static fields are part of the jit cache key, arrays are traced
    out = jax.jit(lambda pool: pool.normalize(pool.x).sum() + pool.num_classes)(p)
    assert np.isfinite(float(out))


# ----------------------------------------------------------------------------- Splits


def test_splits_build_from_masks_and_indices():
    p = _pool(n=10)
    f = np.zeros(10, bool)
    f[[1, 3]] = True
    s = Splits.build(p, forget=f, retain=np.array([0, 2, 4, 5]), val=np.array([6, 7]),
                     test=None)
    assert s.sizes() == {"forget": 2, "retain": 4, "val": 2, "test": 0}
    assert (s.n_forget, s.n_retain, s.n_val, s.n_test) == (2, 4, 2, 0)
    for name in SPLIT_NAMES:
        m = s.mask(name)
        assert m.dtype == jnp.bool_ and m.shape == (10,)
    np.testing.assert_array_equal(s.indices("forget"), [1, 3])
    np.testing.assert_array_equal(s.indices("retain"), [0, 2, 4, 5])
    np.testing.assert_array_equal(s.indices("train"), [0, 1, 2, 3, 4, 5])
    assert s.size("train") == 6
    np.testing.assert_array_equal(s.mask("train"), np.isin(np.arange(10), [0, 1, 2, 3, 4, 5]))
    assert s.indices("test").shape == (0,)


def test_splits_unknown_split_name():
    p = _pool()
    s = Splits.build(p, forget=[0], retain=[1, 2])
    for fn in (s.mask, s.size, s.indices):
        with pytest.raises(ValueError, match="unknown split 'bogus'.*forget"):
            fn("bogus")


def test_splits_pytree_static_sizes_and_vmap():
    p = _pool(n=8)
    s = Splits.build(p, forget=[0, 1], retain=[2, 3, 4], val=[5], test=[6, 7])
    leaves, treedef = jax.tree.flatten(s)
    assert len(leaves) == 6  # pool.x, pool.y and the four masks; sizes are static
    s2 = jax.tree.unflatten(treedef, leaves)
    assert s2.sizes() == s.sizes()

    # jitted: sizes stay static Python ints, so indices() has a static shape
    idx = jax.jit(lambda sp: sp.indices("retain"))(s)
    np.testing.assert_array_equal(idx, [2, 3, 4])

    # a population of masks with equal sizes vmaps (pool shared, in_axes None)
    s_b = Splits.build(p, forget=[6, 7], retain=[0, 1, 5], val=[2], test=[3, 4])
    pop = Splits(p, *(jnp.stack([s.mask(k), s_b.mask(k)]) for k in SPLIT_NAMES),
                 **{f"n_{k}": s.size(k) for k in SPLIT_NAMES})
    axes = Splits(None, 0, 0, 0, 0, **{f"n_{k}": s.size(k) for k in SPLIT_NAMES})
    out = jax.vmap(lambda sp: sp.indices("forget"), in_axes=(axes,))(pop)
    np.testing.assert_array_equal(out, [[0, 1], [6, 7]])


# ----------------------------------------------------------------------------- UnlearnState


def test_unlearn_state_replace_with_aux_and_pytree():
    model = mlp((2, 2, 1), 3, hidden=(4,))
    params, ms = model.init(jax.random.key(0))
    st = UnlearnState(params, ms, {}, model)
    st2 = st.with_aux(a=jnp.ones(2)).with_aux(b=jnp.zeros(1))
    assert set(st2.aux) == {"a", "b"} and st.aux == {}
    st3 = st2.replace(params=jax.tree.map(jnp.zeros_like, params))
    assert st3.model is model and set(st3.aux) == {"a", "b"}
    # model is static: flattening gives only arrays, and jit sees the model as a constant
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(st2))
    out = jax.jit(lambda s: s.model.apply(s.params, s.model_state, jnp.ones((1, 2, 2, 1)),
                                          train=False)[0])(st2)
    assert out.shape == (1, 3)


def test_model_protocol_runtime_checkable():
    model = mlp((2, 2, 1), 3, hidden=(4,))
    assert isinstance(model, Model)
    assert not isinstance(object(), Model)
    hash(model)  # frozen and hashable (a static jit argument)
    assert model == mlp((2, 2, 1), 3, hidden=(4,))
