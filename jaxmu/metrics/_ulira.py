"""U-LiRA: the per-example likelihood-ratio attack adapted to unlearning.

For each example x, shadow models in world H1 (x was trained on, then unlearned) and in
world H0 (x never seen) give two per-example Gaussians of a statistic; a held-out target
model's statistic is scored by the log-likelihood ratio (online) or by a one-sided test
against H0 (offline). Perfect unlearning makes the worlds indistinguishable (accuracy 0.5).

References:
    Hayes et al. 2024, "Inexact Unlearning Needs More Careful Evaluations to Avoid a False
    Sense of Privacy"; Kurmanji et al. 2023 (SCRUB); Deep Unlearn
    ``munl/lira/consolidate_predictions.py``; docs/evaluation.md#u-lira (Deep Unlearn's
    released pipeline, jaxmu's protocol and the metrics it reports).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import ArrayLike

from jaxmu import _checks
from jaxmu.metrics._fscore import logit_scaled_confidence
from jaxmu.metrics._lira import as_stats, gaussian_fit, offline_score, online_score, summarize
from jaxmu.metrics._typing import Logits, Mask, Stats


def membership_statistic(
    logits: Logits, labels: ArrayLike, *, kind: str = "confidence"
) -> np.ndarray:
    """Per-(model, example) attack statistic from logits.

    Args:
        logits: ``[..., N, K]``; for augmentations use ``[M, N, A, K]`` with
            ``labels[:, None]``.
        labels: integer labels broadcastable to ``logits.shape[:-1]``.
        kind: "confidence" (logit-scaled confidence ``z_y - logsumexp_{j != y} z_j``, LiRA's
            statistic) or "correctness" (0/1 top-1 correctness: Deep Unlearn's released
            U-LiRA setting).

    References:
        Carlini et al. 2022 §VI-A (the logit-scaled confidence); Deep Unlearn
        ``munl/lira/consolidate_predictions.py`` (0/1 correctness); docs/evaluation.md#u-lira.
    """
    if kind == "confidence":
        return logit_scaled_confidence(logits, labels)
    if kind == "correctness":
        z = _checks.as_logits("logits", logits)
        lab = _checks.broadcast_labels("labels", labels, z.shape)
        return (np.argmax(z, axis=-1) == lab).astype(np.float64)
    raise ValueError(f"kind: expected 'confidence' or 'correctness', got {kind!r}")


def ulira(
    shadow_unlearned_stats: Stats | None,
    shadow_retrained_stats: Stats,
    target_stats: Stats,
    target_is_unlearned: ArrayLike,
    *,
    shadow_unlearned_mask: Mask | None = None,
    shadow_retrained_mask: Mask | None = None,
    target_mask: Mask | None = None,
    online: bool = True,
    variance: str = "per_example",
    min_count: int = 8,
    centre: str = "mean",
    spread: str = "std",
    std_floor: float = 1e-6,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    target_groups: ArrayLike | None = None,
    shadow_groups: ArrayLike | None = None,
    interval: str = "auto",
) -> dict[str, Any]:
    """U-LiRA report for held-out target models.

    Populations are given as statistic arrays plus per-example observation masks, so a
    population pipeline can pass one shadow array twice: with the mask "model forgot x" as
    H1 and "model never saw x" as H0 (Deep Unlearn's design), or pass retrained shadows for
    H0.

    Args:
        shadow_unlearned_stats: ``[S_u, N]`` or ``[S_u, N, A]`` statistics of shadow models
            in world H1 (may be None for ``online=False``).
        shadow_retrained_stats: ``[S_r, N(, A)]`` statistics of shadow models in world H0.
        target_stats: ``[T, N(, A)]`` statistics of held-out target models (never used in
            the fits).
        target_is_unlearned: ``[T]`` (a whole target model is unlearned or retrained) or
            ``[T, N]`` bool, the ground truth per pair (True = H1).
        shadow_unlearned_mask, shadow_retrained_mask: ``[S, N]`` bool, which shadow
            observations belong to H1 / H0 (default all).
        target_mask: ``[T, N]`` bool, which target pairs to score (default all).
        online: likelihood ratio of both fits; False uses only H0 (one-sided log-odds that
            the statistic lies above the never-seen centre). Offline, the threshold-0
            accuracy means "above the H0 centre" and reaches only ~0.75 even for separated
            worlds; read ``auc`` and ``ulira_best_acc`` there.
        variance: "per_example" (default; the pooled standard deviation replaces examples
            with fewer than ``min_count`` observations or zero spread), "global",
            "global_per_aug" or "global_raw" (:func:`jaxmu.metrics._lira.gaussian_fit`).
        centre: "mean" (default, Deep Unlearn) or "median" (tensorflow_privacy).
        spread: "std" (default; about each example's mean) or "rms_centre" (about the
            centre); the same for the mean centre.
        std_floor: lower bound on stds (keeps 0/1 correctness statistics finite).
        n_bootstrap: if > 0, add percentile CIs ``(low, high)`` from ``n_bootstrap``
            cluster-bootstrap resamples (all five from the same resamples;
            :func:`jaxmu.metrics._lira.summarize`): ``ulira_accuracy_ci``,
            ``ulira_best_acc_ci``, ``auc_ci``, ``tpr_at_1fpr_ci`` and ``tpr_at_0.1fpr_ci``
            (and the generic ``balanced_accuracy_ci`` / ``best_accuracy_ci``).
        confidence, seed: bootstrap settings.
        target_groups: ``[T]`` labels of the independent units of the target rows: give the
            original model of each unlearning run, so that a resample draws all runs of an
            original together (runs of one original share its weights and data split and
            are not independent; resampling them as independent rows gives too narrow
            intervals). Default: every target row is its own unit.
        shadow_groups: ``[S]`` labels of the shadow rows' units (the original of each shadow
            run). Given, each resample also draws the shadow units with replacement and
            refits the Gaussians (the rows of both shadow arrays, which must then have the
            same number of rows, are drawn together), so the intervals include the noise of
            the fits; the cost is one refit and rescoring per resample. Default: the fits
            are held fixed (intervals conditional on the fitted attack).
        interval: "auto" (default: centred on the point value with ``shadow_groups``,
            percentile otherwise), "centred" or "percentile"
            (:func:`jaxmu.metrics._lira.summarize`).

    Returns:
        dict with ``ulira_accuracy`` (balanced accuracy at log-likelihood ratio 0, i.e.
        ratio 1; the headline, unbiased), ``ulira_best_acc`` (best threshold; optimistic),
        ``auc``, ``tpr_at_1fpr``, ``tpr_at_0.1fpr``, ``per_target_accuracy`` ``[T]``,
        ``scores`` ``[T, N]`` (higher = "was trained on"), counts and ``n_unscored`` (pairs
        whose example has no shadow observation in a needed world); the per-example
        distribution (:func:`jaxmu.metrics._lira.per_example_summary`):
        ``per_example_accuracy`` ``[N]`` (class-balanced, NaN unless the example has
        positive and negative pairs), its mean / SD / quantiles over examples,
        ``per_example_single_class`` and ``per_example_accuracy_null_sd`` (the SD that
        pair sampling alone gives under perfect unlearning); with ``n_bootstrap > 0`` the
        ``*_ci`` intervals of the aggregate metrics above and ``n_bootstrap_units``.

    Raises:
        ValueError: on shape mismatches, NaN statistics, or when either class has no scored
            pair.

    Where jaxmu differs: Deep Unlearn scores only forgotten observations against fits that
    include them, and its 0/1 statistic gives zero spreads (NaN); jaxmu scores held-out
    targets, floors and backs up the spreads, and averages per-augmentation log-ratios
    (tensorflow_privacy's diagonal form) when an augmentation axis is given.

    References:
        Hayes et al. 2024; Carlini et al. 2022 Alg. 1; Efron & Tibshirani 1993; Field &
        Welsh 2007 (cluster bootstrap).
    """
    r = as_stats("shadow_retrained_stats", shadow_retrained_stats, min_models=2)
    n, a = r.shape[1], r.shape[2]
    tg = as_stats("target_stats", target_stats, a)
    if tg.shape[1] != n:
        raise ValueError(f"target_stats has {tg.shape[1]} examples, shadows have {n}")
    kw = dict(centre=centre, spread=spread, variance=variance, min_count=min_count,
              std_floor=std_floor)
    m_r = _mask("shadow_retrained_mask", shadow_retrained_mask, r.shape[:2])
    u = m_u = None
    if online:
        if shadow_unlearned_stats is None:
            raise ValueError("online U-LiRA needs shadow_unlearned_stats (or use online=False)")
        u = as_stats("shadow_unlearned_stats", shadow_unlearned_stats, a, min_models=2)
        if u.shape[1] != n:
            raise ValueError(f"shadow_unlearned_stats has {u.shape[1]} examples, expected {n}")
        m_u = _mask("shadow_unlearned_mask", shadow_unlearned_mask, u.shape[:2])
        if shadow_groups is not None and u.shape[0] != r.shape[0]:
            raise ValueError(f"shadow_groups needs shadow arrays with equal rows, got "
                             f"{u.shape[0]} and {r.shape[0]}")

    same = u is not None and (u is r or np.shares_memory(u, r) and np.array_equal(u, r))

    def score(rows: Any = slice(None)) -> np.ndarray:
        r_rows = r[rows]  # one copy when both worlds come from one shadow array
        fit0 = gaussian_fit(r_rows, m_r[rows], **kw)
        if not online:
            return offline_score(tg, fit0)
        u_rows = r_rows if same else u[rows]
        return online_score(tg, gaussian_fit(u_rows, m_u[rows], **kw), fit0)

    scores = score()
    truth = np.asarray(target_is_unlearned)
    if truth.ndim == 1:
        truth = truth[:, None]
    truth = _checks.as_mask("target_is_unlearned", truth, tg.shape[:2])
    valid = _mask("target_mask", target_mask, tg.shape[:2])
    if shadow_groups is not None and np.asarray(shadow_groups).shape != (r.shape[0],):
        raise ValueError(f"shadow_groups: expected {r.shape[0]} labels, got shape "
                         f"{np.asarray(shadow_groups).shape}")
    refit = score if shadow_groups is not None else None
    out = summarize(scores, np.asarray(truth), valid, n_bootstrap=n_bootstrap,
                    confidence=confidence, seed=seed, groups=target_groups, refit=refit,
                    shadow_groups=shadow_groups, interval=interval)
    out["ulira_accuracy"] = out["balanced_accuracy"]
    out["ulira_best_acc"] = out["best_accuracy"]
    if "balanced_accuracy_ci" in out:
        out["ulira_accuracy_ci"] = out["balanced_accuracy_ci"]
        out["ulira_best_acc_ci"] = out["best_accuracy_ci"]
    out["scores"] = scores
    out["n_unscored"] = int(np.sum(valid & ~np.isfinite(scores)))
    return out


def _mask(name: str, mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    return np.asarray(_checks.as_mask(name, mask, shape))
