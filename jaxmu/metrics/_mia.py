"""Population membership-inference attacks (U-MIAs) on a single model's outputs.

* :func:`population_mia` / :func:`mia_auc`: Deep Unlearn's loss-based logistic-regression
  attack, forget vs a reference split (test: T-MIA; val: Val-MIA).
* :func:`indiscernibility` / :func:`discernibility`.
* :func:`classifier_mia`: SFTC's attack trained on logits of retain (member) vs test
  (non-member) and applied to the forget set (``faithful=True``: the authors' code, with
  softmax features, per-class balancing, 5-fold CV and CatBoost).
* :func:`feature_mia`: the SalUn-line ``SVC_MIA`` with the correctness, confidence, entropy,
  modified-entropy and probability features (Akbari et al., "Machine Unlearning", Table 1).

All per-example features are vectorised; attack fitting uses scikit-learn on the host.
Caller arrays are never modified (Deep Unlearn shuffles them in place).

References:
    Deep Unlearn (Cadet et al. 2024) §2 and ``munl/evaluation``; SFTC (Perifanis et al.
    2024) eq. 9; Song & Mittal 2021, "Systematic Evaluation of Privacy Risks of Machine
    Learning Models"; docs/evaluation.md#population-mias.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from jaxtyping import ArrayLike

from jaxmu import _checks
from jaxmu.metrics._accuracy import _logits_labels, log_softmax
from jaxmu.metrics._distances import _softmax_f32
from jaxmu.metrics._typing import Logits, Logits2D, PerExample

FEATURES = ("correctness", "confidence", "entropy", "m_entropy", "prob")


def cross_entropy_losses(
    logits: Logits, labels: ArrayLike
) -> PerExample:
    """Per-example cross-entropy ``-log softmax(z)_y`` in float64 (the U-MIA feature).

    References:
        Deep Unlearn ``losses.py::compute_losses``.
    """
    z, y = _logits_labels(logits, labels)
    lp = log_softmax(z)
    return -np.take_along_axis(lp, np.broadcast_to(y, z.shape[:-1])[..., None], -1)[..., 0]


def _loss_attack(forget, reference, seed, n_splits, test_size, cv_seed):
    f = _checks.as_array("forget_losses", forget, ndim=1)
    r = _checks.as_array("reference_losses", reference, ndim=1)
    rng = np.random.default_rng(seed)
    r = rng.permutation(r)  # copies: the caller's arrays are left alone
    f = rng.permutation(f)
    n = min(f.size, r.size)
    n_test = int(np.ceil(test_size * 2 * n))
    if n_test < 2 or 2 * n - n_test < 2:
        raise ValueError(f"need at least {int(np.ceil(1 / test_size))} examples per set for a "
                         f"stratified {test_size:g} split, got {n} after balancing")
    x = np.concatenate([f[:n], r[:n]])[:, None]
    y = np.concatenate([np.zeros(n, dtype=int), np.ones(n, dtype=int)])
    from sklearn import model_selection
    from sklearn.linear_model import LogisticRegression

    cv = model_selection.StratifiedShuffleSplit(
        n_splits=n_splits, test_size=test_size, random_state=cv_seed
    )
    res = model_selection.cross_validate(
        LogisticRegression(), x, y, cv=cv, scoring=("accuracy", "roc_auc")
    )
    return float(np.mean(res["test_accuracy"])), float(np.mean(res["test_roc_auc"]))


def population_mia(
    forget_losses: ArrayLike,
    reference_losses: ArrayLike,
    *,
    seed: int = 123,
    n_splits: int = 10,
    test_size: float = 0.1,
    cv_seed: int = 123,
) -> float:
    """Deep Unlearn's population U-MIA: held-out accuracy of a loss-based attacker.

    Shuffles copies of both loss arrays with ``np.random.default_rng(seed)``, truncates both
    to the smaller size, labels forget 0 and reference 1, and fits scikit-learn's default
    ``LogisticRegression`` on the 1-D loss; returns the mean accuracy over
    ``StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=123)``. 0.5 means
    indistinguishable.

    Where jaxmu differs: the reference shuffles the caller's arrays in place with the global
    NumPy RNG (seeded 123); jaxmu uses its own generator, so the balanced subsample differs
    when the sets have unequal sizes.

    Args:
        forget_losses: per-example CE losses on the forget set ``[N_f]``.
        reference_losses: losses on the reference split (test for T-MIA, val for Val-MIA).
        seed: shuffling seed. n_splits, test_size, cv_seed: the cross-validation.

    Raises:
        ValueError: on empty or non-1-D inputs, NaN losses, or too few examples to split.

    References:
        Deep Unlearn §2 (footnote 1) and ``membership_inference_attack.py``.
    """
    return _loss_attack(forget_losses, reference_losses, seed, n_splits, test_size, cv_seed)[0]


def mia_auc(
    forget_losses: ArrayLike,
    reference_losses: ArrayLike,
    *,
    seed: int = 123,
    n_splits: int = 10,
    test_size: float = 0.1,
    cv_seed: int = 123,
) -> float:
    """ROC AUC of the :func:`population_mia` attacker (same splits), 0.5 = indistinguishable.

    References:
        Comparative Analysis of Machine Unlearning Approaches for Data Protection §V-C3
        (logistic regression on losses, forget vs test, stratified CV).
    """
    return _loss_attack(forget_losses, reference_losses, seed, n_splits, test_size, cv_seed)[1]


def indiscernibility(mia: float) -> float:
    """Indiscernibility ``1 - |2 MIA - 1|``: 1 at chance, 0 for a perfect attack.

    Raises:
        ValueError: if ``mia`` lies outside [0, 1].

    References:
        Deep Unlearn §2 and ``indiscernibility.py``.
    """
    m = float(_checks.as_unit_interval("mia", mia))
    return 1.0 - abs(2.0 * m - 1.0)


def discernibility(mia: float) -> float:
    """Discernibility ``|2 MIA - 1| = 1 - indiscernibility``.

    References:
        Deep Unlearn §2; its hyperparameter search minimises the discernibility of Val-MIA
        next to the accuracy gaps ``|RA_U - RA_R| / 3``, ``|FA_U - FA_R| / 3`` and
        ``|VA_U - VA_R| / 3`` (§4, eqs. 5-6).
    """
    return 1.0 - indiscernibility(mia)


def _estimator(classifier: Any, seed: int, default: str):
    if not isinstance(classifier, str):
        if not (hasattr(classifier, "fit") and hasattr(classifier, "predict")):
            raise ValueError("classifier: expected a name or an object with fit and predict")
        return classifier
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    name = classifier.lower()
    if name == "hgb":
        return HistGradientBoostingClassifier(random_state=seed)
    if name == "svc":
        return SVC(C=3, gamma="auto", kernel="rbf")
    if name == "logreg":
        return LogisticRegression()
    if name == "catboost":
        try:
            from catboost import CatBoostClassifier
        except ImportError:
            raise ValueError("classifier='catboost' needs the catboost package (pip install "
                             f"'jaxmu[catboost]'), which is not installed; use "
                             f"classifier='{default}'") from None
        return CatBoostClassifier(random_seed=seed, verbose=False)
    raise ValueError(f"classifier: unknown name {classifier!r} (hgb, svc, logreg, catboost)")


def _balanced(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, cap: int | None):
    n = min(a.shape[0], b.shape[0], cap or np.iinfo(np.int64).max)
    return a[rng.permutation(a.shape[0])[:n]], b[rng.permutation(b.shape[0])[:n]]


def _attack(member: np.ndarray, nonmember: np.ndarray, target: np.ndarray, est) -> float:
    x = np.concatenate([member, nonmember]).reshape(member.shape[0] + nonmember.shape[0], -1)
    y = np.concatenate([np.ones(member.shape[0], int), np.zeros(nonmember.shape[0], int)])
    est.fit(x, y)
    pred = np.asarray(est.predict(target.reshape(target.shape[0], -1))).astype(int)
    return float(np.mean(pred == 0))


def classifier_mia(
    retain_logits: Logits2D,
    test_logits: Logits2D,
    forget_logits: Logits2D,
    *,
    classifier: Any = None,
    seed: int = 0,
    max_samples: int | None = None,
    faithful: bool = False,
    retain_labels: ArrayLike | None = None,
    test_labels: ArrayLike | None = None,
) -> float:
    """SFTC's MIA: fraction of forget examples an attacker calls non-members (eq. 9).

    Default: the attacker is trained on a balanced random sample of retain (member, label 1)
    and test (non-member, label 0) **logit** vectors, then applied to the forget set;
    returns ``TN / |D_f|``. Higher means the forget set looks unseen.

    ``faithful=True`` reproduces the authors' code (``membership_inference`` in
    ``utils/unlearning_metrics.py``):

    1. Per-class balancing: for every class ``k`` (ascending, as the code's set of small
       integer class ids iterates), ``min(#retain_k, #test_k)`` examples of each split are
       drawn with Python's ``random.sample`` from a ``random.Random(seed)`` stream (retain
       first, then test, class by class; the code seeds the global ``random`` with
       ``random_state=0``), in the order the examples are given.
    2. Features: the **softmax probabilities** (float32), not the logits.
    3. The training rows (retain then test) are shuffled with
       ``sklearn.utils.shuffle(random_state=42)`` and split by ``StratifiedKFold(5)`` (no
       shuffle); an attacker fitted on each fold's training part labels the forget set, and
       the result is the mean over the 5 fold models of ``TN / |D_f|``.
    4. The attacker is ``CatBoostClassifier(verbose=0, random_state=42)`` (needs the
       ``catboost`` extra; without it this raises a ValueError, pass ``classifier="hgb"``
       for the same protocol with scikit-learn's gradient boosting).

    Args:
        retain_logits, test_logits, forget_logits: ``[n, K]`` logits of the evaluated model.
        classifier: "hgb" (scikit-learn ``HistGradientBoostingClassifier``), "catboost" (the
            paper's choice; needs catboost), "svc", "logreg", or any object with
            ``fit``/``predict`` (refitted per fold when ``faithful``). Default (None): "hgb",
            or the reference's CatBoost when ``faithful``.
        seed: sampling and classifier seed (the reference's ``random_state`` is 0).
        max_samples: cap per class for the training set (not with ``faithful``).
        faithful: the authors' protocol above instead of the default.
        retain_labels, test_labels: ``[n]`` labels for the per-class balancing (required
            with ``faithful``).

    Raises:
        ValueError: on bad logits or labels, class-count mismatch, an unavailable
            classifier, or (``faithful``) missing labels or fewer than 5 balanced examples.

    References:
        SFTC (Perifanis et al. 2024) eq. 9 and its public code.
    """
    zr = _checks.as_logits("retain_logits", retain_logits)
    zt = _checks.as_logits("test_logits", test_logits)
    zf = _checks.as_logits("forget_logits", forget_logits)
    if not (zr.ndim == zt.ndim == zf.ndim == 2) or len({zr.shape[1], zt.shape[1],
                                                         zf.shape[1]}) != 1:
        raise ValueError(f"expected [n, K] logits with one K, got {zr.shape}, {zt.shape}, "
                         f"{zf.shape}")
    if not faithful:
        est = _estimator("hgb" if classifier is None else classifier, seed, "hgb")
        member, nonmember = _balanced(zr, zt, np.random.default_rng(seed), max_samples)
        return _attack(member, nonmember, zf, est)
    if max_samples is not None:
        raise ValueError("max_samples is not part of the faithful protocol; leave it None")
    if retain_labels is None or test_labels is None:
        raise ValueError("faithful=True balances per class: pass retain_labels and test_labels")
    yr = _checks.as_labels("retain_labels", retain_labels, zr.shape[1], zr.shape[0])
    yt = _checks.as_labels("test_labels", test_labels, zt.shape[1], zt.shape[0])
    if classifier is None or classifier == "catboost":
        _estimator("catboost", seed, "hgb")  # a clear error when catboost is missing
        from catboost import CatBoostClassifier

        est = CatBoostClassifier(verbose=0, random_state=42)
    else:
        est = _estimator(classifier, seed, "hgb")
    ir, it = _per_class_sample(yr, yt, seed)
    pr, pt, pf = _softmax_f32(zr[ir]), _softmax_f32(zt[it]), _softmax_f32(zf)
    x = np.concatenate([pr, pt])
    y = np.concatenate([np.ones(len(ir), int), np.zeros(len(it), int)])
    if len(it) < 5:
        raise ValueError(f"faithful classifier_mia needs at least 5 examples per side after "
                         f"per-class balancing for 5-fold CV, got {len(it)}")
    from sklearn import model_selection
    from sklearn.utils import shuffle as sk_shuffle

    x, y = sk_shuffle(x, y, random_state=42)
    tnr = []
    for train_idx, _ in model_selection.StratifiedKFold(n_splits=5).split(x, y):
        est.fit(x[train_idx], y[train_idx])
        pred = np.asarray(est.predict(pf)).reshape(-1).astype(int)
        tnr.append(float(np.mean(pred == 0)))
    return float(np.mean(tnr))


def _per_class_sample(yr: np.ndarray, yt: np.ndarray, seed: int) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Indices of the per-class balanced retain and test samples, drawn as the reference
    draws them (``random.sample`` per class, retain then test, classes ascending)."""
    rng = random.Random(seed)
    out_r: list[int] = []
    out_t: list[int] = []
    for k in sorted(set(yr.tolist()) | set(yt.tolist())):
        rk, tk = np.flatnonzero(yr == k).tolist(), np.flatnonzero(yt == k).tolist()
        n = min(len(rk), len(tk))
        if n == 0:
            continue
        out_r += rng.sample(rk, n)
        out_t += rng.sample(tk, n)
    return np.asarray(out_r, int), np.asarray(out_t, int)


def mia_features(
    logits: Logits2D, labels: ArrayLike
) -> dict[str, np.ndarray]:
    """Per-example attack features: correctness, confidence, entropy, m_entropy, prob.

    ``confidence`` is ``p_y``; ``entropy`` is ``-sum p log p``; ``m_entropy`` is Song &
    Mittal's modified entropy ``-(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``;
    ``prob`` is the softmax vector. Logs are floored at ``log(1e-30)`` as in SalUn.

    Where jaxmu differs: SalUn's ``m_entropy`` indexes ``[:, labels]`` (all rows x all
    labels) and takes ``log p`` where ``log(1 - p)`` is meant; jaxmu implements the
    published formula.

    References:
        Song & Mittal 2021 eq. (Mentr); SalUn / Unlearn-Sparse ``evaluation/SVC_MIA.py``;
        Akbari et al., "Machine Unlearning", Table 1.
    """
    z, y = _logits_labels(logits, labels)
    if z.ndim != 2:
        raise ValueError(f"logits: expected [N, K], got shape {z.shape}")
    lp = log_softmax(z)
    p = np.exp(lp)
    floor = np.log(1e-30)
    onehot = np.arange(z.shape[1])[None, :] == y[:, None]
    p_y = p[np.arange(z.shape[0]), y]
    log_py = np.maximum(lp[np.arange(z.shape[0]), y], floor)
    with np.errstate(divide="ignore"):
        log_1mp = np.maximum(np.log(np.maximum(1.0 - p, 0.0)), floor)
    m_ent = -(1.0 - p_y) * log_py - np.sum(np.where(onehot, 0.0, p * log_1mp), axis=1)
    return {
        "correctness": (np.argmax(z, axis=1) == y).astype(np.float64),
        "confidence": p_y,
        "entropy": -np.sum(p * np.maximum(lp, floor), axis=1),
        "m_entropy": m_ent,
        "prob": p,
    }


def feature_mia(
    retain_logits: Logits2D,
    retain_labels: ArrayLike,
    test_logits: Logits2D,
    test_labels: ArrayLike,
    forget_logits: Logits2D,
    forget_labels: ArrayLike,
    *,
    features: tuple[str, ...] = FEATURES,
    classifier: Any = "svc",
    seed: int = 0,
    max_samples: int | None = None,
) -> dict[str, float]:
    """The SalUn-line ``SVC_MIA``: one attack per feature, applied to the forget set.

    For each feature an attacker is fitted on retain (member) vs test (non-member) examples,
    balanced by subsampling retain to the test size, then applied to the forget set; the
    value is the fraction of forget examples predicted non-member ("MIA-efficacy"). Akbari et
    al. ("Machine Unlearning", Table 1) report these (in percent) and the gap to the retrained
    model.

    Where jaxmu differs: the retain subsample is random (seeded) rather than the first
    ``|test|`` retain examples; ``m_entropy`` follows the published formula.

    Args:
        features: subset of ``FEATURES``. classifier: "svc" (SalUn's ``SVC(C=3,
            gamma="auto")``, default), "hgb", "logreg", "catboost" or an estimator; the SVC
            is quadratic in the sample count, so use ``max_samples`` on large splits.

    Returns:
        ``{feature: fraction predicted non-member}``.

    References:
        SalUn / Unlearn-Sparse ``SVC_MIA``; Akbari et al., "Machine Unlearning", §4.4 and
        Table 1.
    """
    unknown = set(features) - set(FEATURES)
    if unknown or not features:
        raise ValueError(f"features: expected a non-empty subset of {FEATURES}, got {features}")
    fr = mia_features(retain_logits, retain_labels)
    ft = mia_features(test_logits, test_labels)
    ff = mia_features(forget_logits, forget_labels)
    if fr["prob"].shape[1] != ft["prob"].shape[1] or fr["prob"].shape[1] != ff["prob"].shape[1]:
        raise ValueError("retain, test and forget logits must have the same number of classes")
    out = {}
    for name in features:
        rng = np.random.default_rng(seed)
        member, nonmember = _balanced(fr[name], ft[name], rng, max_samples)
        out[name] = _attack(member, nonmember, ff[name], _estimator(classifier, seed, "svc"))
    return out
