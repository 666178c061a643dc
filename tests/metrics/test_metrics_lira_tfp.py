"""LiRA's defaults reproduce tensorflow_privacy's scores to 1e-9.

The references below are NumPy transcriptions, written for this test, of the semantics of
tensorflow_privacy's ``advanced_mia.compute_score_lira(stat_target, stat_in, stat_out,
option, fix_variance, median_or_mean)`` and of ``research/mi_lira_2021/plot.py``'s
``generate_ours`` / ``generate_ours_offline``:

* ``compute_score_lira``: per example, the centre is the NaN-median (or NaN-mean) of its
  shadow observations per augmentation and the spread is ``nanstd`` (ddof 0, about the
  example's *mean*, also when the centre is the median); NaN centres or spreads are replaced
  by the column mean over examples. ``fix_variance=True`` instead takes one ``nanstd`` per
  population of all observations minus their example's centre, pooled over examples and
  augmentations (about the grand mean of those deviations). Scores are Gaussian
  log-densities with ``std + 1e-30``: ``-(log p_in - log p_out)`` averaged over
  augmentations ("online", option "both"), or ``log p_out`` ("offline", option "out"); low
  means member.
* ``plot.py``: each example's IN (OUT) observations in shadow order, truncated to the
  smallest IN (OUT) count over examples; centre ``np.median`` and spread ``np.std`` over
  shadows; ``fix_variance=True`` uses ``np.std`` of all raw IN values (uncentred) for both
  fits online and of all raw OUT values offline. Online prediction ``(-log p_in) -
  (-log p_out)`` averaged over augmentations, offline ``log p_out``; low means member.

jaxmu returns higher = member, so its scores are the negated references. The data are
skewed (gamma noise) so that medians, means and the grand mean of median-centred deviations
all differ, which the old jaxmu estimators (RMS about the median, one fixed variance per
augmentation) would get wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from jaxmu.metrics import lira
from jaxmu.metrics._lira import gaussian_fit

TOL = 1e-9


def _column_mean_fill(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    col = np.nanmean(a, axis=0)
    return np.where(np.isnan(a), col[None], a)


def tfp_compute_score_lira(stat_target, stat_in, stat_out, option, fix_variance,
                           median_or_mean):
    """Transcription of ``compute_score_lira`` semantics: ``stat_target`` ``[n, k]``,
    ``stat_in`` / ``stat_out`` lists of ``[m_i, k]`` arrays; low score = member."""
    avg = np.nanmedian if median_or_mean == "median" else np.nanmean

    def fit(stats):
        centre = _column_mean_fill([avg(x, axis=0) for x in stats])
        if fix_variance:
            spread = np.nanstd(np.concatenate([x - c[None] for x, c in zip(stats, centre,
                                                                           strict=True)]))
        else:
            spread = _column_mean_fill([np.nanstd(x, axis=0) for x in stats])
        return centre, spread

    target = np.asarray(stat_target, np.float64)
    c_out, s_out = fit(stat_out)
    log_out = scipy.stats.norm.logpdf(target, c_out, s_out + 1e-30)
    if option == "offline":
        return log_out.mean(axis=1)
    c_in, s_in = fit(stat_in)
    log_in = scipy.stats.norm.logpdf(target, c_in, s_in + 1e-30)
    return -(log_in - log_out).mean(axis=1)


def plot_generate(keep, scores, check_scores, *, online, fix_variance):
    """Transcription of ``plot.py``'s ``generate_ours`` (online) and
    ``generate_ours_offline``: ``keep`` ``[S, N]``, ``scores`` ``[S, N, A]``,
    ``check_scores`` ``[T, N, A]``; returns ``[T, N]`` predictions, low = member."""
    n = scores.shape[1]
    dat_in = [scores[keep[:, j], j, :] for j in range(n)]
    dat_out = [scores[~keep[:, j], j, :] for j in range(n)]
    in_size = min(len(x) for x in dat_in)
    out_size = min(len(x) for x in dat_out)
    d_in = np.array([x[:in_size] for x in dat_in])  # [N, m, A]
    d_out = np.array([x[:out_size] for x in dat_out])
    mean_in, mean_out = np.median(d_in, 1), np.median(d_out, 1)
    if fix_variance:
        std_in = np.std(d_in)
        std_out = std_in if online else np.std(d_out)
    else:
        std_in, std_out = np.std(d_in, 1), np.std(d_out, 1)
    preds = []
    for sc in check_scores:
        log_out = scipy.stats.norm.logpdf(sc, mean_out, std_out + 1e-30)
        if online:
            log_in = scipy.stats.norm.logpdf(sc, mean_in, std_in + 1e-30)
            preds.append((-log_in + log_out).mean(1))
        else:
            preds.append(log_out.mean(1))
    return np.array(preds)


def _skewed(seed, s=32, t=6, n=60, aug=1, balanced=False):
    """Shadow and target statistics ``[M, N, A]`` with gamma (right-skewed) noise of
    per-example scale, a member shift, and a correlated second augmentation."""
    rng = np.random.default_rng(seed)
    m = s + t
    if balanced:  # every example IN for exactly s/2 shadows (and t/2 targets)
        keep = np.concatenate([np.argsort(rng.random((s, n)), 0) < s // 2,
                               np.argsort(rng.random((t, n)), 0) < t // 2])
    else:
        keep = rng.random((m, n)) < 0.5
    mu = rng.normal(1.0, 3.0, n)
    scale = rng.uniform(0.5, 2.0, n)
    base = mu + scale * rng.gamma(1.5, 1.0, (m, n)) + 1.2 * keep
    views = [base] + [base + 0.4 * rng.gamma(2.0, 1.0, (m, n)) - 0.3 for _ in range(aug - 1)]
    stats = np.stack(views, axis=-1)
    return stats[:s], keep[:s], stats[s:], keep[s:]


def _lists(stats, keep):
    n = stats.shape[1]
    return ([stats[keep[:, j], j] for j in range(n)], [stats[~keep[:, j], j]
                                                       for j in range(n)])


@pytest.mark.parametrize("aug", [1, 2])
@pytest.mark.parametrize("variance", ["per_example", "global"])
@pytest.mark.parametrize("centre", ["median", "mean"])
@pytest.mark.parametrize("attack", ["online", "offline_density"])
def test_scores_equal_compute_score_lira(attack, centre, variance, aug):
    sh, keep, tg, tkeep = _skewed(seed=aug, aug=aug)
    assert min(keep.sum(0).min(), (~keep).sum(0).min()) >= 2  # no fallback, no empty fit
    stat_in, stat_out = _lists(sh, keep)
    rep = lira(sh if aug > 1 else sh[..., 0], keep, tg if aug > 1 else tg[..., 0], tkeep,
               attack=attack, centre=centre, variance=variance)
    option = "online" if attack == "online" else "offline"
    for i in range(tg.shape[0]):
        ref = tfp_compute_score_lira(tg[i], stat_in, stat_out, option,
                                     variance == "global", centre)
        np.testing.assert_allclose(rep["scores"][i], -ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("aug", [1, 2])
@pytest.mark.parametrize("fix_variance", [False, True])
@pytest.mark.parametrize("online", [True, False])
def test_scores_equal_plot_py(online, fix_variance, aug):
    sh, keep, tg, tkeep = _skewed(seed=10 + aug, aug=aug, balanced=True)
    ref = plot_generate(keep, sh, tg, online=online, fix_variance=fix_variance)
    rep = lira(sh, keep, tg, tkeep, attack="online" if online else "offline_density",
               variance="global_raw" if fix_variance else "per_example")
    np.testing.assert_allclose(rep["scores"], -ref, rtol=0, atol=TOL)


def test_old_estimators_stay_available_and_differ_on_skewed_data():
    sh, keep, _, _ = _skewed(seed=3, aug=2)
    mask = np.asarray(keep)
    x = sh[:, 0, 0][mask[:, 0]]  # example 0, augmentation 0, IN observations
    med = np.median(x)
    _, sd_tfp, _ = gaussian_fit(sh, mask, centre="median")
    _, sd_rms, _ = gaussian_fit(sh, mask, centre="median", spread="rms_centre")
    assert sd_tfp[0, 0] == pytest.approx(np.std(x), rel=1e-12)
    assert sd_rms[0, 0] == pytest.approx(np.sqrt(np.mean((x - med) ** 2)), rel=1e-12)
    assert sd_rms[0, 0] > sd_tfp[0, 0]  # RMS about the median >= the std about the mean
    # Fixed variance: pooled over augmentations (TFP) vs one value per augmentation.
    mu, sd_g, _ = gaussian_fit(sh, mask, centre="median", variance="global")
    _, sd_pa, _ = gaussian_fit(sh, mask, centre="median", variance="global_per_aug",
                               spread="rms_centre")
    dev = [(sh[mask[:, j], j] - mu[j]) for j in range(sh.shape[1])]
    pooled = np.concatenate(dev)
    assert np.all(sd_g == pytest.approx(np.std(pooled), rel=1e-12))
    for a in range(2):
        col = pooled[:, a]
        assert np.all(sd_pa[:, a] == pytest.approx(np.sqrt(np.mean(col ** 2)), rel=1e-12))
    assert abs(pooled.mean()) > 0.05  # median-centred skewed deviations: nonzero mean


@pytest.mark.parametrize("kwargs, match", [
    (dict(spread="mad"), "spread"),
    (dict(variance="fixed"), "variance"),
    (dict(centre="mode"), "centre"),
    (dict(attack="offline_tail"), "attack"),
])
def test_lira_bad_options(kwargs, match):
    sh, keep, tg, tkeep = _skewed(seed=0)
    with pytest.raises(ValueError, match=match):
        lira(sh, keep, tg, tkeep, **kwargs)
