"""The NeurIPS-2023 unlearning competition score: forgetting quality F and the final score.

Public entry points: :func:`logit_scaled_confidence`, :func:`forget_quality`,
:func:`forget_quality_details`, :func:`epsilon_points` and :func:`competition_score`. The
per-example epsilons come from :mod:`jaxmu.metrics._fscore_grid`, a vectorised port of the
official scorer that matches its per-example loop exactly (see ``benchmarks/fscore.py``).

References:
    Triantafillou et al. 2023, "Evaluation for the NeurIPS Machine Unlearning Competition";
    google-deepmind/unlearning_evaluation ``metric.py``;
    docs/evaluation.md#the-competition-f-score (the setting, the epsilon rules, how to read F
    and where jaxmu differs).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from jaxtyping import ArrayLike

from jaxmu import _checks
from jaxmu.metrics._fscore_fallback import datapoint_max
from jaxmu.metrics._fscore_grid import (
    DELTA,
    EPSILON_CAP,
    PEAKY_RATIO,
    band_family_max,
    epsilon_table,
    pair_table,
    single_family_max,
)
from jaxmu.metrics._typing import Confs, Logits, PerExample

BIN_WIDTH = 0.5
_FLOOR = 1e-45  # the official scorer's floor inside its logs
_MAX_ABS_CONF = 1e8  # beyond this, float64 cannot resolve the 0.01 grid reliably


def logit_scaled_confidence(
    logits: Logits,
    labels: ArrayLike,
    *,
    stable: bool = True,
) -> PerExample:
    """Logit-scaled confidence of the true label, ``log p_y - log(1 - p_y)``, in float64.

    Computed in the logit domain as ``z_y - logsumexp_{j != y} z_j``, which is exact where
    the official float64-softmax form underflows. Leading model axes broadcast:
    ``[M, N, K] -> [M, N]``. The caller's arrays are never modified (the reference mutates
    its logits in place).

    Args:
        logits: ``[..., N, K]`` logits, ``K >= 2``, finite.
        labels: integer labels broadcastable to ``logits.shape[:-1]``: ``[N]`` (shared by
            every model) or ``[..., N]``; with an augmentation axis (``[M, N, A, K]``) pass
            ``labels[:, None]``.
        stable: if False, reproduce the official formula instead: float64 softmax after
            max-subtraction, then ``log(p_y + 1e-45) - log(sum_{j != y} p_j + 1e-45)``, which
            saturates near +-103.6 when a probability underflows.

    Returns:
        float64 array ``[..., N]``.

    Raises:
        ValueError: on NaN/inf logits, fewer than 2 classes, or bad labels.

    References:
        Carlini et al. 2022 (LiRA) §VI-A; official ``compute_logit_scaled_confidence``
        (adapted from tensorflow_privacy's ``mi_lira_2021/score.py``).
    """
    z = _checks.as_logits("logits", logits)
    lab = _checks.broadcast_labels("labels", labels, z.shape)[..., None]
    onehot = np.arange(z.shape[-1]) == lab
    if stable:
        z_y = np.take_along_axis(z, lab, axis=-1)[..., 0]
        others = np.where(onehot, -np.inf, z)
        mx = others.max(axis=-1, keepdims=True)
        lse = mx[..., 0] + np.log(np.sum(np.exp(others - mx), axis=-1))
        return z_y - lse
    zs = z - z.max(axis=-1, keepdims=True)
    p = np.exp(zs)
    p /= p.sum(axis=-1, keepdims=True)
    p_y = np.take_along_axis(p, lab, axis=-1)[..., 0]
    p_other = np.where(onehot, 0.0, p).sum(axis=-1)
    return np.log(p_y + _FLOOR) - np.log(p_other + _FLOOR)


def per_example_epsilons(unlearned, retrained, delta=DELTA, cap=EPSILON_CAP, *, exact=False):
    """Per-example epsilons for ``[N, S]`` confidence matrices, plus diagnostics.

    Returns ``(eps, info)``: ``eps`` is float64 ``[S]`` clipped to ``[0, cap]``; ``info`` holds
    boolean ``[S]`` arrays ``peaky``, ``constant``, ``fallback`` and ``band_won``.
    """
    n = unlearned.shape[0]
    u, r = unlearned.T, retrained.T  # [S, N]
    retrain_pos = (np.median(retrained, axis=0) > np.median(unlearned, axis=0))[:, None]
    pos, neg = np.where(retrain_pos, r, u), np.where(retrain_pos, u, r)
    pos_diff = pos.max(axis=1) - pos.min(axis=1)
    neg_diff = neg.max(axis=1) - neg.min(axis=1)
    largest = np.where(pos_diff > neg_diff, pos_diff, neg_diff)
    smallest = np.where(pos_diff > neg_diff, neg_diff, pos_diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        peaky = smallest / largest < PEAKY_RATIO  # 0/0 is NaN: False, as in the scorer
    constant = (pos_diff == 0) & (neg_diff == 0)
    active = np.flatnonzero(~peaky & ~constant)
    table = epsilon_table(n, delta)
    eps = np.full(pos.shape[0], np.nan)
    band_won = np.zeros(pos.shape[0], dtype=bool)
    fallback = np.zeros(pos.shape[0], dtype=bool)
    if active.size:
        pa, na = pos[active], neg[active]
        e_single = single_family_max(pa, na, table)
        e_band = band_family_max(pa, na, pair_table(n, delta), force_exact=exact)
        eps[active] = np.fmax(e_single, e_band)
        band_won[active] = e_band > np.nan_to_num(e_single, nan=-1.0)
        lost = active[np.isnan(eps[active])]
        for start in range(0, lost.size, 8):  # the scorer aborts here; see datapoint_max
            sub = lost[start : start + 8]
            eps[sub] = datapoint_max(pos[sub], neg[sub], table)
        fallback[lost] = True
        eps[lost] = np.where(np.isnan(eps[lost]), cap, eps[lost])
    eps[peaky] = cap
    same = pos[:, 0] == neg[:, 0]
    eps[constant] = np.where(same[constant], 0.0, cap)
    eps = np.clip(eps.astype(np.float64), 0.0, cap)
    info = dict(peaky=peaky, constant=constant, fallback=fallback, band_won=band_won)
    return eps, info


@dataclasses.dataclass(frozen=True)
class FScoreResult:
    """Forgetting quality with its per-example parts.

    Attributes:
        score: F, the mean of ``points`` over forget examples, in [0, 1].
        eps: per-example epsilon ``[S]`` in ``[0, 50]``.
        points: per-example bucket points ``[S]`` (1, 1/2, 1/4, ... or 0).
        num_models: models per population N.
        max_epsilon: ``ceil(ln(N - 1))``; epsilons at or above it score 0.
        peaky: ``[S]`` examples caught by the 1% range-ratio rule (eps = 50).
        constant: ``[S]`` examples where both populations are constant (jaxmu rule: eps 0
            if the two constants are equal, else 50; the official scorer aborts there).
        fallback: ``[S]`` examples where no official grid threshold survived (the official
            scorer aborts); eps comes from thresholds at the data points, or 50 if none
            survives there either.
        band_won: ``[S]`` the double-threshold family gave the maximum.
    """

    score: float
    eps: np.ndarray
    points: np.ndarray
    num_models: int
    max_epsilon: float
    peaky: np.ndarray
    constant: np.ndarray
    fallback: np.ndarray
    band_won: np.ndarray

    @property
    def n_peaky(self) -> int:
        return int(self.peaky.sum())

    @property
    def n_capped(self) -> int:
        """Examples at the epsilon cap (perfect separation, peaky or fallback)."""
        return int(np.sum(self.eps >= EPSILON_CAP))

    @property
    def n_fallback(self) -> int:
        return int(self.fallback.sum())


def _as_confs(unlearned_confs: Any, retrained_confs: Any) -> tuple[np.ndarray, np.ndarray]:
    u = _checks.as_array("unlearned_confs", unlearned_confs, ndim=2)
    r = _checks.as_array("retrained_confs", retrained_confs, ndim=2)
    if u.shape != r.shape:
        raise ValueError(f"unlearned_confs {u.shape} and retrained_confs {r.shape} must have "
                         "the same [num_models, num_examples] shape (official mode)")
    if u.shape[0] < 2:
        raise ValueError(f"need at least 2 models per population, got {u.shape[0]}")
    big = max(np.abs(u).max(), np.abs(r).max())
    if big > _MAX_ABS_CONF:
        raise ValueError(f"confidences up to {big:.3g} exceed {_MAX_ABS_CONF:.0e}: the official "
                         "0.01-step threshold grid is not representable there")
    return u, r


def epsilon_points(eps: ArrayLike, num_models: int) -> np.ndarray:
    """Bucket points H(eps): ``2**-k`` for eps in ``[k/2, (k+1)/2)`` below ``ceil(ln(N-1))``.

    With N = 512 there are 14 buckets over [0, 7); eps >= max_epsilon (including the cap,
    50) scores 0.

    References:
        Official ``compute_forget_score_from_confs``. With both error rates nonzero the
        largest finite epsilon is ``ln(N - 1 - N * delta)`` (about 6.24 for N = 512), so
        the last bucket is never reached and every capped example scores 0.
    """
    e = _checks.as_array("eps", eps, finite=False)
    if np.any(np.isnan(e)) or np.any(e < 0):
        raise ValueError("eps: epsilons must be non-negative and not NaN")
    if int(num_models) < 2:
        raise ValueError(f"num_models must be at least 2, got {num_models}")
    max_eps = float(np.ceil(np.log(int(num_models) - 1)))
    n_buckets = int(np.floor(max_eps / BIN_WIDTH + 1e-9))
    with np.errstate(invalid="ignore"):
        k = np.floor(e / BIN_WIDTH)
    return np.where(k < n_buckets, 2.0 ** -np.minimum(k, 1e3), 0.0)


def forget_quality_details(
    unlearned_confs: Confs,
    retrained_confs: Confs,
    *,
    delta: float = DELTA,
) -> FScoreResult:
    """Forgetting quality F with per-example epsilons, points and diagnostics.

    Same computation as :func:`forget_quality`; see there.
    """
    u, r = _as_confs(unlearned_confs, retrained_confs)
    if not 0 < float(delta) < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    eps, info = per_example_epsilons(u, r, float(delta))
    n = u.shape[0]
    points = epsilon_points(eps, n)
    return FScoreResult(
        score=float(points.mean()),
        eps=eps,
        points=points,
        num_models=n,
        max_epsilon=float(np.ceil(np.log(n - 1))),
        **info,
    )


def forget_quality(
    unlearned_confs: Confs,
    retrained_confs: Confs,
    *,
    delta: float = DELTA,
) -> tuple[float, np.ndarray]:
    """Forgetting quality F of the NeurIPS-2023 competition and the per-example epsilons.

    Per forget example: orient by median (the larger median is "positive"; ties make the
    unlearned population positive), apply the 1% peaky rule, then take the strongest attack
    over both official threshold families (``ceil(100 * range)`` single thresholds; ~160k
    bands with the peakier population positive), with ``eps = max(log(1-delta-FPR) -
    log(FNR), log(1-delta-FNR) - log(FPR))`` per threshold (float32 rates), +inf on perfect
    separation, one-sided zeros discarded, capped at 50. F is the mean of the bucket points
    ``2**-k`` (:func:`epsilon_points`). Fully vectorised over examples and thresholds; the
    epsilons equal a direct transcription of the official loop (``benchmarks/fscore.py``).

    Where jaxmu differs from the official scorer: it runs where the official one crashes
    (it asserts on the truth value of the array of surviving thresholds, which NumPy rejects
    whenever more than one survives); examples with no surviving grid threshold are
    scored with thresholds at the data points, and both-constant populations get eps 0
    (equal) or 50 (different); see :class:`FScoreResult`.

    Args:
        unlearned_confs: ``[N, S]`` logit-scaled confidences of N unlearned models on S
            forget examples (:func:`logit_scaled_confidence`).
        retrained_confs: ``[N, S]`` the same for N retrained models (equal N required).
        delta: the delta of the epsilon estimate (official 1e-5).

    Returns:
        ``(F, eps)``: F in [0, 1] and float64 epsilons ``[S]``.

    Raises:
        ValueError: on shape mismatch, fewer than 2 models, NaN/inf confidences, or
            confidences beyond +-1e8 (where float64 cannot resolve the 0.01 grid).

    References:
        Official ``metric.py``; docs/evaluation.md#the-competition-f-score (F is about 0.18
        to 0.23 for a perfect unlearner, 0 for a deterministic one, and comparable only at
        equal N).
    """
    res = forget_quality_details(unlearned_confs, retrained_confs, delta=delta)
    return res.score, res.eps


def competition_score(
    unlearned_confs: Confs,
    retrained_confs: Confs,
    ra_u: ArrayLike,
    ra_r: ArrayLike,
    ta_u: ArrayLike,
    ta_r: ArrayLike,
    *,
    delta: float = DELTA,
) -> float:
    """Final competition score ``F * (RA_U / RA_R) * (TA_U / TA_R)``.

    Accuracies may be scalars or per-model arrays (their means are used), in percent or as
    fractions (the ratios are unit-free; use one unit). As in the official code there is no
    clipping: an unlearner more accurate than retraining gets factors above 1.

    Raises:
        ValueError: on bad confidences, negative or non-finite accuracies, or a zero
            retrained accuracy.

    References:
        Official ``main.py`` (RA and TA are means over each population's models);
        docs/evaluation.md#the-competition-f-score.
    """
    accs = {}
    for name, v in (("ra_u", ra_u), ("ra_r", ra_r), ("ta_u", ta_u), ("ta_r", ta_r)):
        a = _checks.as_array(name, v)
        if np.any(a < 0):
            raise ValueError(f"{name}: accuracies must be non-negative")
        accs[name] = float(a.mean())
    for name in ("ra_r", "ta_r"):
        if accs[name] <= 0:
            raise ValueError(f"{name}: the retrained accuracy must be positive")
    f, _ = forget_quality(unlearned_confs, retrained_confs, delta=delta)
    return f * (accs["ra_u"] / accs["ra_r"]) * (accs["ta_u"] / accs["ta_r"])
