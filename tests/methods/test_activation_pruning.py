"""Tests for ``activation_pruning`` (paper 001 §3.3, methods-spec §12.4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.methods import get_method
from jaxmu.methods.activation_pruning import n_pruned, prune_mask, site_order, site_quantiles
from jaxmu.models import mlp, small_cnn
from jaxmu.train import split_accuracies


@pytest.mark.parametrize("task_name", ["class_task", "cnn_task"])
def test_behaviour(task_name, request):
    """Default HPs (q 0.99 early / 0.90 deep, 3 epochs of CE on retain, lr 0.01).

    Measured (jax 0.10.2, CPU), RA / FA / TA:
    * MLP: 1.00 / 1.00 / 0.975 -> 0.997 / 0.00 / 0.878 (retrain 1.00 / 0.00 / 0.869);
    * CNN: 0.996 / 1.00 / 0.975 -> 0.989 / 0.211 / 0.878 (retrain 0.998 / 0.00 / 0.878).
    Asserted: FA drops by >= 0.5, RA >= 0.9, TA >= 0.8; the returned model state carries
    the masks (nested like the activation sites) and evaluation uses them.
    """
    t = request.getfixturevalue(task_name)
    p, s = get_method("activation_pruning").bind(t.model)(t.params, t.model_state, t.splits, 0)
    acc = split_accuracies(t.model, p, s, t.splits)
    assert acc["forget"] <= t.acc_original["forget"] - 0.5
    assert acc["retain"] >= 0.9 and acc["test"] >= 0.8
    assert "act_masks" in s
    x = jnp.zeros((1, *t.model.input_shape))
    sites = t.model.activations(t.params, t.model_state, x)
    assert jax.tree.structure(s["act_masks"]) == jax.tree.structure(sites)
    for m, a in zip(jax.tree.leaves(s["act_masks"]), jax.tree.leaves(sites), strict=True):
        assert m.shape == a.shape[1:]
        assert 0 < float(jnp.sum(m == 0)) < m.size  # some, not all, units pruned
    no_masks = {k: v for k, v in s.items() if k != "act_masks"}
    acc_unmasked = split_accuracies(t.model, p, no_masks, t.splits)
    assert acc_unmasked != acc  # the masks change what evaluation sees


def test_prune_mask_by_hand():
    """Units strictly above the q-th percentile (numpy's linear interpolation) are zeroed:
    means 0..9, q = 0.8 -> percentile 7.2 -> units 8 and 9; q = 0.99 -> unit 9 only."""
    mean = jnp.arange(10.0)[::-1].reshape(2, 5)  # positions of 9 and 8: [0, 0], [0, 1]
    m = prune_mask(mean, 0.8)
    np.testing.assert_array_equal(m, [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(prune_mask(mean, 0.99), [[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(prune_mask(mean, 1.0), np.ones((2, 5)))
    for size, q in [(10, 0.8), (64, 0.99), (128, 0.99), (128, 0.9), (7, 0.5)]:
        v = np.arange(size, dtype=float)
        assert n_pruned(size, q) == int(np.sum(v > np.quantile(v, q)))
    # Ties (dead ReLUs at 0) cannot prune a whole layer: exactly n_pruned units go.
    tied = jnp.zeros(100).at[:3].set(1.0)
    assert int(jnp.sum(prune_mask(tied, 0.9) == 0)) == n_pruned(100, 0.9) == 10


def test_site_order_and_quantiles():
    model = small_cnn((8, 8, 1), 10, channels=(4, 4, 4))
    params, state = model.init(jax.random.key(0))
    order = site_order(model, params, state)
    assert order == ["relu0", "relu1", "relu2"]
    assert site_quantiles(order, 0.99, 0.9, 0.5) == {"relu0": 0.99, "relu1": 0.99,
                                                       "relu2": 0.9}


def test_masks_in_model_state_are_applied():
    """A mask of zeros on the only hidden site leaves just the head bias."""
    model = mlp((8, 8, 1), 10, hidden=(4,))
    params, state = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
    logits, out_state = model.apply(params, {"act_masks": {"relu0": jnp.zeros(4)}}, x,
                                    train=True)
    np.testing.assert_allclose(logits, jnp.broadcast_to(params["head"]["bias"], (3, 10)))
    assert "act_masks" in out_state


@pytest.mark.parametrize("hp", [dict(q_early=1.5), dict(q_deep=-0.1), dict(deep_from=2.0),
                                dict(probe_batch_size=0), dict(bn="x"), dict(lr=0.0)])
def test_bad_hyperparameters(hp):
    with pytest.raises(ValueError):
        get_method("activation_pruning", **hp)
