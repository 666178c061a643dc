"""Accuracy family, SAPE errors and distances: hand-computed golden cases and bad inputs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.metrics import (
    accuracy,
    accuracy_errors,
    golatkar_distance,
    js_divergence,
    l2_distance,
    normalized_l2_distance,
    retdev,
    retention,
    sape,
)


def test_accuracy_golden_and_model_axis():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(logits, [0, 1, 1]) == pytest.approx(2 / 3)
    stacked = np.stack([logits, -logits])  # [M=2, N=3, K=2]
    np.testing.assert_allclose(accuracy(stacked, [0, 1, 1]), [2 / 3, 1 / 3])
    assert accuracy(jnp.asarray(logits), np.array([0, 1, 1])) == pytest.approx(2 / 3)


def test_retention_retdev_golden():
    assert retention(0.8, 0.9) == pytest.approx(0.8 / 0.9)
    assert retdev(0.9, 1.1, 1.0) == pytest.approx(0.2)
    assert retdev(1.0, 1.0, 1.0) == 0.0


def test_sape_and_accuracy_errors_golden():
    assert sape(0.8, 0.6) == pytest.approx(100 * 0.2 / 1.4)
    assert sape(0.8, 0.6, percent=False) == pytest.approx(0.2 / 1.4)
    assert sape(0.0, 0.0) == 0.0
    assert sape(0.5, 0.5) == 0.0
    errs = accuracy_errors(0.85, 0.7, ta_r=0.9, fa_r=0.8, ta_o=0.95)
    assert errs == pytest.approx({
        "acc_err_retrained": 100 * 0.05 / 1.75,
        "acc_dis": 100 * 0.1 / 1.5,
        "acc_err_original": 100 * 0.1 / 1.8,
    })
    assert accuracy_errors(0.85, 0.7) == {}


def test_js_divergence_golden():
    z = np.random.default_rng(0).normal(size=(5, 4))
    assert js_divergence(z, z) == pytest.approx(0.0, abs=1e-15)
    # p = [1/2, 1/2], q = [1, 0]: JS = 0.75 ln(4/3) nats.
    p, q = np.array([[0.0, 0.0]]), np.array([[50.0, -50.0]])
    assert js_divergence(p, q, base=np.e) == pytest.approx(0.75 * np.log(4 / 3), rel=1e-9)
    assert js_divergence(p, q) == pytest.approx(0.75 * np.log2(4 / 3), rel=1e-9)
    assert js_divergence([[60.0, -60.0]], [[-60.0, 60.0]]) == pytest.approx(1.0)  # bits
    # Mean over examples.
    both = js_divergence(np.concatenate([p, p]), np.concatenate([q, p]))
    assert both == pytest.approx(0.5 * 0.75 * np.log2(4 / 3), rel=1e-9)


def test_parameter_distances_golden():
    a = {"w": np.array([3.0, 0.0]), "b": {"c": np.zeros((1, 1))}}
    b = {"w": jnp.array([0.0, 4.0]), "b": {"c": jnp.zeros((1, 1))}}
    assert l2_distance(a, b) == pytest.approx(5.0)
    assert golatkar_distance(a, b) == pytest.approx(5.0 / 3.0)  # normalised by ||a||
    assert golatkar_distance(b, a) == pytest.approx(5.0 / 4.0)
    assert normalized_l2_distance(a, b) == pytest.approx(np.sqrt(2.0))
    assert normalized_l2_distance(a, {"w": 2 * a["w"], "b": a["b"]}) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "fn, args, match",
    [
        (accuracy, (np.array([[np.nan, 0.0]]), [0]), "NaN"),
        (accuracy, (np.zeros((3, 2)), [0, 1]), "labels"),
        (accuracy, (np.zeros((3, 2)), [0, 1, 5]), r"\[0, 2\)"),
        (accuracy, (np.zeros((3, 1)), [0, 0, 0]), "classes"),
        (retention, (1.2, 0.9), r"\[0, 1\]"),
        (retention, (0.5, 0.0), "positive"),
        (retdev, (-0.1, 1.0, 1.0), "non-negative"),
        (js_divergence, (np.zeros((2, 3)), np.zeros((3, 3))), "equal shapes"),
        (l2_distance, ({"w": np.zeros(2)}, {"v": np.zeros(2)}), "structure"),
        (l2_distance, ({"w": np.zeros(2)}, {"w": np.zeros(3)}), "shapes"),
        (golatkar_distance, ({"w": np.zeros(2)}, {"w": np.ones(2)}), "all-zero"),
        (normalized_l2_distance, ({"w": np.ones(2)}, {"w": np.array([1.0, np.nan])}), "NaN"),
    ],
)
def test_bad_inputs(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)
