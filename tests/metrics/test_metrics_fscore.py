"""Competition F-score: golden cases, crafted populations vs the official-loop transcription."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.fscore import reference_epsilons, reference_forget_quality
from jaxmu.metrics import (
    competition_score,
    epsilon_points,
    forget_quality,
    forget_quality_details,
    logit_scaled_confidence,
)
from jaxmu.metrics._fscore import per_example_epsilons
from jaxmu.metrics._fscore_grid import epsilon_table


def _rng(seed=0):
    return np.random.default_rng(seed)


def _check_vs_reference(u, r, n_ref=None):
    """Vectorised vs the transcription on the first ``n_ref`` examples (identical eps and
    score), and the lattice fast path vs the exact per-edge search on all examples."""
    res = forget_quality_details(u, r)
    sub = slice(None) if n_ref is None else slice(0, n_ref)
    f_ref, eps_ref = reference_forget_quality(u[:, sub], r[:, sub])
    np.testing.assert_array_equal(res.eps[sub], eps_ref)
    assert forget_quality(u[:, sub], r[:, sub])[0] == f_ref
    eps_exact, _ = per_example_epsilons(u, r, exact=True)
    np.testing.assert_array_equal(res.eps, eps_exact)
    return res


# ----------------------------------------------------------------------------- golden


def test_logit_scaled_confidence_golden():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    conf = logit_scaled_confidence(logits, np.array([0, 1]))
    # p_y / (1 - p_y): e^2 / 2 and 1 / 2.
    np.testing.assert_allclose(conf, [2.0 - np.log(2.0), -np.log(2.0)], rtol=0, atol=1e-14)
    assert conf.dtype == np.float64


def test_logit_scaled_confidence_matches_official_form_and_broadcasts():
    z = _rng().normal(size=(3, 5, 4)) * 3
    y = np.array([0, 1, 2, 3, 0])
    stable = logit_scaled_confidence(z, y)
    official = logit_scaled_confidence(z, y, stable=False)
    assert stable.shape == (3, 5)
    np.testing.assert_allclose(stable, official, atol=1e-9)
    z_copy = z.copy()
    logit_scaled_confidence(z, y, stable=False)
    np.testing.assert_array_equal(z, z_copy)  # never mutates (the reference does)
    # Extreme logits: the official form saturates near +-103.6, the logit form does not.
    big = np.array([[500.0, 0.0]])
    assert logit_scaled_confidence(big, [0])[0] == pytest.approx(500.0)
    assert logit_scaled_confidence(big, [0], stable=False)[0] == pytest.approx(103.6, abs=0.1)
    # Augmentation axis [M, N, A, K] with labels [N, 1].
    za = _rng(1).normal(size=(2, 5, 2, 4))
    assert logit_scaled_confidence(za, y[:, None]).shape == (2, 5, 2)


@pytest.mark.parametrize(
    "eps, points",
    [(0.0, 1.0), (0.49, 1.0), (0.5, 0.5), (1.2, 0.25), (6.49, 2.0**-12), (6.5, 2.0**-13),
     (6.99, 2.0**-13), (7.0, 0.0), (50.0, 0.0)],
)
def test_epsilon_points_n512(eps, points):
    assert epsilon_points(np.array([eps]), 512)[0] == points


def test_epsilon_points_n64_and_n2():
    # max_eps = ceil(ln 63) = 5: 10 buckets.
    np.testing.assert_array_equal(epsilon_points([4.99, 5.0], 64), [2.0**-9, 0.0])
    np.testing.assert_array_equal(epsilon_points([0.0], 2), [0.0])  # ln(1) = 0: no bucket


def test_epsilon_table_rules():
    t = epsilon_table(4)[:-1].reshape(5, 5)  # [fn, fp]
    assert t[0, 0] == np.inf  # perfect separation
    assert np.isnan(t[0, 2]) and np.isnan(t[3, 0])  # exactly one zero: discarded
    expect = np.log(1 - 1e-5 - np.float32(0.25)) - np.log(np.float32(0.25))
    assert t[1, 1] == np.float32(expect)  # ln(3) in float32
    assert t[2, 2] == 0.0  # clipped at 0
    assert np.isnan(t[4, 4])  # both log arguments negative


def test_single_outlier_each_gives_ln_n_minus_one():
    # Two separated clusters, each with one model inside the other's range: the best
    # threshold has FPR = FNR = 1/N, so eps = ln((1 - delta - 1/N) * N) in float32.
    n = 64
    rng = _rng(2)
    a = rng.uniform(0.0, 1.0, n)
    b = rng.uniform(10.0, 11.0, n)
    a[0], b[0] = 10.5, 0.5
    f, eps = forget_quality(a[:, None], b[:, None])
    rate = np.float32(1) / np.float32(n)
    expect = np.float32(np.log(1 - 1e-5 - rate) - np.log(rate))
    assert eps[0] == pytest.approx(float(expect), abs=0)
    assert f == 2.0**-8  # ln 63 = 4.14 lies in bucket [4, 4.5)
    assert reference_epsilons(a[:, None], b[:, None])[0] == eps[0]


# ----------------------------------------------------------------------------- crafted


def _pops(n, s, seed, shift=0.0, scale=1.0, decimals=None):
    rng = _rng(seed)
    mu = rng.normal(2.0, 1.0, s)
    sd = rng.uniform(0.5, 1.5, s)
    r = mu + sd * rng.standard_normal((n, s))
    u = mu + shift * sd + scale * sd * rng.standard_normal((n, s))
    if decimals is not None:
        u, r = np.round(u, decimals), np.round(r, decimals)
    return u, r


@pytest.mark.parametrize(
    "shift, scale, decimals",
    [(0.0, 1.0, None), (0.5, 1.0, None), (1.5, 1.0, None), (0.0, 0.6, None), (0.0, 1.8, None),
     (0.3, 1.0, 2), (0.0, 0.4, 1)],
    ids=["identical", "shift0.5", "shift1.5", "narrower", "wider", "ties0.01", "ties0.1"],
)
def test_crafted_populations_match_reference_n64(shift, scale, decimals):
    u, r = _pops(64, 12, seed=int(10 * shift + 7 * scale), shift=shift, scale=scale,
                 decimals=decimals)
    _check_vs_reference(u, r, n_ref=2)


def test_near_tie_corrections_are_exercised():
    # Values on the 0.01 grid sit exactly on many band edges: the lattice counts need exact
    # corrections, and the result still equals the exact per-edge search.
    from jaxmu.metrics._fscore_grid import _band_setup, _left_counts_lattice

    u, r = _pops(64, 12, seed=14, shift=0.3, decimals=2)
    rp = np.median(r, 0) > np.median(u, 0)
    bpos, _, width, rmin, rmax, n_right = _band_setup(np.where(rp, r, u).T, np.where(rp, u, r).T)
    sel = n_right == n_right[0]
    _, (_, _, _, d) = _left_counts_lattice(bpos[sel], rmin[sel], rmax[sel], n_right[sel],
                                           width[sel])
    assert np.count_nonzero(d) > 0
    _check_vs_reference(u, r, n_ref=1)


def test_matches_reference_n512_both_band_grid_sizes():
    # 512 models (the official count); pick one example with 400 and one with 401 right
    # edges (the two lattice fast paths).
    from jaxmu.metrics._fscore_grid import _band_setup

    u, r = _pops(512, 64, seed=3, shift=0.2)
    rp = np.median(r, 0) > np.median(u, 0)
    pos, neg = np.where(rp, r, u).T, np.where(rp, u, r).T
    n_right = _band_setup(pos, neg)[-1]
    sel = [int(np.flatnonzero(n_right == 400)[0]), int(np.flatnonzero(n_right == 401)[0])]
    res = _check_vs_reference(u[:, sel], r[:, sel])
    assert res.max_epsilon == 7.0


def test_tiny_ranges_single_grid_point():
    # Pooled range below 0.01: ceil(100 * range) = 1 single threshold (torch.linspace with
    # one step returns the start).
    rng = _rng(12)
    u, r = rng.uniform(0, 0.005, (16, 3)), rng.uniform(0.003, 0.008, (16, 3))
    _check_vs_reference(u, r)


def test_large_magnitudes_use_the_exact_band_search():
    rng = _rng(13)
    u = 1e6 + rng.normal(size=(16, 2))
    r = 1e6 + 0.3 + rng.normal(size=(16, 2))
    _check_vs_reference(u, r)
    with pytest.raises(ValueError, match="exceed"):
        forget_quality(u + 1e9, r)


def test_peaky_deterministic_unlearner_scores_zero():
    r = _rng(4).normal(size=(512, 10))
    u = np.tile(_rng(5).normal(size=(1, 10)), (512, 1))  # 512 identical unlearned models
    res = forget_quality_details(u, r)
    np.testing.assert_array_equal(res.eps, 50.0)
    assert res.score == 0.0 and res.n_peaky == 10
    np.testing.assert_array_equal(reference_epsilons(u, r), 50.0)


def test_peaky_rule_is_the_one_percent_range_ratio():
    r = _rng(6).normal(size=(64, 1))
    u = r.mean() + 0.0099 * (r - r.mean())  # range ratio 0.0099 < 1%: peaky
    assert forget_quality_details(u, r).peaky[0]
    u = r.mean() + 0.0101 * (r - r.mean())  # just above: the grids decide
    assert not forget_quality_details(u, r).peaky[0]


def test_perfect_separation_caps_at_50():
    rng = _rng(7)
    u, r = rng.normal(size=(64, 4)), rng.normal(20.0, 1.0, size=(64, 4))
    res = _check_vs_reference(u, r, n_ref=1)
    np.testing.assert_array_equal(res.eps, 50.0)
    assert res.score == 0.0 and res.n_peaky == 0


def test_both_constant_populations_jaxmu_rule():
    u = np.array([[1.0, 1.0], [1.0, 1.0]])
    r = np.array([[1.0, 2.0], [1.0, 2.0]])
    res = forget_quality_details(u, r)
    np.testing.assert_array_equal(res.eps, [0.0, 50.0])
    assert res.constant.all()


def test_no_surviving_threshold_falls_back_to_data_points():
    # Overlap narrower than a grid step: the official scorer aborts (NaN in the oracle).
    u, r = np.array([[1.004], [1.0]]), np.array([[1.001], [1.0]])
    assert np.isnan(reference_epsilons(u, r)[0])
    res = forget_quality_details(u, r)
    assert res.fallback[0] and res.eps[0] == 0.0  # FPR = FNR = 1/2 gives log(1 - 2e-5) < 0


def test_null_calibration_and_monotonicity():
    # Spec §1.10/§1.12: identical distributions give F ~ 0.18-0.2 at N = 512; F falls as
    # the mean shift grows and as the unlearned spread shrinks.
    u, r = _pops(512, 300, seed=8)
    f0 = forget_quality(u, r)[0]
    assert 0.15 <= f0 <= 0.23
    f_shift = [forget_quality(*_pops(512, 150, seed=9, shift=s))[0] for s in (0.5, 1.0)]
    f_narrow = forget_quality(*_pops(512, 150, seed=10, scale=0.5))[0]
    assert f0 > f_shift[0] > f_shift[1]
    assert f_narrow < 0.5 * f0


def test_competition_score_is_f_times_utility_ratios_unclipped():
    u, r = _pops(64, 6, seed=11)
    f, _ = forget_quality(u, r)
    s = competition_score(u, r, ra_u=[0.9, 1.0], ra_r=0.95, ta_u=0.9, ta_r=0.8)
    assert s == pytest.approx(f * (0.95 / 0.95) * (0.9 / 0.8))
    assert s > f  # no clipping of factors above 1


@pytest.mark.parametrize(
    "u, r, match",
    [(np.zeros((4, 3)), np.zeros((5, 3)), "same"),
     (np.zeros((1, 3)), np.zeros((1, 3)), "at least 2 models"),
     (np.full((4, 3), np.nan), np.zeros((4, 3)), "NaN"),
     (np.zeros(4), np.zeros(4), "2-D")],
)
def test_forget_quality_bad_inputs(u, r, match):
    with pytest.raises(ValueError, match=match):
        forget_quality(u, r)


def test_bad_inputs_elsewhere():
    with pytest.raises(ValueError, match="ra_r"):
        competition_score(np.zeros((2, 1)), np.ones((2, 1)), 1.0, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="classes"):
        logit_scaled_confidence(np.zeros((3, 1)), [0, 0, 0])
    with pytest.raises(ValueError, match="labels"):
        logit_scaled_confidence(np.zeros((3, 2)), [0, 2, 0])
    with pytest.raises(ValueError, match="NaN"):
        logit_scaled_confidence(np.array([[np.nan, 0.0]]), [0])
    with pytest.raises(ValueError, match="broadcast"):
        logit_scaled_confidence(np.zeros((3, 2)), [0, 1])
