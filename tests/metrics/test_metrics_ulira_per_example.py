"""Per-example U-LiRA accuracy: class-balanced over an example's target pairs, defined only
with pairs of both classes, reported with the SD that pair sampling alone gives under
perfect unlearning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxmu.metrics import ulira
from jaxmu.metrics._lira import per_example_summary, summarize


def test_per_example_golden():
    # 4 target runs x 3 examples; decisions at threshold 0 (score > 0 = "forgotten").
    scores = np.array([[1.0, 2.0, 1.0],
                       [-1.0, -1.0, 1.0],
                       [-2.0, -3.0, -1.0],
                       [0.5, 9.0, 9.0]])
    positive = np.array([[True, True, True],
                         [True, False, True],
                         [False, False, True],
                         [False, True, True]])
    valid = np.array([[True, True, True],
                      [True, True, True],
                      [True, True, True],
                      [True, False, False]])
    rep = summarize(scores, positive, valid)
    # Example 0: TPR 1/2 (1 right, -1 wrong), TNR 1/2 (-2 right, 0.5 wrong) -> 0.5.
    # Example 1: TPR 1/1, TNR 2/2 -> 1.0. Example 2: positives only (TPR 2/3) -> left out.
    np.testing.assert_array_equal(rep["per_example_accuracy"], [0.5, 1.0, np.nan])
    assert rep["per_example_n"] == 2 and rep["per_example_single_class"] == 1
    assert rep["per_example_accuracy_mean"] == 0.75
    assert rep["per_example_accuracy_std"] == 0.25
    assert rep["per_example_positive_pairs_mean"] == 1.5  # (2 + 1) / 2
    assert rep["per_example_negative_pairs_mean"] == 2.0
    # Fair-coin variances (1/n_p + 1/n_n) / 16: (1/2 + 1/2)/16 and (1 + 1/2)/16.
    assert rep["per_example_accuracy_null_sd"] == pytest.approx(math.sqrt(0.078125),
                                                                rel=1e-12)
    assert rep["per_example_accuracy_quantiles"]["q50"] == 0.75


def test_per_example_without_two_class_examples():
    ok = np.ones((2, 3), bool)
    positive = np.array([[True] * 3, [True] * 3])
    out = per_example_summary(ok, positive, ok)
    assert out["per_example_n"] == 0 and out["per_example_single_class"] == 3
    assert np.all(np.isnan(out["per_example_accuracy"]))
    assert math.isnan(out["per_example_accuracy_null_sd"])
    assert "per_example_accuracy_mean" not in out


def test_null_sd_matches_perfect_unlearning_with_coin_flip_decisions():
    """Scores independent of the truth and symmetric about 0: every decision is a fair
    coin, so the SD of the per-example accuracies over 4000 examples is the reported floor
    (0.177 at 4 + 4 pairs)."""
    rng = np.random.default_rng(0)
    t, n = 8, 4000
    positive = np.zeros((t, n), bool)
    positive[:4] = True  # 4 positive and 4 negative pairs per example
    scores = rng.standard_normal((t, n))
    rep = summarize(scores, positive, np.ones((t, n), bool))
    assert rep["per_example_accuracy_null_sd"] == pytest.approx(math.sqrt(0.5 / 16),
                                                                rel=1e-12)
    assert rep["per_example_accuracy_std"] == pytest.approx(math.sqrt(0.5 / 16), rel=0.05)
    assert abs(rep["per_example_accuracy_mean"] - 0.5) < 0.01


def test_ulira_reports_the_per_example_floor():
    rng = np.random.default_rng(1)
    n, s, t = 300, 32, 4  # 4 targets: 1 in 8 examples gets pairs of one class only
    mu = rng.normal(0, 3, n)
    sh_u = mu + 3.0 + rng.standard_normal((s, n))
    sh_r = mu + rng.standard_normal((s, n))
    truth = rng.random((t, n)) < 0.5  # per pair
    tg = mu + rng.standard_normal((t, n)) + 3.0 * truth
    rep = ulira(sh_u, sh_r, tg, truth)
    single = np.all(truth, axis=0) | np.all(~truth, axis=0)
    assert rep["per_example_single_class"] == int(single.sum()) > 0
    assert rep["per_example_n"] == n - int(single.sum())
    assert np.all(np.isnan(rep["per_example_accuracy"][single]))
    assert np.all(np.isfinite(rep["per_example_accuracy"][~single]))
    assert 0.1 < rep["per_example_accuracy_null_sd"] < 0.3
    assert rep["per_example_accuracy_mean"] > 0.85  # separated worlds
