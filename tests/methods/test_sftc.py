"""SFTC: behaviour on class-3 forgetting, the biased generator, the confusion targets, the
loss reduction, bad hyperparameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.losses import LossInputs
from jaxmu.methods import get_method
from jaxmu.methods.sftc import biased_generator, confusion_targets, sftc_loss
from jaxmu.train import split_accuracies


class _Fixed:
    """A stub model whose 'params' are its logits (for loss-level checks)."""

    def apply(self, params, model_state, x, *, train, key=None):
        return params, model_state


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_sftc_forgets_class_and_keeps_others(class_task):
    # Hyperparameters: 1 epoch (defaults otherwise: Adam 7e-4, batch 64, T = 1, c = 0).
    # Measured: FA 1.0 -> 0.17, RA 0.995, TA 0.886 (retrain 0.869). With c = 0 the generator
    # keeps the true class on top, so a second epoch lets FA climb back (0.45 after 2).
    t = class_task
    m = get_method("sftc", epochs=1).bind(t.model)
    p, s = m(t.params, t.model_state, t.splits, jax.random.key(0))
    acc = split_accuracies(t.model, p, s, t.splits)
    assert t.acc_original["forget"] - acc["forget"] >= 0.6
    assert acc["retain"] >= 0.95
    assert acc["test"] >= t.acc_retrain["test"] - 0.03
    # Full confusion (c = 1, Bad-Teacher-like) forgets more: measured FA 0.04.
    m1 = get_method("sftc", epochs=1, confuse_fraction=1.0).bind(t.model)
    p1, s1 = m1(t.params, t.model_state, t.splits, jax.random.key(0))
    acc1 = split_accuracies(t.model, p1, s1, t.splits)
    assert acc1["forget"] <= acc["forget"]
    assert acc1["retain"] >= 0.95


@pytest.mark.parametrize("num_classes", [3, 10, 100])
def test_biased_generator_puts_target_on_top(num_classes):
    key = jax.random.key(0)
    b = 512
    targets = jax.random.randint(jax.random.key(1), (b,), 0, num_classes)
    out = np.asarray(biased_generator(key, targets, num_classes))
    tgt = np.asarray(targets)
    base = np.abs(np.asarray(jax.random.normal(jax.random.split(key)[0], (b, num_classes))))
    assert np.all(out.argmax(-1) == tgt)
    # Only the target entry changes, and only upwards.
    off = np.ones_like(out, bool)
    off[np.arange(b), tgt] = False
    np.testing.assert_array_equal(out[off], base[off])
    bump = out[np.arange(b), tgt] - base[np.arange(b), tgt]
    assert np.all(bump >= 0)
    # A target already on top is left alone; otherwise the last U(0.5, 1) increment lifts it
    # strictly above the runner-up by at most 1, and the bump is at least 0.5.
    already = base.argmax(-1) == tgt
    np.testing.assert_array_equal(bump[already], 0.0)
    runner_up = np.where(off, out, -np.inf).max(-1)
    gap = out[np.arange(b), tgt] - runner_up
    assert np.all(gap[~already] > 0) and np.all(gap[~already] <= 1.0 + 1e-6)
    assert np.all(bump[~already] >= 0.5 - 1e-6)


def test_confusion_targets_fraction_of_forget_rows():
    y = jnp.arange(8, dtype=jnp.int32)
    is_f = jnp.array([1, 1, 1, 1, 0, 0, 0, 0], jnp.float32)
    k = 100_000  # a random label equal to the true one is then (almost) impossible
    np.testing.assert_array_equal(confusion_targets(jax.random.key(0), y, is_f, k, 0.0), y)
    for frac, expect in ((0.5, 2), (0.1, 1), (1.0, 4)):  # at least one row when c > 0
        for seed in range(3):
            out = np.asarray(confusion_targets(jax.random.key(seed), y, is_f, k, frac))
            changed = out != np.asarray(y)
            assert changed[4:].sum() == 0  # retain rows keep their labels
            assert changed[:4].sum() == expect


def test_sftc_loss_reduction():
    rng = np.random.default_rng(0)
    b, c, t = 6, 5, 2.0
    s = rng.normal(size=(b, c)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 4, 0], np.int32)
    key = jax.random.key(7)

    def inputs(is_f, teacher):
        return LossInputs(logits=jnp.asarray(s), y=jnp.asarray(y), x=None,
                          is_forget=jnp.asarray(is_f, jnp.float32), params=None,
                          aux={"teacher": {"params": jnp.asarray(teacher), "model_state": {}}},
                          model=_Fixed(), model_state=None, key=key)

    loss = sftc_loss(t, 0.0)
    # All retain rows, teacher == student: KL = 0, the loss is the mean CE.
    ce = -np.log(_softmax(s)[np.arange(b), y])
    np.testing.assert_allclose(loss(inputs(np.zeros(b), s)), ce.mean(), rtol=1e-5)
    # All forget rows: no CE; batchmean KL(M_b/T || student/T), no T^2.
    gen = np.asarray(biased_generator(jax.random.split(key)[1], jnp.asarray(y), c))
    p, q = _softmax(gen / t), _softmax(s / t)
    expect = np.sum(p * (np.log(p) - np.log(q))) / b
    np.testing.assert_allclose(loss(inputs(np.ones(b), s)), expect, rtol=1e-5)


@pytest.mark.parametrize("hp", [dict(confuse_fraction=1.5), dict(temperature=-1.0),
                                dict(lr=0.0), dict(epochs=0), dict(batch_size=0),
                                dict(momentum=0.9)])
def test_sftc_bad_hparams(hp):
    with pytest.raises(ValueError):
        get_method("sftc", **hp)
