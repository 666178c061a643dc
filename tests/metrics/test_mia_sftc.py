"""SFTC's code variants of its two metrics (``faithful=True``) against hand computations and a
transcription of the authors' protocol; the eq. 8 / default variants stay unchanged."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import shuffle

from jaxmu.metrics import classifier_mia, js_divergence

LN3 = math.log(3.0)


def _kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b, strict=True) if x > 0)


def test_js_faithful_is_reversed_kl_to_the_mixture():
    # P = softmax(0, 0) = (1/2, 1/2), Q = softmax(ln 3, 0) = (3/4, 1/4), M = (5/8, 3/8).
    p, q, m = (0.5, 0.5), (0.75, 0.25), (0.625, 0.375)
    code = 0.5 * _kl(m, p) + 0.5 * _kl(m, q)  # 0.5 (0.031584 + 0.038098) = 0.034841 nats
    eq8 = 0.5 * _kl(p, m) + 0.5 * _kl(q, m)  # 0.5 (0.032269 + 0.035375) = 0.033822 nats
    assert code == pytest.approx(0.0348412, abs=1e-6)
    assert eq8 == pytest.approx(0.0338221, abs=1e-6)
    zp = np.array([[0.0, 0.0], [1.0, 2.0]])
    zq = np.array([[LN3, 0.0], [1.0, 2.0]])  # second row: identical models, divergence 0
    assert js_divergence(zp, zq, faithful=True) == pytest.approx(code / 2, rel=1e-6)
    assert js_divergence(zp, zq) == pytest.approx(eq8 / 2 / math.log(2), rel=1e-9)
    assert js_divergence(zp, zq, base=math.e) == pytest.approx(eq8 / 2, rel=1e-9)
    assert js_divergence(zp, zq, faithful=True, base=2) == pytest.approx(
        code / 2 / math.log(2), rel=1e-6)


def test_js_faithful_is_infinite_when_a_float32_softmax_underflows():
    # P = softmax(0, -200) is (1, 0) in float32: KL(M || P) = 1/4 (ln 1/4 - ln 0) = inf.
    # Eq. 8 stays finite: 0.5 ln(4/3) + 0.5 (0.5 ln(2/3) + 0.5 ln 2) = 0.215762 nats.
    zp, zq = np.array([[0.0, -200.0]]), np.array([[0.0, 0.0]])
    assert js_divergence(zp, zq, faithful=True) == math.inf
    want = 0.5 * math.log(4 / 3) + 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2))
    assert js_divergence(zp, zq) == pytest.approx(want / math.log(2), rel=1e-9)
    # A class where both softmaxes underflow contributes 0, not NaN.
    z = np.array([[0.0, -200.0, -300.0]])
    assert js_divergence(z, z, faithful=True) == 0.0


class _Stub:
    """Records every fit; fold i (0-based) predicts non-member for the first i forget rows."""

    def __init__(self):
        self.fits = []

    def fit(self, x, y):
        self.fits.append((np.array(x), np.array(y)))
        return self

    def predict(self, x):
        out = np.ones(len(x), int)
        out[: len(self.fits) - 1] = 0
        return out


def _softmax32(z):
    z = np.asarray(z, np.float32)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_classifier_mia_faithful_transcribes_the_protocol():
    # Retain labels: 6 x class 0, 3 x class 1, 4 x class 2; test: 2 x class 0, 5 x class 1,
    # none of class 2 -> per class min = 2, 3, 0: 5 members and 5 non-members.
    rng = np.random.default_rng(0)
    yr = np.array([0, 1, 0, 2, 0, 1, 2, 0, 0, 2, 1, 0, 2])
    yt = np.array([1, 0, 1, 1, 0, 1, 1])
    zr, zt = rng.normal(size=(13, 3)), rng.normal(size=(7, 3))
    zf = rng.normal(size=(4, 3))
    stub = _Stub()
    got = classifier_mia(zr, zt, zf, classifier=stub, faithful=True, retain_labels=yr,
                         test_labels=yt)
    # Fold i marks i of the 4 forget rows non-member: mean(0, 1/4, 2/4, 3/4, 4/4) = 0.5.
    assert got == pytest.approx(0.5)
    # Transcription of the reference: random.seed(0); random.sample per class, retain then
    # test; softmax features; retain rows then test rows; shuffle(random_state=42);
    # StratifiedKFold(5) training parts.
    random.seed(0)
    per_r = {k: list(np.flatnonzero(yr == k)) for k in (0, 1, 2)}
    per_t = {k: list(np.flatnonzero(yt == k)) for k in (0, 1)}
    sel_r, sel_t = [], []
    for k in (0, 1, 2):
        n = min(len(per_r.get(k, [])), len(per_t.get(k, [])))
        if n == 0:
            continue
        sel_r += random.sample(per_r[k], n)
        sel_t += random.sample(per_t[k], n)
    assert len(sel_r) == len(sel_t) == 5
    x = np.concatenate([_softmax32(zr[sel_r]), _softmax32(zt[sel_t])])
    y = np.array([1] * 5 + [0] * 5)
    x, y = shuffle(x, y, random_state=42)
    folds = list(StratifiedKFold(n_splits=5).split(x, y))
    assert len(stub.fits) == 5
    for (fx, fy), (tr, _) in zip(stub.fits, folds, strict=True):
        np.testing.assert_array_equal(fx, x[tr])
        np.testing.assert_array_equal(fy, y[tr])
        np.testing.assert_allclose(fx.sum(1), 1.0, rtol=1e-6)  # probabilities, not logits


def test_classifier_mia_faithful_with_sklearn_attacker():
    # Members are confident, non-members uncertain: forget rows that look like non-members
    # are all called non-members (1.0), confident forget rows none (0.0).
    rng = np.random.default_rng(1)
    k, n = 4, 40
    yr, yt = np.arange(n) % k, np.arange(n) % k
    zr = 8.0 * np.eye(k)[yr] + 0.1 * rng.normal(size=(n, k))
    zt = 0.3 * rng.normal(size=(n, k))
    unseen, seen = 0.3 * rng.normal(size=(10, k)), 8.0 * np.eye(k)[np.arange(10) % k]
    kw = dict(classifier="hgb", faithful=True, retain_labels=yr, test_labels=yt)
    assert classifier_mia(zr, zt, unseen, **kw) == 1.0
    assert classifier_mia(zr, zt, seen, **kw) == 0.0


def test_classifier_mia_faithful_errors():
    z = np.zeros((10, 3))
    y = np.arange(10) % 3
    with pytest.raises(ValueError, match="pass retain_labels and test_labels"):
        classifier_mia(z, z, z, classifier="hgb", faithful=True)
    with pytest.raises(ValueError, match="max_samples"):
        classifier_mia(z, z, z, classifier="hgb", faithful=True, retain_labels=y,
                       test_labels=y, max_samples=5)
    with pytest.raises(ValueError, match="at least 5 examples per side"):
        classifier_mia(z, z[:3], z, classifier="hgb", faithful=True, retain_labels=y,
                       test_labels=y[:3])
    try:
        import catboost  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"jaxmu\[catboost\]"):
            classifier_mia(z, z, z, faithful=True, retain_labels=y, test_labels=y)
