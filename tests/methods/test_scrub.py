"""SCRUB: behaviour on class-3 forgetting, checkpoint selection (index by hand, the fixed
i* = 0 case and its faithful bug, replay == stack), the forget-val set, bad
hyperparameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.methods import get_method
from jaxmu.methods.scrub import _eval_sets, select_index
from jaxmu.models import mlp
from jaxmu.train import split_accuracies
from jaxmu.types import Pool, Splits, UnlearnState


def _tiny(seed=3, k=3):
    """Linear model; forget = 4 rows of class 0, retain = 12 rows, val = 6 rows."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * 4 + list(rng.integers(0, k, 12)) + [0, 1, 2, 0, 1, 2], np.int32)
    x = rng.integers(0, 256, (len(y), 2, 2, 1), dtype=np.uint8)
    pool = Pool(jnp.asarray(x), jnp.asarray(y), num_classes=k)
    splits = Splits.build(pool, forget=np.arange(4), retain=np.arange(4, 16),
                          val=np.arange(16, 22))
    model = mlp((2, 2, 1), k, hidden=())
    params, state = model.init(jax.random.key(seed))
    return model, splits, params, state


def _aux(method, model, params, state, splits, key):
    run = jax.jit(lambda p, s, sp, k: method.stage(UnlearnState(p, s, {}, model), sp, k))
    return run(params, state, splits, key)


def _leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                    strict=True))


# Hyperparameters of the behaviour test: lr 0.02, retain batch 64, forget batch 32,
# 4 epochs with max steps in the first 2 (T = 2, gamma 1, alpha 0.5, momentum 0.9,
# wd 5e-4, step decay). The defaults (lr 5e-4) barely move the MLP.
BEHAVIOUR = dict(lr=0.02, retain_batch_size=64, forget_batch_size=32, epochs=4, msteps=2)


def test_scrub_forgets_class_and_keeps_others(class_task):
    # Measured: FA 1.0 -> 0.0, RA 0.999, TA 0.869 (retrain 0.869).
    t = class_task
    m = get_method("scrub", **BEHAVIOUR).bind(t.model)
    p, s = m(t.params, t.model_state, t.splits, jax.random.key(0))
    acc = split_accuracies(t.model, p, s, t.splits)
    assert t.acc_original["forget"] - acc["forget"] >= 0.8
    assert acc["retain"] >= 0.95
    assert acc["test"] >= t.acc_retrain["test"] - 0.03


def test_select_index_by_hand():
    errs = jnp.array([0.10, 0.30, 0.52, 0.48, 0.90])
    assert int(select_index(errs, jnp.float32(0.5))) == 2  # tie 0.02 vs 0.02: first wins
    assert int(select_index(errs, jnp.float32(0.0))) == 0
    assert int(select_index(errs, jnp.float32(0.0), faithful=True)) == 4  # reference bug
    assert int(select_index(errs, jnp.float32(1.0), faithful=True)) == 4
    assert int(select_index(errs, jnp.float32(0.3), faithful=True)) == 1


def test_forget_val_set_is_val_restricted_to_forget_classes():
    _, splits, _, _ = _tiny()
    (idx_f, w_f), (idx_v, w_fv) = _eval_sets(splits)
    assert float(w_f.sum()) == 4
    picked = np.asarray(idx_v)[np.asarray(w_fv) > 0]
    np.testing.assert_array_equal(np.sort(picked), [16, 19])  # the class-0 val rows


def test_original_wins_returns_the_original():
    # lr 1e-6: every forget error stays equal, so i* = 0 (the first minimum). jaxmu returns
    # O bit-identically; the faithful flag returns the (slightly moved) final student.
    model, splits, params, state = _tiny()
    key = jax.random.key(0)
    hp = dict(lr=1e-6, epochs=3, msteps=2)
    st = _aux(get_method("scrub", **hp), model, params, state, splits, key)
    assert int(st.aux["scrub_selected"]) == 0
    np.testing.assert_array_equal(st.aux["scrub_forget_errors"],
                                  st.aux["scrub_forget_errors"][0])
    assert _leaves_equal(st.params, params) and _leaves_equal(st.model_state, state)
    stack, _ = get_method("scrub", selection="stack", **hp).bind(model)(params, state, splits,
                                                                        key)
    assert _leaves_equal(stack, params)
    bug, _ = get_method("scrub", faithful=True, **hp).bind(model)(params, state, splits, key)
    final, _ = get_method("scrub", selection="final", **hp).bind(model)(params, state, splits,
                                                                        key)
    assert not _leaves_equal(bug, params)
    assert _leaves_equal(bug, final)


def test_replay_equals_stack_and_picks_the_selected_epoch():
    model, splits, params, state = _tiny()
    key = jax.random.key(1)
    hp = dict(lr=0.5, epochs=5, msteps=3, retain_batch_size=4, forget_batch_size=2,
              temperature=1.0)
    st_replay = _aux(get_method("scrub", **hp), model, params, state, splits, key)
    st_stack = _aux(get_method("scrub", selection="stack", **hp), model, params, state,
                    splits, key)
    assert int(st_replay.aux["scrub_selected"]) == int(st_stack.aux["scrub_selected"])
    for a, b in zip(jax.tree.leaves(st_replay.params), jax.tree.leaves(st_stack.params),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    errs = np.asarray(st_stack.aux["scrub_forget_errors"])
    i = int(st_stack.aux["scrub_selected"])
    assert errs.shape == (6,)
    assert 0 < i < 5  # this key selects an intermediate epoch (measured: i* = 1)
    target = float(st_stack.aux["scrub_target_error"])
    assert i == int(np.argmin(np.abs(errs - target)))


@pytest.mark.parametrize("hp", [dict(selection="best"), dict(msteps=-1), dict(msteps=1.5),
                                dict(epochs=0), dict(lr=0.0), dict(temperature=-1.0),
                                dict(retain_batch_size=0), dict(forget_batch_size=0),
                                dict(gamma=-1.0), dict(lr_decay_rate=0.0)])
def test_scrub_bad_hparams(hp):
    with pytest.raises(ValueError):
        get_method("scrub", **hp)


def test_scrub_needs_val_for_selection():
    model, splits, params, state = _tiny()
    no_val = Splits.build(splits.pool, forget=np.arange(4), retain=np.arange(4, 16))
    with pytest.raises(ValueError, match="val"):
        get_method("scrub", epochs=1).bind(model)(params, state, no_val, jax.random.key(0))
    get_method("scrub", epochs=1, selection="final").bind(model)(params, state, no_val,
                                                                 jax.random.key(0))
