"""fit (learning, determinism, exact resume), batching helpers, schedules, predict."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import assert_tree_bitwise_equal, digits_subset_splits

from jaxmu.data import random_splits
from jaxmu.models import mlp, small_cnn
from jaxmu.train import (
    SCHEDULES,
    TrainConfig,
    cosine,
    epoch_indices,
    epoch_multiplier,
    fit,
    init_keys,
    labels,
    load_batch,
    member_order,
    ordered_indices,
    predict,
    split_accuracies,
    step_decay,
    steps_per_epoch,
    triangular,
)

MLP = mlp((8, 8, 1), 10, hidden=(32,))
CNN = small_cnn((8, 8, 1), 10, channels=(4, 8))


@pytest.fixture(scope="module")
def small():
    return digits_subset_splits(64)


# ----------------------------------------------------------------------------- fit


def test_fit_learns_digits(digits):
    s = random_splits(digits)
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.05, augment=False)
    r = fit(MLP, s.pool, s.mask("train"), 0, cfg, progress=False)
    assert [h["epoch"] for h in r.history] == [1, 2, 3, 4]
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    assert r.history[-1]["train_acc"] > r.history[0]["train_acc"]
    acc = split_accuracies(MLP, r.params, r.model_state, s)
    assert acc["test"] > 0.85 and acc["retain"] > 0.85
    assert set(r.timings) >= {"compile_s", "train_s", "io_s"}
    assert all(v >= 0 for v in r.timings.values())


def test_fit_same_seed_is_bitwise_identical(small):
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=True)
    a = fit(CNN, small.pool, small.retain, 3, cfg, progress=False)
    b = fit(CNN, small.pool, small.retain, 3, cfg, progress=False)
    assert_tree_bitwise_equal(a.params, b.params, "params")
    assert_tree_bitwise_equal(a.model_state, b.model_state, "model_state")
    assert a.history == b.history
    c = fit(CNN, small.pool, small.retain, 4, cfg, progress=False)
    assert not np.array_equal(a.params["head"]["kernel"], c.params["head"]["kernel"])


def test_fit_init_key_is_shared_between_masks(small):
    """O and R with the same seed start from the same init (init key depends on seed only)."""
    k_init, k_data = init_keys(5)
    np.testing.assert_array_equal(jax.random.key_data(k_init),
                                  jax.random.key_data(jax.random.fold_in(jax.random.key(5), 0)))
    assert not np.array_equal(jax.random.key_data(k_init), jax.random.key_data(k_data))
    p0, s0 = MLP.init(k_init)
    r = fit(MLP, small.pool, small.retain, 5, TrainConfig(epochs=1, batch_size=16, lr=0.01),
            progress=False)
    r2 = fit(MLP, small.pool, small.retain, 5, TrainConfig(epochs=1, batch_size=16, lr=0.01),
             init=(p0, s0), progress=False)
    assert_tree_bitwise_equal(r.params, r2.params)


@pytest.mark.parametrize("model", [MLP, CNN], ids=["mlp", "cnn"])
def test_fit_resume_equals_uninterrupted(small, tmp_path, model):
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.05, augment=True)
    full = fit(model, small.pool, small.mask("train"), 1, cfg, progress=False)
    ck = str(tmp_path / "ck")
    part = fit(model, small.pool, small.mask("train"), 1, cfg, checkpoint_dir=ck,
               stop_after=2, progress=False)
    assert len(part.history) == 2
    resumed = fit(model, small.pool, small.mask("train"), 1, cfg, checkpoint_dir=ck,
                  progress=False)
    assert_tree_bitwise_equal(resumed.params, full.params, "params")
    assert_tree_bitwise_equal(resumed.model_state, full.model_state, "model_state")
    assert resumed.history == full.history
    # a finished run resumes to itself without training
    again = fit(model, small.pool, small.mask("train"), 1, cfg, checkpoint_dir=ck,
                progress=False)
    assert_tree_bitwise_equal(again.params, full.params)
    assert again.history == full.history


def test_fit_checkpoint_from_another_run_raises(small, tmp_path):
    ck = str(tmp_path / "ck")
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False)
    fit(MLP, small.pool, small.retain, 0, cfg, checkpoint_dir=ck, stop_after=1, progress=False)
    meta = _meta(ck)
    assert meta["seed"] == 0 and len(meta["key"]) == 2 and len(meta["masks_sha256"]) == 16
    other = TrainConfig(epochs=3, batch_size=16, lr=0.01, augment=False)
    with pytest.raises(ValueError, match="another run .*config"):
        fit(MLP, small.pool, small.retain, 0, other, checkpoint_dir=ck, progress=False)
    other_model = mlp((8, 8, 1), 10, hidden=(32,))
    other_model = type(other_model)(other_model.module, other_model.input_shape, 10, "mlp2",
                                    other_model.stem, other_model.classifier, other_model.blocks)
    with pytest.raises(ValueError, match="another run .*model"):
        fit(other_model, small.pool, small.retain, 0, cfg, checkpoint_dir=ck, progress=False)
    with pytest.raises(ValueError, match=r"another run \(differs in key\)"):  # another seed
        fit(MLP, small.pool, small.retain, 1, cfg, checkpoint_dir=ck, progress=False)
    moved = np.asarray(small.retain).copy()
    i, j = np.flatnonzero(moved)[0], np.flatnonzero(~moved)[0]
    moved[i], moved[j] = False, True  # same size, other members
    with pytest.raises(ValueError, match=r"another run \(differs in masks_sha256\)"):
        fit(MLP, small.pool, jnp.asarray(moved), 0, cfg, checkpoint_dir=ck, progress=False)


def _meta(ck):
    import json
    from pathlib import Path

    (rec,) = Path(ck).glob("*/meta/metadata")
    return json.loads(rec.read_text())


def test_fit_bad_inputs(small):
    cfg = TrainConfig(epochs=1, batch_size=16)
    with pytest.raises(ValueError, match="cannot fit on an empty mask"):
        fit(MLP, small.pool, jnp.zeros(small.pool.size, bool), 0, cfg, progress=False)
    with pytest.raises(ValueError, match=r"mask must be bool of shape \(64,\)"):
        fit(MLP, small.pool, jnp.ones(63, bool), 0, cfg, progress=False)
    with pytest.raises(ValueError, match=r"mask must be bool of shape \(64,\)"):
        fit(MLP, small.pool, jnp.ones(64, jnp.int32), 0, cfg, progress=False)


@pytest.mark.parametrize("kw,match", [
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(lr=-1.0), "lr must be > 0"),
    (dict(schedule="triangular"), "schedule must be 'cosine' or 'constant'"),
])
def test_train_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


def test_train_config_defaults_and_dict():
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay, c.schedule, c.augment) == (
        50, 256, 0.1, 0.9, 5e-4, "cosine", True)
    assert c.to_dict()["lr"] == 0.1 and hash(c) == hash(TrainConfig())


def test_train_config_direction_is_pytorch_sgd():
    """direction = momentum buffer of (grad + wd * param); the loop applies -lr."""
    c = TrainConfig(momentum=0.9, weight_decay=0.1)
    tx = c.direction()
    p = {"w": jnp.asarray([1.0, -2.0])}
    st = tx.init(p)
    g1, g2 = {"w": jnp.asarray([0.5, 0.5])}, {"w": jnp.asarray([-1.0, 2.0])}
    d1, st = tx.update(g1, st, p)
    np.testing.assert_allclose(d1["w"], [0.5 + 0.1, 0.5 - 0.2], rtol=1e-6)
    d2, st = tx.update(g2, st, p)
    np.testing.assert_allclose(d2["w"], 0.9 * np.array([0.6, 0.3]) + np.array([-0.9, 1.8]),
                               rtol=1e-6)


# ----------------------------------------------------------------------------- batching


def test_steps_per_epoch():
    assert steps_per_epoch(10, 4) == 3
    assert steps_per_epoch(8, 4) == 2
    assert steps_per_epoch(3, 64) == 1  # batch capped at n


def test_member_order_is_permutation_of_members():
    mask = jnp.asarray(np.arange(20) % 3 == 0)  # 7 members
    order = jax.jit(member_order, static_argnums=2)(jax.random.key(0), mask, 7)
    assert order.shape == (7,)
    assert sorted(np.asarray(order).tolist()) == list(range(0, 20, 3))
    other = member_order(jax.random.key(1), mask, 7)
    assert sorted(np.asarray(other).tolist()) == list(range(0, 20, 3))
    assert not np.array_equal(order, other)


@pytest.mark.parametrize("n,b", [(10, 4), (12, 4), (5, 16), (7, 7)])
def test_epoch_indices_cover_members_once_plus_wraparound(n, b):
    rng = np.random.default_rng(n)
    members = np.sort(rng.choice(40, n, replace=False))
    mask = jnp.zeros(40, bool).at[members].set(True)
    f = jax.jit(epoch_indices, static_argnums=(2, 3))
    idx = np.asarray(f(jax.random.key(2), mask, n, b))
    bb = min(b, n)
    steps = math.ceil(n / bb)
    assert idx.shape == (steps, bb)  # static shape, full batches
    flat = idx.reshape(-1)
    assert sorted(flat[:n].tolist()) == members.tolist()  # each member once ...
    np.testing.assert_array_equal(flat[n:], flat[: steps * bb - n])  # ... then wrap-around
    order = np.asarray(member_order(jax.random.key(2), mask, n))
    np.testing.assert_array_equal(flat[:n], order)


def test_epoch_indices_under_vmap_with_different_masks():
    """Per-model masks of equal size: vmapped batching gives each model its own members."""
    masks = jnp.asarray([np.arange(12) < 6, np.arange(12) >= 6])
    keys = jax.random.split(jax.random.key(0), 2)
    idx = jax.vmap(lambda k, m: epoch_indices(k, m, 6, 4))(keys, masks)
    assert idx.shape == (2, 2, 4)
    assert set(np.asarray(idx[0]).ravel()) == set(range(6))
    assert set(np.asarray(idx[1]).ravel()) == set(range(6, 12))


def test_ordered_indices_pool_order():
    mask = jnp.asarray([0, 1, 1, 0, 1, 1, 1], bool)
    idx = ordered_indices(mask, 5, 2)
    np.testing.assert_array_equal(idx, [[1, 2], [4, 5], [6, 1]])


def test_load_batch(small):
    idx = jnp.asarray([3, 0, 5])
    x, y = load_batch(small.pool, idx)
    raw = np.asarray(small.pool.x)[[3, 0, 5]].astype(np.float32) / 255.0
    np.testing.assert_allclose(x, (raw - small.pool.mean[0]) / small.pool.std[0], rtol=1e-6)
    np.testing.assert_array_equal(y, np.asarray(small.pool.y)[[3, 0, 5]])
    xa, _ = load_batch(small.pool, idx, jax.random.key(0), augment_data=True)
    assert xa.shape == x.shape and xa.dtype == jnp.float32
    with pytest.raises(ValueError, match="augmentation needs a key"):
        load_batch(small.pool, idx, augment_data=True)


# ----------------------------------------------------------------------------- schedules


def test_cosine_hand_values():
    assert cosine(0, 4) == 1.0 and cosine(2, 4) == pytest.approx(0.5) and cosine(4, 4) == 0.0
    assert cosine(1, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine(4, 4, eta_min_ratio=0.1) == pytest.approx(0.1)
    assert cosine(2, 4, eta_min_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    traced = jax.jit(lambda i: cosine(i, 4))(jnp.arange(5))
    np.testing.assert_allclose(traced, [cosine(i, 4) for i in range(5)], rtol=1e-6, atol=1e-7)


def test_triangular_hand_values():
    np.testing.assert_allclose([triangular(i, 5) for i in range(5)],
                               [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])
    # E = 4: A = 2, ramps 1/2, 1, then down over the remaining (E + 1 - A) = 3
    np.testing.assert_allclose([triangular(i, 4) for i in range(4)], [1 / 2, 1, 2 / 3, 1 / 3])
    np.testing.assert_allclose(jax.jit(lambda i: triangular(i, 5))(jnp.arange(5)),
                               [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3], rtol=1e-6)


def test_step_decay_hand_values():
    # E = 10: milestones floor(5, 8, 9); 0-indexed (CF-k): e = i
    np.testing.assert_allclose([step_decay(i, 10) for i in range(10)],
                               [1] * 6 + [0.1] * 3 + [0.01])
    # 1-indexed (SCRUB): e = i + 1
    np.testing.assert_allclose([step_decay(i, 10, one_indexed=True) for i in range(10)],
                               [1] * 5 + [0.1] * 3 + [0.01, 0.001])
    np.testing.assert_allclose([step_decay(i, 10, rate=0.5) for i in range(10)],
                               [1] * 6 + [0.5] * 3 + [0.25])
    np.testing.assert_allclose(jax.jit(lambda i: step_decay(i, 10))(jnp.arange(10)),
                               [1] * 6 + [0.1] * 3 + [0.01], rtol=1e-6)


def test_epoch_multiplier_dispatch():
    assert SCHEDULES == ("constant", "cosine", "triangular", "step")
    assert epoch_multiplier("constant", 3, 5) == 1.0
    assert epoch_multiplier("cosine", 1, 4) == cosine(1, 4)
    assert epoch_multiplier("triangular", 2, 5) == 1.0
    assert epoch_multiplier("step", 9, 10) == step_decay(9, 10)
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        epoch_multiplier("linear", 0, 1)


# ----------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def trained(small):
    r = fit(CNN, small.pool, small.mask("train"), 0,
            TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=False), progress=False)
    return r.params, r.model_state


def test_predict_matches_direct_computation(small, trained):
    params, state = trained
    for split in ("forget", "retain", "val", "test", "train"):
        idx = np.flatnonzero(np.asarray(small.mask(split)))
        x = small.pool.normalize(small.pool.x[idx])
        direct, _ = CNN.apply(params, state, x, train=False)
        out = predict(CNN, params, state, small, split, batch_size=5)  # chunks + wrap-around
        assert out.shape == (len(idx), 10) and out.dtype == jnp.float32
        np.testing.assert_allclose(out, direct, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(labels(small, split), np.asarray(small.pool.y)[idx])


def test_split_accuracies_match_numpy(small, trained):
    params, state = trained
    acc = split_accuracies(CNN, params, state, small)
    assert set(acc) == {"retain", "forget", "val", "test"}
    for split, a in acc.items():
        idx = np.flatnonzero(np.asarray(small.mask(split)))
        x = small.pool.normalize(small.pool.x[idx])
        logits, _ = CNN.apply(params, state, x, train=False)
        expect = np.mean(np.argmax(np.asarray(logits), -1) == np.asarray(small.pool.y)[idx])
        assert a == pytest.approx(expect, abs=1e-7)


def test_predict_and_accuracy_on_empty_split(small, trained):
    from jaxmu.types import Splits

    params, state = trained
    s = Splits.build(small.pool, forget=small.forget, retain=small.retain)  # no val/test
    assert predict(CNN, params, state, s, "val").shape == (0, 10)
    acc = split_accuracies(CNN, params, state, s)
    assert math.isnan(acc["val"]) and math.isnan(acc["test"])
    assert not math.isnan(acc["retain"])
