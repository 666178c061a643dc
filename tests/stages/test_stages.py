"""Stages (probes and loops) and loss terms, checked by hand or against numpy."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import assert_tree_bitwise_equal, digits_subset_splits

from jaxmu import losses as L
from jaxmu.models import classifier, mlp, small_cnn
from jaxmu.stages import (
    accumulate_gradients,
    activation_means,
    best_of,
    class_weights,
    finetune,
    repeat,
    sequence,
    snapshot,
)
from jaxmu.train import (
    cosine,
    epoch_indices,
    member_order,
    per_epoch,
    relabel_forget,
    step_decay,
    step_decay_schedule,
    torch_adam,
    torch_sgd,
    triangular,
    triangular_schedule,
)
from jaxmu.types import UnlearnState

MLP = mlp((8, 8, 1), 10, hidden=(16,))
CNN = small_cnn((8, 8, 1), 10, channels=(4, 8))


@pytest.fixture(scope="module")
def splits():
    return digits_subset_splits(64)  # forget 8, val 8, test 8, retain 40


@pytest.fixture(scope="module")
def mlp_state():
    p, s = jax.jit(MLP.init)(jax.random.key(0))
    return UnlearnState(p, s, {}, MLP)


@pytest.fixture(scope="module")
def cnn_state():
    p, s = jax.jit(CNN.init)(jax.random.key(0))
    return UnlearnState(p, s, {}, CNN)


def _run(stage, state, splits, key=0):
    return jax.jit(stage)(state, splits, jax.random.key(key))


def _per_example_grads(model, params, ms, splits, idx):
    """Per-example CE gradients (eval mode), stacked on a leading axis."""
    x = splits.pool.normalize(splits.pool.x[idx])
    y = splits.pool.y[idx]

    def one(xi, yi):
        def f(p):
            logits, _ = model.apply(p, ms, xi[None], train=False)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yi[None])[0]

        return jax.grad(f)(params)

    return jax.vmap(one)(x, y)


# ----------------------------------------------------------------------------- composition


def test_sequence_folds_in_stage_index(mlp_state, splits):
    def rec(i):
        return lambda st, sp, k: st.with_aux(**{f"k{i}": jax.random.key_data(k)})

    out = _run(sequence(rec(0), rec(1), rec(2)), mlp_state, splits, key=5)
    root = jax.random.key(5)
    for i in range(3):
        np.testing.assert_array_equal(out.aux[f"k{i}"],
                                      jax.random.key_data(jax.random.fold_in(root, i)))


def test_repeat_runs_n_times_with_distinct_keys(mlp_state, splits):
    def bump(st, sp, k):
        p = jax.tree.map(lambda a: a + 1.0, st.params)
        return st.replace(params=p).with_aux(
            s=st.aux["s"] + jax.random.uniform(k))

    st = mlp_state.with_aux(s=jnp.float32(0))
    out = _run(repeat(bump, 3), st, splits, key=2)
    np.testing.assert_allclose(out.params["head"]["bias"], mlp_state.params["head"]["bias"] + 3,
                               rtol=1e-6)
    expect = sum(float(jax.random.uniform(jax.random.fold_in(jax.random.key(2), i)))
                 for i in range(3))
    assert float(out.aux["s"]) == pytest.approx(expect, rel=1e-6)


def _bump(st, sp, k):
    return st.replace(params=jax.tree.map(lambda a: a + 1.0, st.params))


def _dist_to(target):
    """Score: |head bias[0] - target| (a known function of the number of bumps)."""
    return lambda st, sp: jnp.abs(st.params["head"]["bias"][0] - target)


@pytest.mark.parametrize("target_bumps, include_start, want_index", [
    (2, True, 2), (0, True, 0), (0, False, 1), (9, True, 4)])
def test_best_of_keeps_the_lowest_score(mlp_state, splits, target_bumps, include_start,
                                        want_index):
    b0 = float(mlp_state.params["head"]["bias"][0])
    stage = best_of(_bump, 4, _dist_to(b0 + target_bumps), include_start=include_start)
    out = _run(stage, mlp_state, splits)
    assert int(out.aux["best_of_index"]) == want_index
    np.testing.assert_allclose(out.params["head"]["bias"],
                               mlp_state.params["head"]["bias"] + want_index, rtol=1e-6)
    scores = np.asarray(out.aux["best_of_scores"])
    assert scores.shape == (5,) and np.isnan(scores[0]) == (not include_start)
    np.testing.assert_allclose(scores[1:], [abs(i - target_bumps) for i in range(1, 5)],
                               atol=1e-5)


def test_best_of_ties_go_to_the_earliest_and_nan_never_wins(mlp_state, splits):
    out = _run(best_of(_bump, 3, lambda st, sp: jnp.float32(1.0)), mlp_state, splits)
    assert int(out.aux["best_of_index"]) == 0
    nan_after_start = lambda st, sp: jnp.where(  # noqa: E731
        st.params["head"]["bias"][0] > mlp_state.params["head"]["bias"][0] + 2.5, 0.0, jnp.nan)
    out = _run(best_of(_bump, 3, nan_after_start, include_start=False), mlp_state, splits)
    assert int(out.aux["best_of_index"]) == 3
    all_nan = lambda st, sp: jnp.float32(jnp.nan)  # noqa: E731
    out = _run(best_of(_bump, 3, all_nan, include_start=False), mlp_state, splits)
    assert int(out.aux["best_of_index"]) == 1  # always one of the runs
    np.testing.assert_allclose(out.params["head"]["bias"], mlp_state.params["head"]["bias"] + 1,
                               rtol=1e-6)
    out = _run(best_of(_bump, 2, all_nan), mlp_state, splits)
    assert int(out.aux["best_of_index"]) == 0 and np.isnan(out.aux["best_of_scores"]).all()
    with pytest.raises(ValueError, match="times must be a positive integer"):
        best_of(_bump, 0, _dist_to(0.0))


def test_best_of_vmaps(mlp_state, splits):
    b0 = float(mlp_state.params["head"]["bias"][0])
    targets = jnp.array([1.0, 3.0])

    def one(t):
        st = best_of(_bump, 4, lambda s, sp: jnp.abs(s.params["head"]["bias"][0] - b0 - t))(
            mlp_state, splits, jax.random.key(0))
        return st.aux["best_of_index"]

    np.testing.assert_array_equal(jax.jit(jax.vmap(one))(targets), [1, 3])


def test_snapshot(mlp_state, splits):
    out = _run(snapshot("teacher"), mlp_state, splits)
    assert_tree_bitwise_equal(out.aux["teacher"]["params"], mlp_state.params)
    assert_tree_bitwise_equal(out.aux["teacher"]["model_state"], mlp_state.model_state)
    assert_tree_bitwise_equal(out.params, mlp_state.params)


# ----------------------------------------------------------------------------- probes


@pytest.mark.parametrize("shuffle", [True, False])
def test_accumulate_gradients_divisible_batches(mlp_state, splits, shuffle):
    """b divides n: the sum of per-batch mean gradients is (1/b) x sum of per-example ones."""
    st = mlp_state
    out = _run(accumulate_gradients("g", L.ce(), "retain", batch_size=8, shuffle=shuffle),
               st, splits)
    pe = _per_example_grads(MLP, st.params, st.model_state, splits, splits.indices("retain"))
    expect = jax.tree.map(lambda g: g.sum(0) / 8, pe)
    for a, b in zip(jax.tree.leaves(out.aux["g"]), jax.tree.leaves(expect), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    assert_tree_bitwise_equal(out.params, st.params)  # a probe changes nothing else


def test_accumulate_gradients_last_batch_smaller(mlp_state, splits):
    """n = 40, b = 16: batches of 16, 16 and 8 (PyTorch loader without drop_last)."""
    st = mlp_state
    key = jax.random.key(3)
    out = jax.jit(accumulate_gradients("g", L.ce(), "retain", batch_size=16))(st, splits, key)
    idx = np.asarray(epoch_indices(jax.random.fold_in(key, 2), splits.retain, 40, 16))
    order = idx.reshape(-1)[:40]
    batches = [order[:16], order[16:32], order[32:40]]
    expect = None
    for bidx in batches:
        pe = _per_example_grads(MLP, st.params, st.model_state, splits, jnp.asarray(bidx))
        g = jax.tree.map(lambda a, n=len(bidx): a.sum(0) / n, pe)
        expect = g if expect is None else jax.tree.map(jnp.add, expect, g)
    for a, b in zip(jax.tree.leaves(out.aux["g"]), jax.tree.leaves(expect), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_accumulate_gradients_sign_add_to_and_subset(mlp_state, splits):
    st = mlp_state
    g_r = _run(accumulate_gradients("g", L.ce(), "retain", batch_size=8), st, splits).aux["g"]
    g_f = _run(accumulate_gradients("g", L.ce(), "forget", batch_size=8), st, splits).aux["g"]
    stage = sequence(accumulate_gradients("g", L.ce(), "retain", batch_size=8),
                     accumulate_gradients("g", L.ce(), "forget", batch_size=8, sign=-1.0,
                                          add_to="g"))
    both = _run(stage, st, splits).aux["g"]
    for a, r, f in zip(*(jax.tree.leaves(t) for t in (both, g_r, g_f)), strict=True):
        np.testing.assert_allclose(a, r - f, rtol=1e-5, atol=1e-6)
    neg = _run(accumulate_gradients("g", L.ce(), "forget", batch_size=8, sign=-1.0), st,
               splits).aux["g"]
    for a, f in zip(jax.tree.leaves(neg), jax.tree.leaves(g_f), strict=True):
        np.testing.assert_array_equal(a, -f)
    # subset="forget": a random retain subset of |forget| = 8 members, one batch -> mean grad
    key = jax.random.key(4)
    sub = jax.jit(accumulate_gradients("g", L.ce(), "retain", batch_size=8, subset="forget"))(
        st, splits, key).aux["g"]
    keep = member_order(jax.random.fold_in(key, 1), splits.retain, 40)[:8]
    pe = _per_example_grads(MLP, st.params, st.model_state, splits, keep)
    for a, b in zip(jax.tree.leaves(sub), jax.tree.leaves(pe), strict=True):
        np.testing.assert_allclose(a, b.mean(0), rtol=2e-5, atol=1e-6)


def test_accumulate_gradients_bn_modes(cnn_state, splits):
    ev = _run(accumulate_gradients("g", L.ce(), "forget", batch_size=4), cnn_state, splits)
    assert_tree_bitwise_equal(ev.model_state, cnn_state.model_state)
    tr = _run(accumulate_gradients("g", L.ce(), "forget", batch_size=4, bn="train"),
              cnn_state, splits)
    assert not np.array_equal(tr.model_state["batch_stats"]["bn0"]["mean"],
                              cnn_state.model_state["batch_stats"]["bn0"]["mean"])


def test_class_weights_hand_values(mlp_state, splits):
    y = np.asarray(splits.pool.y)[np.asarray(splits.retain)]
    counts = np.bincount(y, minlength=10).astype(np.float64)
    out = _run(class_weights("w", "retain"), mlp_state, splits).aux["w"]
    expect = np.where(counts > 0, 40 / (10 * np.maximum(counts, 1)), 0)
    np.testing.assert_allclose(out, expect, rtol=1e-6)
    out = _run(class_weights("w", "retain", power=-0.1), mlp_state, splits).aux["w"]
    np.testing.assert_allclose(out, np.where(counts > 0, np.maximum(counts, 1) ** -0.1, 0),
                               rtol=1e-6)


def test_class_weights_absent_class_gets_zero(mlp_state):
    from jaxmu.types import Pool, Splits

    pool = Pool(jnp.zeros((6, 8, 8, 1), jnp.uint8), jnp.asarray([0, 0, 0, 1, 2, 2], jnp.int32),
                num_classes=4)
    s = Splits.build(pool, forget=[3], retain=[0, 1, 2, 4, 5])
    w = _run(class_weights("w"), mlp_state, s).aux["w"]
    np.testing.assert_allclose(w, [5 / (4 * 3), 0, 5 / (4 * 2), 0], rtol=1e-6)


def test_activation_means(mlp_state, splits):
    out = _run(activation_means("a", "retain", batch_size=16), mlp_state, splits).aux["a"]
    x = splits.pool.normalize(splits.pool.x[splits.indices("retain")])
    acts = MLP.activations(mlp_state.params, mlp_state.model_state, x)
    assert set(out) == {"relu0"} and out["relu0"].shape == (16,)
    np.testing.assert_allclose(out["relu0"], acts["relu0"].mean(0), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- finetune


def _counter():
    """d loss / d head.bias[0] = 1, nothing else: with ``optax.sgd(schedule)`` each step
    subtracts the schedule's learning rate at that step from head.bias[0]."""
    return L.Loss(lambda i: i.params["head"]["bias"][0], "count")


def _steps(out, st):
    return float(st.params["head"]["bias"][0] - out.params["head"]["bias"][0])


@pytest.mark.parametrize("epochs,extra,expect", [
    (1, 0, 3), (2, 0, 6), (1.5, 0, 4), (0.5, 0, 1), (0.34, 0, 1), (1, 1, 4),
])
def test_finetune_fractional_epochs_step_count(mlp_state, splits, epochs, extra, expect):
    # retain n = 40, batch 16 -> 3 steps per epoch; floor(3 * epochs) steps by default,
    # steps=fn(spe) for floor(3 * epochs) + extra
    steps = None if extra == 0 else (lambda spe: math.floor(spe * epochs) + extra)
    stage = finetune(_counter(), optax.sgd(1.0), epochs=epochs, batch_size=16, steps=steps,
                     record_loss="last_loss")
    out = _run(stage, mlp_state, splits)
    assert _steps(out, mlp_state) == pytest.approx(expect, abs=1e-5)
    assert float(out.aux["last_loss"]) == pytest.approx(
        float(np.mean([mlp_state.params["head"]["bias"][0] - s for s in range(expect)])),
        abs=1e-4)


def test_finetune_schedules_per_epoch_and_step(mlp_state, splits):
    # Per epoch: cosine over 2 epochs of 3 steps -> lr 1 for 3 steps, then 0.5 for 3.
    ep = _run(finetune(_counter(), lambda spe: optax.sgd(per_epoch(
        optax.cosine_decay_schedule(1.0, 2), spe)), epochs=2, batch_size=16), mlp_state, splits)
    assert _steps(ep, mlp_state) == pytest.approx(3 * 1.0 + 3 * 0.5, abs=1e-5)
    # Per step: an optax schedule of the update count, over the 6 steps.
    st = _run(finetune(_counter(), optax.sgd(optax.cosine_decay_schedule(1.0, 6)), epochs=2,
                       batch_size=16), mlp_state, splits)
    assert _steps(st, mlp_state) == pytest.approx(sum(cosine(s, 6) for s in range(6)), abs=1e-5)
    tri = _run(finetune(_counter(), lambda spe: optax.sgd(per_epoch(
        triangular_schedule(0.5, 3), spe)), epochs=3, batch_size=40), mlp_state, splits)
    assert _steps(tri, mlp_state) == pytest.approx(0.5 * (1 / 2 + 1 + 1 / 2), abs=1e-5)
    # offset: the second epoch of a 2-epoch cosine.
    off = _run(finetune(_counter(), lambda spe: optax.sgd(per_epoch(
        optax.cosine_decay_schedule(1.0, 2), spe, offset=1)), epochs=1, batch_size=40),
        mlp_state, splits)
    assert _steps(off, mlp_state) == pytest.approx(0.5, abs=1e-5)
    # any function of the epoch index
    fn = _run(finetune(_counter(), lambda spe: optax.sgd(per_epoch(lambda i: 0.25 * (i + 1),
                                                                    spe)),
                       epochs=2, batch_size=40), mlp_state, splits)
    assert _steps(fn, mlp_state) == pytest.approx(0.25 + 0.5, abs=1e-5)


def test_finetune_select_keeps_others_bit_identical(cnn_state, splits):
    out = _run(finetune(L.ce(), torch_sgd(0.1, 0.9, 5e-4), epochs=1, batch_size=16,
                        select=classifier), cnn_state, splits)
    for k in cnn_state.params:
        if k == "head":
            assert not np.array_equal(out.params[k]["kernel"], cnn_state.params[k]["kernel"])
        else:
            assert_tree_bitwise_equal(out.params[k], cnn_state.params[k], k)


def test_finetune_bn_modes(cnn_state, splits):
    ev = _run(finetune(L.ce(), torch_sgd(0.1), epochs=1, batch_size=16, bn="eval"), cnn_state,
              splits)
    assert_tree_bitwise_equal(ev.model_state, cnn_state.model_state)
    assert not np.array_equal(ev.params["conv0"]["kernel"], cnn_state.params["conv0"]["kernel"])
    tr = _run(finetune(L.ce(), torch_sgd(0.1), epochs=1, batch_size=16, bn="train"), cnn_state,
              splits)
    assert not np.array_equal(tr.model_state["batch_stats"]["bn1"]["var"],
                              cnn_state.model_state["batch_stats"]["bn1"]["var"])


def _label_counter(field, weight_field=None):
    """d loss / d head.bias = histogram of the batch's labels (``y`` or ``y2``), optionally
    weighted by ``is_forget``."""
    def fn(i):
        y = getattr(i, field)
        w = jnp.ones(y.shape) if weight_field is None else getattr(i, weight_field)
        return jnp.sum(i.params["head"]["bias"] * (jax.nn.one_hot(y, 10) * w[:, None]).sum(0))

    return L.Loss(fn, "labels", needs_second=field == "y2")


def test_finetune_second_stream(mlp_state, splits):
    # primary retain (3 steps of 16); secondary forget (8 members, batch 8): every step sees
    # the whole forget set, so the bias moves by 3 x the forget label histogram
    stage = finetune(_label_counter("y2"), torch_sgd(1.0), epochs=1, batch_size=16,
                     second="forget", second_batch_size=8)
    out = _run(stage, mlp_state, splits)
    hist = np.bincount(np.asarray(splits.pool.y)[np.asarray(splits.forget)], minlength=10)
    np.testing.assert_allclose(mlp_state.params["head"]["bias"] - out.params["head"]["bias"],
                               3 * hist, atol=1e-5)


def test_finetune_mixed_stream_is_forget_flags(mlp_state, splits):
    # split "train" (48 = 40 retain + 8 forget) in one batch: sum of is_forget-weighted labels
    stage = finetune(_label_counter("y", "is_forget"), torch_sgd(1.0), epochs=1, batch_size=48,
                     split="train")
    out = _run(stage, mlp_state, splits)
    hist = np.bincount(np.asarray(splits.pool.y)[np.asarray(splits.forget)], minlength=10)
    np.testing.assert_allclose(mlp_state.params["head"]["bias"] - out.params["head"]["bias"],
                               hist, atol=1e-5)


def test_finetune_relabel_forget(mlp_state, splits):
    """Forget rows get uniform random labels; retain rows keep theirs."""
    stage = finetune(_label_counter("y"), torch_sgd(1.0), epochs=1, batch_size=8,
                     split="forget", transform=relabel_forget)
    d = np.asarray(mlp_state.params["head"]["bias"] - _run(stage, mlp_state, splits
                                                           ).params["head"]["bias"])
    hist = np.bincount(np.asarray(splits.pool.y)[np.asarray(splits.forget)], minlength=10)
    np.testing.assert_allclose(d.sum(), 8, atol=1e-5)
    assert not np.allclose(d, hist, atol=1e-3)
    stage = finetune(_label_counter("y"), torch_sgd(1.0), epochs=1, batch_size=40,
                     split="retain", transform=relabel_forget)
    d = np.asarray(mlp_state.params["head"]["bias"] - _run(stage, mlp_state, splits
                                                           ).params["head"]["bias"])
    hist = np.bincount(np.asarray(splits.pool.y)[np.asarray(splits.retain)], minlength=10)
    np.testing.assert_allclose(d, hist, atol=1e-5)


def test_finetune_same_key_same_result_and_learns(mlp_state, splits):
    stage = finetune(L.ce(), torch_sgd(0.1, 0.9, 5e-4), epochs=2, batch_size=16, augment=True)
    a = _run(stage, mlp_state, splits, key=1)
    b = _run(stage, mlp_state, splits, key=1)
    c = _run(stage, mlp_state, splits, key=2)
    assert_tree_bitwise_equal(a.params, b.params)
    assert not np.array_equal(a.params["head"]["kernel"], c.params["head"]["kernel"])
    adam_out = _run(finetune(L.ce(), torch_adam(1e-2), epochs=1, batch_size=16,
                             record_loss="last_loss"), mlp_state, splits)
    assert np.isfinite(float(adam_out.aux["last_loss"]))


@pytest.mark.parametrize("kw,match", [
    (dict(bn="test"), "bn must be 'train' or 'eval'"),
    (dict(epochs=0), "epochs must be > 0"),
])
def test_finetune_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        finetune(L.ce(), torch_sgd(0.1), **kw)


@pytest.mark.parametrize("kw", [
    dict(lr=0.1), dict(schedule="cosine"), dict(schedule_per="step"),
    dict(schedule_kw={}), dict(offset=1), dict(total=2), dict(relabel_forget=True),
    dict(extra_steps=1),
])
def test_finetune_removed_arguments_are_rejected(kw):
    """The learning rate and schedule belong to the optax optimizer; the removed keyword
    arguments are errors, not silently ignored."""
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        finetune(L.ce(), torch_sgd(0.1), **kw)


def test_finetune_empty_splits(mlp_state, splits):
    from jaxmu.types import Splits

    s = Splits.build(splits.pool, forget=splits.forget, retain=splits.retain)
    with pytest.raises(ValueError, match="finetune: split 'val' is empty"):
        finetune(L.ce(), torch_sgd(0.1), split="val")(mlp_state, s, jax.random.key(0))
    with pytest.raises(ValueError, match="secondary split 'test' is empty"):
        finetune(L.ce(), torch_sgd(0.1), second="test")(mlp_state, s, jax.random.key(0))
    with pytest.raises(ValueError, match="accumulate_gradients: split 'val' is empty"):
        accumulate_gradients("g", L.ce(), "val")(mlp_state, s, jax.random.key(0))


def test_optax_schedule_values():
    """The schedules the removed ``schedule=`` names dispatched to, as optax schedules."""
    assert float(optax.constant_schedule(1.0)(3)) == 1.0
    # CosineAnnealingLR with eta_min = 0.2 x the base lr: optax's alpha
    assert float(optax.cosine_decay_schedule(1.0, 4, alpha=0.2)(1)) == pytest.approx(
        0.2 + 0.8 * cosine(1, 4))
    assert float(step_decay_schedule(1.0, 10, 0.5, one_indexed=True)(9)) == pytest.approx(
        0.125)
    # per_epoch: any function of the epoch index, at count // steps_per_epoch (+ offset)
    sched = per_epoch(lambda i: i / 4, 3)
    assert [float(sched(c)) for c in range(6)] == [0.0] * 3 + [0.25] * 3
    assert float(per_epoch(lambda i: i / 4, 3, offset=2)(3)) == 0.75


def test_torch_sgd_coupled_weight_decay_after_pre():
    """torch_sgd(lr, m, wd, pre): pre-transforms first, then + wd * param, then momentum,
    then -lr."""
    pre = optax.scale(0.1)
    tx = torch_sgd(1.0, 0.5, 0.2, pre=(pre,))
    p = {"w": jnp.asarray([1.0])}
    s = tx.init(p)
    d, s = tx.update({"w": jnp.asarray([2.0])}, s, p)
    np.testing.assert_allclose(d["w"], [-(0.1 * 2 + 0.2)], rtol=1e-6)
    d, s = tx.update({"w": jnp.asarray([2.0])}, s, p)
    np.testing.assert_allclose(d["w"], [-(0.5 * 0.4 + 0.4)], rtol=1e-6)


# ----------------------------------------------------------------------------- losses


def _inputs(b=6, k=5, seed=0, **kw):
    rng = np.random.default_rng(seed)
    base = dict(logits=jnp.asarray(rng.normal(size=(b, k)) * 2, jnp.float32),
                y=jnp.asarray(rng.integers(0, k, b), jnp.int32), x=jnp.zeros((b, 1)),
                is_forget=jnp.asarray([1, 0] * (b // 2), jnp.float32), params={}, aux={},
                model=None, model_state={}, key=jax.random.key(0))
    base.update(kw)
    return L.LossInputs(**base)


def _np_logsoftmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_ce(logits, y):
    return -_np_logsoftmax(logits)[np.arange(len(y)), np.asarray(y)]


def test_ce_rows_and_second():
    i = _inputs()
    per = _np_ce(i.logits, i.y)
    f = np.asarray(i.is_forget)
    assert float(L.ce()(i)) == pytest.approx(per.mean(), rel=1e-5)
    assert float(L.ce("forget")(i)) == pytest.approx(per[f == 1].mean(), rel=1e-5)
    assert float(L.ce("retain")(i)) == pytest.approx(per[f == 0].mean(), rel=1e-5)
    i2 = _inputs(logits2=_inputs(seed=1).logits, y2=_inputs(seed=1).y)
    assert float(L.ce(second=True)(i2)) == pytest.approx(_np_ce(i2.logits2, i2.y2).mean(),
                                                         rel=1e-5)
    assert L.ce(second=True).needs_second and not L.ce().needs_second
    assert float(L.cross_entropy(i.logits, i.y)) == pytest.approx(per.mean(), rel=1e-5)
    w = np.arange(1, 7, dtype=np.float32)
    assert float(L.cross_entropy(i.logits, i.y, jnp.asarray(w))) == pytest.approx(
        (w * per).sum() / w.sum(), rel=1e-5)
    assert float(L.accuracy(i.logits, i.y)) == pytest.approx(
        np.mean(np.argmax(np.asarray(i.logits), -1) == np.asarray(i.y)))
    with pytest.raises(ValueError, match="rows must be"):
        L.ce("some")(i)


def test_loss_algebra():
    i = _inputs()
    a, b = L.ce("forget"), L.ce("retain")
    va, vb = float(a(i)), float(b(i))
    assert float((a + b)(i)) == pytest.approx(va + vb, rel=1e-6)
    assert float((a - b)(i)) == pytest.approx(va - vb, rel=1e-6)
    assert float((2.5 * a)(i)) == pytest.approx(2.5 * va, rel=1e-6)
    assert float((a * 0.5)(i)) == pytest.approx(0.5 * va, rel=1e-6)
    assert float(L.neg(a)(i)) == pytest.approx(-va, rel=1e-6)
    assert (a + L.ce(second=True)).needs_second
    assert (-L.ce(second=True)).needs_second and (3 * L.ce(second=True)).needs_second


def test_class_weighted_ce_hand_values():
    i = _inputs(aux={"w": jnp.asarray([1.0, 2.0, 0.5, 3.0, 1.5])})
    per = _np_ce(i.logits, i.y)
    w = np.asarray(i.aux["w"])[np.asarray(i.y)]
    assert float(L.class_weighted_ce("w", "weighted")(i)) == pytest.approx(
        (w * per).sum() / w.sum(), rel=1e-5)
    assert float(L.class_weighted_ce("w", "batch_mean")(i)) == pytest.approx(
        per.mean() * w.mean(), rel=1e-5)
    with pytest.raises(ValueError, match="unknown mode"):
        L.class_weighted_ce("w", "bogus")(i)


def test_soft_ce():
    i = _inputs()
    t = np.full((6, 5), 0.2)
    loss = L.soft_ce(lambda inp: jnp.asarray(t, jnp.float32))
    expect = -(t * _np_logsoftmax(i.logits)).sum(-1).mean()
    assert float(loss(i)) == pytest.approx(expect, rel=1e-5)


def _np_kl(p, q, t):
    lp, lq = _np_logsoftmax(np.asarray(p) / t), _np_logsoftmax(np.asarray(q) / t)
    return (np.exp(lp) * (lp - lq)).sum(-1)


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_kl_div_reductions(t):
    p, q = _inputs(seed=1).logits, _inputs(seed=2).logits
    per = _np_kl(p, q, t)
    np.testing.assert_allclose(L.kl_div(p, q, t, "none"), per, rtol=1e-5, atol=1e-7)
    assert float(L.kl_div(p, q, t, "batchmean")) == pytest.approx(per.sum() / 6, rel=1e-5)
    assert float(L.kl_div(p, q, t, "mean")) == pytest.approx(per.sum() / (6 * 5), rel=1e-5)
    assert float(L.kl_div(p, q, t, "scrub")) == pytest.approx(per.sum() / 6 * t * t, rel=1e-5)
    assert float(L.kl_div(p, p, t, "batchmean")) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="unknown KL reduction"):
        L.kl_div(p, q, t, "sum")


def test_kl_to_teacher_and_entropy_match(mlp_state):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(6, 8, 8, 1)), jnp.float32)
    student = jax.tree.map(lambda a: a * 1.5, mlp_state.params)
    logits, _ = MLP.apply(student, {}, x, train=False)
    t_logits, _ = MLP.apply(mlp_state.params, {}, x, train=False)
    aux = {"teacher": {"params": mlp_state.params, "model_state": {}}}
    i = _inputs(logits=logits, x=x, aux=aux, model=MLP, k=10, y=jnp.zeros(6, jnp.int32))
    per = _np_kl(t_logits, logits, 2.0)
    f = np.asarray(i.is_forget)
    assert float(L.kl_to("teacher", 2.0)(i)) == pytest.approx(per.mean(), rel=1e-4)
    assert float(L.kl_to("teacher", 2.0, "scrub")(i)) == pytest.approx(4 * per.mean(), rel=1e-4)
    assert float(L.kl_to("teacher", 2.0, "mean")(i)) == pytest.approx(per.mean() / 10, rel=1e-4)
    assert float(L.kl_to("teacher", 2.0, rows="forget")(i)) == pytest.approx(
        per[f == 1].mean(), rel=1e-4)
    np.testing.assert_allclose(L.teacher_logits(i, "teacher"), t_logits, rtol=1e-6)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        L.kl_to("teacher", 0.0)

    def ent(z):
        lp = _np_logsoftmax(z)
        return -(np.exp(lp) * lp).sum(-1)

    np.testing.assert_allclose(L.entropy(logits), ent(logits), rtol=1e-5)
    assert float(L.entropy_match("teacher")(i)) == pytest.approx(
        np.mean((ent(logits) - ent(t_logits)) ** 2), rel=1e-4)
    # teacher terms do not backpropagate into the teacher
    g = jax.grad(lambda tp: L.kl_to("teacher")(
        _inputs(logits=logits, x=x, model=MLP, k=10, y=jnp.zeros(6, jnp.int32),
                aux={"teacher": {"params": tp, "model_state": {}}})))(mlp_state.params)
    assert all(float(jnp.abs(leaf).max()) == 0 for leaf in jax.tree.leaves(g))


def test_uniform_kl():
    i = _inputs()
    lq = _np_logsoftmax(i.logits)
    expect = ((1 / 5) * (np.log(1 / 5) - lq)).sum(-1).mean()
    assert float(L.uniform_kl()(i)) == pytest.approx(expect, rel=1e-5)
    assert float(L.uniform_kl()(_inputs(logits=jnp.zeros((6, 5))))) == pytest.approx(0,
                                                                                     abs=1e-6)


def test_proximal_hand_values():
    p = {"a": jnp.asarray([1.0, 2.0]), "b": jnp.asarray([[0.5]])}
    anchor = {"a": jnp.asarray([0.0, 4.0]), "b": jnp.asarray([[1.5]])}
    i = _inputs(params=p, aux={"anc": {"params": anchor}})
    # sq = 1 + 4 + 1 = 6, abs = 1 + 2 + 1 = 4
    assert float(L.proximal("anc", l2=0.5)(i)) == pytest.approx(0.25 * 6)
    assert float(L.proximal("anc", l1=0.1)(i)) == pytest.approx(0.4)
    assert float(L.proximal("anc", l2=2.0, l1=1.0)(i)) == pytest.approx(6 + 4)
    only_a = {"a": True, "b": False}
    assert float(L.proximal("anc", l2=2.0, select=only_a)(i)) == pytest.approx(5)
    g = jax.grad(lambda q: L.proximal("anc", l2=2.0)(_inputs(params=q, aux=i.aux)))(p)
    np.testing.assert_allclose(g["a"], [2.0, -4.0])  # l2 * (theta - theta0)


def test_contrastive_forget_vs_numpy():
    zf, zr = _inputs(b=4, seed=1).logits, _inputs(b=6, seed=2).logits
    i = _inputs(b=4, logits=zf, logits2=zr, y2=jnp.zeros(6, jnp.int32))
    tau = 0.7
    s = np.asarray(zf, np.float64) @ np.asarray(zr, np.float64).T / tau
    expect = -_np_logsoftmax(s).mean()
    loss = L.contrastive_forget(tau)
    assert loss.needs_second
    assert float(loss(i)) == pytest.approx(expect, rel=1e-5)
    # the retain logits are gradient-stopped
    g = jax.grad(lambda z2: loss(_inputs(b=4, logits=zf, logits2=z2, y2=i.y2)))(zr)
    assert float(jnp.abs(g).max()) == 0.0
    assert math.isfinite(float(loss(i)))


def _direction_then_lr(direction, lr, multiplier):
    """The learning-rate-free formulation, transcribed: ``direction`` (coupled weight decay,
    then momentum or Adam), then ``-lr * multiplier(epoch)`` evaluated at the update count //
    steps_per_epoch (what the removed ``finetune(..., lr=, schedule=)`` built)."""
    return lambda spe: optax.chain(direction, optax.scale_by_learning_rate(
        lambda c: lr * multiplier(c // spe)))


@pytest.mark.parametrize("multiplier,new", [
    (lambda e: jnp.float32(1.0), lambda spe: torch_sgd(0.1, 0.9, 5e-4)),
    (lambda e: cosine(e, 3),
     lambda spe: torch_sgd(per_epoch(optax.cosine_decay_schedule(0.1, 3), spe), 0.9, 5e-4)),
    (lambda e: triangular(e, 3),
     lambda spe: torch_sgd(per_epoch(triangular_schedule(0.1, 3), spe), 0.9, 5e-4)),
    (lambda e: step_decay(e, 3, 0.5, True),
     lambda spe: torch_sgd(per_epoch(step_decay_schedule(0.1, 3, 0.5, True), spe), 0.9, 5e-4)),
], ids=["constant", "cosine", "triangular", "step"])
def test_optax_optimizers_equal_the_lr_times_multiplier_formulation_bitwise(
        mlp_state, splits, multiplier, new):
    """finetune(loss, torch_sgd with an optax schedule) == finetune(loss, PyTorch SGD
    direction then -lr * multiplier(epoch)): the learning rate in optax changes no bit."""
    old = _direction_then_lr(optax.chain(optax.add_decayed_weights(5e-4), optax.trace(0.9)),
                             0.1, multiplier)
    a = _run(finetune(L.ce(), old, epochs=3, batch_size=16), mlp_state, splits)
    b = _run(finetune(L.ce(), new, epochs=3, batch_size=16), mlp_state, splits)
    assert_tree_bitwise_equal(a.params, b.params)


def test_torch_adam_equals_the_adam_direction_then_lr_bitwise(mlp_state, splits):
    old = _direction_then_lr(optax.chain(optax.add_decayed_weights(1e-3), optax.scale_by_adam()),
                             1e-2, lambda e: jnp.float32(1.0))
    a = _run(finetune(L.ce(), old, epochs=1, batch_size=16), mlp_state, splits)
    b = _run(finetune(L.ce(), torch_adam(1e-2, 1e-3), epochs=1, batch_size=16), mlp_state,
             splits)
    assert_tree_bitwise_equal(a.params, b.params)
