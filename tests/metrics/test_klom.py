"""KLoM (KL divergence of margins): margins, the per-example histogram KL, the report.

Golden values come from hand computation (bins worked out in the comments) and from
straightforward per-example transcriptions of data-unlearning-bench's
``compute_binned_KL_div`` written here: one with ``np.digitize`` and
``scipy.stats.entropy`` as in the reference (``faithful=True``), one with
``np.histogram`` (jaxmu's default, whose last bin is closed).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jaxmu.metrics import _klom, klom, klom_report, margins

EPS = 1e-5


def _reference_kl(p, q, bin_count=20, eps=EPS, lo=-100.0, hi=100.0):
    """data-unlearning-bench's binned KL for one example (np.digitize binning)."""
    p, q = np.clip(p, lo, hi), np.clip(q, lo, hi)
    start, end = min(p.min(), q.min()), max(p.max(), q.max())
    if start >= end:
        end = start + 1
    edges = np.linspace(start, end, bin_count + 1)
    pi, qi = np.digitize(p, edges), np.digitize(q, edges)
    pc = np.array([np.sum(pi == i) for i in range(1, bin_count + 1)])
    qc = np.array([np.sum(qi == i) for i in range(1, bin_count + 1)])
    pp = pc / pc.sum() if pc.sum() > 0 else np.zeros(bin_count)
    qq = qc / qc.sum() if qc.sum() > 0 else np.zeros(bin_count)
    q_safe = np.where(pp > 0, np.maximum(qq, eps), qq)
    with np.errstate(invalid="ignore"):
        return stats.entropy(pk=pp, qk=q_safe)


def _histogram_kl(p, q, bin_count=20, eps=EPS, lo=-100.0, hi=100.0):
    """The same with np.histogram (every value counted, last bin closed)."""
    p, q = np.clip(p, lo, hi), np.clip(q, lo, hi)
    start, end = min(p.min(), q.min()), max(p.max(), q.max())
    if start >= end:
        end = start + 1
    pc, _ = np.histogram(p, bin_count, range=(start, end))
    qc, _ = np.histogram(q, bin_count, range=(start, end))
    pp, qq = pc / pc.sum(), qc / qc.sum()
    return stats.entropy(pk=pp, qk=np.where(pp > 0, np.maximum(qq, eps), qq))


def _random_case(rng, kind):
    mu, mo, n = rng.integers(1, 10), rng.integers(1, 10), 30
    if kind == 0:  # continuous, overlapping
        return rng.normal(0, 3, (mu, n)), rng.normal(0.5, 3, (mo, n))
    if kind == 1:  # integer ties; with range [0, 20] the edges land exactly on values
        return (rng.integers(0, 21, (mu, n)).astype(float),
                rng.integers(0, 21, (mo, n)).astype(float))
    if kind == 2:  # many values beyond the clip range
        return rng.normal(0, 150, (mu, n)), rng.normal(50, 150, (mo, n))
    u = np.round(rng.normal(0, 1, (mu, n)), 1)  # a 0.1 grid, and constant examples
    o = np.round(rng.normal(0, 1, (mo, n)), 1)
    u[:, :3] = o[:, :3] = 3.0
    return u, o


# ----------------------------------------------------------------------------- margins


def test_margins_lse_and_max_by_hand():
    # example 0, label 0, logits (2, 1, 0): lse margin 2 - log(e + 1) = 0.6867, max margin
    # 2 - 1 = 1. Example 1, label 2, logits all 0: lse 0 - log(1 + 1) = -log 2, max 0: the
    # gap is log(C - 1) when the rivals are tied.
    z = np.array([[[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    y = np.array([0, 2])
    np.testing.assert_allclose(margins(z, y), [[2 - np.log(np.e + 1), -np.log(2)]],
                               rtol=1e-14)
    np.testing.assert_allclose(margins(z, y, kind="max"), [[1.0, 0.0]], rtol=1e-14)
    assert np.all(margins(z, y) <= margins(z, y, kind="max"))


def test_margins_average_over_augmentations():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 5, 2, 4))  # [M, N, A, C]
    y = rng.integers(0, 4, 5)
    per_view = np.stack([margins(z[:, :, a], y) for a in range(2)], -1)
    np.testing.assert_allclose(margins(z, y), per_view.mean(-1), rtol=1e-14)
    np.testing.assert_allclose(margins(z, y, kind="max"),
                               np.stack([margins(z[:, :, a], y, kind="max")
                                         for a in range(2)], -1).mean(-1), rtol=1e-14)
    # [N, C] without a model axis, and the ambiguous shape [N, N, C]
    assert margins(z[0, :, 0], y).shape == (5,)
    sq = rng.normal(size=(5, 5, 4))
    with pytest.raises(ValueError, match="ambiguous"):
        margins(sq, y)
    views = np.stack([margins(sq[:, a], y) for a in range(5)], -1)  # sq[:, a]: [N, C]
    np.testing.assert_allclose(margins(sq, y, augmented=True), views.mean(-1), rtol=1e-14)
    assert margins(sq, y, augmented=False).shape == (5, 5)


@pytest.mark.parametrize("bad, match", [
    (dict(kind="hinge"), "kind"),
    (dict(labels=np.arange(5) % 4), "expected"),
    (dict(labels=np.array([[0, 1]])), "labels"),
    (dict(labels=np.array([0, 7])), "lie in"),
    (dict(logits=np.array([[[np.nan, 0.0], [0.0, 1.0]]])), "NaN"),
    (dict(logits=np.zeros((3, 2, 1))), "classes"),
])
def test_margins_rejects_bad_inputs(bad, match):
    args = dict(logits=np.zeros((3, 2, 4)), labels=np.array([0, 1]))
    kind = bad.pop("kind", "lse")
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        margins(args["logits"], args["labels"], kind=kind)


# ----------------------------------------------------------------------------- klom


def test_hand_computed_four_samples():
    # p = (0, 1.5, 1.5, 19), q = (0, 0.5, 1.5, 20): combined range [0, 20], 20 bins of
    # width 1, edges 0, 1, ..., 20.
    # Default (last bin closed): p -> bin0: 1, bin1: 2, bin19: 1 = (1/4, 1/2, 1/4);
    # q -> bin0: 2 (0 and 0.5), bin1: 1, bin19: 1 (20, closed) = (1/2, 1/4, 1/4).
    # No floor needed: KL = 1/4 log(1/2) + 1/2 log 2 + 1/4 log 1 = log(2) / 4.
    p = np.array([[0.0], [1.5], [1.5], [19.0]])
    q = np.array([[0.0], [0.5], [1.5], [20.0]])
    np.testing.assert_allclose(klom(p, q), [np.log(2) / 4], rtol=1e-13)
    # Reference (faithful): 20 equals the last edge and is dropped, q -> (2/3, 1/3, 0);
    # bin19 has p = 1/4 > 0 and q = 0 -> eps; q renormalised by 1 + eps:
    want = (np.log1p(EPS) + 0.25 * np.log(0.25 / (2 / 3)) + 0.5 * np.log(0.5 / (1 / 3))
            + 0.25 * np.log(0.25 / EPS))
    np.testing.assert_allclose(klom(p, q, faithful=True), [want], rtol=1e-13)
    np.testing.assert_allclose(klom(p, q, faithful=True), [_reference_kl(p[:, 0], q[:, 0])],
                               rtol=1e-13)


def test_disjoint_populations_by_hand():
    # p = (0, 1, 0, 1), q = (9, 10, 9, 10): range [0, 10], width 0.5: p fills bins 0 and 2
    # (1/2 each), q bins 18 and 19 (the reference drops the 10s: q = 1 in bin 18). Both
    # p-bins get q = eps, renormalised by 1 + 2 eps: KL = log(0.5 / eps) + log(1 + 2 eps).
    p = np.array([[0.0], [1.0], [0.0], [1.0]])
    q = np.array([[9.0], [10.0], [9.0], [10.0]])
    want = np.log(0.5 / EPS) + np.log1p(2 * EPS)
    np.testing.assert_allclose(klom(p, q), [want], rtol=1e-13)
    np.testing.assert_allclose(klom(p, q, faithful=True), [want], rtol=1e-13)
    # a smaller eps raises the ceiling: log(0.5 / 1e-8)
    np.testing.assert_allclose(klom(p, q, eps=1e-8), [np.log(0.5e8) + np.log1p(2e-8)],
                               rtol=1e-13)


def test_reference_drops_the_combined_maximum():
    # q all at the maximum: the reference drops every q value, q = 0, the floor puts eps
    # on p's only bin, renormalised to 1: KL 0 for disjoint samples. jaxmu: log(1 / eps).
    p, q = np.zeros((4, 1)), np.full((4, 1), 10.0)
    np.testing.assert_allclose(klom(p, q, faithful=True), [0.0], atol=1e-15)
    np.testing.assert_allclose(klom(p, q), [np.log(1 / EPS) + np.log1p(EPS)], rtol=1e-13)
    # p all at the maximum: the reference's p is empty -> NaN (scipy's 0/0)
    assert np.isnan(klom(q, p, faithful=True)[0])
    assert np.isnan(_reference_kl(q[:, 0], p[:, 0]))
    np.testing.assert_allclose(klom(q, p), [np.log(1 / EPS) + np.log1p(EPS)], rtol=1e-13)


@pytest.mark.parametrize("faithful", [True, False])
def test_equals_per_example_transcription(faithful):
    rng = np.random.default_rng(1)
    ref = _reference_kl if faithful else _histogram_kl
    for trial in range(24):
        u, o = _random_case(rng, trial % 4)
        bins = (20, 2, 7)[trial % 3]
        got = klom(u, o, bins=bins, min_count=1, faithful=faithful)
        want = [ref(u[:, i], o[:, i], bins) for i in range(u.shape[1])]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, equal_nan=True)


def test_clip_and_eps_settings_follow_the_transcription():
    rng = np.random.default_rng(2)
    u, o = rng.normal(0, 5, (6, 20)), rng.normal(1, 5, (5, 20))
    got = klom(u, o, clip=(-2.0, 3.0), eps=1e-3, bins=5)
    want = [_histogram_kl(u[:, i], o[:, i], 5, 1e-3, -2.0, 3.0) for i in range(20)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_blocks_give_the_same_values(monkeypatch):
    rng = np.random.default_rng(3)
    u, o = rng.normal(0, 2, (7, 40)), rng.normal(0, 2, (5, 40))
    mu, mo = rng.random(u.shape) < 0.7, rng.random(o.shape) < 0.7
    whole = klom(u, o, unlearned_mask=mu, oracle_mask=mo)
    monkeypatch.setattr(_klom, "_BLOCK_OBS", 13)  # many small blocks of examples
    np.testing.assert_array_equal(klom(u, o, unlearned_mask=mu, oracle_mask=mo), whole)


def test_identical_populations_give_zero():
    rng = np.random.default_rng(4)
    u = rng.normal(0, 3, (6, 25))
    np.testing.assert_allclose(klom(u, u), 0.0, atol=1e-15)
    np.testing.assert_allclose(klom(u, u[::-1]), 0.0, atol=1e-15)  # order does not matter
    np.testing.assert_allclose(klom(u, u, faithful=True), 0.0, atol=1e-15)
    const = np.full((3, 2), 7.0)  # min == max: one bin [7, 8]
    np.testing.assert_allclose(klom(const, const), 0.0, atol=1e-15)


def test_masks_select_the_observations():
    rng = np.random.default_rng(5)
    u, o = rng.normal(0, 2, (6, 8)), rng.normal(0.5, 2, (5, 8))
    mu, mo = rng.random(u.shape) < 0.6, rng.random(o.shape) < 0.6
    mu[:, 0] = mo[:, 0] = True
    mu[:, 1] = False
    mu[0, 1] = True  # one unlearned observation: below min_count 2
    u_nan = np.where(mu, u, np.nan)  # values outside the masks are ignored, even NaN
    got = klom(u_nan, o, unlearned_mask=mu, oracle_mask=mo)
    for i in range(8):
        p, q = u[mu[:, i], i], o[mo[:, i], i]
        if min(p.size, q.size) < 2:
            assert np.isnan(got[i])
        else:
            np.testing.assert_allclose(got[i], _histogram_kl(p, q), rtol=1e-12)
    assert np.isnan(got[1])
    assert np.isfinite(klom(u, o, unlearned_mask=mu, oracle_mask=mo, min_count=1)[1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(bins=1), "bins"),
    (dict(bins=2.5), "bins"),
    (dict(eps=0.0), "eps"),
    (dict(eps=-1.0), "eps"),
    (dict(clip=(1.0, 1.0)), "clip"),
    (dict(clip=(2.0, -2.0)), "clip"),
    (dict(clip=3.0), "clip"),
    (dict(min_count=0), "min_count"),
    (dict(unlearned_mask=np.ones((4, 2))), "broadcast"),
    (dict(oracle_mask=np.full((3, 5), 2)), "boolean"),
])
def test_klom_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        klom(np.zeros((3, 5)), np.zeros((3, 5)), **kwargs)


def test_klom_rejects_bad_margins():
    with pytest.raises(ValueError, match="models, N"):
        klom(np.zeros(5), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="examples"):
        klom(np.zeros((3, 5)), np.zeros((3, 4)))
    bad = np.zeros((3, 5))
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        klom(bad, np.zeros((3, 5)))


# ----------------------------------------------------------------------------- report


def _populations(rng, n, m, shift=0.0, kper=1, sd_g=0.0, sd_r=1.0, mu=None):
    """Margins ``mu_x + a_{g,x} + e``: m units of kper runs each (runs of a unit share
    a_{g,x} ~ N(0, sd_g)), the unlearned side shifted by ``shift``."""
    mu = rng.normal(2, 2, n) if mu is None else mu

    def pop(sh):
        a = rng.normal(0, sd_g, (m, n)).repeat(kper, 0)
        return mu + sh + a + rng.normal(0, sd_r, (m * kper, n))

    return pop(shift), pop(0.0)


def test_report_keys_and_point_values():
    rng = np.random.default_rng(6)
    u, o = _populations(rng, 30, 6)
    mu, mo = rng.random(u.shape) < 0.8, rng.random(o.shape) < 0.8
    rep = klom_report(u, o, unlearned_masks={"forget": mu, "retain": ~mu},
                      oracle_masks={"forget": mo, "retain": ~mo}, percentiles=(50, 95),
                      n_bootstrap=5, n_permutations=5, bins=10)
    per = klom(u, o, unlearned_mask=mu, oracle_mask=mo, bins=10)
    np.testing.assert_array_equal(rep["forget"], per)
    fin = per[np.isfinite(per)]
    assert rep["forget_n"] == fin.size
    np.testing.assert_allclose(rep["forget_mean"], fin.mean(), rtol=1e-14)
    np.testing.assert_allclose(rep["forget_p95"], np.percentile(fin, 95), rtol=1e-14)
    for s in ("forget", "retain"):
        for stat in ("mean", "p50", "p95"):
            lo, hi = rep[f"{s}_{stat}_ci"]
            assert 0 <= lo <= rep[f"{s}_{stat}"] <= hi
            nlo, nhi = rep[f"{s}_{stat}_null_range"]
            assert nlo <= rep[f"{s}_{stat}_null"] <= nhi
            assert 1 / 6 <= rep[f"{s}_{stat}_pvalue"] <= 1
    assert rep["n_units_unlearned"] == rep["n_units_oracle"] == 6
    assert rep["interval"] == "jackknife" and rep["null"] == "models"
    again = klom_report(u, o, unlearned_masks={"forget": mu, "retain": ~mu},
                        oracle_masks={"forget": mo, "retain": ~mo}, percentiles=(50, 95),
                        n_bootstrap=5, n_permutations=5, bins=10)
    assert again["forget_p95_pvalue"] == rep["forget_p95_pvalue"]  # seeded
    bare = klom_report(u, o, unlearned_masks={"all": True}, oracle_masks={"all": True},
                       n_bootstrap=0, n_permutations=0)
    assert "all_p95" in bare and "all_p99" in bare
    assert "all_p95_ci" not in bare and "all_p95_null" not in bare


@pytest.mark.parametrize("interval", ["percentile", "centred", "union"])
def test_bootstrap_intervals(interval):
    rng = np.random.default_rng(7)
    u, o = _populations(rng, 40, 8, kper=2, sd_g=0.5)
    g = np.arange(8).repeat(2)
    rep = klom_report(u, o, unlearned_masks={"s": True}, oracle_masks={"s": True},
                      unlearned_groups=g, oracle_groups=g, n_bootstrap=20,
                      n_permutations=0, interval=interval)
    assert rep["n_units_unlearned"] == 8
    lo, hi = rep["s_p95_ci"]
    assert 0 <= lo < hi
    if interval != "percentile":
        assert lo <= rep["s_p95"] <= hi
    else:  # duplicated models make histograms spikier: resamples sit above the point
        assert lo > rep["s_p95"]


def test_equal_distributions_sit_at_the_null_and_a_shift_does_not():
    # 16 + 16 models, margins N(mu_x, 1) on both sides: the P95 is far above 0 (the
    # finite-sample KL of 16 vs 16 samples in 20 bins) but inside the permutation null.
    rng = np.random.default_rng(8)
    mu = rng.normal(2, 2, 100)
    kw = dict(unlearned_masks={"s": True}, oracle_masks={"s": True}, n_bootstrap=0,
              n_permutations=40)
    same = klom_report(*_populations(rng, 100, 16, mu=mu), **kw)
    lo, hi = same["s_p95_null_range"]
    assert same["s_p95"] > 3
    assert lo <= same["s_p95"] <= hi
    assert same["s_p95_pvalue"] > 0.1
    assert abs(same["s_p95"] - same["s_p95_null"]) < 0.5
    shifted = klom_report(*_populations(rng, 100, 16, shift=1.0, mu=mu), **kw)
    assert shifted["s_p95"] > shifted["s_p95_null_range"][1] + 0.3
    assert shifted["s_p95_pvalue"] == pytest.approx(1 / 41)
    assert shifted["s_mean_pvalue"] == pytest.approx(1 / 41)


def test_clustered_runs_need_the_models_null():
    # 6 originals x 4 runs per side, runs of an original sharing most of their margin
    # (SD 1 per original and example, 0.2 per run), both sides drawn alike. Permuting whole
    # originals keeps the clusters: the observed P95 sits in that null. Permuting each
    # example's observations breaks them up, giving smoother samples and a null far too
    # low: the identical populations would look significantly different.
    rng = np.random.default_rng(9)
    u, o = _populations(rng, 100, 6, kper=4, sd_g=1.0, sd_r=0.2)
    g = np.arange(6).repeat(4)
    kw = dict(unlearned_masks={"s": True}, oracle_masks={"s": True}, unlearned_groups=g,
              oracle_groups=g, n_bootstrap=0, n_permutations=30)
    models = klom_report(u, o, **kw)
    obs = klom_report(u, o, null="observations", **kw)
    assert models["s_p95_pvalue"] > 0.1
    assert obs["s_p95_pvalue"] == pytest.approx(1 / 31)
    assert obs["s_p95_null"] < models["s_p95_null"] - 1


def test_observation_null_keeps_each_examples_counts():
    rng = np.random.default_rng(10)
    u, o = rng.normal(size=(5, 30)), rng.normal(size=(4, 30))
    mu, mo = rng.random(u.shape) < 0.5, rng.random(o.shape) < 0.5
    obs = _klom._observations(u, o, mu, mo, (-100.0, 100.0), ("u", "o"))
    side0 = np.arange(9) < 5
    side = _klom._shuffle_sides(obs, side0, rng)
    np.testing.assert_array_equal(np.bincount(obs.col, side, minlength=30), mu.sum(0))
    assert not np.array_equal(side, side0[obs.row])


def _coverage(n_studies, n_fresh, n, m, interval, n_bootstrap, kper=1, frac=1.0, sd_g=0.0,
              sd_r=1.0, seed=0):
    """Share of studies whose 95% interval of (mean, P95) contains the expected value of
    the statistic over studies (estimated from ``n_fresh`` fresh studies)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(2, 2, n)
    g = np.arange(m).repeat(kper)
    kw = dict(unlearned_groups=g, oracle_groups=g, percentiles=(95,), n_permutations=0)

    def report(nb, iv=interval):
        u, o = _populations(rng, n, m, kper=kper, sd_g=sd_g, sd_r=sd_r, mu=mu)
        masks = [rng.random(a.shape) < frac for a in (u, o)]
        return klom_report(u, o, unlearned_masks={"s": masks[0]},
                           oracle_masks={"s": masks[1]}, n_bootstrap=nb, interval=iv, **kw)

    fresh = [report(0) for _ in range(n_fresh)]
    target = {k: np.mean([r[f"s_{k}"] for r in fresh]) for k in ("mean", "p95")}
    hits = {k: 0 for k in target}
    for _ in range(n_studies):
        rep = report(n_bootstrap)
        for k, t in target.items():
            lo, hi = rep[f"s_{k}_ci"]
            hits[k] += lo <= t <= hi
    return {k: h / n_studies for k, h in hits.items()}


def test_jackknife_interval_covers_and_percentile_bootstrap_misses():
    # fast version of the coverage study in klom_report's docstring: 8 + 8 models, 40
    # examples, 20 studies
    jack = _coverage(20, 60, 40, 8, "jackknife", 1)
    assert jack["mean"] >= 0.9 and jack["p95"] >= 0.9
    perc = _coverage(20, 60, 40, 8, "percentile", 30, seed=1)
    assert perc["mean"] <= 0.2 and perc["p95"] <= 0.2


@pytest.mark.slow
@pytest.mark.parametrize("setting", [
    dict(m=16),  # 16 + 16 models, every observation counted
    dict(m=8, kper=4, sd_g=0.7, sd_r=0.7),  # 8 originals x 4 runs, clustered
    dict(m=32, frac=0.25),  # sparse roles: about 8 observations per side and example
])
def test_jackknife_coverage_slow(setting):
    cov = _coverage(100, 200, 200, interval="jackknife", n_bootstrap=1, **setting)
    assert cov["mean"] >= 0.92 and cov["p95"] >= 0.92


@pytest.mark.slow
def test_bootstrap_intervals_miss_in_the_sparse_setting_slow():
    # 32 + 32 models, each observation counted with probability 1/4: measured P95
    # coverage percentile 0.00, centred 0.79, union 0.97, jackknife 0.98 (same studies)
    kw = dict(n_studies=100, n_fresh=200, n=200, m=32, frac=0.25)
    assert _coverage(interval="percentile", n_bootstrap=100, **kw)["p95"] <= 0.05
    assert _coverage(interval="centred", n_bootstrap=100, **kw)["p95"] < 0.9
    assert _coverage(interval="jackknife", n_bootstrap=1, **kw)["p95"] >= 0.95


@pytest.mark.parametrize("kwargs, match", [
    (dict(oracle_masks={"x": True}), "same"),
    (dict(unlearned_masks={}, oracle_masks={}), "same"),
    (dict(unlearned_masks=[True]), "dicts"),
    (dict(unlearned_groups=np.zeros(3)), "labels"),
    (dict(unlearned_groups=np.zeros(4)), "2 units"),
    (dict(percentiles=(95, 101)), "percentiles"),
    (dict(n_bootstrap=-1), "n_bootstrap"),
    (dict(confidence=1.0), "confidence"),
    (dict(interval="bca"), "interval"),
    (dict(null="rows"), "null"),
    (dict(binz=20), "unknown"),
    (dict(bins=1), "bins"),
])
def test_report_rejects_bad_inputs(kwargs, match):
    args = dict(unlearned_masks={"s": True}, oracle_masks={"s": True}, n_bootstrap=2,
                n_permutations=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        klom_report(np.zeros((4, 5)), np.zeros((4, 5)), **args)


def _paired_study(rng, n_units=12, runs=3, n=60, shift=0.0, pair_sd=1.0):
    """Two populations on one design: unit i of both shares a per-(unit, example) effect
    (same training data), so pairs are correlated; ``shift`` moves the first side."""
    base = rng.normal(0, 2, n)
    shared = rng.normal(0, pair_sd, (n_units, n))
    rows = lambda: (base + np.repeat(shared, runs, 0)  # noqa: E731
                    + rng.normal(0, 1, (n_units * runs, n)))
    groups = np.repeat(np.arange(n_units), runs)
    return rows() + shift, rows(), groups


def test_paired_null_is_calibrated_where_the_models_null_is_not():
    rng = np.random.default_rng(3)
    p_paired, p_models = [], []
    for _ in range(30):
        u, o, g = _paired_study(rng)
        masks = {"all": np.ones_like(u, bool)}
        kw = dict(unlearned_masks=masks, oracle_masks=masks, unlearned_groups=g,
                  oracle_groups=g, n_bootstrap=0, n_permutations=40,
                  seed=int(rng.integers(1 << 30)), percentiles=(95,))
        p_paired.append(klom_report(u, o, null="paired", **kw)["all_p95_pvalue"])
        p_models.append(klom_report(u, o, null="models", **kw)["all_p95_pvalue"])
    # exchangeable pairs: paired p-values spread over (0, 1]; the unpaired null, too high
    # because pairs make the two sides alike, gives p-values piled near 1
    assert 0.3 < np.mean(p_paired) < 0.7, np.mean(p_paired)
    assert np.mean(p_models) > 0.7 and np.mean(p_models) > np.mean(p_paired) + 0.15, (
        np.mean(p_models), np.mean(p_paired))
    u, o, g = _paired_study(rng, shift=1.5)
    masks = {"all": np.ones_like(u, bool)}
    rep = klom_report(u, o, unlearned_masks=masks, oracle_masks=masks, unlearned_groups=g,
                      oracle_groups=g, n_bootstrap=0, n_permutations=40, null="paired")
    assert rep["all_p95_pvalue"] < 0.05


def test_paired_null_needs_matching_units():
    u = np.zeros((6, 4))
    masks = {"all": np.ones((6, 4), bool)}
    with pytest.raises(ValueError, match="paired"):
        klom_report(u, u, unlearned_masks=masks, oracle_masks=masks,
                    unlearned_groups=[0, 0, 1, 1, 2, 2], oracle_groups=[0, 0, 1, 1, 3, 3],
                    n_permutations=5, null="paired")
    with pytest.raises(ValueError, match="paired"):
        klom_report(u, u[:4], unlearned_masks=masks, oracle_masks={"all": masks["all"][:4]},
                    n_permutations=5, null="paired")
