"""Soft relabeling: behaviour on class-3 forgetting, the attention soft labels by hand, the
penultimate features (= the head's input), bad hyperparameters."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.methods import get_method
from jaxmu.methods.soft_relabel import penultimate_features, soft_labels
from jaxmu.models import FlaxModel, activation, mlp, small_cnn
from jaxmu.train import split_accuracies


def test_soft_relabel_forgets_class_and_keeps_others(class_task):
    # Hyperparameters: 2 epochs (defaults otherwise: SGD 0.01 / 0.9 / 5e-4, batch 256,
    # T = 0.1). Measured: FA 1.0 -> 0.0, RA 0.997, TA 0.869 (retrain 0.869).
    t = class_task
    m = get_method("soft_relabel", epochs=2).bind(t.model)
    p, s = m(t.params, t.model_state, t.splits, jax.random.key(0))
    acc = split_accuracies(t.model, p, s, t.splits)
    assert t.acc_original["forget"] - acc["forget"] >= 0.8
    assert acc["retain"] >= 0.95
    assert acc["test"] >= t.acc_retrain["test"] - 0.03


def test_soft_labels_by_hand():
    # Rows 0-2 retain (labels 0, 1, 2), rows 3-4 forget (labels 1, 1: ignored).
    feats = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [5.0, 0.0], [0.0, 1.0]])
    y = jnp.array([0, 1, 2, 1, 1])
    is_f = jnp.array([0.0, 0.0, 0.0, 1.0, 1.0])
    t = 0.5
    out = np.asarray(soft_labels(feats, y, is_f, 4, t))
    np.testing.assert_allclose(out[:3], np.eye(4)[[0, 1, 2]])
    c = 1 / np.sqrt(2)
    for row, cos in ((3, [1.0, 0.0, c]), (4, [0.0, 1.0, c])):
        w = np.exp(np.array(cos) / t)
        w /= w.sum()
        np.testing.assert_allclose(out[row], [w[0], w[1], w[2], 0.0], rtol=1e-5)
    # No retain row in the batch: uniform soft labels.
    out = np.asarray(soft_labels(feats, y, jnp.ones(5), 4, t))
    np.testing.assert_allclose(out, 0.25)


class _Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        return activation(self, nn.relu(nn.Dense(6, name="dense")(x)), "relu1")


class _Ordered(nn.Module):
    """ResNet-like site names: the stem's "relu" sorts after "layer1_0/relu1" although it
    runs first, so only execution order finds the site that feeds the head."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        x = activation(self, nn.relu(nn.Dense(5, name="stem")(x)), "relu")
        x = _Block(name="layer1_0")(x)
        return nn.Dense(3, name="fc")(x)


@pytest.mark.parametrize("model", [
    mlp((8, 8, 1), 10),
    small_cnn((8, 8, 1), 10, channels=(4, 8)),
    FlaxModel(_Ordered(), (2, 2, 1), 3, "ordered", classifier=r"^fc/"),
], ids=["mlp", "small_cnn", "resnet_like_names"])
def test_penultimate_features_feed_the_head(model):
    params, state = jax.jit(model.init)(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, *model.input_shape))

    @jax.jit
    def run(params, state, x):
        logits, _ = model.apply(params, state, x, train=False)
        return logits, penultimate_features(model, params, state, x, logits)

    logits, feats = run(params, state, x)
    head = params["head"] if "head" in params else params["fc"]
    np.testing.assert_allclose(feats @ head["kernel"] + head["bias"], logits, rtol=1e-4,
                               atol=1e-5)


def test_penultimate_features_fall_back_to_logits():
    model = mlp((2, 2, 1), 3, hidden=())  # no marked activation site
    params, state = model.init(jax.random.key(0))
    x = jnp.ones((2, 2, 2, 1))
    logits, _ = model.apply(params, state, x, train=False)
    np.testing.assert_array_equal(penultimate_features(model, params, state, x, logits),
                                  logits)


@pytest.mark.parametrize("hp", [dict(temperature=0.0), dict(temperature=-1.0), dict(lr=0.0),
                                dict(epochs=0), dict(batch_size=0)])
def test_soft_relabel_bad_hparams(hp):
    with pytest.raises(ValueError):
        get_method("soft_relabel", **hp)
