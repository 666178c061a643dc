"""U-LiRA confidence intervals resample whole original models (cluster bootstrap).

The coverage study simulates the U-LiRA pipeline's design with synthetic logit-scaled
confidences instead of trained models. 32 originals (24 shadows, 8 held-out targets) are
trained on balanced halves of 200 candidate examples (every example IN for exactly 16);
each original has K = 6 unlearning runs, each forgetting a random half of the original's
members. An example's statistic in run (m, k) is

    mu_x + b_m + e_{m,x} + eps_{m,k,x},   b ~ N(0, 0.5), e ~ N(0, 1.5), eps ~ N(0, 0.3),

with per-original random effects (b_m, and e_{m,x}: what original m makes of example x,
shared by all its runs) and little per-run noise, the same whether x was forgotten or never
seen: the unlearned population is drawn exactly like the retrained one, so the expected
U-LiRA accuracy is 0.5. Every target run scores its forget set (positives) against an
equal-size random sample of its never-seen examples (negatives), as the pipeline does.

Measured over the 60 studies of ``test_null_coverage_of_the_cluster_bootstrap`` (seeds
0-59, 100 resamples each), share of 95% intervals of the U-LiRA accuracy containing 0.5:

* original models as units, shadow fits resampled and refitted, interval centred on the
  point value (the pipeline's default): 59/60 (0.98);
* target originals as units, fits held fixed: 50/60 (0.83);
* runs resampled as independent rows (the old behaviour): 39/60 (0.65).

With the fits fixed, the interval misses the variation that the 24 shadow originals bring
(their fits, and through the balanced masks which examples are IN for the targets). With
imperfect unlearning (``test_refitted_intervals_are_centred_on_the_point_value``) the
default intervals covered the expected accuracy in 57/60 studies, percentile intervals of
the same refits in 42/60.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxmu.metrics import ulira
from jaxmu.metrics._lira import summarize

M, T, K, N, Q = 32, 8, 6, 200, 0.5


def _study(seed: int, delta: float = 0.0):
    """One synthetic U-LiRA study laid out as the pipeline's arrays: under the null, or with
    ``delta`` added to every forgotten statistic (imperfect unlearning)."""
    rng = np.random.default_rng(seed)
    ins = np.argsort(rng.random((M, N)), axis=0) < M // 2
    size = int(round(Q * N / 2))
    forget = np.zeros((M, K, N), bool)
    for m in range(M):
        members = np.flatnonzero(ins[m])
        for k in range(K):
            forget[m, k, rng.choice(members, size, replace=False)] = True
    mu = rng.normal(2.0, 2.0, N)
    stats = (mu + rng.normal(0, 0.5, (M, 1, 1)) + rng.normal(0, 1.5, (M, 1, N))
             + rng.normal(0, 0.3, (M, K, N)) + delta * forget).reshape(M * K, N)
    h1, h0 = forget.reshape(M * K, N), np.repeat(~ins, K, axis=0)
    s = (M - T) * K
    tmask = h1[s:].copy()
    for i in range(tmask.shape[0]):
        tmask[i, rng.choice(np.flatnonzero(h0[s + i]), size, replace=False)] = True
    original = np.repeat(np.arange(M), K)
    return dict(sh=stats[:s], tg=stats[s:], h1s=h1[:s], h0s=h0[:s], h1t=h1[s:], tmask=tmask,
                target_groups=original[s:], shadow_groups=original[:s])


def _ci(st, seed, n_bootstrap=100, **groups):
    rep = ulira(st["sh"], st["sh"], st["tg"], st["h1t"], shadow_unlearned_mask=st["h1s"],
                shadow_retrained_mask=st["h0s"], target_mask=st["tmask"],
                n_bootstrap=n_bootstrap, seed=seed, **groups)
    return rep.get("ulira_accuracy_ci"), rep


@pytest.mark.slow  # 60 studies x 100 refits: ~30 s on 2 CPU cores
def test_null_coverage_of_the_cluster_bootstrap():
    covered = {"clusters_and_fits": 0, "target_clusters": 0, "rows": 0}
    for seed in range(60):
        st = _study(seed)
        modes = {"clusters_and_fits": dict(target_groups=st["target_groups"],
                                           shadow_groups=st["shadow_groups"]),
                 "target_clusters": dict(target_groups=st["target_groups"]),
                 "rows": {}}
        for name, groups in modes.items():
            (lo, hi), rep = _ci(st, seed, **groups)
            covered[name] += lo <= 0.5 <= hi
        assert rep["n_bootstrap_units"] == K * T  # rows: every run its own unit
    # Measured: 59, 50 and 39 of 60 (see the module docstring).
    assert covered["clusters_and_fits"] >= 54, covered  # >= 90% of 60
    assert covered["rows"] <= 45, covered  # the row bootstrap under-covers (<= 75%)
    assert covered["rows"] < covered["target_clusters"] < covered["clusters_and_fits"]


@pytest.mark.slow  # 2 x 60 studies x 100 refits: ~40 s on 2 CPU cores
def test_refitted_intervals_are_centred_on_the_point_value():
    """Imperfect unlearning (+1 on every forgotten statistic): refits on resampled shadow
    originals give worse fits than the real ones, so the bootstrap distribution of the
    accuracy sits below the point value and its percentile interval misses the expected
    accuracy (estimated from 200 fresh studies). The centred interval (the default with
    refits) moves the bootstrap spread onto the point value. Measured over seeds 0-59:
    expected accuracy 0.589; centred 57/60, percentile 42/60."""
    truth = np.mean([_ci(_study(1000 + i, delta=1.0), 0, n_bootstrap=0)[1]["ulira_accuracy"]
                     for i in range(200)])
    covered = {"centred": 0, "percentile": 0}
    for seed in range(60):
        st = _study(seed, delta=1.0)
        groups = dict(target_groups=st["target_groups"], shadow_groups=st["shadow_groups"])
        for interval in covered:
            (lo, hi), rep = _ci(st, seed, interval=interval, **groups)
            covered[interval] += lo <= truth <= hi
            if interval == "centred":
                assert lo <= rep["ulira_accuracy"] <= hi
    assert covered["centred"] >= 54, covered
    assert covered["percentile"] <= 50, covered


def test_cluster_weights_keep_runs_of_one_original_together():
    st = _study(0)
    (lo, hi), rep = _ci(st, 1, target_groups=st["target_groups"])
    assert rep["n_bootstrap_units"] == T
    assert lo <= rep["ulira_accuracy"] <= hi
    # Relabelling the clusters (any hashable labels) does not change the resamples.
    (lo2, hi2), _ = _ci(st, 1, target_groups=np.array([f"orig{g}" for g in
                                                        st["target_groups"]]))
    assert (lo2, hi2) == (lo, hi)
    # One run per cluster is the row bootstrap.
    (lo3, hi3), _ = _ci(st, 1, target_groups=np.arange(T * K))
    (lo4, hi4), _ = _ci(st, 1)
    assert (lo3, hi3) == (lo4, hi4)


def test_refit_path_equals_fixed_path_when_the_fit_does_not_change():
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((12, 30))
    truth = rng.random((12, 30)) < 0.5
    scores = scores + truth
    ok = np.ones_like(truth)
    groups = np.repeat(np.arange(4), 3)
    drawn = []

    def refit(rows):
        drawn.append(rows)
        return scores

    shadow_groups = np.repeat(np.arange(5), 2)  # 5 shadow originals x 2 runs
    fixed = summarize(scores, truth, ok, n_bootstrap=40, seed=2, groups=groups)
    refitted = summarize(scores, truth, ok, n_bootstrap=40, seed=2, groups=groups,
                         refit=refit, shadow_groups=shadow_groups, interval="percentile")
    # With refits the default interval is centred on the point value.
    fixed_c = summarize(scores, truth, ok, n_bootstrap=40, seed=2, groups=groups,
                        interval="centred")
    refitted_c = summarize(scores, truth, ok, n_bootstrap=40, seed=2, groups=groups,
                           refit=lambda rows: scores, shadow_groups=shadow_groups)
    for key in ("balanced_accuracy", "auc", "best_accuracy", "tpr_at_1fpr", "tpr_at_0.1fpr"):
        assert refitted[f"{key}_ci"] == pytest.approx(fixed[f"{key}_ci"], abs=1e-12), key
        assert refitted_c[f"{key}_ci"] == pytest.approx(fixed_c[f"{key}_ci"], abs=1e-12), key
        lo, hi = fixed[f"{key}_ci"]
        lo_c, hi_c = fixed_c[f"{key}_ci"]
        assert hi_c - lo_c == pytest.approx(hi - lo) or lo_c == 0.0 or hi_c == 1.0, key
        assert lo_c <= fixed[key] <= hi_c, key
    assert len(drawn) == 40
    for rows in drawn:  # whole shadow originals: both runs of a drawn original, in pairs
        assert rows.size == 10
        pairs = rows.reshape(5, 2)
        assert np.all(pairs[:, 1] == pairs[:, 0] + 1) and np.all(pairs[:, 0] % 2 == 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(groups=np.arange(5)), "groups"),
    (dict(refit=lambda rows: None), "refit and shadow_groups"),
    (dict(shadow_groups=np.arange(3)), "refit and shadow_groups"),
    (dict(interval="bca"), "interval"),
])
def test_summarize_bad_groups(kwargs, match):
    scores = np.arange(12.0).reshape(3, 4)
    truth = np.array([[True, False] * 2] * 3)
    with pytest.raises(ValueError, match=match):
        summarize(scores, truth, np.ones_like(truth), n_bootstrap=5, **kwargs)


def test_ulira_shadow_groups_need_one_label_per_shadow_row():
    st = _study(1)
    with pytest.raises(ValueError, match="shadow_groups"):
        _ci(st, 0, shadow_groups=st["shadow_groups"][:-1])
