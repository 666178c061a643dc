"""RMIA and U-RMIA (jaxmu.metrics._rmia).

Golden values come from a hand computation (two references, three examples, two population
examples) and from an independent transcription of Privacy Meter's offline ``run_rmia``
(written below from its description: OUT signals of each example, the top ``k`` kept when
``k > 1``, IN signals converted by ``(p + a - 1) / a`` when ``k = 1``, ``Pr(x) = ((1 + a) /
2) * mean_OUT + (1 - a) / 2``, score = share of population ratios beaten by more than 1).

The simulated studies draw true-label probabilities ``sigmoid(mu_x + b_m + e_{m,x} +
shift * member)`` (example difficulty, model effect, model-by-example noise), with every
example a member of exactly half of the models (``_population``). Coverage of the 95% AUC
interval under the null (``shift = 0``, 8 references, 8 targets, 300 examples, 200
resamples; seed s for study s):

* targets as units, references redrawn and ``Pr(x)`` recomputed (``reference_groups``, the
  centred interval; ``test_null_coverage``): 189/200 (0.945); 18/20 in the fast version
  (100 resamples);
* targets as units, ``Pr(x)`` fixed: 361/400 (0.90); 366/400 (0.915) with 16 targets. The
  fixed-reference interval misses the noise of the reference estimate and suffers from few
  target clusters, so the pipeline should pass ``reference_groups``.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxmu.metrics import rmia, rmia_scores, rmia_signal, tune_offline_a, u_rmia
from jaxmu.metrics._rmia import reference_probability

T_, F_ = True, False


# --------------------------------------------------------------------------------------
# Hand-computed case
# --------------------------------------------------------------------------------------

# Columns: x0, x1, x2 (scored examples), z0, z1 (population). Two references.
REF_P = np.array([[0.8, 0.5, 0.6, 0.4, 0.2],
                  [0.6, 0.7, 0.9, 0.6, 0.4]])
REF_IN = np.array([[T_, F_, T_, F_, F_],
                   [F_, T_, T_, F_, F_]])
REF_OUT = np.array([[F_, T_, F_, T_, T_],
                    [T_, F_, F_, T_, T_]])
TARGET_P = np.array([[0.9, 0.3, 0.5, 0.5, 0.68]])
Z = np.array([F_, F_, F_, T_, T_])


def test_hand_computed_reference_probability():
    a = 0.3
    # online: x0 (0.8 + 0.6)/2, x1 (0.7 + 0.5)/2; x2 has IN only (mean 0.75):
    # P_out = (0.75 + a - 1)/a = 1/6, Pr = (0.75 + 1/6)/2; z0, z1 OUT only:
    # Pr = ((1 + a)/2) P_out + (1 - a)/2 with P_out 0.5 and 0.3.
    online = [0.7, 0.6, (0.75 + 1 / 6) / 2, 0.65 * 0.5 + 0.35, 0.65 * 0.3 + 0.35]
    # offline: ((1 + a)/2) P_out + (1 - a)/2 with P_out 0.6, 0.5, 1/6 (converted), 0.5, 0.3
    offline = [0.65 * 0.6 + 0.35, 0.65 * 0.5 + 0.35, 0.65 / 6 + 0.35, 0.675, 0.545]
    np.testing.assert_allclose(
        reference_probability(REF_P, REF_IN, REF_OUT, online=True, offline_a=a), online,
        rtol=1e-12)
    np.testing.assert_allclose(
        reference_probability(REF_P, REF_IN, REF_OUT, online=False, offline_a=a), offline,
        rtol=1e-12)
    assert online[2] == pytest.approx(offline[2])  # (P_in + P_out)/2 = offline value


def test_hand_computed_scores_online_and_offline():
    # Ratios online: x0 0.9/0.7 = 1.2857, x1 0.3/0.6 = 0.5, x2 0.5/0.4583 = 1.0909,
    # z0 0.5/0.675 = 0.7407, z1 0.68/0.545 = 1.2477. Offline x0: 0.9/0.74 = 1.2162,
    # x1 0.3/0.675 = 0.4444, the rest equal online.
    on = rmia_scores(TARGET_P, REF_P, REF_IN, REF_OUT, Z, online=True)
    off = rmia_scores(TARGET_P, REF_P, REF_IN, REF_OUT, Z, online=False)
    # x0 beats both z online, only z0 offline; x1 none; x2 z0 only; each z is compared
    # with the other z (itself excluded): z0 < z1.
    np.testing.assert_array_equal(on, [[1.0, 0.0, 0.5, 0.0, 1.0]])
    np.testing.assert_array_equal(off, [[0.5, 0.0, 0.5, 0.0, 1.0]])
    # gamma = 1.5: x0 online 1.2857/0.7407 = 1.74 > 1.5 but 1.2857/1.2477 = 1.03 < 1.5;
    # x2 1.0909/0.7407 = 1.47 < 1.5; z1/z0 = 1.68 > 1.5. Offline x0 1.2162/0.7407 = 1.64.
    for online in (True, False):
        g = rmia_scores(TARGET_P, REF_P, REF_IN, REF_OUT, Z, online=online, gamma=1.5)
        np.testing.assert_array_equal(g, [[0.5, 0.0, 0.0, 0.0, 1.0]])
    # gamma = 2: nothing beats anything by a factor 2 except nothing (z1/z0 = 1.68).
    np.testing.assert_array_equal(
        rmia_scores(TARGET_P, REF_P, REF_IN, REF_OUT, Z, gamma=2.0), np.zeros((1, 5)))


def test_missing_out_half_is_clipped_at_zero_and_undefined_at_a_zero():
    # One reference that trained on the example, P_in = 0.2 < 1 - a: the inverse
    # (0.2 + 0.3 - 1)/0.3 < 0 is clipped to 0, so Pr = (1 - a)/2 offline, P_in/2 online.
    p, i, o = np.array([[0.2, 0.5]]), np.array([[T_, F_]]), np.array([[F_, T_]])
    np.testing.assert_allclose(reference_probability(p, i, o, online=False, offline_a=0.3),
                               [0.35, 0.65 * 0.5 + 0.35])
    np.testing.assert_allclose(reference_probability(p, i, o, online=True, offline_a=0.3),
                               [0.1, 0.65 * 0.5 + 0.35])
    # a = 0: P_in = 1 whatever P_out, no inverse: the IN-only example has no Pr(x).
    pr = reference_probability(p, i, o, online=False, offline_a=0.0)
    assert np.isnan(pr[0]) and pr[1] == pytest.approx(0.75)
    s = rmia_scores(np.array([[0.3, 0.4, 0.6]]), np.array([[0.2, 0.5, 0.5]]),
                    np.array([[T_, F_, F_]]), np.array([[F_, T_, T_]]), [F_, T_, T_],
                    offline_a=0.0)
    assert np.isnan(s[0, 0]) and np.all(np.isfinite(s[0, 1:]))
    # no observation at all: unscored, and left out of the population
    s = rmia_scores(np.array([[0.3, 0.4, 0.6]]), np.array([[0.2, 0.5, 0.5]]),
                    np.array([[F_, F_, F_]]), np.array([[F_, T_, T_]]), [T_, T_, T_])
    np.testing.assert_array_equal(s, [[np.nan, 0.0, 1.0]])


# --------------------------------------------------------------------------------------
# Privacy Meter transcription
# --------------------------------------------------------------------------------------

def _pm_out_signals(ref_signals, ref_members, k, a):
    """Privacy Meter's OUT signals ``[n, R]``: zeros at IN, the ``k`` largest kept if
    ``k > 1``; for ``k = 1`` the IN signals are converted by ``(p + a - 1) / a``."""
    out = ref_signals * ~ref_members
    if k > 1:
        return -np.sort(-out, axis=1)[:, :k]
    conv = (ref_signals + a - 1) / a if a != 0 else (ref_signals - 0.7) / 0.3
    return out + conv * ref_members


def _pm_run_rmia(target, ref_signals, ref_members, z_target, z_ref, a, k=None):
    """Offline RMIA of one target as Privacy Meter's ``run_rmia`` (samples x models)."""
    if k is None:
        k = max(ref_signals.shape[1] // 2, 1)
    mean_x = (1 + a) / 2 * _pm_out_signals(ref_signals, ref_members, k, a).mean(1) + (1 - a) / 2
    z_mem = np.zeros_like(z_ref, dtype=bool)
    mean_z = (1 + a) / 2 * _pm_out_signals(z_ref, z_mem, k, a).mean(1) + (1 - a) / 2
    ratio_x, ratio_z = target / mean_x, z_target / mean_z
    return np.mean(ratio_x[:, None] / ratio_z[None, :] > 1.0, axis=1)


@pytest.mark.parametrize("a", [0.0, 0.3, 0.7, 1.0])
def test_offline_scores_equal_privacy_meter_balanced_references(a):
    # 4 references, every scored example IN for exactly 2 (Privacy Meter's paired design,
    # where its top-2 of the OUT-masked signals are exactly the OUT signals). Privacy Meter
    # treats every population signal as OUT and keeps the 2 largest; jaxmu averages all
    # OUT observations, so each population column is OUT for 2 references and in neither
    # mask for the other 2, whose Privacy Meter signals are set to 0 (never in the top 2).
    rng = np.random.default_rng(0)
    r, nx, nz, t = 4, 60, 40, 3
    ref_p = rng.uniform(0.01, 1.0, (r, nx + nz))
    ref_in = np.zeros((r, nx + nz), bool)
    ref_in[:, :nx] = np.argsort(rng.random((r, nx)), axis=0) < 2
    ref_out = np.zeros_like(ref_in)
    ref_out[:, :nx] = ~ref_in[:, :nx]
    ref_out[:, nx:] = np.argsort(rng.random((r, nz)), axis=0) < 2
    target_p = rng.uniform(0.0, 1.0, (t, nx + nz))
    z = np.r_[np.zeros(nx, bool), np.ones(nz, bool)]
    ours = rmia_scores(target_p, ref_p, ref_in, ref_out, z, online=False, offline_a=a)
    z_ref = np.where(ref_out[:, nx:], ref_p[:, nx:], 0.0).T
    for i in range(t):
        pm = _pm_run_rmia(target_p[i, :nx], ref_p[:, :nx].T, ref_in[:, :nx].T,
                          target_p[i, nx:], z_ref, a)
        np.testing.assert_array_equal(ours[i, :nx], pm)
    assert 0.1 < ours[:, :nx].mean() < 0.9


@pytest.mark.parametrize("a", [0.3, 0.5, 1.0])
def test_offline_scores_equal_privacy_meter_one_reference(a):
    # One reference: Privacy Meter's conversion path. IN signals in [0.75, 1] keep the
    # converted value (p + a - 1)/a non-negative, where jaxmu's clip does nothing.
    rng = np.random.default_rng(1)
    nx, nz, t = 80, 50, 2
    ref_in = np.r_[rng.random(nx) < 0.5, np.zeros(nz, bool)][None]
    ref_p = np.where(ref_in, rng.uniform(0.75, 1.0, ref_in.shape),
                     rng.uniform(0.01, 1.0, ref_in.shape))
    target_p = rng.uniform(0.0, 1.0, (t, nx + nz))
    z = np.r_[np.zeros(nx, bool), np.ones(nz, bool)]
    ours = rmia_scores(target_p, ref_p, ref_in, ~ref_in, z, online=False, offline_a=a)
    for i in range(t):
        pm = _pm_run_rmia(target_p[i, :nx], ref_p[:, :nx].T, ref_in[:, :nx].T,
                          target_p[i, nx:], ref_p[:, nx:].T, a, k=1)
        np.testing.assert_array_equal(ours[i, :nx], pm)


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

def _random_case(seed, r=6, t=4, n=50):
    rng = np.random.default_rng(seed)
    ref_p = rng.uniform(0.01, 1.0, (r, n))
    ref_in = rng.random((r, n)) < 0.5
    target_p = rng.uniform(0.01, 1.0, (t, n))
    z = rng.random((t, n)) < 0.5
    return ref_p, ref_in, ~ref_in, target_p, z


@pytest.mark.parametrize("online", [True, False])
def test_scores_in_unit_interval_and_non_increasing_in_gamma(online):
    ref_p, ref_in, ref_out, target_p, z = _random_case(2)
    prev = None
    for gamma in (0.5, 0.9, 1.0, 1.1, 2.0, 5.0):
        s = rmia_scores(target_p, ref_p, ref_in, ref_out, z, online=online, gamma=gamma)
        assert np.all((s >= 0) & (s <= 1))
        if prev is not None:
            assert np.all(s <= prev)
        prev = s
    assert prev.max() < 1  # gamma = 5 is rarely met with ratios of uniform probabilities


def test_population_scores_are_ranks_and_invariances():
    ref_p, ref_in, ref_out, target_p, z = _random_case(3)
    s = rmia_scores(target_p, ref_p, ref_in, ref_out, z)
    for i in range(s.shape[0]):  # gamma = 1: a population example's rank among the others
        k = int(z[i].sum())
        np.testing.assert_allclose(np.sort(s[i, z[i]]), np.arange(k) / (k - 1))
    # ratios of one target scaled by a common factor: scores unchanged
    np.testing.assert_array_equal(
        rmia_scores(target_p * 0.5, ref_p, ref_in, ref_out, z), s)
    # online Pr(x) of an example with IN and OUT observations is a mean, so scaling every
    # reference probability changes nothing (the filled-in halves are affine, not linear)
    half = np.broadcast_to((np.arange(ref_p.shape[0]) % 2 == 0)[:, None], ref_p.shape)
    np.testing.assert_allclose(rmia_scores(target_p, ref_p * 0.25, half, ~half, z),
                               rmia_scores(target_p, ref_p, half, ~half, z))
    # reference order and column order do not matter
    perm_r = np.random.default_rng(0).permutation(ref_p.shape[0])
    np.testing.assert_array_equal(
        rmia_scores(target_p, ref_p[perm_r], ref_in[perm_r], ref_out[perm_r], z), s)
    perm_n = np.random.default_rng(1).permutation(ref_p.shape[1])
    np.testing.assert_array_equal(
        rmia_scores(target_p[:, perm_n], ref_p[:, perm_n], ref_in[:, perm_n],
                    ref_out[:, perm_n], z[:, perm_n]), s[:, perm_n])
    # a 1-D population mask is shared by every target
    np.testing.assert_array_equal(rmia_scores(target_p, ref_p, ref_in, ref_out, z[0]),
                                  rmia_scores(target_p, ref_p, ref_in, ref_out,
                                              np.broadcast_to(z[0], z.shape)))


def test_gamma_below_one_excludes_the_example_itself():
    # z0, z1 with ratios 1 and 2 (Pr = 0.5 from one OUT reference each); with gamma = 0.5
    # z1 beats z0 (2 > 0.5) and z0 does not beat z1 (1 < 1): self-comparisons (1 > 0.5)
    # must not count.
    s = rmia_scores([[0.25, 0.5]], [[0.5, 0.5]], [[F_, F_]], [[T_, T_]], [T_, T_],
                    online=False, offline_a=1.0, gamma=0.5)
    np.testing.assert_array_equal(s, [[0.0, 1.0]])


def test_rmia_signal():
    np.testing.assert_allclose(rmia_signal([[0.0, np.log(3.0)]], [1]), [0.75])
    r3 = np.sqrt(3.0)
    np.testing.assert_allclose(rmia_signal([[0.0, np.log(3.0)]], [1], temperature=2.0),
                               [r3 / (1 + r3)])
    # augmentation axis [M, N, A, C]: probabilities averaged over A (and inferred from
    # the shape when N != A)
    np.testing.assert_allclose(rmia_signal(np.zeros((4, 3, 2, 5)), [0, 1, 2]),
                               np.full((4, 3), 0.2))
    lg = np.array([[[[0.0, np.log(3.0)], [0.0, 0.0]], [[np.log(4.0), 0.0], [5.0, 5.0]]]])
    np.testing.assert_allclose(rmia_signal(lg, [1, 0], augmented=True), [[(0.75 + 0.5) / 2,
                                                          (0.8 + 0.5) / 2]])
    # stable for huge logits
    np.testing.assert_allclose(rmia_signal([[1000.0, 0.0], [0.0, 1000.0]], [0, 0]), [1.0, 0.0],
                               atol=1e-300)
    # N = A = 2 is ambiguous without augmented=
    with pytest.raises(ValueError, match="augmented"):
        rmia_signal(np.zeros((2, 2, 3)), [0, 1])
    np.testing.assert_allclose(rmia_signal(np.zeros((2, 2, 3)), [0, 1], augmented=False),
                               np.full((2, 2), 1 / 3))
    np.testing.assert_allclose(rmia_signal(np.zeros((2, 2, 3)), [0, 1], augmented=True),
                               np.full(2, 1 / 3))


# --------------------------------------------------------------------------------------
# Simulated populations
# --------------------------------------------------------------------------------------

def _population(seed, r=8, t=8, n=300, shift=0.0):
    """True-label probabilities of r references and t targets; every example a member of
    exactly half of the r + t models; members' logits shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    m = r + t
    ins = np.argsort(rng.random((m, n)), axis=0) < m // 2
    mu = rng.normal(1.0, 1.5, n)
    logit = mu + rng.normal(0, 0.5, (m, 1)) + rng.normal(0, 1.0, (m, n)) + shift * ins
    p = 1 / (1 + np.exp(-logit))
    return dict(ref_p=p[:r], ref_in=ins[:r], ref_out=~ins[:r], target_p=p[r:],
                target_positive=ins[r:])


@pytest.mark.parametrize("online", [True, False])
def test_shifted_members_are_detected(online):
    rep = rmia(**_population(0, shift=1.0), online=online, n_bootstrap=100,
               reference_groups=np.arange(8))
    assert rep["auc"] > 0.65 and rep["auc_ci"][0] > 0.6
    assert rep["balanced_accuracy"] > 0.58 and rep["best_accuracy"] >= rep["balanced_accuracy"]
    assert rep["tpr_at_1fpr"] > 0.01 and rep["n_unscored"] == 0
    assert rep["threshold"] == 0.5 and rep["scores"].shape == (8, 300)
    # balanced accuracy is at score > 0.5
    s, y = rep["scores"], _population(0, shift=1.0)["target_positive"]
    bal = 0.5 * (np.mean(s[y] > 0.5) + np.mean(s[~y] <= 0.5))
    assert rep["balanced_accuracy"] == pytest.approx(bal)


def test_exchangeable_members_give_chance():
    rep = rmia(**_population(1), n_bootstrap=100, reference_groups=np.arange(8))
    assert abs(rep["auc"] - 0.5) < 0.04 and abs(rep["balanced_accuracy"] - 0.5) < 0.04
    assert rep["auc_ci"][0] <= 0.5 <= rep["auc_ci"][1]
    # a non-member's score is its rank among the other non-members: mean 1/2
    s, y = rep["scores"], _population(1)["target_positive"]
    assert s[~y].mean() == pytest.approx(0.5, abs=1e-12)


def _coverage(seeds, n_bootstrap):
    hits = 0
    for seed in seeds:
        rep = rmia(**_population(seed), n_bootstrap=n_bootstrap, seed=seed,
                   reference_groups=np.arange(8))
        lo, hi = rep["auc_ci"]
        hits += lo <= 0.5 <= hi
    return hits


def test_null_coverage_fast():
    # 20 studies: 95% coverage gives >= 16 hits with probability 0.98
    assert _coverage(range(20), 100) >= 16


@pytest.mark.slow  # 200 studies x 200 rescorings: 102-112 s on the shared 2-core machine
def test_null_coverage():
    hits = _coverage(range(200), 200)
    assert 0.91 <= hits / 200 <= 0.99  # binomial 95% +- ~3 SD at n = 200


@pytest.mark.parametrize("r", [1, 2, 4])
@pytest.mark.parametrize("online", [True, False])
def test_few_references(r, online):
    st = _population(2, r=r, t=8, shift=1.5)
    rng = np.random.default_rng(r)
    ref_in = rng.random((r, 300)) < 0.5  # unbalanced: examples with IN (or OUT) only
    st.update(ref_in=ref_in, ref_out=~ref_in)
    assert r > 2 or np.any(ref_in.all(0)) and np.any((~ref_in).all(0))
    rep = rmia(**st, online=online)
    assert rep["n_unscored"] == 0
    assert np.all(np.isfinite(rep["reference_probability"]))
    assert rep["auc"] > 0.6


# --------------------------------------------------------------------------------------
# rmia options, u_rmia, tune_offline_a
# --------------------------------------------------------------------------------------

def test_rmia_default_population_and_target_mask():
    st = _population(3, n=60)
    y = st["target_positive"]
    mask = np.random.default_rng(0).random(y.shape) < 0.8
    rep = rmia(**st, target_mask=mask)
    s = rmia_scores(st["target_p"], st["ref_p"], st["ref_in"], st["ref_out"], mask & ~y)
    np.testing.assert_array_equal(rep["scores"], s)
    np.testing.assert_array_equal(rep["population_size"], np.sum(mask & ~y, axis=1))
    assert rep["n_positive"] == int(np.sum(mask & y))
    # [T] ground truth: whole targets positive or negative
    rep1 = rmia(st["ref_p"], st["ref_in"], st["ref_out"], st["target_p"][:2], [True, False],
                z_mask=np.ones(60, bool))
    assert rep1["n_positive"] == 60 and rep1["n_negative"] == 60


def test_one_reference_unit_reproduces_the_fixed_reference_interval():
    # With a single reference unit every redraw is the full reference set, so the
    # recomputed Pr(x) equals the point one and the percentile intervals coincide.
    st = _population(4, n=80)
    kw = dict(n_bootstrap=50, seed=3, interval="percentile", target_groups=np.arange(8) // 2)
    fixed = rmia(**st, **kw)
    refit = rmia(**st, reference_groups=np.zeros(8, int), **kw)
    for key in ("auc_ci", "balanced_accuracy_ci", "tpr_at_1fpr_ci", "best_accuracy_ci"):
        assert refit[key] == pytest.approx(fixed[key])
    assert fixed["n_bootstrap_units"] == 4


def _unlearning_study(seed, delta=0.0, m=12, t=4, k=3, n=120):
    """Shadow / target unlearning runs: originals on balanced halves, k runs per original
    each forgetting a random half of its members; forgotten logits raised by ``delta``."""
    rng = np.random.default_rng(seed)
    ins = np.argsort(rng.random((m, n)), axis=0) < m // 2
    forget = np.zeros((m, k, n), bool)
    for i in range(m):
        members = np.flatnonzero(ins[i])
        for j in range(k):
            forget[i, j, rng.choice(members, members.size // 2, replace=False)] = True
    mu = rng.normal(1.0, 1.5, n)
    logit = (mu + rng.normal(0, 0.5, (m, 1, 1)) + rng.normal(0, 1.0, (m, 1, n))
             + rng.normal(0, 0.3, (m, k, n)) + delta * forget).reshape(m * k, n)
    p = 1 / (1 + np.exp(-logit))
    fg, un = forget.reshape(m * k, n), np.repeat(~ins, k, axis=0)
    s = (m - t) * k
    orig = np.repeat(np.arange(m), k)
    return dict(shadow_p=p[:s], shadow_forgot=fg[:s], shadow_unseen=un[:s], target_p=p[s:],
                target_forgot=fg[s:], target_unseen=un[s:]), orig[s:], orig[:s]


def test_u_rmia_names_and_equivalence_with_rmia():
    st, tg, sg = _unlearning_study(5, delta=1.0)
    rep = u_rmia(**st, n_bootstrap=40, target_groups=tg, shadow_groups=sg)
    gen = rmia(st["shadow_p"], st["shadow_forgot"], st["shadow_unseen"], st["target_p"],
               st["target_forgot"], target_mask=st["target_forgot"] | st["target_unseen"],
               z_mask=st["target_unseen"], n_bootstrap=40, target_groups=tg,
               reference_groups=sg)
    np.testing.assert_array_equal(rep["scores"], gen["scores"])
    assert rep["urmia_accuracy"] == rep["balanced_accuracy"] == gen["balanced_accuracy"]
    assert rep["urmia_best_acc"] == rep["best_accuracy"]
    assert rep["urmia_accuracy_ci"] == rep["balanced_accuracy_ci"] == gen["balanced_accuracy_ci"]
    assert rep["urmia_best_acc_ci"] == rep["best_accuracy_ci"]
    assert rep["auc"] > 0.6 and rep["n_bootstrap_units"] == 4
    # retained pairs are not scored
    retained = ~(st["target_forgot"] | st["target_unseen"])
    assert rep["n_positive"] + rep["n_negative"] == int(np.sum(~retained))


def test_u_rmia_perfect_unlearning_gives_chance():
    st, tg, sg = _unlearning_study(6, n=300)
    rep = u_rmia(**st, n_bootstrap=100, target_groups=tg, shadow_groups=sg)
    assert abs(rep["auc"] - 0.5) < 0.05 and abs(rep["urmia_accuracy"] - 0.5) < 0.05
    assert rep["auc_ci"][0] <= 0.5 <= rep["auc_ci"][1]
    off = u_rmia(**st, online=False)
    assert abs(off["auc"] - 0.5) < 0.05


def test_tune_offline_a_matches_rmia_on_the_held_out_reference():
    st = _population(7, r=6, shift=1.0, n=120)
    rp, ri, ro = st["ref_p"], st["ref_in"], st["ref_out"]
    res = tune_offline_a(rp, ri, ro, held_out=2)
    np.testing.assert_allclose(res["grid"], np.arange(11) / 10)
    keep = np.arange(6) != 2
    for a, auc in zip(res["grid"], res["auc"], strict=True):
        ref = rmia(rp[keep], ri[keep], ro[keep], rp[2:3], ri[2:3], online=False, offline_a=a)
        assert auc == pytest.approx(ref["auc"])
    assert res["offline_a"] == res["grid"][int(np.argmax(res["auc"]))]
    assert res["max_auc"] == pytest.approx(np.max(res["auc"]))
    # groups: the held-out row's whole unit leaves the references
    groups = np.array([0, 0, 1, 1, 2, 2])
    g = tune_offline_a(rp, ri, ro, held_out=2, grid=[0.2, 0.6], reference_groups=groups)
    keep = groups != 1
    for a, auc in zip(g["grid"], g["auc"], strict=True):
        ref = rmia(rp[keep], ri[keep], ro[keep], rp[2:3], ri[2:3], online=False, offline_a=a)
        assert auc == pytest.approx(ref["auc"])


# --------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------

def test_bad_inputs():
    ref_p, ref_in, ref_out, target_p, z = _random_case(8, n=10)
    y = ~z
    ok = dict(ref_p=ref_p, ref_in=ref_in, ref_out=ref_out, target_p=target_p)
    cases = [
        (dict(target_p=target_p + 1.0), "target_p"),
        (dict(target_p=np.where(z, np.nan, target_p)), "target_p"),
        (dict(target_p=target_p[0]), "target_p"),
        (dict(ref_p=ref_p[:, :5]), "ref_p"),
        (dict(ref_p=-ref_p), "ref_p"),
        (dict(ref_in=ref_in[:, :5]), "ref_in"),
        (dict(ref_out=np.ones_like(ref_out)), "overlap"),
        (dict(ref_in=np.full(ref_in.shape, 2)), "ref_in"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            rmia_scores(**{**ok, **bad}, z_mask=z)
        with pytest.raises(ValueError, match=match):
            rmia(**{**ok, **bad}, target_positive=y)
    with pytest.raises(ValueError, match="z_mask"):
        rmia_scores(**ok, z_mask=z[:, :3])
    for kw, match in ((dict(offline_a=1.5), "offline_a"), (dict(offline_a="x"), "offline_a"),
                      (dict(gamma=0.0), "gamma"), (dict(gamma=np.inf), "gamma")):
        with pytest.raises(ValueError, match=match):
            rmia_scores(**ok, z_mask=z, **kw)
    with pytest.raises(ValueError, match="target_positive"):
        rmia(**ok, target_positive=y[:, :3])
    with pytest.raises(ValueError, match="target_groups"):
        rmia(**ok, target_positive=y, target_groups=[0, 1])
    with pytest.raises(ValueError, match="reference_groups"):
        rmia(**ok, target_positive=y, reference_groups=[0, 1])
    with pytest.raises(ValueError, match="both classes"):
        rmia(**ok, target_positive=np.ones_like(y))
    with pytest.raises(ValueError, match="overlap"):
        u_rmia(ref_p, ref_in, ref_out, target_p, y, y)
    with pytest.raises(ValueError, match="held_out"):
        tune_offline_a(ref_p, ref_in, ref_out, held_out=6)
    with pytest.raises(ValueError, match="held_out"):
        tune_offline_a(ref_p, ref_in, ref_out, held_out=0, reference_groups=np.zeros(6, int))
    with pytest.raises(ValueError, match="offline_a"):
        tune_offline_a(ref_p, ref_in, ref_out, grid=[0.1, 2.0])
    with pytest.raises(ValueError, match="temperature"):
        rmia_signal(np.zeros((3, 2)), [0, 1, 0], temperature=0.0)
    with pytest.raises(ValueError, match="labels"):
        rmia_signal(np.zeros((3, 2)), [0, 2, 0])
    with pytest.raises(ValueError, match="labels"):
        rmia_signal(np.zeros((3, 2)), [[0, 1, 0]])
    with pytest.raises(ValueError, match="logits"):
        rmia_signal(np.zeros((4, 2)), [0, 1, 0])
