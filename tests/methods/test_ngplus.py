"""NG+: behaviour (MLP and BatchNorm CNN), the two-step update against a hand-written SGD
loop (alpha weighting, proximal term, momentum), bad hyperparameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmu.methods import get_method
from jaxmu.models import mlp
from jaxmu.train import split_accuracies
from jaxmu.types import Pool, Splits


def _tiny(n_forget=3, n_retain=5, k=3, seed=1):
    rng = np.random.default_rng(seed)
    n = n_forget + n_retain
    x = rng.integers(0, 256, (n, 2, 2, 1), dtype=np.uint8)
    y = rng.integers(0, k, n).astype(np.int32)
    pool = Pool(jnp.asarray(x), jnp.asarray(y), num_classes=k)
    splits = Splits.build(pool, forget=np.arange(n_forget), retain=np.arange(n_forget, n))
    model = mlp((2, 2, 1), k, hidden=())
    params, state = model.init(jax.random.key(seed))
    return model, splits, params, state


def test_ngplus_forgets_class_mlp(class_task):
    # Hyperparameters: lr 0.05, alpha 0.9, 3 epochs (defaults otherwise: batch 256,
    # momentum 0.9, wd 0, eval-mode BN). Measured: FA 1.0 -> 0.29, RA 1.0, TA 0.88.
    t = class_task
    m = get_method("ngplus", lr=0.05, alpha=0.9, epochs=3).bind(t.model)
    p, s = m(t.params, t.model_state, t.splits, jax.random.key(0))
    acc = split_accuracies(t.model, p, s, t.splits)
    assert t.acc_original["forget"] - acc["forget"] >= 0.5
    assert acc["retain"] >= 0.95
    assert acc["test"] >= t.acc_retrain["test"] - 0.03


def test_ngplus_forgets_class_cnn_with_frozen_batchnorm(cnn_task):
    # Hyperparameters: lr 0.01, 3 epochs, alpha 0.95 (default). Measured: FA 1.0 -> 0.0,
    # RA 0.996 -> 0.94, TA 0.975 -> 0.82 (retrain 0.88).
    t = cnn_task
    m = get_method("ngplus", lr=0.01, epochs=3).bind(t.model)
    p, s = m(t.params, t.model_state, t.splits, jax.random.key(0))
    acc = split_accuracies(t.model, p, s, t.splits)
    assert t.acc_original["forget"] - acc["forget"] >= 0.8
    assert acc["retain"] >= 0.85
    assert acc["test"] >= 0.75
    # Eval-mode BN (the reference's): running statistics are never updated.
    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(t.model_state), strict=True):
        np.testing.assert_array_equal(a, b)


def test_ngplus_two_steps_match_hand_written_sgd():
    # Full batches: one step per epoch, each pairing all of D_r with all of D_f, so the run
    # is deterministic and equals this loop (PyTorch SGD: g + wd*theta, then momentum).
    model, splits, params, state = _tiny()
    lr, mom, wd, alpha, prox = 0.3, 0.9, 0.01, 0.7, 0.5
    x = splits.pool.normalize(splits.pool.x)
    y = splits.pool.y
    f, r = np.asarray(splits.forget), np.asarray(splits.retain)
    theta0 = params

    def ce(p, rows):
        logits, _ = model.apply(p, state, x[rows], train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y[rows]).mean()

    def loss(p):
        sq = sum(jnp.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(p),
                                                        jax.tree.leaves(theta0), strict=True))
        return alpha * (ce(p, r) + prox / 2 * sq) - (1 - alpha) * ce(p, f)

    p, buf = params, None
    for _ in range(2):
        d = jax.tree.map(lambda g, w: g + wd * w, jax.grad(loss)(p), p)
        buf = d if buf is None else jax.tree.map(lambda b, di: mom * b + di, buf, d)
        p = jax.tree.map(lambda w, b: w - lr * b, p, buf)

    m = get_method("ngplus", epochs=2, batch_size=64, lr=lr, momentum=mom, weight_decay=wd,
                   alpha=alpha, prox=prox).bind(model)
    out, _ = m(params, state, splits, jax.random.key(3))
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Without the proximal term the second step differs (the term is live when prox > 0).
    out0, _ = get_method("ngplus", epochs=2, batch_size=64, lr=lr, momentum=mom,
                         weight_decay=wd, alpha=alpha).bind(model)(params, state, splits,
                                                                   jax.random.key(3))
    assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(out0),
                                                    jax.tree.leaves(out), strict=True))


@pytest.mark.parametrize("hp", [dict(alpha=1.5), dict(alpha=-0.1), dict(prox=-1.0),
                                dict(bn="test"), dict(lr=0.0), dict(batch_size=0)])
def test_ngplus_bad_hparams(hp):
    with pytest.raises(ValueError):
        get_method("ngplus", **hp)
