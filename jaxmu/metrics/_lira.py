"""Likelihood-ratio membership inference (LiRA) and its shared Gaussian machinery.

The pieces here serve both classic LiRA (:func:`lira`, members vs non-members) and U-LiRA
(:func:`jaxmu.metrics.ulira`, unlearned vs never-seen): masked per-example Gaussian fits over
a shadow-model axis, online / offline / global-threshold scores, and the ROC summary. All
fits are masked reductions over the model axis (no per-example loops, no truncation to the
smallest count as in the reference ``plot.py``).

References:
    Carlini et al. 2022, "Membership Inference Attacks From First Principles" (Alg. 1, eq. 4,
    §VI-A); tensorflow/privacy ``research/mi_lira_2021`` (``plot.py``) and
    ``advanced_mia.py``; docs/evaluation.md#lira (the attack) and
    docs/statistics.md#lira-estimators-and-tensorflow_privacy (which options reproduce
    tensorflow_privacy).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special

from jaxmu import _checks
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


CENTRES = ("mean", "median")
SPREADS = ("std", "rms_centre")
VARIANCES = ("per_example", "global", "global_per_aug", "global_raw")


def gaussian_fit(
    stats: np.ndarray,
    mask: np.ndarray,
    *,
    centre: str = "mean",
    spread: str = "std",
    variance: str = "per_example",
    min_count: int = 2,
    std_floor: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masked per-example Gaussian fits over the model axis.

    The defaults with ``centre="median"`` reproduce tensorflow_privacy's
    ``advanced_mia.compute_score_lira`` (and, with equal per-example counts, the
    ``mi_lira_2021/plot.py`` attack): the centre is the per-example median (or mean) and the
    spread is the per-example standard deviation about the per-example *mean* (NumPy's
    ``nanstd``, ddof 0), even when the centre is the median.

    Args:
        stats: ``[M, N, A]`` statistics.
        mask: ``[M, N]`` bool, which observations belong to the population.
        centre: "mean" or "median" of each example's observations (per augmentation).
        spread: "std" (default; ddof-0 standard deviation about each example's mean, as
            tensorflow_privacy) or "rms_centre" (root-mean-square deviation about the chosen
            centre; identical to "std" when the centre is the mean).
        variance: which standard deviation the fit uses:

            * "per_example" (default): each example's own spread per augmentation; the
              "global" value replaces it where an example has fewer than ``min_count``
              observations or zero spread.
            * "global": one value for all examples and augmentations, the spread of the
              deviations of every observation from its example's centre, pooled over
              examples and augmentations (tensorflow_privacy's ``fix_variance=True``:
              ``nanstd`` of the concatenated centred values, i.e. about their grand mean;
              with ``spread="rms_centre"`` the root-mean-square deviation instead).
            * "global_per_aug": the same pooled over examples but one value per
              augmentation.
            * "global_raw": the standard deviation of the raw (uncentred) observations
              pooled over examples and augmentations (the fixed variance of
              ``mi_lira_2021/plot.py``).

        min_count: per-example observations below which "per_example" uses the global value.
        std_floor: lower bound on every standard deviation (a constant statistic stays
            usable).

    Returns:
        ``(mu, sigma, count)`` with shapes ``[N, A]``, ``[N, A]``, ``[N]``; ``mu`` is NaN
        where an example has no observation.

    Raises:
        ValueError: an unknown ``centre``, ``spread`` or ``variance``.
    """
    if centre not in CENTRES:
        raise ValueError(f"centre: expected 'mean' or 'median', got {centre!r}")
    if spread not in SPREADS:
        raise ValueError(f"spread: expected 'std' or 'rms_centre', got {spread!r}")
    if variance not in VARIANCES:
        raise ValueError(f"variance: expected one of {', '.join(map(repr, VARIANCES))}, got "
                         f"{variance!r}")
    w = np.broadcast_to(mask[..., None], stats.shape)
    wf = w.astype(np.float64)
    count = mask.sum(axis=0)
    has = (count > 0)[:, None]
    c = np.maximum(count, 1)[:, None]
    mean = np.sum(np.where(w, stats, 0.0), axis=0) / c
    mu = mean if centre == "mean" else _nanmedian(np.where(w, stats, np.nan))
    mu0 = np.where(has, mu, 0.0)
    about = mean if spread == "std" else mu0
    var = np.sum(wf * (stats - about) ** 2, axis=0) / c
    dev = stats - mu0
    global_std = _pooled_std(dev, wf, spread == "std", (0, 1, 2))
    if variance == "per_example":
        sigma = np.sqrt(var)
        weak = (count[:, None] < min_count) | (sigma <= 0)
        sigma = np.where(weak, global_std, sigma)
    elif variance == "global":
        sigma = np.broadcast_to(global_std, var.shape)
    elif variance == "global_per_aug":
        sigma = np.broadcast_to(_pooled_std(dev, wf, spread == "std", (0, 1)), var.shape)
    else:
        sigma = np.broadcast_to(_pooled_std(stats, wf, True, (0, 1, 2)), var.shape)
    return np.where(has, mu, np.nan), np.maximum(sigma, std_floor), count


def _pooled_std(x: np.ndarray, wf: np.ndarray, centred: bool, axes: tuple[int, ...]
                ) -> np.ndarray:
    """Standard deviation (ddof 0) of the ``wf``-selected entries of ``x`` pooled over
    ``axes``: about their mean (``centred``) or about zero (root mean square)."""
    n = np.maximum(np.sum(wf, axis=axes), 1.0)
    m = np.sum(wf * x, axis=axes) / n if centred else 0.0
    return np.sqrt(np.sum(wf * (x - m) ** 2, axis=axes) / n)


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


def offline_density_score(x, fit_out):
    """Negative OUT log-density averaged over augmentations: ``[T, N, A] -> [T, N]``.

    tensorflow_privacy's offline score (``compute_score_lira`` with ``option="out"``, and
    ``mi_lira_2021/plot.py``'s ``generate_ours_offline``) with the sign flipped so that
    higher means member: a two-sided test, large for statistics far from the OUT centre in
    either direction. Its threshold 0 has no meaning; read the ROC metrics.
    """
    return -np.mean(gaussian_logpdf(x, *fit_out[:2]), axis=-1)


def summarize(
    scores: np.ndarray,
    positive: np.ndarray,
    valid: np.ndarray,
    *,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Any = None,
    refit: Callable[[np.ndarray], np.ndarray] | None = None,
    shadow_groups: Any = None,
    interval: str = "auto",
) -> dict[str, Any]:
    """ROC summary of ``[T, N]`` scores (higher = positive) over the ``valid`` pairs.

    Args:
        scores: ``[T, N]`` attack scores of T target models on N examples.
        positive: ``[T, N]`` bool ground truth (True = member / unlearned).
        valid: ``[T, N]`` bool, which pairs are scored (non-finite scores are dropped too).
        n_bootstrap: if > 0, add percentile CIs from ``n_bootstrap`` cluster-bootstrap
            resamples: each resample draws the clusters of target rows (``groups``) with
            replacement, and every pair of a drawn cluster enters with its multiplicity.
        confidence, seed: the interval's level and the resampling seed (reproducible).
        groups: ``[T]`` labels of the independent units the target rows belong to, e.g. the
            original model each unlearning run started from (its rows share that model and
            its data split, so they are not independent). Default: every row is its own
            unit.
        refit: with ``shadow_groups``, a function from shadow-row indices (drawn with
            repetition) to ``[T, N]`` scores refitted on those shadow rows; each resample
            then also draws the shadow clusters with replacement and rescores the targets,
            so the interval includes the noise of the shadow fits.
        shadow_groups: ``[S]`` labels of the shadow rows' independent units (for
            ``refit``).
        interval: "percentile" (``[q_lo, q_hi]`` of the resampled values), "centred" (the
            bootstrap spread moved onto the point value v: ``[v - (q50 - q_lo), v + (q_hi -
            q50)]``, clipped to [0, 1]) or "auto" (default): centred with ``refit``,
            percentile otherwise. Fits on resampled shadow sets (duplicated shadow rows)
            attack worse than the fit on the real ones, so with ``refit`` the resampled
            metrics sit below the point value and a percentile interval can miss it.

    Returns:
        dict with ``balanced_accuracy`` (threshold 0), ``best_accuracy`` (max over
        thresholds of ``1 - (FPR + FNR)/2``, LiRA's "Accuracy"; optimistic), ``auc``,
        ``tpr_at_1fpr`` and ``tpr_at_0.1fpr`` (TPR at the last ROC point with FPR below
        1% / 0.1%, as in tensorflow_privacy), ``per_target_accuracy`` ``[T]`` (accuracy at
        0 over each target's pairs, class-balanced where both classes occur), counts, the
        per-example distribution (:func:`per_example_summary`: ``per_example_accuracy``
        ``[N]`` and its mean / SD / quantiles over the examples with pairs of both classes,
        the count of single-class examples and the SD expected from pair sampling alone
        under perfect unlearning), and with ``n_bootstrap > 0`` the ``(low, high)``
        intervals ``balanced_accuracy_ci``, ``best_accuracy_ci``, ``auc_ci``,
        ``tpr_at_1fpr_ci`` and ``tpr_at_0.1fpr_ci``, all from the same resamples, plus
        ``n_bootstrap_units`` (the number of target clusters). Without ``refit`` the ROC
        statistics of all resamples come from one sort of the pairs
        (:func:`bootstrap_roc`). Resamples lacking a class are NaN and ignored; if every
        cluster is drawn identically the interval is the point.

    Raises:
        ValueError: if a class has no scored pair, on ``groups`` / ``shadow_groups`` of the
            wrong length, ``refit`` without ``shadow_groups`` (or the reverse), or an
            unknown ``interval``.

    References:
        Carlini et al. 2022 §VI (TPR at low FPR, "Accuracy"); Efron & Tibshirani 1993
        (percentile bootstrap); Field & Welsh 2007, "Bootstrapping clustered data" (JRSS-B;
        resampling whole clusters).
    """
    ok = valid & np.isfinite(scores)
    y, s = positive[ok], scores[ok]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need scored pairs of both classes, got {n_pos} positive and "
                         f"{n_neg} negative")
    if (refit is None) != (shadow_groups is None):
        raise ValueError("refit and shadow_groups go together: give both or neither")
    if interval not in ("auto", "percentile", "centred"):
        raise ValueError(f"interval: expected 'auto', 'percentile' or 'centred', got "
                         f"{interval!r}")
    centred = interval == "centred" or (interval == "auto" and refit is not None)
    t = scores.shape[0]
    inv, n_units = cluster_index("groups", groups, t)
    from sklearn import metrics as skm

    fpr, tpr, _ = skm.roc_curve(y, s)
    counts = _target_counts(scores, positive, ok)
    tp_t, np_t, tn_t, nn_t = counts
    out: dict[str, Any] = {
        "balanced_accuracy": _bal(tp_t.sum(), np_t.sum(), tn_t.sum(), nn_t.sum()),
        "best_accuracy": float(np.max(1 - (fpr + (1 - tpr)) / 2)),
        "auc": float(skm.auc(fpr, tpr)),
        "tpr_at_1fpr": float(tpr[np.flatnonzero(fpr < 0.01)[-1]]),
        "tpr_at_0.1fpr": float(tpr[np.flatnonzero(fpr < 0.001)[-1]]),
        "n_positive": n_pos,
        "n_negative": n_neg,
    }
    pred = scores > 0
    out["per_target_accuracy"] = _class_balanced(ok, positive, pred, axis=1)
    out.update(per_example_summary(ok, positive, pred))
    if not n_bootstrap:
        return out
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_units, size=(int(n_bootstrap), n_units))
    w = bootstrap_multiplicities(idx, n_units)[:, inv]  # [B, T] target-row weights
    if refit is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            bal = 0.5 * (w @ tp_t / (w @ np_t) + w @ tn_t / (w @ nn_t))
        boot = {"balanced_accuracy": bal, **bootstrap_roc(scores, positive, ok, w)}
    else:
        s_inv, s_units = cluster_index("shadow_groups", shadow_groups, None)
        rows = [np.flatnonzero(s_inv == g) for g in range(s_units)]
        draws = rng.integers(0, s_units, size=(int(n_bootstrap), s_units))
        boot = {k: np.full(int(n_bootstrap), np.nan) for k in
                ("balanced_accuracy", "auc", "best_accuracy", "tpr_at_1fpr", "tpr_at_0.1fpr")}
        for b in range(int(n_bootstrap)):
            sc = np.asarray(refit(np.concatenate([rows[g] for g in draws[b]])))
            ok_b = valid & np.isfinite(sc)
            tp, n_p, tn, n_n = _target_counts(sc, positive, ok_b)
            wb = w[b]
            with np.errstate(invalid="ignore", divide="ignore"):
                boot["balanced_accuracy"][b] = 0.5 * (wb @ tp / (wb @ n_p) + wb @ tn / (wb @ n_n))
            if ok_b.any():
                for k, v in bootstrap_roc(sc, positive, ok_b, wb[None]).items():
                    boot[k][b] = v[0]
    alpha = (1 - confidence) / 2
    for key, vals in boot.items():
        out[f"{key}_ci"] = percentile_ci(vals, alpha, out[key] if centred else None)
    out["n_bootstrap_units"] = n_units
    return out


def per_example_summary(ok: np.ndarray, positive: np.ndarray, pred: np.ndarray
                        ) -> dict[str, Any]:
    """Per-example accuracy at threshold 0 and its distribution over examples.

    An example's accuracy is the class-balanced accuracy of the decisions on its target
    pairs, ``(TPR_x + TNR_x) / 2`` (the mean correctness over its positive pairs and over its
    negative pairs, weighted equally); it is defined only for examples with at least one
    pair of each class. Examples with pairs of one class only would report a TPR or a TNR
    alone, a different quantity, so they are left out (NaN) and counted separately. The
    distribution over examples is reported as its mean and SD (ddof 0), as Deep Unlearn
    reports per-example U-LiRA accuracies, and quantiles.

    Few pairs per example make the per-example accuracy noisy even for perfect unlearning:
    with ``n_p`` positive and ``n_n`` negative pairs whose decisions are independent fair
    coins, its variance is ``(1/n_p + 1/n_n) / 16`` (0.177 SD at 4 + 4 pairs). The reported
    ``per_example_accuracy_null_sd`` is the square root of that variance averaged over the
    included examples: the spread of the per-example accuracies that pair sampling alone
    produces under perfect unlearning. A decision rate ``p`` other than 1/2 scales the
    variance by ``4 p (1 - p)``, so this is the largest such noise floor; an observed SD near
    it says nothing about per-example vulnerability.

    Args:
        ok, positive, pred: ``[T, N]`` bool: scored pairs, ground truth, decisions.

    Returns:
        dict with ``per_example_accuracy`` ``[N]`` (NaN without pairs of both classes),
        ``per_example_n`` (examples with both classes), ``per_example_single_class``
        (examples with pairs of one class only), ``per_example_positive_pairs_mean`` and
        ``per_example_negative_pairs_mean`` (over the included examples),
        ``per_example_accuracy_null_sd``, and where ``per_example_n > 0``
        ``per_example_accuracy_mean``, ``per_example_accuracy_std`` and
        ``per_example_accuracy_quantiles`` (q05, q25, q50, q75, q95).
    """
    tp = np.sum(ok & positive & pred, axis=0)
    tn = np.sum(ok & ~positive & ~pred, axis=0)
    n_p, n_n = np.sum(ok & positive, axis=0), np.sum(ok & ~positive, axis=0)
    both = (n_p > 0) & (n_n > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(both, 0.5 * (tp / n_p + tn / n_n), np.nan)
    out: dict[str, Any] = {
        "per_example_accuracy": acc,
        "per_example_n": int(both.sum()),
        "per_example_single_class": int(np.sum(~both & (n_p + n_n > 0))),
    }
    if not both.any():
        out.update(per_example_positive_pairs_mean=math.nan,
                   per_example_negative_pairs_mean=math.nan,
                   per_example_accuracy_null_sd=math.nan)
        return out
    fin, p_b, n_b = acc[both], n_p[both], n_n[both]
    q = np.quantile(fin, [0.05, 0.25, 0.5, 0.75, 0.95])
    out.update(
        per_example_positive_pairs_mean=float(p_b.mean()),
        per_example_negative_pairs_mean=float(n_b.mean()),
        per_example_accuracy_null_sd=float(np.sqrt(np.mean((1 / p_b + 1 / n_b) / 16))),
        per_example_accuracy_mean=float(fin.mean()),
        per_example_accuracy_std=float(fin.std()),
        per_example_accuracy_quantiles=dict(zip(("q05", "q25", "q50", "q75", "q95"),
                                                map(float, q), strict=True)),
    )
    return out


def _target_counts(scores, positive, ok):
    """Per-target ``(TP, positives, TN, negatives)`` at threshold 0, each ``[T]``."""
    pred = scores > 0
    return (np.sum(ok & positive & pred, axis=1), np.sum(ok & positive, axis=1),
            np.sum(ok & ~positive & ~pred, axis=1), np.sum(ok & ~positive, axis=1))


def cluster_index(name: str, groups: Any, n: int | None) -> tuple[np.ndarray, int]:
    """The resampling units of a cluster bootstrap: each row's unit and the number of units.

    A cluster bootstrap resamples whole clusters (e.g. all pairs of one target model), not
    single rows; ``groups`` labels each row with its cluster. The labels are mapped to
    ``0 .. G-1`` in sorted label order.

    Args:
        name: the argument's name in error messages.
        groups: ``[n]`` cluster labels (any sortable values), or None for one unit per row.
        n: the number of rows ``groups`` must label; None accepts any length (and then
            ``groups`` is required).

    Returns:
        ``(index, G)``: ``index [n]`` the unit (in ``0 .. G-1``) of every row, and ``G``
        the number of units.

    Raises:
        ValueError: if ``groups`` is not 1-D of length ``n``, or both are None.
    """
    if groups is None:
        if n is None:
            raise ValueError(f"{name}: labels are required")
        return np.arange(n), n
    g = np.asarray(groups)
    if g.ndim != 1 or (n is not None and g.shape[0] != n):
        raise ValueError(f"{name}: expected {n if n is not None else 'one'} label(s) per row "
                         f"as a 1-D array, got shape {g.shape}")
    labels, inv = np.unique(g, return_inverse=True)
    return inv.reshape(-1), labels.size


def bootstrap_multiplicities(idx: np.ndarray, n_units: int) -> np.ndarray:
    """How often each unit was drawn in each bootstrap resample.

    Args:
        idx: ``[B, G]`` integer unit indices in ``0 .. G-1``: resample ``b`` drew units
            ``idx[b]`` (G draws with replacement from ``G = n_units`` units).
        n_units: the number of units ``G``.

    Returns:
        ``[B, G]`` float64 counts: entry ``(b, g)`` is how many times resample ``b`` drew
        unit ``g``. Indexing its columns with :func:`cluster_index`'s row index gives
        per-row weights.

    Raises:
        ValueError: if ``idx`` is not a 2-D integer array with ``n_units`` columns and
            entries in ``0 .. n_units - 1``.
    """
    idx = np.asarray(idx)
    if (idx.ndim != 2 or idx.shape[1] != n_units or not np.issubdtype(idx.dtype, np.integer)
            or (idx.size and (idx.min() < 0 or idx.max() >= n_units))):
        raise ValueError(f"idx: expected [B, {n_units}] integers in [0, {n_units}), got "
                         f"{idx.dtype} of shape {idx.shape}")
    flat = (idx + n_units * np.arange(idx.shape[0])[:, None]).ravel()
    return np.bincount(flat, minlength=idx.size).reshape(idx.shape).astype(np.float64)


def percentile_ci(vals: np.ndarray, alpha: float, point: float | None = None
                  ) -> tuple[float, float]:
    """A bootstrap interval from resampled values of a statistic in [0, 1].

    Without ``point``: the percentile interval, the ``alpha`` and ``1 - alpha`` quantiles
    of the finite values. With ``point`` (the statistic on the real data): the centred
    interval ``[point - (q50 - q_lo), point + (q_hi - q50)]``, the bootstrap spread moved
    onto the point value, clipped to [0, 1]. NaN resamples (e.g. ones lacking a class) are
    ignored; with none finite the interval is ``(nan, nan)``.

    Args:
        vals: ``[B]`` bootstrap values.
        alpha: the tail mass on each side, in [0, 0.5] (``(1 - confidence) / 2``).
        point: the point value to centre on, or None for the percentile interval.

    Returns:
        ``(low, high)`` as floats.

    Raises:
        ValueError: if ``vals`` is not 1-D or ``alpha`` is outside [0, 0.5].
    """
    vals = np.asarray(vals)
    if vals.ndim != 1:
        raise ValueError(f"vals: expected a 1-D array of bootstrap values, got shape "
                         f"{vals.shape}")
    if not 0 <= alpha <= 0.5:
        raise ValueError(f"alpha: expected a tail mass in [0, 0.5], got {alpha!r}")
    fin = vals[np.isfinite(vals)]
    if fin.size == 0:
        return math.nan, math.nan
    lo, mid, hi = np.quantile(fin, [alpha, 0.5, 1 - alpha])
    if point is not None:
        lo, hi = max(point - (mid - lo), 0.0), min(point + (hi - mid), 1.0)
    return float(lo), float(hi)


def bootstrap_roc(
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

    Raises:
        ValueError: if ``scores``, ``positive`` and ``ok`` are not 2-D of one shape, ``ok``
            is not boolean, or ``w`` is not ``[B, T]`` with non-negative entries.

    References:
        Fawcett 2006, "An introduction to ROC analysis" (weighted ROC by sorted cumulative
        counts); Carlini et al. 2022 §VI.
    """
    shape = np.shape(scores)
    if len(shape) != 2 or np.shape(positive) != shape or np.shape(ok) != shape:
        raise ValueError(f"scores, positive, ok: expected one [T, N] shape, got "
                         f"{shape}, {np.shape(positive)}, {np.shape(ok)}")
    if np.asarray(ok).dtype != bool:
        raise ValueError(f"ok: expected a boolean mask, got {np.asarray(ok).dtype}")
    if np.ndim(w) != 2 or np.shape(w)[1] != shape[0] or not np.all(np.asarray(w) >= 0):
        raise ValueError(f"w: expected [B, {shape[0]}] non-negative weights, got shape "
                         f"{np.shape(w)}")
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
    spread: str = "std",
    min_count: int = 2,
    std_floor: float = 1e-6,
    target_mask: Mask | None = None,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Classic LiRA (Carlini et al.): per-example IN/OUT Gaussians from shadow models.

    The defaults reproduce tensorflow_privacy: with ``variance="per_example"`` or
    ``"global"``, the online scores equal ``-compute_score_lira(..., option="both",
    fix_variance=variance == "global", median_or_mean=centre)`` of
    ``advanced_mia.py``, and ``attack="offline_density"`` equals ``-compute_score_lira(...,
    option="out")``. With every example IN for the same number of shadows (the balanced
    masks of ``mi_lira_2021``, so that ``plot.py`` truncates nothing), the online scores
    also equal ``-generate_ours`` of ``plot.py`` (per-example variance, or ``"global_raw"``
    for its ``fix_variance=True``) and ``attack="offline_density"`` equals
    ``-generate_ours_offline``. Exactness holds wherever every example has at least
    ``min_count`` observations with non-zero spread in each fitted population; below that,
    jaxmu uses the pooled standard deviation where tensorflow_privacy uses a zero one (or
    the column mean for an example without observations, which jaxmu leaves unscored).

    Args:
        shadow_stats: ``[S, N]`` or ``[S, N, A]`` statistics of S shadow models (logit-scaled
            confidences, optionally per augmentation, e.g. identity and flip).
        shadow_in_mask: ``[S, N]`` bool, example n was in shadow model s's training set.
        target_stats: ``[T, N(, A)]`` statistics of held-out target models.
        target_in_mask: ``[T, N]`` bool ground truth membership for the targets.
        attack: "online" (IN and OUT fits, log-likelihood ratio averaged over
            augmentations), "offline" (OUT fit only, the one-sided test of LiRA's eq. 4 as
            log-odds, :func:`offline_score`; threshold 0 = the OUT centre), "offline_density"
            (OUT fit only, negative OUT log-density, tensorflow_privacy's offline score,
            :func:`offline_density_score`; read the ROC metrics, not the threshold-0
            accuracy) or "global" (the raw statistic averaged over augmentations).
        variance: "per_example" (default; with the pooled value where an example has fewer
            than ``min_count`` observations or zero spread), "global" (tensorflow_privacy's
            fixed variance: per-example-centred values pooled over examples and
            augmentations, per population), "global_per_aug" (the same, one value per
            augmentation) or "global_raw" (``plot.py``'s fixed variance: the standard
            deviation of the raw IN statistics of all examples and augmentations, used for
            both fits online; of the raw OUT statistics offline), see :func:`gaussian_fit`.
        centre: "median" (default, tensorflow_privacy) or "mean".
        spread: "std" (default; about each example's mean, tensorflow_privacy) or
            "rms_centre" (about the centre).
        min_count: per-example observations below which the pooled value is used.
        std_floor: lower bound on every standard deviation.
        target_mask: ``[T, N]`` bool, which target pairs to score (default all).
        n_bootstrap: if > 0, add percentile CIs (``balanced_accuracy_ci``,
            ``best_accuracy_ci``, ``auc_ci``, ``tpr_at_1fpr_ci``, ``tpr_at_0.1fpr_ci``) from
            resampling target models with replacement (:func:`summarize`).
        confidence, seed: bootstrap settings.

    Returns:
        dict with ``scores`` ``[T, N]`` (higher = member; NaN where an example has no shadow
        observation) and the :func:`summarize` metrics (``best_accuracy`` is LiRA's
        "Accuracy"), with their ``*_ci`` intervals when ``n_bootstrap > 0``.

    Raises:
        ValueError: on shape mismatches, NaN statistics, an unknown option, or when either
            class has no scored pair.

    Where jaxmu differs from ``plot.py``: no truncation of every example's IN / OUT
    observations to the smallest count; the pooled standard deviation backs up examples
    with too few observations.

    References:
        Carlini et al. 2022 Alg. 1, eq. 4, §VI; tensorflow_privacy
        ``privacy_tests/membership_inference_attack/advanced_mia.py``
        (``compute_score_lira``) and ``research/mi_lira_2021/plot.py``; Efron & Tibshirani
        1993 (bootstrap over target models).
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
    kw = dict(centre=centre, spread=spread, variance=variance, min_count=min_count,
              std_floor=std_floor)
    if attack == "global":
        scores = tg.mean(axis=-1)
    elif attack in ("online", "offline", "offline_density"):
        fit_out = gaussian_fit(sh, ~m_in, **kw)
        if attack == "online":
            fit_in = gaussian_fit(sh, m_in, **kw)
            if variance == "global_raw":  # plot.py: the IN value for both fits
                fit_out = (fit_out[0], fit_in[1], fit_out[2])
            scores = online_score(tg, fit_in, fit_out)
        elif attack == "offline":
            scores = offline_score(tg, fit_out)
        else:
            scores = offline_density_score(tg, fit_out)
    else:
        raise ValueError(f"attack: expected 'online', 'offline', 'offline_density' or "
                         f"'global', got {attack!r}")
    out = summarize(scores, np.asarray(t_in), valid, n_bootstrap=n_bootstrap,
                    confidence=confidence, seed=seed)
    out["scores"] = scores
    out["n_unscored"] = int(np.sum(valid & ~np.isfinite(scores)))
    return out
