"""Tests for ``gradient_surgery`` (paper 001 §3.2, methods-spec §12.2)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from jaxmu.data import load_digits
from jaxmu.losses import LossInputs
from jaxmu.methods import get_method
from jaxmu.methods.gradient_surgery import elastic_net, projected_ascent
from jaxmu.models import mlp
from jaxmu.train import split_accuracies
from jaxmu.types import Splits, UnlearnState


def test_behaviour_class_task(class_task):
    """Ascent lr 0.02 (20 projected ascent steps), then 3 epochs of elastic-net retain
    descent at lr 0.05 (defaults otherwise) on the class-3 MLP task.

    Measured (jax 0.10.2, CPU): RA 1.00 -> 0.983, FA 1.00 -> 0.00, TA 0.975 -> 0.861
    (retrain 1.00 / 0.00 / 0.869). The ascent is sharply lr-sensitive here: ascent lr 0.01
    leaves FA at 0.984, 0.05 collapses the model (RA 0.10). Asserted: FA <= 0.2,
    RA >= 0.9, TA >= 0.75.
    """
    t = class_task
    p, s = get_method("gradient_surgery", ascent_lr=0.02).bind(t.model)(
        t.params, t.model_state, t.splits, 0)
    acc = split_accuracies(t.model, p, s, t.splits)
    assert acc["forget"] <= 0.2
    assert acc["retain"] >= 0.9 and acc["test"] >= 0.75


def test_one_full_batch_ascent_step_by_hand():
    """One step with full batches: theta1 = theta0 + lr * (g_F - (g_F.g_R / g_R.g_R) g_R)
    over the whole flattened parameter vector; the step is orthogonal to g_R."""
    pool = load_digits().pool
    splits = Splits.build(pool, forget=np.arange(8), retain=np.arange(8, 32))
    model = mlp((8, 8, 1), 10, hidden=(6,))
    params, ms = model.init(jax.random.key(2))
    lr = 0.5
    stage = projected_ascent(1, lr, batch_size=64)
    out = jax.jit(stage)(UnlearnState(params, ms, {}, model), splits, jax.random.key(0))

    def grad_on(rows):
        x, y = pool.normalize(pool.x[rows]), pool.y[rows]
        g = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
            model.apply(p, ms, x, train=True)[0], y).mean())(params)
        return np.asarray(ravel_pytree(g)[0], np.float64)

    g_f, g_r = grad_on(np.arange(8)), grad_on(np.arange(8, 32))
    g_perp = g_f - (g_f @ g_r) / (g_r @ g_r) * g_r
    theta0 = np.asarray(ravel_pytree(params)[0], np.float64)
    theta1 = np.asarray(ravel_pytree(out.params)[0], np.float64)
    np.testing.assert_allclose(theta1, theta0 + lr * g_perp, rtol=1e-4, atol=1e-6)
    assert abs((theta1 - theta0) @ g_r) <= 1e-4 * np.linalg.norm(theta1 - theta0) * np.linalg.norm(
        g_r)
    assert not jnp.allclose(theta1, theta0)


def test_elastic_net_by_hand():
    """d = theta - theta0 = [0, .5, -1]: 0.1 * 1.5 + 0.2 * 1.25 = 0.4; gradient
    0.1 sign(d) + 2 * 0.2 d = [0, .3, -.5] (subgradient 0 at d = 0)."""
    theta = {"a": jnp.array([0.0, 1.0, -2.0])}
    anchor = {"params": {"a": jnp.array([0.0, 0.5, -1.0])}}

    def f(p):
        return elastic_net("z", 0.1, 0.2)(LossInputs(None, None, None, None, p, {"z": anchor},
                                                     None, None, None))

    np.testing.assert_allclose(f(theta), 0.4, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(f)(theta)["a"], [0.0, 0.3, -0.5], rtol=1e-6)


@pytest.mark.parametrize("hp", [dict(ascent_lr=0.0), dict(ascent_steps=-1),
                                dict(ascent_steps=1.5), dict(l1=-1e-3), dict(l2=-1.0),
                                dict(anchor="nowhere"), dict(bn="x"), dict(epochs=0)])
def test_bad_hyperparameters(hp):
    with pytest.raises(ValueError):
        get_method("gradient_surgery", **hp)
