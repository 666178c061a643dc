"""Bootstrap CIs (over target models) of every LiRA / U-LiRA aggregate metric."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from jaxmu.metrics import (
    bootstrap_multiplicities,
    bootstrap_roc,
    cluster_index,
    lira,
    percentile_ci,
    ulira,
)
from jaxmu.metrics._lira import summarize

ROC_KEYS = ("auc", "best_accuracy", "tpr_at_1fpr", "tpr_at_0.1fpr")
CI_KEYS = ("balanced_accuracy", *ROC_KEYS)
ULIRA_KEYS = ("ulira_accuracy", "ulira_best_acc", "auc", "tpr_at_1fpr", "tpr_at_0.1fpr")


def _worlds(delta=1.5, n=60, s=16, t=12, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 3.0, n)
    sh_u = mu + delta + rng.standard_normal((s, n))
    sh_r = mu + rng.standard_normal((s, n))
    truth = rng.random((t, n)) < 0.5  # per pair: unlearned (H1) or never seen (H0)
    tg = mu + rng.standard_normal((t, n)) + delta * truth
    return sh_u, sh_r, tg, truth


def _ties(seed=0, t=10, n=50):
    rng = np.random.default_rng(seed)
    pos = rng.random((t, n)) < 0.4
    scores = np.round(rng.standard_normal((t, n)) + 1.5 * pos, 1)  # many tied scores
    ok = rng.random((t, n)) < 0.9
    return scores, pos, ok


def test_bootstrap_roc_unit_weights_equal_point_values():
    scores, pos, ok = _ties()
    point = summarize(scores, pos, ok)
    once = bootstrap_roc(scores, pos, ok, np.ones((1, scores.shape[0])))
    for k in ROC_KEYS:
        assert once[k][0] == pytest.approx(point[k], abs=1e-12), k


def test_bootstrap_roc_matches_sklearn_weighted_roc():
    scores, pos, ok = _ties(seed=1)
    rng = np.random.default_rng(2)
    w = rng.integers(0, 3, (6, scores.shape[0])).astype(np.float64)
    got = bootstrap_roc(scores, pos, ok, w, max_elems=3 * ok.sum())  # 2 chunks
    t_idx = np.nonzero(ok)[0]
    for b in range(w.shape[0]):
        fpr, tpr, _ = skm.roc_curve(pos[ok], scores[ok], sample_weight=w[b, t_idx],
                                    drop_intermediate=False)
        assert got["auc"][b] == pytest.approx(skm.auc(fpr, tpr), abs=1e-12)
        assert got["best_accuracy"][b] == pytest.approx(np.max(1 - (fpr + 1 - tpr) / 2))
        for k, level in (("tpr_at_1fpr", 0.01), ("tpr_at_0.1fpr", 0.001)):
            assert got[k][b] == pytest.approx(tpr[np.flatnonzero(fpr < level)[-1]]), k


def test_bootstrap_roc_resample_without_a_class_is_nan():
    scores, pos, ok = _ties()
    w = np.zeros((1, scores.shape[0]))
    w[0, 0] = 1.0
    pos = pos.copy()
    pos[0] = True  # the only drawn target has positives only
    got = bootstrap_roc(scores, pos, ok, w)
    assert all(np.isnan(got[k][0]) for k in ROC_KEYS)


def test_bootstrap_roc_rejects_bad_inputs():
    scores, pos, ok = _ties()
    w = np.ones((2, scores.shape[0]))
    with pytest.raises(ValueError, match="one \\[T, N\\] shape"):
        bootstrap_roc(scores, pos[:, :-1], ok, w)
    with pytest.raises(ValueError, match="boolean mask"):
        bootstrap_roc(scores, pos, ok.astype(int), w)
    with pytest.raises(ValueError, match="non-negative weights"):
        bootstrap_roc(scores, pos, ok, w[:, :-1])
    with pytest.raises(ValueError, match="non-negative weights"):
        bootstrap_roc(scores, pos, ok, -w)


def test_cluster_index_and_multiplicities_by_hand():
    inv, g = cluster_index("groups", np.array(["b", "a", "b", "c"]), 4)
    assert g == 3 and inv.tolist() == [1, 0, 1, 2]  # sorted labels a, b, c
    inv, g = cluster_index("groups", None, 3)
    assert g == 3 and inv.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="groups: expected 4 label"):
        cluster_index("groups", [0, 1], 4)
    # resample 0 drew units 2, 2, 0; resample 1 drew 1, 0, 1
    m = bootstrap_multiplicities(np.array([[2, 2, 0], [1, 0, 1]]), 3)
    assert m.tolist() == [[1.0, 0.0, 2.0], [1.0, 2.0, 0.0]]
    with pytest.raises(ValueError, match="idx: expected"):
        bootstrap_multiplicities(np.array([[0, 3, 1]]), 3)
    with pytest.raises(ValueError, match="idx: expected"):
        bootstrap_multiplicities(np.array([[0, 1]]), 3)


def test_percentile_ci_by_hand():
    vals = np.array([0.1, 0.2, 0.3, 0.4, 0.5, np.nan])  # NaN resamples are ignored
    # quantiles 0.25 / 0.5 / 0.75 of 0.1..0.5 (linear): 0.2, 0.3, 0.4
    assert percentile_ci(vals, 0.25) == pytest.approx((0.2, 0.4))
    # centred on 0.95: [0.95 - (0.3 - 0.2), 0.95 + (0.4 - 0.3)], clipped to 1
    assert percentile_ci(vals, 0.25, 0.95) == pytest.approx((0.85, 1.0))
    assert all(np.isnan(percentile_ci(np.array([np.nan]), 0.025)))
    with pytest.raises(ValueError, match="alpha"):
        percentile_ci(vals, 0.6)
    with pytest.raises(ValueError, match="1-D"):
        percentile_ci(vals[None], 0.25)


def test_ulira_ci_for_every_aggregate_metric():
    sh_u, sh_r, tg, truth = _worlds()
    rep = ulira(sh_u, sh_r, tg, truth, n_bootstrap=300, seed=3)
    for k in ULIRA_KEYS:
        lo, hi = rep[f"{k}_ci"]
        assert 0.0 <= lo <= hi <= 1.0, k
    for k in ("ulira_accuracy", "ulira_best_acc", "auc"):  # stable statistics
        lo, hi = rep[f"{k}_ci"]
        assert lo <= rep[k] <= hi, k
        assert hi - lo > 0, k
    assert rep["ulira_best_acc_ci"] == rep["best_accuracy_ci"]
    assert rep["ulira_accuracy_ci"] == rep["balanced_accuracy_ci"]
    # Deterministic for a fixed seed, and the seed matters.
    again = ulira(sh_u, sh_r, tg, truth, n_bootstrap=300, seed=3)
    assert all(again[f"{k}_ci"] == rep[f"{k}_ci"] for k in ULIRA_KEYS)
    other = ulira(sh_u, sh_r, tg, truth, n_bootstrap=300, seed=4)
    assert other["auc_ci"] != rep["auc_ci"]
    # Without resamples there is no interval.
    assert not any(k.endswith("_ci") for k in ulira(sh_u, sh_r, tg, truth))


def test_ci_degenerates_when_all_targets_are_identical():
    rng = np.random.default_rng(7)
    row = rng.standard_normal(40)
    truth_row = np.arange(40) % 2 == 0
    scores = np.tile(row + truth_row, (6, 1))  # every target model the same
    truth = np.tile(truth_row, (6, 1))
    rep = summarize(scores, truth, np.ones_like(truth), n_bootstrap=50)
    for k in CI_KEYS:
        lo, hi = rep[f"{k}_ci"]
        assert lo == pytest.approx(rep[k], abs=1e-12) and hi == pytest.approx(rep[k], abs=1e-12)


def test_ci_ignores_resamples_lacking_a_class():
    sh_u, sh_r, tg, _ = _worlds(t=4)
    truth = np.array([True, True, False, False])  # whole target models
    tg = tg.copy()
    tg[:2] += 1.5
    rep = ulira(sh_u, sh_r, tg, truth, n_bootstrap=200)
    for k in ULIRA_KEYS:
        assert np.all(np.isfinite(rep[f"{k}_ci"])), k


def test_lira_ci_over_target_models():
    rng = np.random.default_rng(6)
    s, t, n = 24, 8, 120
    mu = rng.normal(0, 3, n)
    in_mask = rng.random((s + t, n)) < 0.5
    stats = mu + rng.standard_normal((s + t, n)) + 1.0 * in_mask
    plain = lira(stats[:s], in_mask[:s], stats[s:], in_mask[s:])
    assert not any(k.endswith("_ci") for k in plain)
    rep = lira(stats[:s], in_mask[:s], stats[s:], in_mask[s:], n_bootstrap=200, seed=1)
    for k in CI_KEYS:
        lo, hi = rep[f"{k}_ci"]
        assert lo <= hi, k
        assert rep[k] == plain[k], k  # the point values do not change
    for k in ("balanced_accuracy", "best_accuracy", "auc"):
        lo, hi = rep[f"{k}_ci"]
        assert lo <= rep[k] <= hi, k
