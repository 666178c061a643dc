"""PRMQ (kgltop4): behaviour on class-3 forgetting, which tensors are pruned and how, the
fp16 round trip, the faithful extra step, and hyperparameter validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.methods import get_method
from jaxmu.methods.prmq import conv_dense_weights_and_biases
from jaxmu.models._select import path_str
from jaxmu.train import split_accuracies
from jaxmu.transforms import prune_l1_and_reinit
from jaxmu.types import UnlearnState


def test_prmq_forgets_class(class_task):
    # Defaults (p = 0.99, E = 3.2, B = 64) with lr 0.01 instead of 5e-4: after 99% pruning the
    # digits MLP is nearly re-initialised and needs the larger lr to relearn in 3.2 epochs.
    # Measured: FA 1.00 -> 0.00, RA 1.00 -> 0.94, TA 0.97 -> 0.83
    # (retrain: FA 0.00, RA 1.00, TA 0.87). The result is fp16-representable.
    t = class_task
    m = get_method("prmq", lr=0.01).bind(t.model)
    p, s = m(t.params, t.model_state, t.splits, jax.random.key(0))
    acc = split_accuracies(t.model, p, s, t.splits)
    assert t.acc_original["forget"] - acc["forget"] >= 0.5
    assert acc["retain"] >= 0.85
    assert acc["test"] >= 0.75
    for leaf in jax.tree.leaves(p):
        np.testing.assert_array_equal(leaf, leaf.astype(jnp.float16).astype(leaf.dtype))


def test_selects_conv_dense_weights_and_biases(cnn_task, class_task):
    def chosen(task):
        flags = conv_dense_weights_and_biases(task.model, task.params)
        return sorted(path_str(p) for p, f in jax.tree_util.tree_flatten_with_path(flags)[0]
                      if f)

    # BatchNorm scale/bias are not pruned; convs have no bias here.
    assert chosen(cnn_task) == ["conv0/kernel", "conv1/kernel", "head/bias", "head/kernel"]
    assert chosen(class_task) == sorted(f"{m}/{n}" for m in ("dense0", "dense1", "head")
                                        for n in ("kernel", "bias"))


def test_global_prune_and_reinit(class_task):
    # Global L1: exactly floor(p * total) entries with the smallest |w| across all kernels and
    # biases; pruned kernel entries are redrawn in U(+-1/sqrt(fan_in)), pruned biases are 0.
    t, p_amt = class_task, 0.9
    st = UnlearnState(t.params, t.model_state, {}, t.model)
    stage = prune_l1_and_reinit(p_amt, conv_dense_weights_and_biases)
    out = jax.jit(lambda s: stage(s, t.splits, jax.random.key(3)))(st)
    before = np.concatenate([np.abs(np.asarray(x)).ravel() for x in jax.tree.leaves(t.params)])
    k = math.floor(p_amt * before.size)
    thresh = np.sort(before)[k - 1]
    n_changed = 0
    for mod in ("dense0", "dense1", "head"):
        for name in ("kernel", "bias"):
            a = np.asarray(t.params[mod][name])
            b = np.asarray(out.params[mod][name])
            pruned = np.abs(a) <= thresh
            np.testing.assert_array_equal(b[~pruned], a[~pruned])
            if name == "bias":
                assert np.all(b[pruned] == 0)
            else:
                bound = 1 / math.sqrt(a.shape[0])
                assert np.all(np.abs(b[pruned]) <= bound)
            n_changed += int(pruned.sum())
    assert n_changed == k


def test_faithful_runs_one_extra_step(class_task):
    # 1093 retain examples at B = 64 -> 18 steps per epoch. epochs = 1.5/18 gives
    # floor(1.5) = 1 step; faithful adds the reference's extra step, which must equal
    # 2 steps (epochs = 2.5/18) of the same data stream.
    t = class_task
    spe = 18

    def run(**hp):
        m = get_method("prmq", lr=0.01, **hp).bind(t.model)
        return m(t.params, t.model_state, t.splits, jax.random.key(0))[0]

    faithful, two = run(epochs=1.5 / spe, faithful=True), run(epochs=2.5 / spe)
    for a, b in zip(jax.tree.leaves(faithful), jax.tree.leaves(two), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("hp", [
    dict(prune_amount=1.5), dict(prune_amount=-0.1), dict(epochs=0.0), dict(lr=0.0),
    dict(batch_size=0), dict(momentum=-1.0),
])
def test_bad_hyperparameters(hp):
    with pytest.raises(ValueError):
        get_method("prmq", **hp)
