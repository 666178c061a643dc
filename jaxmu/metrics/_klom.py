"""KLoM: the KL divergence of margins between unlearned and retrained (oracle) models.

For one example x, each model gives a margin (how confidently it predicts x's true class).
A population of unlearned models gives a sample of margins p, a population of oracle
models (retrained from scratch without the forget set) a sample q. KLoM(x) is the KL
divergence KL(p || q) between 20-bin histograms of the two samples on a common grid: 0
when the unlearned margins are distributed like the oracle's, large when they sit where
the oracle's never do. A benchmark reports a high percentile (EasyDUB: the 95th) of KLoM
over the examples of a split (forget, retain, unseen).

Computation, per example (data-unlearning-bench's ``compute_binned_KL_div``):

1. both samples are clipped to ``clip`` (default ``[-100, 100]``);
2. ``bins`` equal-width bins span ``[min, max]`` of the *combined* clipped samples
   (``[min, min + 1]`` if all are equal);
3. each sample's bin counts are divided by its total (probabilities p and q);
4. where p > 0, q is floored at ``eps`` (default 1e-5) and the floored q is renormalised
   to sum 1 (``scipy.stats.entropy`` renormalises its second argument);
5. ``KLoM = sum over bins with p > 0 of p log(p / q)``.

Where jaxmu differs (``faithful=False``, the default): the reference bins with
``np.digitize`` and counts bins 1..20, so a value equal to the combined maximum falls
past the last (right-open) bin and is silently dropped; with few observations per
example this discards one sample of the 2M, and a side whose values all sit at the
maximum (ties; margins clipped at 100) loses all of them (KLoM NaN if it is the unlearned
side, and a KLoM near 0 for disjoint samples if it is the oracle side). jaxmu's default
closes the last bin, as ``np.histogram`` does, so every observation counts.
``faithful=True`` reproduces the reference, dropped maxima included.

The finite-sample bias: two samples of M margins from one distribution give histograms
that differ by sampling noise, and the KL of noisy histograms is positive: KLoM of a
perfect unlearner is not 0 but depends on M (and on how observations cluster, e.g. runs
that start from one original). :func:`klom_report` therefore pairs every statistic with a
permutation null: the same statistic after the two populations' models are pooled and
randomly reassigned to the two sides. Read a method's KLoM against that null, never
against 0. With 20 bins and normal margins, identical populations of 16 + 16 models give
a P95 over examples near 6, of 64 + 64 models near 1.2; with about 8 observations per side
(an audit design's forget role gives a handful) near 9.8, close to the ceiling of about
``log(1 / eps)`` = 11.5 that disjoint samples reach: there KLoM can hardly tell a
perfect unlearner from none, and only more observations per example help.

References:
    Georgiev et al. 2024, "Attribute-to-Delete: Machine Unlearning via Datamodel Matching"
    (KLoM); data-unlearning-bench / EasyDUB (``unlearning_bench/eval.py``:
    ``get_margins_from_multimodel_logits``, ``compute_binned_KL_div``,
    ``kl_from_margins``); Good 2005, "Permutation, Parametric and Bootstrap Tests of
    Hypotheses" (permutation p-values); Efron & Tibshirani 1993 (bootstrap,
    jackknife).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from jaxtyping import ArrayLike

from jaxmu import _checks
from jaxmu.metrics._fscore import logit_scaled_confidence

# Observations processed per block in _evaluate: bounds the temporaries (~10 float64
# arrays of this length) to a few hundred MB whatever the population size.
_BLOCK_OBS = 1 << 22


def margins(
    logits: Any, labels: ArrayLike, *, kind: str = "lse", augmented: bool | None = None
) -> np.ndarray:
    """Per-(model, example) margins of the true class, in float64.

    ``kind="lse"`` (EasyDUB's margin) is ``z_y - logsumexp_{j != y} z_j``, i.e.
    ``log p_y - log(1 - p_y)`` for the softmax probability ``p_y`` of the true class (the
    logit-scaled confidence of LiRA, :func:`jaxmu.metrics.logit_scaled_confidence`).
    ``kind="max"`` is ``z_y - max_{j != y} z_j``, the classic multiclass margin (positive
    iff the model predicts y). Since ``max <= logsumexp <= max + log(C - 1)``, the "lse"
    margin lies below the "max" margin by between 0 (one dominant competing class) and
    ``log(C - 1)`` (all other logits equal): the two order examples alike when one rival
    class dominates and differ most when the rivals are tied.

    Args:
        logits: ``[..., N, C]``, or ``[..., N, A, C]`` with A augmentations (views) of each
            example, whose margins are averaged over A. Finite, ``C >= 2``.
        labels: ``[N]`` integer labels in ``[0, C)``.
        kind: "lse" (default) or "max".
        augmented: whether the axis before the classes is an augmentation axis. Default
            (None): inferred from the shape (``logits.shape[-2] == N``: no augmentation;
            otherwise ``logits.shape[-3] == N``: augmentations); an ambiguous shape (both
            hold) must say.

    Returns:
        ``[..., N]`` float64 margins.

    Raises:
        ValueError: on non-finite logits, fewer than 2 classes, labels that are not ``[N]``
            integers in range, shapes that match neither layout, or an unknown ``kind``.

    References:
        data-unlearning-bench ``get_margins_from_multimodel_logits``; Carlini et al. 2022
        (LiRA) §VI-A.
    """
    if kind not in ("lse", "max"):
        raise ValueError(f"kind: expected 'lse' or 'max', got {kind!r}")
    z = _checks.as_logits("logits", logits)
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels: expected [N] labels, got shape {lab.shape}")
    n = lab.shape[0]
    augmented = _checks.logits_layout("logits", z, n, augmented)
    lab = _checks.as_labels("labels", lab, z.shape[-1], n)
    lab_b = lab[:, None] if augmented else lab
    if kind == "lse":
        m = logit_scaled_confidence(z, lab_b)
    else:
        full = np.broadcast_to(lab_b, z.shape[:-1])[..., None]
        z_y = np.take_along_axis(z, full, axis=-1)[..., 0]
        others = np.where(np.arange(z.shape[-1]) == full, -np.inf, z)
        m = z_y - others.max(axis=-1)
    return m.mean(axis=-1) if augmented else m


class _Observations(NamedTuple):
    """The counted observations of one split, flattened and sorted by example."""

    val: np.ndarray  # [n_obs] clipped margins
    col: np.ndarray  # [n_obs] example index, non-decreasing
    row: np.ndarray  # [n_obs] row in the pooled population (unlearned rows first)
    n: int  # examples N
    n_u: int  # unlearned rows (pooled rows >= n_u are oracle rows)
    blocks: tuple[tuple[int, int, int, int], ...]  # (obs_lo, obs_hi, col_lo, col_hi)


def _margins(name: str, x: Any) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: cannot convert to an array ({err})") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected [models, N] margins, got shape {arr.shape}")
    return arr


def _settings(bins: Any, eps: Any, clip: Any, min_count: Any) -> tuple[int, float,
                                                                      tuple[float, float], int]:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    eps = _checks.positive_scalar("eps", eps)
    try:
        lo, hi = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise ValueError(f"clip must be a pair (low, high), got {clip!r}") from None
    if np.isnan(lo) or np.isnan(hi) or not lo < hi:
        raise ValueError(f"clip must satisfy low < high, got {clip!r}")
    if (isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer))
            or min_count < 1):
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    return int(bins), eps, (lo, hi), int(min_count)


def _observations(u: np.ndarray, o: np.ndarray, mask_u: np.ndarray, mask_o: np.ndarray,
                  clip: tuple[float, float], names: tuple[str, str]) -> _Observations:
    """Flattens the counted observations of both populations, sorted by example."""
    parts = []
    for arr, mask, offset, name in ((u, mask_u, 0, names[0]), (o, mask_o, u.shape[0],
                                                                 names[1])):
        col, row = np.nonzero(mask.T)  # example-major order
        val = arr[row, col]
        if not np.all(np.isfinite(val)):
            bad = int(val.size - np.count_nonzero(np.isfinite(val)))
            raise ValueError(f"{name}: {bad} counted margin(s) are NaN or infinite")
        parts.append((np.clip(val, *clip), col, row + offset))
    col = np.concatenate([p[1] for p in parts])
    order = np.argsort(col, kind="stable")
    val = np.concatenate([p[0] for p in parts])[order]
    row = np.concatenate([p[2] for p in parts])[order]
    col = col[order]
    n = u.shape[1]
    bounds = np.searchsorted(col, np.arange(n + 1))  # obs range of each example
    blocks, c0 = [], 0
    while c0 < n:
        c1 = int(np.searchsorted(bounds, bounds[c0] + _BLOCK_OBS, side="right")) - 1
        c1 = min(max(c1, c0 + 1), n)
        blocks.append((int(bounds[c0]), int(bounds[c1]), c0, c1))
        c0 = c1
    return _Observations(val, col, row, n, u.shape[0], tuple(blocks))


def _evaluate(obs: _Observations, w_row: np.ndarray, side_row: np.ndarray | None,
              side_obs: np.ndarray | None, *, bins: int, eps: float, min_count: int,
              faithful: bool) -> np.ndarray:
    """Per-example KLoM ``[N]`` with per-row weights (multiplicities) and side labels.

    ``w_row`` ``[R]`` weights every pooled row (0 leaves it out, 2 counts it twice);
    ``side_row`` ``[R]`` (True = unlearned side) or ``side_obs`` ``[n_obs]`` assigns the
    observations to the two sides.
    """
    out = np.full(obs.n, np.nan)
    for o0, o1, c0, c1 in obs.blocks:
        if o1 == o0:
            continue
        nc = c1 - c0
        val, col = obs.val[o0:o1], obs.col[o0:o1] - c0
        row = obs.row[o0:o1]
        w = w_row[row].astype(np.float64)
        s = side_obs[o0:o1] if side_obs is not None else side_row[row]
        wp = np.where(s, w, 0.0)
        wq = w - wp
        n_p = np.bincount(col, wp, minlength=nc)
        n_q = np.bincount(col, wq, minlength=nc)
        scored = (n_p >= min_count) & (n_q >= min_count)
        active = w > 0
        # min / max over the active observations of each example (empty -> +-inf)
        starts = np.searchsorted(col, np.arange(nc))
        has = np.bincount(col, minlength=nc) > 0
        mn = np.full(nc, np.inf)
        mx = np.full(nc, -np.inf)
        mn[has] = np.minimum.reduceat(np.where(active, val, np.inf), starts[has])
        mx[has] = np.maximum.reduceat(np.where(active, val, -np.inf), starts[has])
        mn = np.where(scored, mn, 0.0)
        mx = np.where(scored, mx, 0.0)
        # the reference's np.linspace(lo, hi, bins + 1): edge j = j * step + lo, last = hi
        hi = np.where(mx > mn, mx, mn + 1.0)
        step = (hi - mn) / bins
        lo_c, st_c, hi_c = mn[col], step[col], hi[col]
        k = np.clip(np.floor((val - lo_c) / st_c), 0, bins).astype(np.int64)

        def edge(j: np.ndarray) -> np.ndarray:
            return np.where(j >= bins, hi_c, j * st_c + lo_c)  # noqa: B023

        k -= (val < edge(k)) & (k > 0)  # one rounding step each way, as np.histogram
        k += (k < bins) & (val >= edge(k + 1))
        # k is now np.digitize's index - 1: edge k <= val < edge k+1; k == bins: val >= hi
        if faithful:
            keep = k < bins  # the reference drops values at the combined maximum
            wp, wq = wp * keep, wq * keep
        k = np.minimum(k, bins - 1)
        flat = col * bins + k
        cp = np.bincount(flat, wp, minlength=nc * bins).reshape(nc, bins)
        cq = np.bincount(flat, wq, minlength=nc * bins).reshape(nc, bins)
        tp = cp.sum(axis=1, keepdims=True)
        tq = cq.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = cp / tp
            q = np.where(tq > 0, cq / np.where(tq > 0, tq, 1.0), 0.0)
            q = np.where(p > 0, np.maximum(q, eps), q)
            q = q / q.sum(axis=1, keepdims=True)
            terms = np.where(p > 0, p * np.log(p / q), 0.0)
        kl = terms.sum(axis=1)
        out[c0:c1] = np.where(scored & (tp[:, 0] > 0), kl, np.nan)
    return out


def _prepare(unlearned_margins: Any, oracle_margins: Any, unlearned_mask: Any,
             oracle_mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    u = _margins("unlearned_margins", unlearned_margins)
    o = _margins("oracle_margins", oracle_margins)
    if u.shape[1] != o.shape[1]:
        raise ValueError(f"unlearned_margins has {u.shape[1]} examples, oracle_margins "
                         f"{o.shape[1]}")
    m_u = (np.ones(u.shape, bool) if unlearned_mask is None
           else _checks.as_mask("unlearned_mask", unlearned_mask, u.shape))
    m_o = (np.ones(o.shape, bool) if oracle_mask is None
           else _checks.as_mask("oracle_mask", oracle_mask, o.shape))
    return u, o, m_u, m_o


def klom(
    unlearned_margins: Any,
    oracle_margins: Any,
    *,
    unlearned_mask: Any = None,
    oracle_mask: Any = None,
    bins: int = 20,
    eps: float = 1e-5,
    clip: tuple[float, float] = (-100.0, 100.0),
    min_count: int = 2,
    faithful: bool = False,
) -> np.ndarray:
    """Per-example KLoM: KL(unlearned margins || oracle margins) on shared histograms.

    For each example, the counted unlearned margins (sample p) and oracle margins (sample
    q) are clipped to ``clip``; ``bins`` equal-width bins span the combined clipped range
    ``[min, max]`` (``[min, min + 1]`` when every value is equal); both histograms are
    normalised; where p > 0, q is floored at ``eps`` and renormalised; and
    ``KLoM = sum_{bins with p > 0} p log(p / q)`` (natural log). Disjoint samples give
    about ``log(p_bin / eps)``, ~11.5 with the default eps; identical samples give 0.
    Computed for all examples at once (no loop over examples): cost linear in the number
    of counted observations.

    The default closes the last bin (``np.histogram``), so every observation counts;
    ``faithful=True`` reproduces data-unlearning-bench's ``compute_binned_KL_div``
    exactly, whose ``np.digitize`` binning drops values equal to the combined maximum
    (an example whose unlearned values all sit at the maximum is then NaN).

    Args:
        unlearned_margins: ``[Mu, N]`` margins of Mu unlearned models (:func:`margins`).
        oracle_margins: ``[Mo, N]`` margins of Mo oracle (retrained) models.
        unlearned_mask, oracle_mask: ``[Mu, N]`` / ``[Mo, N]`` bool (or broadcastable),
            which observations count for each example (e.g. the runs in which the example
            has a given role); default all. Margins outside the masks are ignored (may be
            NaN).
        bins: number of bins (at least 2; EasyDUB: 20).
        eps: floor of the oracle probability where the unlearned one is positive (> 0).
        clip: ``(low, high)`` with low < high; margins are clipped to it first.
        min_count: examples with fewer counted observations than this on either side get
            NaN (at least 1).
        faithful: reproduce the reference's binning (see above) instead of the default.

    Returns:
        ``[N]`` float64 KLoM values, NaN for unscored examples.

    Raises:
        ValueError: on margins that are not 2-D with a common N, non-finite counted
            margins, masks that do not broadcast or are not boolean, ``bins < 2``,
            ``eps <= 0``, ``clip`` without low < high, or ``min_count < 1``.

    References:
        Georgiev et al. 2024; data-unlearning-bench ``compute_binned_KL_div``.
    """
    bins, eps, clip, min_count = _settings(bins, eps, clip, min_count)
    u, o, m_u, m_o = _prepare(unlearned_margins, oracle_margins, unlearned_mask,
                              oracle_mask)
    obs = _observations(u, o, m_u, m_o, clip, ("unlearned_margins", "oracle_margins"))
    r = u.shape[0] + o.shape[0]
    return _evaluate(obs, np.ones(r), np.arange(r) < u.shape[0], None, bins=bins, eps=eps,
                     min_count=min_count, faithful=bool(faithful))


def _units(name: str, groups: Any, n_rows: int) -> tuple[np.ndarray, int]:
    """Unit index ``[n_rows]`` in ``0..G-1`` and G (every row its own unit by default)."""
    if groups is None:
        return np.arange(n_rows), n_rows
    g = np.asarray(groups)
    if g.shape != (n_rows,):
        raise ValueError(f"{name}: expected {n_rows} labels, got shape {g.shape}")
    _, inv = np.unique(g, return_inverse=True)
    return inv.reshape(-1), int(inv.max()) + 1


def _summary(values: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """``[mean, percentiles...]`` of the finite values (NaN when there are none)."""
    fin = values[np.isfinite(values)]
    if fin.size == 0:
        return np.full(1 + len(percentiles), np.nan)
    return np.concatenate([[fin.mean()], np.percentile(fin, percentiles)])


def _interval(point: float, vals: np.ndarray, confidence: float,
              method: str) -> tuple[float, float]:
    fin = vals[np.isfinite(vals)]
    if fin.size == 0 or not np.isfinite(point):
        return (np.nan, np.nan)
    alpha = (1 - confidence) / 2
    lo, mid, hi = np.quantile(fin, [alpha, 0.5, 1 - alpha])
    c_lo, c_hi = point - (mid - lo), point + (hi - mid)
    if method == "centred":
        lo, hi = c_lo, c_hi
    elif method == "union":
        lo, hi = min(lo, c_lo), max(hi, c_hi)
    return (float(max(lo, 0.0)), float(max(hi, 0.0)))


def klom_report(
    unlearned_margins: Any,
    oracle_margins: Any,
    *,
    unlearned_masks: Mapping[str, Any],
    oracle_masks: Mapping[str, Any],
    unlearned_groups: Any = None,
    oracle_groups: Any = None,
    percentiles: Sequence[float] = (50, 95, 99),
    n_bootstrap: int = 200,
    n_permutations: int = 100,
    confidence: float = 0.95,
    seed: int = 0,
    interval: str = "jackknife",
    null: str = "models",
    **klom_kwargs: Any,
) -> dict[str, Any]:
    """KLoM per split, with intervals over models and a permutation null.

    For each split (role) name, e.g. "forget", "retain", "unseen", the per-example KLoM
    over the observations the two masks of that name select (:func:`klom`), and its mean
    and percentiles over the scored examples (EasyDUB's headline: the 95th percentile).

    Intervals (``interval``): the statistics' sampling spread comes from the models of the
    two populations, so every interval treats a model, or with ``*_groups`` all rows of
    one group (e.g. all unlearning runs that start from one original model: they share its
    weights and are not independent), as the unit, and the two populations independently.

    * "jackknife" (default): each unit of each population is left out in turn and every
      statistic recomputed; the variance is the sum over the two populations of
      ``(G - 1) / G * sum_i (theta_(i) - mean_i theta_(i))^2`` (G units) and the interval
      ``v +- z * sqrt(variance)`` around the point value v (z the normal quantile of
      ``confidence``). Cost: ``G_u + G_o`` evaluations per split.
    * "percentile", "centred", "union": ``n_bootstrap`` resamples draw the units of each
      population with replacement and recompute, a drawn row counted as often as drawn.
      "percentile" is ``[q_lo, q_hi]`` of the resampled values, "centred"
      ``[v - (q50 - q_lo), v + (q_hi - q50)]`` (the resampled spread moved onto v), "union"
      the smallest interval containing both. Duplicated models make the histograms
      spikier (fewer distinct values in the same bins), so resampled KLoMs sit far above
      the point value (their mean P95 exceeded the point P95 by about 2.3 at 6.0 with
      16 + 16 models, and by 1.2 at 1.2 with 64 + 64) and their spread is inflated by how
      many distinct models a resample happens to hold.

    Intervals are clipped below at 0. Coverage of the expected statistic of a study (the
    mean over 300 fresh studies; the examples are fixed, the models redrawn), 95% intervals,
    bootstrap with 100 resamples, 100 studies per row. Margins ``mu_x + a + e`` with
    per-example centres ``mu_x ~ N(2, 2)`` and noise ``e ~ N(0, 1)``, 200 examples unless
    noted; "+1" shifts every unlearned margin by 1; "model shift 0.5": each model's margins
    on all examples shifted by one N(0, 0.5) draw; "8 x 4 runs": 8 originals per side with 4
    runs each, shifts per original N(0, 0.3) and per original and example N(0, 0.7), run
    noise N(0, 0.7); "sparse": each observation counted with probability 1/4 (about 8 per
    side and example; an audit design's forget role gives a handful). P95: its expected
    value; width c/j: mean width of the centred / jackknife interval over ``3.92 x`` the SD
    of the statistic over fresh studies (1 = as wide as needed):

    ==============================  ====  ==========  =======  =====  =========  =========
    setting (P95 of KLoM)           P95   percentile  centred  union  jackknife  width c/j
    ==============================  ====  ==========  =======  =====  =========  =========
    16 + 16 models, N(mu_x, 1)      5.97  0.00        1.00     1.00   1.00       2.1/2.9
    64 + 64 models                  1.23  0.00        1.00     1.00   1.00       2.7/3.7
    16 + 16, +1                     6.95  0.00        0.99     0.99   0.99       1.9/2.9
    16 + 16, model shift 0.5, +0.5  6.19  0.00        0.99     0.99   1.00       1.6/2.4
    8 x 4 runs                      3.39  0.00        1.00     1.00   1.00       4.0/2.5
    8 x 4 runs, +0.5                3.82  0.00        0.99     0.99   0.99       2.0/1.6
    sparse, 32 + 32 models          9.83  0.00        0.86     1.00   0.98       0.6/2.4
    sparse, 8 x 4 runs              9.85  0.00        0.97     1.00   0.97       1.4/1.4
    sparse, 8 x 4 runs, +0.5        9.90  0.00        0.99     1.00   1.00       1.7/1.6
    20 examples, 16 + 16 models     5.78  0.00        0.99     0.99   1.00       1.2/2.8
    20 examples, 8 x 4 runs         3.18  0.02        0.99     0.99   1.00       1.9/2.4
    ==============================  ====  ==========  =======  =====  =========  =========

    Over the mean, P50, P95 and P99 of all these settings the jackknife covered in 0.96-1.00
    of the studies, the centred bootstrap in 0.86-1.00 (0.86-0.94 on the P95 and P99 of the
    sparse settings, and on the P99 with a shift or 20 examples), the union in 0.90-1.00 at
    up to 13 times the needed width, and the percentile bootstrap in 0.00-0.04. Where they
    cover, the intervals are conservative (the jackknife 1.1-3.7 times too wide): KLoM is
    far from a smooth function of the models, and the leave-one-out and resampled values
    vary more than fresh studies do.

    Null: the observed statistic is compared with its distribution when the two
    populations are exchangeable. With ``null="models"`` (default) each permutation pools
    the units of both populations (models, or groups) and reassigns them at random to
    the two sides, keeping the number of units per side; every example's observations
    move with their model, so runs that share an original stay together (their margins
    are correlated: spread over both sides they would look like two samples with no
    clustering, giving a null that is too low). ``null="observations"`` instead pools and
    reassigns each example's observations independently, keeping each example's counts
    per side (exact only when all observations are independent). ``null="paired"`` is
    for two populations run on one design, unit i of one matching unit i of the other
    (the same original's data and forget sets, e.g. the method's runs and the retrain
    runs of :func:`jaxmu.audits.run_audits`): each permutation swaps every pair with
    probability 1/2, so both sides keep one copy of every design slot. Pairs share
    training data and are correlated, so the observed sides are more alike than two
    random halves of the pooled units; "models" then gives a null that is too high (on
    digits, retrain against an independent retrain: forget P95 1.00 against a "models"
    null of 1.35 [1.20, 1.53], p = 1.0). The report gives the
    mean of the null statistic, its central ``confidence`` range, and the one-sided
    permutation p-value ``(1 + #{null >= observed}) / (1 + n_permutations)``. A
    retrained population against an independent retrained population should give a
    statistic within the null's range (not 0: the KL of two finite samples from one
    distribution is positive).

    Args:
        unlearned_margins: ``[Mu, N]`` margins of the unlearned runs.
        oracle_margins: ``[Mo, N]`` margins of the oracle (retrained) runs.
        unlearned_masks, oracle_masks: ``{split: [Mu, N] / [Mo, N] bool}``, the same split
            names in both: which observations count for that split (the example's role in
            that run).
        unlearned_groups, oracle_groups: ``[Mu]`` / ``[Mo]`` labels of the independent
            units of each population's rows (the original model of each run); default:
            every row its own unit. Used by the intervals and the "models" null.
        percentiles: percentiles over examples to report (each in [0, 100]).
        n_bootstrap: 0 skips the intervals; otherwise the number of resamples of the
            bootstrap intervals (the jackknife always evaluates each unit once).
        n_permutations: permutations for the null (0 skips it).
        confidence: level of the intervals and of the null's range, in (0, 1).
        seed: seed of the resampling and the permutations (reproducible).
        interval: "jackknife" (default), "centred", "union" or "percentile", see above.
        null: "models" (default), "paired" or "observations", see above.
        **klom_kwargs: ``bins``, ``eps``, ``clip``, ``min_count``, ``faithful`` of
            :func:`klom`.

    Returns:
        dict with, for each split s: ``s`` (the ``[N]`` per-example KLoM, NaN where not
        scored), ``s_n`` (scored examples), ``s_mean`` and ``s_p{q}`` for each percentile
        q (e.g. ``forget_p95``), each with ``_ci`` (``(low, high)``, when
        ``n_bootstrap > 0``), ``_null`` (mean over permutations), ``_null_range`` and
        ``_pvalue`` (when ``n_permutations > 0``); and ``n_units_unlearned``,
        ``n_units_oracle``, ``n_bootstrap``, ``n_permutations``, ``interval``, ``null``.

    Raises:
        ValueError: on mask dicts with different or no split names, groups of the wrong
            length, fewer than 2 units in a population, negative ``n_bootstrap`` or
            ``n_permutations``, ``confidence`` outside (0, 1), percentiles outside
            [0, 100], an unknown ``interval`` or ``null``, unknown ``klom_kwargs``, or
            any input :func:`klom` rejects.

    References:
        Georgiev et al. 2024; Efron & Tibshirani 1993 (jackknife; two-sample and cluster
        bootstrap); Good 2005 (permutation tests).
    """
    unknown = set(klom_kwargs) - {"bins", "eps", "clip", "min_count", "faithful"}
    if unknown:
        raise ValueError(f"unknown keyword argument(s) {sorted(unknown)}")
    bins, eps, clip, min_count = _settings(klom_kwargs.get("bins", 20),
                                           klom_kwargs.get("eps", 1e-5),
                                           klom_kwargs.get("clip", (-100.0, 100.0)),
                                           klom_kwargs.get("min_count", 2))
    kw = dict(bins=bins, eps=eps, min_count=min_count,
              faithful=bool(klom_kwargs.get("faithful", False)))
    if not isinstance(unlearned_masks, Mapping) or not isinstance(oracle_masks, Mapping):
        raise ValueError("unlearned_masks and oracle_masks must be dicts {split: mask}")
    if set(unlearned_masks) != set(oracle_masks) or not unlearned_masks:
        raise ValueError(f"mask dicts must name the same, non-empty splits, got "
                         f"{sorted(unlearned_masks)} and {sorted(oracle_masks)}")
    pct = [float(q) for q in np.atleast_1d(np.asarray(percentiles, np.float64))]
    if not all(0 <= q <= 100 for q in pct):
        raise ValueError(f"percentiles must lie in [0, 100], got {list(percentiles)}")
    if int(n_bootstrap) < 0 or int(n_permutations) < 0:
        raise ValueError(f"n_bootstrap and n_permutations must be >= 0, got {n_bootstrap} "
                         f"and {n_permutations}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if interval not in ("jackknife", "union", "centred", "percentile"):
        raise ValueError(f"interval: expected 'jackknife', 'union', 'centred' or "
                         f"'percentile', got {interval!r}")
    if null not in ("models", "paired", "observations"):
        raise ValueError(f"null: expected 'models', 'paired' or 'observations', got "
                         f"{null!r}")
    u = _margins("unlearned_margins", unlearned_margins)
    o = _margins("oracle_margins", oracle_margins)
    unit_u, g_u = _units("unlearned_groups", unlearned_groups, u.shape[0])
    unit_o, g_o = _units("oracle_groups", oracle_groups, o.shape[0])
    if null == "paired" and n_permutations:
        same = (g_u == g_o and (unlearned_groups is None) == (oracle_groups is None) and (
            unlearned_groups is None
            or np.array_equal(np.unique(np.asarray(unlearned_groups)),
                              np.unique(np.asarray(oracle_groups)))))
        if not same:
            raise ValueError("null='paired' needs the same units in both populations "
                             "(equal group labels, or equal row counts without groups)")
    if min(g_u, g_o) < 2 and (n_bootstrap or n_permutations):
        raise ValueError(f"need at least 2 units per population for intervals and the "
                         f"null, got {g_u} and {g_o}")
    splits = list(unlearned_masks)
    obs = {}
    for s in splits:
        _, _, m_u, m_o = _prepare(u, o, unlearned_masks[s], oracle_masks[s])
        obs[s] = _observations(u, o, m_u, m_o, clip, (f"unlearned_margins[{s!r}]",
                                                      f"oracle_margins[{s!r}]"))
    r = u.shape[0] + o.shape[0]
    side0 = np.arange(r) < u.shape[0]
    unit = np.concatenate([unit_u, g_u + unit_o])  # pooled unit of each row
    names = ["mean"] + [f"p{q:g}" for q in pct]
    out: dict[str, Any] = {}
    point = {}
    for s in splits:
        per = _evaluate(obs[s], np.ones(r), side0, None, **kw)
        point[s] = _summary(per, pct)
        out[s] = per
        out[f"{s}_n"] = int(np.count_nonzero(np.isfinite(per)))
        for name, v in zip(names, point[s], strict=True):
            out[f"{s}_{name}"] = float(v)
    rng = np.random.default_rng(seed)
    if n_bootstrap and interval == "jackknife":
        # leave one unit out, each population in turn; Var = sum over both populations of
        # (G - 1) / G * sum_i (theta_(i) - mean)^2
        var = {s: np.zeros(len(names)) for s in splits}
        for first, count in ((0, g_u), (g_u, g_o)):
            loo = {s: np.empty((count, len(names))) for s in splits}
            for i in range(count):
                w = (unit != first + i).astype(np.float64)
                for s in splits:
                    loo[s][i] = _summary(_evaluate(obs[s], w, side0, None, **kw), pct)
            for s in splits:
                with np.errstate(invalid="ignore"):
                    dev = loo[s] - np.nanmean(loo[s], axis=0)
                var[s] += (count - 1) / count * np.nansum(dev ** 2, axis=0)
        from scipy import stats  # here: scipy.stats costs ~1.5 s to import

        z = float(stats.norm.ppf(0.5 + confidence / 2))
        for s in splits:
            for j, name in enumerate(names):
                v, h = point[s][j], z * np.sqrt(var[s][j])
                out[f"{s}_{name}_ci"] = ((float(max(v - h, 0.0)), float(v + h))
                                         if np.isfinite(v) else (np.nan, np.nan))
    elif n_bootstrap:
        boot = {s: np.empty((int(n_bootstrap), len(names))) for s in splits}
        for b in range(int(n_bootstrap)):
            mult = np.concatenate([np.bincount(rng.integers(0, g_u, g_u), minlength=g_u),
                                   np.bincount(rng.integers(0, g_o, g_o), minlength=g_o)])
            w = mult[unit].astype(np.float64)
            for s in splits:
                boot[s][b] = _summary(_evaluate(obs[s], w, side0, None, **kw), pct)
        for s in splits:
            for j, name in enumerate(names):
                out[f"{s}_{name}_ci"] = _interval(point[s][j], boot[s][:, j], confidence,
                                                  interval)
    if n_permutations:
        nulls = {s: np.empty((int(n_permutations), len(names))) for s in splits}
        ones = np.ones(r)
        for b in range(int(n_permutations)):
            if null == "models":
                side_unit = np.zeros(g_u + g_o, bool)
                side_unit[rng.permutation(g_u + g_o)[:g_u]] = True
                side_row = side_unit[unit]
            elif null == "paired":  # swap unit i of one side with unit i of the other
                flip = rng.random(g_u) < 0.5
                side_row = np.concatenate([~flip, flip])[unit]
            for s in splits:
                if null in ("models", "paired"):
                    per = _evaluate(obs[s], ones, side_row, None, **kw)
                else:
                    per = _evaluate(obs[s], ones, None, _shuffle_sides(obs[s], side0, rng),
                                    **kw)
                nulls[s][b] = _summary(per, pct)
        alpha = (1 - confidence) / 2
        for s in splits:
            for j, name in enumerate(names):
                vals = nulls[s][:, j]
                fin = vals[np.isfinite(vals)]
                key = f"{s}_{name}"
                if fin.size == 0 or not np.isfinite(point[s][j]):
                    out[f"{key}_null"], out[f"{key}_null_range"] = np.nan, (np.nan, np.nan)
                    out[f"{key}_pvalue"] = np.nan
                    continue
                out[f"{key}_null"] = float(fin.mean())
                lo, hi = np.quantile(fin, [alpha, 1 - alpha])
                out[f"{key}_null_range"] = (float(lo), float(hi))
                out[f"{key}_pvalue"] = float((1 + np.count_nonzero(fin >= point[s][j]))
                                             / (1 + fin.size))
    out.update(n_units_unlearned=g_u, n_units_oracle=g_o, n_bootstrap=int(n_bootstrap),
               n_permutations=int(n_permutations), interval=interval, null=null)
    return out


def _shuffle_sides(obs: _Observations, side0: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Side labels ``[n_obs]``: each example's labels randomly permuted among its own
    observations (the number per side kept)."""
    side = side0[obs.row]
    # obs are sorted by example, so this order permutes within each example's range
    order = np.lexsort((rng.random(side.size), obs.col))
    out = np.empty_like(side)
    out[order] = side
    return out
