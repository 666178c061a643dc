"""U-LiRA: the per-example likelihood-ratio attack adapted to unlearning.

For each example x, shadow models in world H1 (x was trained on, then unlearned) and in
world H0 (x never seen) give two per-example Gaussians of a statistic; a held-out target
model's statistic is scored by the log-likelihood ratio (online) or by a one-sided test
against H0 (offline). Perfect unlearning makes the worlds indistinguishable (accuracy 0.5).

References:
    Hayes et al. 2024, "Inexact Unlearning Needs More Careful Evaluations to Avoid a False
    Sense of Privacy"; Kurmanji et al. 2023 (SCRUB); Deep Unlearn
    ``consolidate_predictions.py``; evaluation-spec.md §2.2, §2.4, §2.6; methods-spec.md
    §7.5-7.6.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import ArrayLike

from jaxmu.metrics import _checks
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
        evaluation-spec.md §2.2, §2.6-11; methods-spec.md §7.5.
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
    std_floor: float = 1e-6,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """U-LiRA report for held-out target models.

    Populations are given as statistic arrays plus per-example observation masks, so a
    population pipeline can pass one shadow array twice: with the mask "model forgot x" as
    H1 and "model never saw x" as H0 (evaluation-spec §2.6-6, Deep Unlearn's design), or
    pass retrained shadows for H0.

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
        variance: "per_example" (default; the global std replaces examples with fewer than
            ``min_count`` observations or zero spread) or "global".
        centre: "mean" (default, Deep Unlearn) or "median" (TFP).
        std_floor: lower bound on stds (keeps 0/1 correctness statistics finite).
        n_bootstrap: if > 0, add percentile CIs ``(low, high)`` from ``n_bootstrap``
            resamples of the target models (with replacement, all five from the same
            resamples; :func:`jaxmu.metrics._lira.summarize`): ``ulira_accuracy_ci``,
            ``ulira_best_acc_ci``, ``auc_ci``, ``tpr_at_1fpr_ci`` and ``tpr_at_0.1fpr_ci``
            (and the generic ``balanced_accuracy_ci`` / ``best_accuracy_ci``).
        confidence, seed: bootstrap settings.

    Returns:
        dict with ``ulira_accuracy`` (balanced accuracy at log-likelihood ratio 0, i.e.
        ratio 1; the headline, unbiased), ``ulira_best_acc`` (best threshold; optimistic),
        ``auc``, ``tpr_at_1fpr``, ``tpr_at_0.1fpr``, ``per_example_accuracy`` ``[N]`` with
        its mean/std/quantiles, ``per_target_accuracy`` ``[T]``, ``scores`` ``[T, N]``
        (higher = "was trained on"), counts and ``n_unscored`` (pairs whose example has no
        shadow observation in a needed world); with ``n_bootstrap > 0`` the ``*_ci``
        intervals of the aggregate metrics above.

    Raises:
        ValueError: on shape mismatches, NaN statistics, or when either class has no scored
            pair.

    Where jaxmu differs: Deep Unlearn scores only forgotten observations against fits that
    include them, and its 0/1 statistic gives zero spreads (NaN); jaxmu scores held-out
    targets, floors and backs up the spreads, and averages per-augmentation log-ratios
    (TFP's diagonal form) when an augmentation axis is given.

    References:
        evaluation-spec.md §2.2 (definition), §2.4 (accuracy definitions), §2.6 (protocol);
        methods-spec.md §7.6; Carlini et al. 2022 Alg. 1; Efron & Tibshirani 1993
        (bootstrap over target models).
    """
    r = as_stats("shadow_retrained_stats", shadow_retrained_stats, min_models=2)
    n, a = r.shape[1], r.shape[2]
    tg = as_stats("target_stats", target_stats, a)
    if tg.shape[1] != n:
        raise ValueError(f"target_stats has {tg.shape[1]} examples, shadows have {n}")
    kw = dict(centre=centre, variance=variance, min_count=min_count, std_floor=std_floor)
    m_r = _mask("shadow_retrained_mask", shadow_retrained_mask, r.shape[:2])
    fit0 = gaussian_fit(r, m_r, **kw)
    if online:
        if shadow_unlearned_stats is None:
            raise ValueError("online U-LiRA needs shadow_unlearned_stats (or use online=False)")
        u = as_stats("shadow_unlearned_stats", shadow_unlearned_stats, a, min_models=2)
        if u.shape[1] != n:
            raise ValueError(f"shadow_unlearned_stats has {u.shape[1]} examples, expected {n}")
        fit1 = gaussian_fit(u, _mask("shadow_unlearned_mask", shadow_unlearned_mask,
                                     u.shape[:2]), **kw)
        scores = online_score(tg, fit1, fit0)
    else:
        scores = offline_score(tg, fit0)
    truth = np.asarray(target_is_unlearned)
    if truth.ndim == 1:
        truth = truth[:, None]
    truth = _checks.as_mask("target_is_unlearned", truth, tg.shape[:2])
    valid = _mask("target_mask", target_mask, tg.shape[:2])
    out = summarize(scores, np.asarray(truth), valid, n_bootstrap=n_bootstrap,
                    confidence=confidence, seed=seed)
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
