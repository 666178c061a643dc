"""Likelihood-ratio membership inference (LiRA) and its shared Gaussian machinery.

The pieces here serve both classic LiRA (:func:`lira`, members vs non-members) and U-LiRA
(:func:`jaxmu.metrics.ulira`, unlearned vs never-seen): masked per-example Gaussian fits over
a shadow-model axis, online / offline / global-threshold scores, and the ROC summary. All
fits are masked reductions over the model axis (no per-example loops, no truncation to the
smallest count as in the reference ``plot.py``).

References:
    Carlini et al. 2022, "Membership Inference Attacks From First Principles" (Alg. 1, eq. 4,
    §VI-A); tensorflow/privacy ``research/mi_lira_2021`` (``plot.py``) and
    ``advanced_mia.py``; evaluation-spec.md §3.5, §3.7, §3.8.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import special
from sklearn import metrics as skm

from jaxmu.metrics import _checks
from jaxmu.metrics._typing import Mask, Stats

_LOG_2PI = float(np.log(2 * np.pi))


def as_stats(name: str, stats: Any, n_aug: int | None = None, min_models: int = 1
             ) -> np.ndarray:
    """Statistics ``[M, N]`` or ``[M, N, A]`` as float64 ``[M, N, A]``."""
    x = _checks.as_array(name, stats, ndim=(2, 3))
    x = x[..., None] if x.ndim == 2 else x
    if x.shape[0] < min_models:
        raise ValueError(f"{name}: need at least {min_models} models, got {x.shape[0]}")
    if n_aug is not None and x.shape[2] != n_aug:
        raise ValueError(f"{name}: {x.shape[2]} augmentations, expected {n_aug}")
    return x


def gaussian_fit(
    stats: np.ndarray,
    mask: np.ndarray,
    *,
    centre: str = "mean",
    variance: str = "per_example",
    min_count: int = 2,
    std_floor: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masked per-example Gaussian fits over the model axis.

    Args:
        stats: ``[M, N, A]`` statistics. mask: ``[M, N]`` which observations belong to the
            population.
        centre: "mean" or "median" (TFP's ``plot.py``) of each example's observations.
        variance: "per_example" (population std, ddof 0, with the global std as a fallback
            where an example has fewer than ``min_count`` observations or zero spread) or
            "global" (one std per augmentation from all per-example-centred observations:
            LiRA's fixed variance, library form).
        std_floor: lower bound on every std (a constant statistic stays usable).

    Returns:
        ``(mu, sigma, count)`` with shapes ``[N, A]``, ``[N, A]``, ``[N]``; ``mu`` is NaN
        where an example has no observation.
    """
    if centre not in ("mean", "median"):
        raise ValueError(f"centre: expected 'mean' or 'median', got {centre!r}")
    if variance not in ("per_example", "global"):
        raise ValueError(f"variance: expected 'per_example' or 'global', got {variance!r}")
    w = mask[..., None].astype(np.float64)
    count = mask.sum(axis=0)
    c = np.maximum(count, 1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        if centre == "mean":
            mu = np.sum(w * stats, axis=0) / c
        else:
            filled = np.where(mask[..., None], stats, np.nan)
            mu = _nanmedian(filled)
        dev2 = w * (stats - np.where(count[:, None] > 0, mu, 0.0)) ** 2
        var = np.sum(dev2, axis=0) / c
    mu = np.where(count[:, None] > 0, mu, np.nan)
    total = max(int(count.sum()), 1)
    global_std = np.sqrt(np.sum(dev2, axis=(0, 1)) / total)  # [A]
    sigma = np.sqrt(var)
    if variance == "global":
        sigma = np.broadcast_to(global_std, sigma.shape)
    else:
        weak = (count[:, None] < min_count) | (sigma <= 0)
        sigma = np.where(weak, global_std, sigma)
    return mu, np.maximum(sigma, std_floor), count


def _nanmedian(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # all-NaN columns (no observation) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=0)


def gaussian_logpdf(x, mu, sigma):
    """``log N(x; mu, sigma^2)``, elementwise."""
    return -0.5 * (((x - mu) / sigma) ** 2 + _LOG_2PI) - np.log(sigma)


def online_score(x, fit_in, fit_out):
    """Online log-likelihood ratio, averaged over augmentations: ``[T, N, A] -> [T, N]``."""
    return np.mean(gaussian_logpdf(x, *fit_in[:2]) - gaussian_logpdf(x, *fit_out[:2]), axis=-1)


def offline_score(x, fit_out):
    """One-sided offline score as log-odds ``log Phi(z) - log Phi(-z)``, ``z = (x-mu)/sigma``.

    A monotone transform of LIRA eq. 4's ``1 - Pr[Z > x]``; it is 0 at the OUT centre, so a
    threshold of 0 means "above the non-member centre".
    """
    z = (x - fit_out[0]) / fit_out[1]
    return np.mean(special.log_ndtr(z) - special.log_ndtr(-z), axis=-1)


def summarize(
    scores: np.ndarray,
    positive: np.ndarray,
    valid: np.ndarray,
    *,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """ROC summary of ``[T, N]`` scores (higher = positive) over the ``valid`` pairs.

    Args:
        scores: ``[T, N]`` attack scores of T target models on N examples.
        positive: ``[T, N]`` bool ground truth (True = member / unlearned).
        valid: ``[T, N]`` bool, which pairs are scored (non-finite scores are dropped too).
        n_bootstrap: if > 0, add percentile CIs from ``n_bootstrap`` resamples of the target
            models (rows, drawn with replacement; every pair of a drawn target enters with
            the target's multiplicity).
        confidence, seed: the interval's level and the resampling seed (reproducible).

    Returns:
        dict with ``balanced_accuracy`` (threshold 0), ``best_accuracy`` (max over
        thresholds of ``1 - (FPR + FNR)/2``, LiRA's "Accuracy"; optimistic), ``auc``,
        ``tpr_at_1fpr`` and ``tpr_at_0.1fpr`` (TPR at the last ROC point with FPR below
        1% / 0.1%, as in TFP), ``per_example_accuracy`` ``[N]`` (accuracy at 0 over each
        example's target pairs, class-balanced where both classes occur; NaN without pairs)
        with its mean/std/quantiles, ``per_target_accuracy`` ``[T]`` (the same per target
        model), counts, and with ``n_bootstrap > 0`` the ``(low, high)`` intervals
        ``balanced_accuracy_ci``, ``best_accuracy_ci``, ``auc_ci``, ``tpr_at_1fpr_ci`` and
        ``tpr_at_0.1fpr_ci``. All five come from the same resamples (one weight matrix of
        target multiplicities); the ROC statistics are evaluated for all resamples at once
        on the full weighted ROC (:func:`_bootstrap_roc`). Resamples lacking a class are
        NaN and ignored; if every target is drawn identically the interval is the point.

    References:
        Carlini et al. 2022 §VI (TPR at low FPR, "Accuracy"); Efron & Tibshirani 1993
        (percentile bootstrap); evaluation-spec.md §2.4, §2.6-9.
    """
    ok = valid & np.isfinite(scores)
    y, s = positive[ok], scores[ok]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need scored pairs of both classes, got {n_pos} positive and "
                         f"{n_neg} negative")
    fpr, tpr, _ = skm.roc_curve(y, s)
    pred = scores > 0
    tp_t = np.sum(ok & positive & pred, axis=1)
    tn_t = np.sum(ok & ~positive & ~pred, axis=1)
    np_t, nn_t = np.sum(ok & positive, axis=1), np.sum(ok & ~positive, axis=1)
    out: dict[str, Any] = {
        "balanced_accuracy": _bal(tp_t.sum(), np_t.sum(), tn_t.sum(), nn_t.sum()),
        "best_accuracy": float(np.max(1 - (fpr + (1 - tpr)) / 2)),
        "auc": float(skm.auc(fpr, tpr)),
        "tpr_at_1fpr": float(tpr[np.flatnonzero(fpr < 0.01)[-1]]),
        "tpr_at_0.1fpr": float(tpr[np.flatnonzero(fpr < 0.001)[-1]]),
        "n_positive": n_pos,
        "n_negative": n_neg,
    }
    per_ex = _class_balanced(ok, positive, pred, axis=0)
    per_t = _class_balanced(ok, positive, pred, axis=1)
    out["per_example_accuracy"] = per_ex
    out["per_target_accuracy"] = per_t
    fin = per_ex[np.isfinite(per_ex)]
    if fin.size:
        q = np.quantile(fin, [0.05, 0.25, 0.5, 0.75, 0.95])
        out.update(per_example_accuracy_mean=float(fin.mean()),
                   per_example_accuracy_std=float(fin.std()),
                   per_example_accuracy_quantiles=dict(zip(("q05", "q25", "q50", "q75",
                                                            "q95"), map(float, q), strict=True)))
    if n_bootstrap:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, scores.shape[0], size=(int(n_bootstrap), scores.shape[0]))
        t = scores.shape[0]
        flat = (idx + t * np.arange(idx.shape[0])[:, None]).ravel()
        w = np.bincount(flat, minlength=idx.size).reshape(idx.shape).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            bal = 0.5 * (w @ tp_t / (w @ np_t) + w @ tn_t / (w @ nn_t))
        alpha = (1 - confidence) / 2
        boot = {"balanced_accuracy": bal, **_bootstrap_roc(scores, positive, ok, w)}
        for key, vals in boot.items():
            out[f"{key}_ci"] = _percentile_ci(vals, alpha)
    return out


def _percentile_ci(vals: np.ndarray, alpha: float) -> tuple[float, float]:
    """``(alpha, 1 - alpha)`` quantiles of the finite bootstrap values (NaN if none)."""
    fin = vals[np.isfinite(vals)]
    if fin.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(fin, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _bootstrap_roc(
    scores: np.ndarray,
    positive: np.ndarray,
    ok: np.ndarray,
    w: np.ndarray,
    *,
    max_elems: int = 1 << 21,
) -> dict[str, np.ndarray]:
    """ROC statistics of weighted pairs for many resamples at once.

    Pair ``(t, n)`` with ``ok[t, n]`` gets weight ``w[b, t]`` in resample ``b`` (the
    multiplicity of target t). The pairs are sorted once; each resample's ROC is the
    weighted cumulative TP / FP count at the last pair of every distinct score (the
    thresholds of :func:`sklearn.metrics.roc_curve`), with ``(0, 0)`` prepended, so with
    unit weights ``auc`` and ``best_accuracy`` equal the point values. ``tpr_at_*`` is the
    largest TPR with FPR below the level on this full curve; sklearn's default thinning of
    collinear ROC points (``drop_intermediate``) can make the point value smaller only
    when a straight run of tied-score steps crosses the level. Resamples are processed in
    chunks of about ``max_elems`` weighted pairs.

    Args:
        scores, positive, ok: ``[T, N]`` scores, ground truth and scored pairs.
        w: ``[B, T]`` non-negative resample weights.

    Returns:
        ``auc``, ``best_accuracy``, ``tpr_at_1fpr``, ``tpr_at_0.1fpr``: ``[B]`` arrays, NaN
        for resamples without a positive or without a negative pair.

    References:
        Fawcett 2006, "An introduction to ROC analysis" (weighted ROC by sorted cumulative
        counts); Carlini et al. 2022 §VI.
    """
    t_idx = np.nonzero(ok)[0]
    s, y = scores[ok], positive[ok]
    order = np.argsort(-s, kind="stable")
    t_idx, s, yf = t_idx[order], s[order], y[order].astype(np.float64)
    ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last pair of each distinct score
    n_b = w.shape[0]
    res = {k: np.full(n_b, np.nan) for k in ("auc", "best_accuracy", "tpr_at_1fpr",
                                             "tpr_at_0.1fpr")}
    step = max(1, int(max_elems) // max(s.size, 1))
    for start in range(0, n_b, step):
        pw = w[start:start + step][:, t_idx]  # [b, P] pair weights in score order
        tps = np.cumsum(pw * yf, axis=1)[:, ends]
        fps = np.cumsum(pw * (1.0 - yf), axis=1)[:, ends]
        p_tot, n_tot = tps[:, -1:], fps[:, -1:]
        good = (p_tot[:, 0] > 0) & (n_tot[:, 0] > 0)
        zero = np.zeros((tps.shape[0], 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = np.concatenate([zero, tps / p_tot], axis=1)
            fpr = np.concatenate([zero, fps / n_tot], axis=1)
        sl = slice(start, start + tps.shape[0])
        auc = 0.5 * np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]), axis=1)
        best = np.max(1 - (fpr + (1 - tpr)) / 2, axis=1)
        res["auc"][sl] = np.where(good, auc, np.nan)
        res["best_accuracy"][sl] = np.where(good, best, np.nan)
        for key, level in (("tpr_at_1fpr", 0.01), ("tpr_at_0.1fpr", 0.001)):
            at = np.max(np.where(fpr < level, tpr, -np.inf), axis=1)
            res[key][sl] = np.where(good, at, np.nan)
    return res


def _class_balanced(ok, positive, pred, axis):
    """Accuracy at 0 along ``axis``: class-balanced where both classes occur, plain where one
    does, NaN where there is no scored pair."""
    tp = np.sum(ok & positive & pred, axis)
    tn = np.sum(ok & ~positive & ~pred, axis)
    n_p, n_n = np.sum(ok & positive, axis), np.sum(ok & ~positive, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        both = 0.5 * (tp / n_p + tn / n_n)
        plain = (tp + tn) / (n_p + n_n)
    return np.where((n_p > 0) & (n_n > 0), both, plain)


def _bal(tp, n_pos, tn, n_neg) -> float:
    return float(0.5 * (tp / n_pos + tn / n_neg))


def lira(
    shadow_stats: Stats,
    shadow_in_mask: Mask,
    target_stats: Stats,
    target_in_mask: Mask,
    *,
    attack: str = "online",
    variance: str = "per_example",
    centre: str = "median",
    min_count: int = 2,
    std_floor: float = 1e-6,
    target_mask: Mask | None = None,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Classic LiRA (Carlini et al.): per-example IN/OUT Gaussians from shadow models.

    Args:
        shadow_stats: ``[S, N]`` or ``[S, N, A]`` statistics of S shadow models (logit-scaled
            confidences, optionally per augmentation, e.g. identity and flip).
        shadow_in_mask: ``[S, N]`` bool, example n was in shadow model s's training set.
        target_stats: ``[T, N(, A)]`` statistics of held-out target models.
        target_in_mask: ``[T, N]`` bool ground truth membership for the targets.
        attack: "online" (IN and OUT fits, log-likelihood ratio), "offline" (OUT fit only,
            one-sided log-odds, :func:`offline_score`), or "global" (the raw statistic).
        variance: "per_example" (with global fallback) or "global" (fixed variance).
        centre: "median" (TFP ``plot.py``) or "mean".
        min_count: per-example observations below which the global std is used.
        target_mask: ``[T, N]`` bool, which target pairs to score (default all).
        n_bootstrap: if > 0, add percentile CIs (``balanced_accuracy_ci``,
            ``best_accuracy_ci``, ``auc_ci``, ``tpr_at_1fpr_ci``, ``tpr_at_0.1fpr_ci``) from
            resampling target models with replacement (:func:`summarize`).
        confidence, seed: bootstrap settings.

    Returns:
        dict with ``scores`` ``[T, N]`` (higher = member; NaN where an example has no shadow
        observation) and the :func:`summarize` metrics (``best_accuracy`` is LiRA's
        "Accuracy"), with their ``*_ci`` intervals when ``n_bootstrap > 0``.

    Where jaxmu differs from TFP ``plot.py``: no truncation to the smallest IN/OUT count;
    the fixed variance is estimated per population from per-example-centred values (the
    script uses the raw IN values for both); offline uses the one-sided test of LIRA eq. 4
    (the script uses the OUT log-density); the global std also backs up examples with too
    few observations.

    References:
        Carlini et al. 2022 Alg. 1, eq. 4, §VI; TFP ``mi_lira_2021``; evaluation-spec.md §3;
        Efron & Tibshirani 1993 (bootstrap over target models).
    """
    sh = as_stats("shadow_stats", shadow_stats, min_models=2)
    tg = as_stats("target_stats", target_stats, sh.shape[2])
    if tg.shape[1] != sh.shape[1]:
        raise ValueError(f"target_stats has {tg.shape[1]} examples, shadow_stats "
                         f"{sh.shape[1]}")
    m_in = _checks.as_mask("shadow_in_mask", shadow_in_mask, sh.shape[:2])
    t_in = _checks.as_mask("target_in_mask", target_in_mask, tg.shape[:2])
    valid = np.ones(tg.shape[:2], bool) if target_mask is None else _checks.as_mask(
        "target_mask", target_mask, tg.shape[:2]).copy()
    kw = dict(centre=centre, variance=variance, min_count=min_count, std_floor=std_floor)
    if attack == "global":
        scores = tg.mean(axis=-1)
    elif attack in ("online", "offline"):
        fit_out = gaussian_fit(sh, ~m_in, **kw)
        if attack == "online":
            fit_in = gaussian_fit(sh, m_in, **kw)
            scores = online_score(tg, fit_in, fit_out)
        else:
            scores = offline_score(tg, fit_out)
    else:
        raise ValueError(f"attack: expected 'online', 'offline' or 'global', got {attack!r}")
    out = summarize(scores, np.asarray(t_in), valid, n_bootstrap=n_bootstrap,
                    confidence=confidence, seed=seed)
    out["scores"] = scores
    out["n_unscored"] = int(np.sum(valid & ~np.isfinite(scores)))
    return out
