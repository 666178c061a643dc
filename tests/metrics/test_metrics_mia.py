"""Population MIAs: golden pipeline replica, separable and null cases, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import linear_model, model_selection

from jaxmu.metrics import (
    classifier_mia,
    cross_entropy_losses,
    discernibility,
    feature_mia,
    indiscernibility,
    mia_auc,
    mia_features,
    population_mia,
)


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_cross_entropy_golden():
    losses = cross_entropy_losses(np.array([[0.0, 0.0], [np.log(3.0), 0.0]]), [0, 0])
    np.testing.assert_allclose(losses, [np.log(2.0), -np.log(0.75)])


def test_population_mia_matches_the_deep_unlearn_recipe_and_keeps_inputs():
    rng = _rng(1)
    forget, test = rng.exponential(0.5, 80), rng.exponential(1.0, 120)
    f0, t0 = forget.copy(), test.copy()
    got = population_mia(forget, test)
    np.testing.assert_array_equal(forget, f0)  # never shuffled in place
    np.testing.assert_array_equal(test, t0)
    # Replica: shuffle copies (reference first), truncate, forget=0 / reference=1, default
    # LogisticRegression, StratifiedShuffleSplit(10, 0.1, 123), mean accuracy.
    g = np.random.default_rng(123)
    t, f = g.permutation(test), g.permutation(forget)
    n = 80
    x = np.concatenate([f[:n], t[:n]])[:, None]
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    cv = model_selection.StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=123)
    expect = model_selection.cross_val_score(linear_model.LogisticRegression(), x, y, cv=cv)
    assert got == pytest.approx(expect.mean(), abs=0)
    assert population_mia(forget, test) == got  # deterministic


def test_population_mia_separable_and_null():
    rng = _rng(2)
    sep_f, sep_t = rng.uniform(0, 1, 100), rng.uniform(2, 3, 100)
    assert population_mia(sep_f, sep_t) == 1.0
    assert mia_auc(sep_f, sep_t) == 1.0
    null = population_mia(rng.normal(size=400), rng.normal(size=400))
    assert abs(null - 0.5) < 0.1
    assert abs(mia_auc(rng.normal(size=400), rng.normal(size=400)) - 0.5) < 0.1


def test_indiscernibility_golden():
    assert indiscernibility(0.5) == 1.0
    assert indiscernibility(1.0) == 0.0
    assert indiscernibility(0.75) == indiscernibility(0.25) == 0.5
    assert discernibility(0.75) == 0.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        indiscernibility(1.5)


def _clusters(seed=3, n=60, k=4):
    rng = _rng(seed)
    member = rng.normal(0.0, 0.3, (n, k)) + np.array([4.0] + [0.0] * (k - 1))
    nonmember = rng.normal(0.0, 0.3, (n, k))
    return member, nonmember


def test_classifier_mia_separable():
    member, nonmember = _clusters()
    rng = _rng(4)
    like_test = rng.normal(0.0, 0.3, (30, 4))
    like_retain = like_test + np.array([4.0, 0, 0, 0])
    assert classifier_mia(member, nonmember, like_test) == 1.0  # all called non-members
    assert classifier_mia(member, nonmember, like_retain) == 0.0
    assert classifier_mia(member, nonmember, like_test, classifier="logreg") == 1.0


def test_classifier_choice_errors():
    member, nonmember = _clusters()
    try:
        import catboost  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="catboost"):
            classifier_mia(member, nonmember, member, classifier="catboost")
    with pytest.raises(ValueError, match="unknown"):
        classifier_mia(member, nonmember, member, classifier="forest")
    with pytest.raises(ValueError, match="one K"):
        classifier_mia(member, nonmember[:, :3], member)


def test_mia_features_golden():
    f = mia_features(np.array([[np.log(3.0), 0.0]]), [0])  # p = [0.75, 0.25], y = 0
    assert f["correctness"][0] == 1.0
    assert f["confidence"][0] == pytest.approx(0.75)
    assert f["entropy"][0] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    # Song & Mittal: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i) = -0.5 log 0.75.
    assert f["m_entropy"][0] == pytest.approx(-0.5 * np.log(0.75))
    np.testing.assert_allclose(f["prob"], [[0.75, 0.25]])


def test_feature_mia_separates_confident_members():
    rng = _rng(5)
    n, k = 60, 3
    y_r, y_t, y_f = (rng.integers(0, k, n) for _ in range(3))
    retain = 8.0 * np.eye(k)[y_r] + rng.normal(0, 0.3, (n, k))  # confident and correct
    test = rng.normal(0, 0.3, (n, k))  # uncertain
    forget = rng.normal(0, 0.3, (n, k))  # looks unseen
    res = feature_mia(retain, y_r, test, y_t, forget, y_f)
    assert set(res) == {"correctness", "confidence", "entropy", "m_entropy", "prob"}
    assert res["confidence"] > 0.9 and res["entropy"] > 0.9 and res["prob"] > 0.9
    res2 = feature_mia(retain, y_r, test, y_t, retain[:20], y_r[:20],
                       features=("confidence",), classifier="logreg")
    assert res2 == {"confidence": 0.0}


@pytest.mark.parametrize(
    "args, match",
    [((np.zeros(0), np.zeros(10)), "empty"),
     ((np.zeros(5), np.zeros(5)), "at least 10"),
     ((np.array([np.nan] * 20), np.zeros(20)), "NaN"),
     ((np.zeros((20, 2)), np.zeros(20)), "1-D")],
)
def test_population_mia_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        population_mia(*args)


def test_feature_mia_bad_feature():
    z = np.zeros((12, 3))
    y = np.zeros(12, int)
    with pytest.raises(ValueError, match="features"):
        feature_mia(z, y, z, y, z, y, features=("loss",))
