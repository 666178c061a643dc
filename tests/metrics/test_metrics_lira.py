"""U-LiRA and LiRA on synthetic Gaussian populations with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from jaxmu.metrics import bootstrap_ci, lira, membership_statistic, ulira
from jaxmu.metrics._lira import gaussian_fit, offline_score, online_score


def _worlds(delta, n=200, s=32, t=24, seed=0, aug=None):
    """Per-example Gaussians: H1 = N(mu_n + delta, 1), H0 = N(mu_n, 1)."""
    rng = np.random.default_rng(seed)
    shape = (n,) if aug is None else (n, aug)
    mu = rng.normal(0.0, 3.0, shape)
    sh_u = mu + delta + rng.standard_normal((s,) + shape)
    sh_r = mu + rng.standard_normal((s,) + shape)
    truth = np.arange(t) % 2 == 0  # half the targets unlearned, half retrained
    tg = mu + rng.standard_normal((t,) + shape)
    tg[truth] += delta
    return sh_u, sh_r, tg, truth


def test_gaussian_fit_and_scores_golden():
    stats = np.array([[1.0], [3.0], [10.0]])[:, :, None]  # [M=3, N=1, A=1]
    mask = np.array([[True], [True], [False]])
    mu, sd, count = gaussian_fit(stats, mask)
    assert mu[0, 0] == 2.0 and sd[0, 0] == 1.0 and count[0] == 2
    mu_med, _, _ = gaussian_fit(np.array([[1.0], [2.0], [9.0]])[:, :, None],
                                np.ones((3, 1), bool), centre="median")
    assert mu_med[0, 0] == 2.0
    # log N(0.5; 1, 1) - log N(0.5; -1, 1) = -0.125 + 1.125 = 1.
    x = np.full((1, 1, 1), 0.5)
    one = np.ones((1, 1))
    assert online_score(x, (one, one), (-one, one))[0, 0] == pytest.approx(1.0)
    assert offline_score(np.zeros((1, 1, 1)), (one * 0, one))[0, 0] == 0.0  # at the centre


def test_global_variance_fallback():
    rng = np.random.default_rng(1)
    stats = rng.normal(size=(10, 3, 1))
    mask = np.ones((10, 3), bool)
    mask[2:, 0] = False  # example 0: 2 observations < min_count
    stats[:, 1, 0] = 5.0  # example 1: zero spread
    mu, sd, count = gaussian_fit(stats, mask, min_count=4)
    glob = np.sqrt(np.sum(mask[..., None] * (stats - mu) ** 2) / mask.sum())
    assert sd[0, 0] == pytest.approx(glob) and sd[1, 0] == pytest.approx(glob)
    assert sd[2, 0] == pytest.approx(stats[:, 2, 0].std())
    _, sd_g, _ = gaussian_fit(stats, mask, variance="global")
    np.testing.assert_allclose(sd_g, glob)


def test_ulira_identical_worlds_is_chance():
    rep = ulira(*_worlds(0.0))
    assert abs(rep["ulira_accuracy"] - 0.5) < 0.05
    assert abs(rep["auc"] - 0.5) < 0.05
    assert rep["per_example_accuracy"].shape == (200,)
    assert rep["scores"].shape == (24, 200)


def test_ulira_separated_worlds_is_near_one():
    rep = ulira(*_worlds(6.0))
    assert rep["ulira_accuracy"] > 0.97 and rep["auc"] > 0.99
    assert rep["ulira_best_acc"] >= rep["ulira_accuracy"]
    assert rep["tpr_at_1fpr"] > 0.9
    # Offline: the threshold-0 rule is "above the never-seen centre", so never-seen targets
    # are misclassified half the time (balanced accuracy ~0.75); the ROC is still perfect.
    off = ulira(None, *_worlds(6.0)[1:], online=False)
    assert off["auc"] > 0.99 and off["ulira_best_acc"] > 0.97
    assert abs(off["ulira_accuracy"] - 0.75) < 0.05
    mid = ulira(*_worlds(1.0))
    assert 0.6 < mid["ulira_accuracy"] < 0.8


def test_ulira_population_masks_equal_separate_arrays():
    sh_u, sh_r, tg, truth = _worlds(2.0, n=50, s=16, t=8, seed=2)
    direct = ulira(sh_u, sh_r, tg, truth)
    # One shadow array: rows 0-15 forgot every example, rows 16-31 never saw them.
    both = np.concatenate([sh_u, sh_r])
    forgot = np.r_[np.ones(16, bool), np.zeros(16, bool)][:, None] & np.ones((1, 50), bool)
    pooled = ulira(both, both, tg, truth, shadow_unlearned_mask=forgot,
                   shadow_retrained_mask=~forgot)
    np.testing.assert_allclose(pooled["scores"], direct["scores"])
    # Per-pair truth and a target mask.
    pair_truth = np.broadcast_to(truth[:, None], tg.shape)
    half = np.zeros(tg.shape, bool)
    half[:, :25] = True
    masked = ulira(sh_u, sh_r, tg, pair_truth, target_mask=half)
    assert masked["n_positive"] + masked["n_negative"] == 8 * 25
    assert np.all(np.isnan(masked["per_example_accuracy"][25:]))


def test_ulira_augmentations_average_log_ratios():
    sh_u, sh_r, tg, truth = _worlds(1.0, n=40, s=16, t=8, seed=3)
    one = ulira(sh_u, sh_r, tg, truth)
    two = ulira(*(np.stack([x, x], -1) for x in (sh_u, sh_r, tg)), truth)
    np.testing.assert_allclose(two["scores"], one["scores"])
    rep = ulira(*_worlds(1.0, n=40, s=16, t=8, seed=4, aug=2))
    assert rep["scores"].shape == (8, 40)


def test_ulira_correctness_statistic_and_bootstrap():
    rng = np.random.default_rng(5)
    n, k = 60, 3
    y = rng.integers(0, k, n)
    # Unlearned models are always right on x; never-seen models right with prob 0.5.
    right = 5.0 * np.eye(k)[y]
    logits_u = np.broadcast_to(right, (16, n, k))
    logits_r = np.where(rng.random((16, n, 1)) < 0.5, right, -right)
    st_u = membership_statistic(logits_u, y, kind="correctness")
    st_r = membership_statistic(logits_r, y, kind="correctness")
    assert set(np.unique(st_u)) == {1.0} and set(np.unique(st_r)) <= {0.0, 1.0}
    tg = np.concatenate([st_u[:4], st_r[:4]])
    truth = np.r_[np.ones(4, bool), np.zeros(4, bool)]
    rep = ulira(st_u[4:], st_r[4:], tg, truth, n_bootstrap=200)
    assert np.all(np.isfinite(rep["scores"]))  # zero spreads are backed up, not NaN
    assert rep["ulira_accuracy"] > 0.6
    lo, hi = rep["ulira_accuracy_ci"]
    assert lo <= rep["ulira_accuracy"] <= hi
    value, lo2, hi2 = bootstrap_ci(rep["per_target_accuracy"])
    assert lo2 <= value <= hi2


def test_lira_members_vs_nonmembers():
    rng = np.random.default_rng(6)
    s, t, n = 32, 8, 300
    mu = rng.normal(0, 3, n)
    in_mask = rng.random((s + t, n)) < 0.5
    stats = mu + rng.standard_normal((s + t, n)) + 3.0 * in_mask
    for attack in ("online", "offline", "global"):
        rep = lira(stats[:s], in_mask[:s], stats[s:], in_mask[s:], attack=attack)
        assert rep["scores"].shape == (t, n)
        floor = 0.95 if attack != "global" else 0.6
        assert rep["auc"] > floor, attack
    rep = lira(stats[:s], in_mask[:s], stats[s:], in_mask[s:], variance="global",
               centre="mean")
    assert rep["best_accuracy"] > 0.9
    same = mu + rng.standard_normal((s + t, n))  # membership does not change the statistic
    null = lira(same[:s], in_mask[:s], same[s:], in_mask[s:])
    assert abs(null["auc"] - 0.5) < 0.05 and abs(null["balanced_accuracy"] - 0.5) < 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(target_is_unlearned=np.ones(8, bool)), "both classes"),
     (dict(target_stats=np.zeros((8, 7))), "examples"),
     (dict(target_stats=np.full((8, 10), np.nan)), "NaN"),
     (dict(variance="robust"), "variance"),
     (dict(shadow_unlearned_stats=None), "online"),
     (dict(shadow_retrained_stats=np.zeros((1, 10))), "at least 2 models"),
     (dict(shadow_retrained_mask=np.zeros((4, 4), bool)), "broadcast")],
)
def test_ulira_bad_inputs(kwargs, match):
    rng = np.random.default_rng(7)
    args = dict(shadow_unlearned_stats=rng.normal(size=(6, 10)),
                shadow_retrained_stats=rng.normal(size=(6, 10)),
                target_stats=rng.normal(size=(8, 10)),
                target_is_unlearned=np.arange(8) % 2 == 0)
    args.update(kwargs)
    extra = {k: args.pop(k) for k in ("variance", "shadow_retrained_mask") if k in args}
    with pytest.raises(ValueError, match=match):
        ulira(args["shadow_unlearned_stats"], args["shadow_retrained_stats"],
              args["target_stats"], args["target_is_unlearned"], **extra)


def test_lira_bad_attack():
    z = np.zeros((4, 5))
    with pytest.raises(ValueError, match="attack"):
        lira(z, z > 0, z, z > 0, attack="tail")
