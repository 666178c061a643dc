"""RMIA: the relative membership inference attack, and U-RMIA for unlearning.

RMIA (Zarifzadeh et al. 2024) tests whether a target model's probability of an example x is
high *relative to* how likely x is in general, and relative to the same ratio on population
examples z that the target never saw:

* the signal is ``Pr(x | theta)``, the target's softmax probability of x's true label
  (:func:`rmia_signal`);
* ``Pr(x)``, the probability of x averaged over models trained on random data, comes from
  reference models: online (references that trained on x and references that did not) it is
  the mean of the IN mean and the OUT mean; offline (OUT references only) it is
  ``((1 + a) / 2) * mean_OUT + (1 - a) / 2``, the paper's linear approximation of the missing
  IN half with the scaling parameter ``a``;
* ``Ratio_x = Pr(x | theta) / Pr(x)``, and the score of x is the fraction of population
  examples z whose ratio x beats by more than a factor ``gamma``:
  ``score(x) = mean_z [Ratio_x / Ratio_z > gamma]``.

A non-member x is exchangeable with the population, so its score is close to uniform on
[0, 1] (exactly, for ``gamma = 1``, its rank among the population); a member's ratio is
inflated and its score approaches 1.

U-RMIA (:func:`u_rmia`) is the same test for unlearning, as U-LiRA is to LiRA: the targets are
unlearned models, positives are examples they forgot and negatives examples their original
never saw; the references are shadow unlearning runs, with "IN" = "the run forgot x" and
"OUT" = "the run's original never saw x". Perfect unlearning makes the forgotten examples
exchangeable with the never-seen ones (AUC 0.5).

Everything is float64 NumPy, vectorised over examples; the per-target population comparison
is one sort and one ``searchsorted`` per target (``O(T N log N)``).

References:
    Zarifzadeh, Liu, Shokri & Kumar 2024, "Low-Cost High-Power Membership Inference Attacks"
    (ICML; RMIA, eq. for Pr(x) offline and the scaling parameter a); Privacy Meter
    (privacytrustlab/ml_privacy_meter, ``modules/mia/attacks/rmia.py``: ``run_rmia``,
    ``get_out_ref_signals``, ``tune_offline_a``); Hayes et al. 2024 (U-LiRA, the unlearning
    design this mirrors).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import ArrayLike
from scipy import special

from jaxmu import _checks
from jaxmu.metrics._lira import cluster_index, summarize
from jaxmu.metrics._typing import Logits, Mask, PerExample


def rmia_signal(
    logits: Logits,
    labels: ArrayLike,
    *,
    temperature: float = 1.0,
    augmented: bool | None = None,
) -> np.ndarray:
    """RMIA's signal ``Pr(x | theta)``: the softmax probability of the true label.

    Args:
        logits: ``[..., N, C]`` logits of any number of models on N examples, or
            ``[..., N, A, C]`` with an augmentation axis (e.g. identity and horizontal flip),
            whose probabilities are averaged.
        labels: ``[N]`` integer labels in ``[0, C)``.
        temperature: softmax temperature (probabilities of ``logits / temperature``).
        augmented: whether the axis before the classes is an augmentation axis. Default
            (None): inferred from the shape, ``[..., N, C]`` when ``logits.shape[-2] == N``
            and ``[..., N, A, C]`` when ``logits.shape[-3] == N``; give it when both hold.

    Returns:
        float64 ``[...,  N]`` probabilities in [0, 1], computed as
        ``exp(z_y / T - logsumexp(z / T))`` (stable for large logits).

    Raises:
        ValueError: on non-finite logits, labels that are not ``[N]`` integers in range, a
            non-positive temperature, or a shape that matches neither layout (or both, with
            ``augmented`` unset).
    """
    z = _checks.as_logits("logits", logits)
    temp = _checks.positive_scalar("temperature", temperature)
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels: expected 1-D [N] labels, got shape {lab.shape}")
    n = lab.shape[0]
    augmented = _checks.logits_layout("logits", z, n, augmented)
    lab_b = _checks.broadcast_labels("labels", lab[:, None] if augmented else lab, z.shape)
    zt = z / temp
    logp = np.take_along_axis(zt, lab_b[..., None], axis=-1)[..., 0] - special.logsumexp(
        zt, axis=-1)
    p = np.exp(logp)
    return p.mean(axis=-1) if augmented else p


def _as_probs(name: str, x: Any, n: int | None = None) -> np.ndarray:
    arr = _checks.as_unit_interval(name, x)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected 2-D [models, N] probabilities, got shape {arr.shape}")
    if n is not None and arr.shape[1] != n:
        raise ValueError(f"{name}: {arr.shape[1]} examples, expected {n}")
    return arr


def _check_a(offline_a: Any) -> float:
    try:
        a = float(offline_a)
    except (TypeError, ValueError):
        raise ValueError(f"offline_a: expected a number, got {type(offline_a).__name__}"
                         ) from None
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"offline_a: expected a value in [0, 1], got {a}")
    return a


def reference_probability(
    ref_p: np.ndarray,
    ref_in: np.ndarray,
    ref_out: np.ndarray,
    *,
    online: bool = True,
    offline_a: float = 0.3,
) -> np.ndarray:
    """``Pr(x)`` of every example from reference-model probabilities (inputs validated).

    With ``P_in`` / ``P_out`` the mean probability of x over the references that trained on
    x / did not (observations in neither mask are ignored):

    * online: ``(P_in + P_out) / 2``;
    * offline: ``((1 + a) / 2) * P_out + (1 - a) / 2``, which is the online value under the
      paper's linear relation ``P_in ~ a * P_out + (1 - a)``.

    Missing halves, which few references make common, are filled from that same relation
    (Privacy Meter's one-reference path): an example without IN observations gets
    ``P_in = a * P_out + 1 - a`` (online; so its ``Pr(x)`` equals the offline value), and an
    example without OUT observations gets ``P_out = max(0, (P_in + a - 1) / a)`` (online and
    offline). The clip at 0 is jaxmu's: the inverse is negative for ``P_in < 1 - a`` and
    would make ``Pr(x)`` zero or negative (Privacy Meter keeps the negative value, which
    flips the sign of the ratio). At ``a = 0`` the relation says ``P_in = 1`` whatever
    ``P_out`` and cannot be inverted, so an example with IN observations only is left
    without ``Pr(x)`` (NaN), as is an example with no observation at all.

    Args:
        ref_p: ``[R, N]`` probabilities of R reference models (rows may repeat: a bootstrap
            draw weights them by their multiplicity).
        ref_in, ref_out: ``[R, N]`` bool, the observation is IN (the reference trained on x,
            or, for unlearning, forgot x) / OUT (never saw x).
        online: use IN and OUT means; False: OUT only (offline).
        offline_a: the scaling parameter ``a`` in [0, 1].

    Returns:
        ``[N]`` float64 ``Pr(x)``, NaN where it cannot be formed.
    """
    a = float(offline_a)
    n_in, n_out = ref_in.sum(axis=0), ref_out.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        m_in = np.where(ref_in, ref_p, 0.0).sum(axis=0) / n_in
        m_out = np.where(ref_out, ref_p, 0.0).sum(axis=0) / n_out
        m_in = np.where(n_in > 0, m_in, np.nan)
        m_out = np.where(n_out > 0, m_out, np.nan)
        if a > 0:
            out_from_in = np.maximum((m_in + a - 1.0) / a, 0.0)
        else:
            out_from_in = np.full_like(m_in, np.nan)
        p_out = np.where(n_out > 0, m_out, out_from_in)
        offline_pr = (1.0 + a) / 2.0 * p_out + (1.0 - a) / 2.0
        if not online:
            return offline_pr
        # online: the IN mean where there is one, else P_in = a * P_out + 1 - a (offline value)
        return np.where(n_in > 0, 0.5 * (m_in + p_out), offline_pr)


def _population_scores(ratio: np.ndarray, z: np.ndarray, gamma: float) -> np.ndarray:
    """``score[t, n]`` = fraction of the population ``z[t]`` (x itself excluded) whose ratio
    lies below ``ratio[t, n] / gamma``; NaN where the ratio is NaN or no population is left."""
    out = np.full(ratio.shape, np.nan)
    for t in range(ratio.shape[0]):
        r = ratio[t]
        ok = ~np.isnan(r)
        in_z = z[t] & ok
        zs = np.sort(r[in_z])
        thr = r / gamma
        order = np.argsort(thr)  # sorted queries: searchsorted walks zs once (3x faster)
        below = np.empty(r.size)
        below[order] = np.searchsorted(zs, thr[order], side="left")
        with np.errstate(invalid="ignore"):
            self_below = in_z & (r < thr)  # x counted itself (only when gamma < 1)
        den = zs.size - in_z.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[t] = np.where(ok & (den > 0), (below - self_below) / den, np.nan)
    return out


def rmia_scores(
    target_p: PerExample,
    ref_p: PerExample,
    ref_in: Mask,
    ref_out: Mask,
    z_mask: Mask,
    *,
    online: bool = True,
    offline_a: float = 0.3,
    gamma: float = 1.0,
) -> np.ndarray:
    """RMIA scores of T target models on N examples.

    ``Pr(x)`` comes from the references (:func:`reference_probability`: online the mean of the
    IN and OUT means, offline ``((1 + a) / 2) * P_out + (1 - a) / 2``, with missing halves
    filled from the linear relation ``P_in ~ a * P_out + 1 - a``). For target t,
    ``Ratio[t, x] = target_p[t, x] / Pr(x)`` and

        ``score[t, x] = #{z in Z_t, z != x : Ratio[t, z] < Ratio[t, x] / gamma} / #(Z_t - {x})``,

    i.e. the fraction of the population with ``Ratio_x / Ratio_z > gamma`` (the comparison is
    made as ``Ratio_z < Ratio_x / gamma``, equal for positive ratios). Every column can be
    scored, including population columns (against the rest of the population).

    Args:
        target_p: ``[T, N]`` probabilities of the true labels under the targets
            (:func:`rmia_signal`).
        ref_p: ``[R, N]`` the same under R reference models.
        ref_in: ``[R, N]`` bool, reference r trained on x (unlearning: forgot x).
        ref_out: ``[R, N]`` bool, reference r never saw x. Observations in neither mask (for
            unlearning, a run that retained x) are ignored; none may be in both.
        z_mask: ``[T, N]`` or ``[N]`` bool, the population Z_t of each target: examples that
            are NOT members of target t (for unlearning, never seen by its original).
        online: use IN and OUT references; False: OUT only (offline RMIA).
        offline_a: the scaling parameter ``a`` in [0, 1] (paper default 0.3; offline, and to
            fill missing halves online; :func:`tune_offline_a` picks it).
        gamma: the ratio threshold, > 0 (paper default 1; larger demands a clearer win).

    Returns:
        ``[T, N]`` float64 scores in [0, 1] (higher = member); NaN where ``Pr(x)`` cannot be
        formed (no usable reference observation), where the ratio is undefined (``0 / 0``),
        or where the target has no other population example. Population examples with an
        undefined ratio are left out of the population.

    Raises:
        ValueError: on probabilities outside [0, 1] or non-finite, shape mismatches, an
            observation both IN and OUT, ``offline_a`` outside [0, 1] or ``gamma <= 0``.
    """
    tp = _as_probs("target_p", target_p)
    n = tp.shape[1]
    rp = _as_probs("ref_p", ref_p, n)
    m_in = np.asarray(_checks.as_mask("ref_in", ref_in, rp.shape))
    m_out = np.asarray(_checks.as_mask("ref_out", ref_out, rp.shape))
    if np.any(m_in & m_out):
        raise ValueError(f"ref_in and ref_out overlap in {int(np.sum(m_in & m_out))} "
                         f"observation(s); an observation is IN, OUT or neither")
    zm = np.asarray(_checks.as_mask("z_mask", z_mask, tp.shape))
    a = _check_a(offline_a)
    g = _checks.positive_scalar("gamma", gamma)
    return _scores(tp, reference_probability(rp, m_in, m_out, online=bool(online),
                                             offline_a=a), zm, g)


def _scores(tp: np.ndarray, pr: np.ndarray, zm: np.ndarray, gamma: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = tp / pr  # p / 0 = inf (beats every finite ratio); 0 / 0 = NaN (unscored)
    return _population_scores(ratio, zm, gamma)


def rmia(
    ref_p: PerExample,
    ref_in: Mask,
    ref_out: Mask,
    target_p: PerExample,
    target_positive: Mask,
    *,
    target_mask: Mask | None = None,
    z_mask: Mask | None = None,
    online: bool = True,
    offline_a: float = 0.3,
    gamma: float = 1.0,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    target_groups: ArrayLike | None = None,
    reference_groups: ArrayLike | None = None,
    interval: str = "auto",
) -> dict[str, Any]:
    """RMIA report for held-out target models (members vs non-members).

    Scores every target pair with :func:`rmia_scores` and summarises them with the same ROC
    machinery as :func:`jaxmu.metrics.lira` and :func:`jaxmu.metrics.ulira`
    (:func:`jaxmu.metrics._lira.summarize`), so the numbers are comparable.

    Threshold: RMIA scores lie in [0, 1] and a non-member's score is close to uniform (its
    rank among the population; exactly for ``gamma = 1``), so the threshold-based figures
    (``balanced_accuracy``, ``per_target_accuracy``, ``per_example_accuracy``) decide
    "member" when ``score > 0.5``, i.e. when x's ratio beats more than half of the
    population: the median of a non-member's score, so the expected balanced accuracy is
    0.5 when members and non-members are exchangeable. (``summarize`` thresholds at 0; it
    receives ``score - 0.5``.) ``best_accuracy`` is the best threshold (optimistic);
    ``auc`` and the TPRs do not depend on the threshold.

    Args:
        ref_p: ``[R, N]`` true-label probabilities of R reference models
            (:func:`rmia_signal`).
        ref_in, ref_out: ``[R, N]`` bool, the reference trained on x / never saw x
            (observations in neither are ignored).
        target_p: ``[T, N]`` true-label probabilities of the targets (never references).
        target_positive: ``[T]`` or ``[T, N]`` bool ground truth (True = member).
        target_mask: ``[T, N]`` bool, which target pairs to score (default all).
        z_mask: ``[T, N]`` or ``[N]`` bool population of each target. Default: every scored
            negative pair of that target (``target_mask & ~target_positive``); each
            negative x is compared with the other negatives.
        online, offline_a, gamma: the attack (:func:`rmia_scores`).
        n_bootstrap: if > 0, add ``*_ci`` intervals from cluster-bootstrap resamples of the
            target units (``target_groups``).
        confidence, seed: bootstrap settings.
        target_groups: ``[T]`` labels of the targets' independent units (e.g. the original
            model of each unlearning run). Default: every target row is its own unit.
        reference_groups: ``[R]`` labels of the references' independent units. Given, each
            resample also redraws the reference units with replacement and recomputes
            ``Pr(x)`` and the scores from them, so the intervals include the noise of the
            reference estimate (cost: one rescoring per resample). Default: ``Pr(x)`` held
            fixed, which gives intervals conditional on the references; in simulated null
            studies with 8 references and 8 targets the 95% AUC interval covered 0.5 in 90%
            of studies with ``Pr(x)`` fixed and in 94.5% with the references redrawn.
        interval: "auto" (default: centred on the point value with ``reference_groups``,
            percentile otherwise), "centred" or "percentile" (as in ``summarize``).

    Returns:
        dict with ``auc``, ``tpr_at_1fpr``, ``tpr_at_0.1fpr``, ``balanced_accuracy`` (at
        score > 0.5), ``best_accuracy``, ``per_target_accuracy`` ``[T]``, the per-example
        accuracy distribution, ``n_positive`` / ``n_negative``, and with ``n_bootstrap > 0``
        ``auc_ci``, ``tpr_at_1fpr_ci``, ``tpr_at_0.1fpr_ci``, ``balanced_accuracy_ci``,
        ``best_accuracy_ci`` and ``n_bootstrap_units``; plus ``scores`` ``[T, N]`` (RMIA
        scores in [0, 1], NaN where unscored), ``threshold`` (0.5),
        ``reference_probability`` ``[N]`` (``Pr(x)``), ``population_size`` ``[T]`` and
        ``n_unscored`` (scored pairs whose score is NaN).

    Raises:
        ValueError: on bad shapes or values (see :func:`rmia_scores`), group labels of the
            wrong length, or when either class has no scored pair.

    References:
        Zarifzadeh et al. 2024 (RMIA); Carlini et al. 2022 §VI (TPR at low FPR); Field &
        Welsh 2007 (cluster bootstrap).
    """
    tp = _as_probs("target_p", target_p)
    t, n = tp.shape
    rp = _as_probs("ref_p", ref_p, n)
    m_in = np.asarray(_checks.as_mask("ref_in", ref_in, rp.shape))
    m_out = np.asarray(_checks.as_mask("ref_out", ref_out, rp.shape))
    if np.any(m_in & m_out):
        raise ValueError(f"ref_in and ref_out overlap in {int(np.sum(m_in & m_out))} "
                         f"observation(s); an observation is IN, OUT or neither")
    truth = np.asarray(target_positive)
    truth = np.asarray(_checks.as_mask("target_positive", truth[:, None] if truth.ndim == 1
                                       else truth, tp.shape))
    valid = np.ones(tp.shape, bool) if target_mask is None else np.asarray(
        _checks.as_mask("target_mask", target_mask, tp.shape))
    zm = (valid & ~truth) if z_mask is None else np.asarray(
        _checks.as_mask("z_mask", z_mask, tp.shape))
    a = _check_a(offline_a)
    g = _checks.positive_scalar("gamma", gamma)
    cluster_index("target_groups", target_groups, t)
    if reference_groups is not None:
        cluster_index("reference_groups", reference_groups, rp.shape[0])
    kw = dict(online=bool(online), offline_a=a)

    def score(rows: Any = slice(None)) -> np.ndarray:
        pr = reference_probability(rp[rows], m_in[rows], m_out[rows], **kw)
        return _scores(tp, pr, zm, g)

    pr = reference_probability(rp, m_in, m_out, **kw)
    scores = _scores(tp, pr, zm, g)
    refit = None if reference_groups is None else (lambda rows: score(rows) - 0.5)
    out = summarize(scores - 0.5, truth, valid, n_bootstrap=n_bootstrap,
                    confidence=confidence, seed=seed, groups=target_groups, refit=refit,
                    shadow_groups=reference_groups, interval=interval)
    out["scores"] = scores
    out["threshold"] = 0.5
    out["reference_probability"] = pr
    out["population_size"] = zm.sum(axis=1)
    out["n_unscored"] = int(np.sum(valid & ~np.isfinite(scores)))
    return out


def u_rmia(
    shadow_p: PerExample,
    shadow_forgot: Mask,
    shadow_unseen: Mask,
    target_p: PerExample,
    target_forgot: Mask,
    target_unseen: Mask,
    *,
    z_mask: Mask | None = None,
    online: bool = True,
    offline_a: float = 0.3,
    gamma: float = 1.0,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    target_groups: ArrayLike | None = None,
    shadow_groups: ArrayLike | None = None,
    interval: str = "auto",
) -> dict[str, Any]:
    """U-RMIA: RMIA for unlearning (forgotten vs never-seen examples of unlearned targets).

    The references are shadow unlearning runs: an observation is IN where the run forgot x
    and OUT where the run's original never saw x; runs that retained x contribute nothing
    to ``Pr(x)``. Each target (a held-out unlearning run) scores its forgotten examples
    (positives) and never-seen examples (negatives); retained examples are not scored. The
    default population of a target is its never-seen examples. Perfect unlearning makes
    the forgotten examples exchangeable with the never-seen ones: AUC 0.5 and
    ``urmia_accuracy`` (balanced accuracy at score > 0.5) 0.5 in expectation.

    Args:
        shadow_p: ``[S, N]`` true-label probabilities of S shadow unlearning runs
            (:func:`rmia_signal`).
        shadow_forgot, shadow_unseen: ``[S, N]`` bool, the run forgot x / its original
            never saw x (disjoint).
        target_p: ``[T, N]`` true-label probabilities of the held-out unlearned targets.
        target_forgot, target_unseen: ``[T, N]`` bool, the target forgot x (positive) / its
            original never saw x (negative); disjoint. Pairs in neither are not scored.
        z_mask: ``[T, N]`` or ``[N]`` bool population (default ``target_unseen``).
        online, offline_a, gamma: the attack (:func:`rmia_scores`).
        n_bootstrap, confidence, seed, interval: bootstrap settings (:func:`rmia`).
        target_groups: ``[T]`` the original model each target run started from (its runs
            are resampled together).
        shadow_groups: ``[S]`` the original of each shadow run; given, each resample also
            redraws the shadow originals and recomputes ``Pr(x)``.

    Returns:
        The :func:`rmia` dict, plus ``urmia_accuracy`` (= ``balanced_accuracy``, at score >
        0.5; the headline, unbiased under perfect unlearning) and ``urmia_best_acc`` (=
        ``best_accuracy``; optimistic), and with ``n_bootstrap > 0`` ``urmia_accuracy_ci``
        and ``urmia_best_acc_ci``, named as :func:`jaxmu.metrics.ulira` names its keys.

    Raises:
        ValueError: on bad shapes or values, overlapping forgot / unseen masks, or when
            either class has no scored pair.

    References:
        Zarifzadeh et al. 2024 (RMIA); Hayes et al. 2024 (U-LiRA's unlearning design).
    """
    tp = _as_probs("target_p", target_p)
    forgot = np.asarray(_checks.as_mask("target_forgot", target_forgot, tp.shape))
    unseen = np.asarray(_checks.as_mask("target_unseen", target_unseen, tp.shape))
    if np.any(forgot & unseen):
        raise ValueError(f"target_forgot and target_unseen overlap in "
                         f"{int(np.sum(forgot & unseen))} pair(s)")
    out = rmia(shadow_p, shadow_forgot, shadow_unseen, tp, forgot,
               target_mask=forgot | unseen, z_mask=unseen if z_mask is None else z_mask,
               online=online, offline_a=offline_a, gamma=gamma, n_bootstrap=n_bootstrap,
               confidence=confidence, seed=seed, target_groups=target_groups,
               reference_groups=shadow_groups, interval=interval)
    out["urmia_accuracy"] = out["balanced_accuracy"]
    out["urmia_best_acc"] = out["best_accuracy"]
    if "balanced_accuracy_ci" in out:
        out["urmia_accuracy_ci"] = out["balanced_accuracy_ci"]
        out["urmia_best_acc_ci"] = out["best_accuracy_ci"]
    return out


def tune_offline_a(
    ref_p: PerExample,
    ref_in: Mask,
    ref_out: Mask,
    *,
    held_out: int | Sequence[int] = 0,
    grid: ArrayLike | None = None,
    gamma: float = 1.0,
    reference_groups: ArrayLike | None = None,
) -> dict[str, Any]:
    """Picks RMIA's offline scaling parameter ``a`` by attacking a held-out reference.

    As Privacy Meter's ``tune_offline_a``: one reference model (``held_out``) plays the
    target, its IN examples the members and its OUT examples the non-members (and the
    population), the remaining references give ``Pr(x)``, and the offline attack is run for
    every ``a`` of the grid; the ``a`` with the highest AUC wins (the smallest on ties).
    Where Privacy Meter attacks the model paired with the target through its one-reference
    conversion path, here the remaining references are used with the same offline rule as
    :func:`rmia_scores`, so give the references you will attack with; the tuned ``a``
    depends on their number.

    Args:
        ref_p, ref_in, ref_out: ``[R, N]`` references as in :func:`rmia_scores`.
        held_out: index (or indices) of the reference row(s) attacked.
        grid: candidate values in [0, 1] (default 0, 0.1, ..., 1).
        gamma: the RMIA ratio threshold.
        reference_groups: ``[R]`` units of the references; given, every reference of a
            held-out row's unit is left out of ``Pr(x)`` as well (e.g. the other unlearning
            runs of the same original).

    Returns:
        dict with ``offline_a`` (float), ``grid`` ``[G]`` and ``auc`` ``[G]`` (NaN where the
        attack scored no pair of a class).

    Raises:
        ValueError: on bad inputs, a held-out index out of range, no reference left, or no
            finite AUC on the grid.
    """
    rp = _as_probs("ref_p", ref_p)
    r = rp.shape[0]
    m_in = np.asarray(_checks.as_mask("ref_in", ref_in, rp.shape))
    m_out = np.asarray(_checks.as_mask("ref_out", ref_out, rp.shape))
    if np.any(m_in & m_out):
        raise ValueError(f"ref_in and ref_out overlap in {int(np.sum(m_in & m_out))} "
                         f"observation(s); an observation is IN, OUT or neither")
    held = np.atleast_1d(np.asarray(held_out))
    if held.ndim != 1 or not np.issubdtype(held.dtype, np.integer) or held.size == 0 or \
            np.any((held < -r) | (held >= r)):
        raise ValueError(f"held_out: expected reference row index(es) in [0, {r}), got "
                         f"{held_out!r}")
    held = np.unique(held % r)
    keep = np.ones(r, bool)
    keep[held] = False
    if reference_groups is not None:
        inv, _ = cluster_index("reference_groups", reference_groups, r)
        keep &= ~np.isin(inv, inv[held])
    if not keep.any():
        raise ValueError("held_out: no reference left to estimate Pr(x)")
    g_arr = np.round(np.arange(11) / 10, 10) if grid is None else _checks.as_array(
        "grid", grid, ndim=1)
    for v in g_arr:
        _check_a(v)
    g = _checks.positive_scalar("gamma", gamma)
    pos, neg = m_in[held], m_out[held]
    aucs = np.full(g_arr.size, np.nan)
    for i, a in enumerate(g_arr):
        pr = reference_probability(rp[keep], m_in[keep], m_out[keep], online=False,
                                   offline_a=float(a))
        sc = _scores(rp[held], pr, neg, g)
        ok = (pos | neg) & np.isfinite(sc)
        if (pos & ok).any() and (neg & ok).any():
            aucs[i] = summarize(sc - 0.5, pos, pos | neg)["auc"]
    if not np.isfinite(aucs).any():
        raise ValueError("tune_offline_a: no grid value gave a finite AUC (too few scored "
                         "pairs of a class)")
    best = int(np.nanargmax(aucs))
    return {"offline_a": float(g_arr[best]), "grid": np.asarray(g_arr, np.float64),
            "auc": aucs, "max_auc": float(aucs[best])}


__all__ = ["reference_probability", "rmia", "rmia_scores", "rmia_signal", "tune_offline_a",
           "u_rmia"]
