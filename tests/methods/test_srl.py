"""SRL: behaviour on class-3 forgetting, the random-label step, bad hyperparameters."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmu.methods import get_method
from jaxmu.models import mlp
from jaxmu.train import split_accuracies
from jaxmu.types import Pool, Splits


def _tiny(n_forget=2, n_retain=6, k=2, seed=0):
    """A linear model (MLP without hidden layers) on 2x2 images: one full batch per epoch."""
    rng = np.random.default_rng(seed)
    n = n_forget + n_retain
    x = rng.integers(0, 256, (n, 2, 2, 1), dtype=np.uint8)
    y = rng.integers(0, k, n).astype(np.int32)
    pool = Pool(jnp.asarray(x), jnp.asarray(y), num_classes=k)
    splits = Splits.build(pool, forget=np.arange(n_forget), retain=np.arange(n_forget, n))
    model = mlp((2, 2, 1), k, hidden=())
    params, state = model.init(jax.random.key(seed))
    return model, splits, params, state


def test_srl_forgets_class_and_keeps_others(class_task):
    # Hyperparameters: the defaults but 2 epochs (SGD 0.1 / 0.9 / 5e-4, batch 256).
    t = class_task
    m = get_method("srl", epochs=2).bind(t.model)
    p, s = m(t.params, t.model_state, t.splits, jax.random.key(0))
    acc = split_accuracies(t.model, p, s, t.splits)
    assert t.acc_original["forget"] - acc["forget"] >= 0.8  # 1.0 -> ~0.0 (retrain: 0.0)
    assert acc["retain"] >= 0.9
    assert acc["test"] >= t.acc_retrain["test"] - 0.05


def test_srl_step_uses_random_labels_on_forget_rows_only():
    # One epoch with a batch covering the whole train set is one SGD step on the mean CE over
    # retain rows (true labels) and forget rows (a random label each, true label possible).
    # With C = 2 and 2 forget rows there are 4 possible label draws; the update must equal
    # exactly one of the hand-computed candidates, and different keys must hit several.
    model, splits, params, state = _tiny()
    lr, wd = 0.5, 0.01
    x = splits.pool.normalize(splits.pool.x)
    y = np.asarray(splits.pool.y)

    def candidate(labels):
        yy = y.copy()
        yy[:2] = labels

        def loss(p):
            logits, _ = model.apply(p, state, x, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yy).mean()

        g = jax.grad(loss)(params)
        return jax.tree.map(lambda w, gw: w - lr * (gw + wd * w), params, g)

    cands = [candidate(lab) for lab in itertools.product(range(2), repeat=2)]
    m = get_method("srl", epochs=1, batch_size=64, lr=lr, weight_decay=wd).bind(model)
    hits = set()
    for seed in range(8):
        p, _ = m(params, state, splits, jax.random.key(seed))
        match = [i for i, c in enumerate(cands) if all(
            np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(
                jax.tree.leaves(p), jax.tree.leaves(c), strict=True))]
        assert len(match) == 1
        hits.add(match[0])
    assert len(hits) >= 2


@pytest.mark.parametrize("hp", [dict(lr=0.0), dict(batch_size=0), dict(epochs=0),
                                dict(weight_decay=-1.0), dict(momentum=-0.1),
                                dict(nope=1)])
def test_srl_bad_hparams(hp):
    with pytest.raises(ValueError):
        get_method("srl", **hp)
