"""PNG figures of the audits: ROC curves with bands, KLoM margin histograms, relearning
curves and attack power against the number of shadow models.

Every plotting function takes plain NumPy arrays, lists and dicts (the dicts may come
straight from ``json.load``: lists instead of arrays, ``None`` for missing intervals),
validates them before touching the file system (a bad input is one ``ValueError`` and
writes nothing), draws a ``matplotlib.figure.Figure`` on an Agg canvas without ``pyplot``
(no global figure registry, the caller's backend untouched), writes the PNG atomically (a
temporary file in the target directory, then ``os.replace``, so a reader never sees a
partial image) and returns the path written. :func:`roc_band` computes the ROC dict that
:func:`plot_roc` draws. matplotlib and scikit-learn are imported inside the functions that
use them, so importing this module stays light.

References:
    Carlini et al. 2022, "Membership Inference Attacks From First Principles" (ROC curves on
    log-log axes, TPR at low FPR); Georgiev et al. 2024, "Attribute-to-Delete: Machine
    Unlearning via Datamodel Matching" (KLoM: KL divergence between binned margin
    distributions, 20 bins over the combined range); Field & Welsh 2007, "Bootstrapping
    clustered data" (resampling whole clusters); Fawcett 2006, "An introduction to ROC
    analysis" (weighted ROC from sorted cumulative counts).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_FPR_MIN = 1e-4  # left edge of the log-log ROC plot (as in the LiRA paper's figures)
_METRIC_LABELS = {"auc": "AUC", "tpr_at_1fpr": "TPR at 1% FPR", "tpr_at_0.1fpr": "TPR at 0.1% FPR",
                  "balanced_accuracy": "balanced accuracy", "best_accuracy": "best accuracy"}
_CHANCE_METRICS = ("auc", "balanced_accuracy", "best_accuracy", "accuracy", "ulira_accuracy")


# ----------------------------------------------------------------------------- helpers


def _png_path(path: Any) -> Path:
    try:
        p = Path(path)
    except TypeError:
        raise ValueError(f"path: expected a str or PathLike, got {type(path).__name__}") from None
    if p.suffix.lower() != ".png":
        raise ValueError(f"path: expected a .png file name, got {str(p)!r}")
    return p


def _vector(name: str, x: Any, *, n: int | None = None, allow_nan: bool = True) -> np.ndarray:
    """A 1-D float64 array (None -> NaN entries of length n), no infinities."""
    if x is None and n is not None:
        return np.full(n, np.nan)
    try:
        arr = np.asarray(x, dtype=np.float64)  # None entries (JSON null) become NaN
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: cannot convert to a float array ({err})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: is empty")
    if n is not None and arr.size != n:
        raise ValueError(f"{name}: expected length {n}, got {arr.size}")
    if np.any(np.isinf(arr)) or (not allow_nan and np.any(np.isnan(arr))):
        raise ValueError(f"{name}: contains non-finite values")
    return arr


def _in_range(name: str, arr: np.ndarray, lo: float, hi: float) -> None:
    fin = arr[np.isfinite(arr)]
    if fin.size and (fin.min() < lo or fin.max() > hi):
        raise ValueError(f"{name}: values must lie in [{lo:g}, {hi:g}], got range "
                         f"[{fin.min():.6g}, {fin.max():.6g}]")


def _ordered_band(name: str, lo: np.ndarray, hi: np.ndarray) -> None:
    both = np.isfinite(lo) & np.isfinite(hi)
    if np.any(lo[both] > hi[both] + 1e-12):
        raise ValueError(f"{name}: lower band above upper band at "
                         f"{int(np.sum(lo[both] > hi[both] + 1e-12))} point(s)")


def _entries(name: str, d: Any) -> list[tuple[str, Mapping]]:
    if not isinstance(d, Mapping) or not d:
        raise ValueError(f"{name}: expected a non-empty dict of name -> curve dict")
    out = []
    for key, val in d.items():
        if not isinstance(val, Mapping):
            raise ValueError(f"{name}[{key!r}]: expected a dict, got {type(val).__name__}")
        out.append((str(key), val))
    return out


def _field(name: str, entry: Mapping, key: str) -> Any:
    if key not in entry:
        raise ValueError(f"{name}: missing key {key!r}")
    return entry[key]


def _interval(name: str, ci: Any) -> tuple[float, float] | None:
    """A ``(low, high)`` pair, or None for a missing / NaN interval."""
    if ci is None:
        return None
    arr = _vector(name, ci)
    if arr.size != 2:
        raise ValueError(f"{name}: expected (low, high), got {arr.size} value(s)")
    if np.any(np.isnan(arr)):
        return None
    if arr[0] > arr[1]:
        raise ValueError(f"{name}: low {arr[0]:.6g} above high {arr[1]:.6g}")
    return float(arr[0]), float(arr[1])


def _new_figure(width: float, height: float, layout: str = "constrained"):
    """A Figure on its own Agg canvas (:func:`jaxmu.report.agg_figure`; no pyplot)."""
    from jaxmu.report import agg_figure

    return agg_figure(width, height, layout=layout)


def _write_png(fig: Any, path: Path) -> Path:
    """Saves ``fig`` as PNG at ``path`` atomically (temporary file + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    # os.open with mode 0o666 lets the umask set the permissions, as a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        fig.clear()
    return path


def _band(ax: Any, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: Any) -> None:
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(x, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), color=color,
                        alpha=0.2, lw=0, where=ok)


# ----------------------------------------------------------------------------- ROC


def _default_fpr_grid() -> np.ndarray:
    return np.logspace(-4, 0, 81)


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """TPR of ROC polylines at ``grid`` FPRs, for ``[K]`` or ``[B, K]`` curves at once.

    Each row ``(fpr, tpr)`` is non-decreasing in both and starts at FPR 0. Between ROC points
    the curve is linear; where it is vertical (several points at one FPR, e.g. at FPR 0)
    the value at that FPR is the top of the vertical segment, the best TPR reachable without
    exceeding that FPR. All rows are searched in one call: row ``b`` is shifted by ``2 b``,
    which keeps the concatenation sorted and each grid point inside its own row.
    """
    f2, t2 = np.atleast_2d(fpr), np.atleast_2d(tpr)
    n_rows, k = f2.shape
    off = 2.0 * np.arange(n_rows)[:, None]
    j = np.searchsorted((f2 + off).ravel(), (grid[None, :] + off).ravel(), side="right")
    j = j.reshape(n_rows, grid.size) - 1 - k * np.arange(n_rows)[:, None]
    j = np.clip(j, 0, k - 1)  # last point with FPR <= grid
    nxt = np.minimum(j + 1, k - 1)  # first point with FPR > grid (if any)
    f_j, f_n = np.take_along_axis(f2, j, 1), np.take_along_axis(f2, nxt, 1)
    t_j, t_n = np.take_along_axis(t2, j, 1), np.take_along_axis(t2, nxt, 1)
    den = f_n - f_j
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(den > 0, (grid[None, :] - f_j) / den, 0.0)
    out = t_j + np.clip(frac, 0.0, 1.0) * (t_n - t_j)
    return out if np.ndim(fpr) == 2 else out[0]


def _weighted_roc_grid(
    scores: np.ndarray,
    positive: np.ndarray,
    ok: np.ndarray,
    w: np.ndarray,
    grid: np.ndarray,
    *,
    max_elems: int = 1 << 21,
) -> tuple[np.ndarray, np.ndarray]:
    """TPR on ``grid`` and AUC of many weighted resamples of the scored pairs at once.

    Pair ``(t, n)`` with ``ok[t, n]`` has weight ``w[b, t]`` in resample ``b``. The pairs are
    sorted once by decreasing score; each resample's ROC consists of its weighted cumulative
    TP / FP rates at the last pair of every distinct score (the thresholds of
    ``sklearn.metrics.roc_curve``) with ``(0, 0)`` prepended, so unit weights give the
    point ROC exactly. Resamples are processed in chunks of about ``max_elems`` weighted
    pairs.

    Returns:
        ``([B, G] TPR, [B] AUC)``, NaN rows for resamples lacking a positive or a negative
        pair.
    """
    t_idx = np.nonzero(ok)[0]
    s, y = scores[ok], positive[ok]
    order = np.argsort(-s, kind="stable")
    t_idx, s, yf = t_idx[order], s[order], y[order].astype(np.float64)
    ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    n_b = w.shape[0]
    tpr_out = np.full((n_b, grid.size), np.nan)
    auc_out = np.full(n_b, np.nan)
    step = max(1, int(max_elems) // max(s.size, 1))
    for start in range(0, n_b, step):
        pw = w[start:start + step][:, t_idx]
        tps = np.cumsum(pw * yf, axis=1)[:, ends]
        fps = np.cumsum(pw * (1.0 - yf), axis=1)[:, ends]
        p_tot, n_tot = tps[:, -1:], fps[:, -1:]
        good = (p_tot[:, 0] > 0) & (n_tot[:, 0] > 0)
        if not good.any():
            continue
        zero = np.zeros((int(good.sum()), 1))
        tpr = np.concatenate([zero, tps[good] / p_tot[good]], axis=1)
        fpr = np.concatenate([zero, fps[good] / n_tot[good]], axis=1)
        rows = start + np.flatnonzero(good)
        tpr_out[rows] = _tpr_at(fpr, tpr, grid)
        auc_out[rows] = 0.5 * np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]), axis=1)
    return tpr_out, auc_out


def roc_band(
    scores: Any,
    positive: Any,
    valid: Any,
    *,
    groups: Any = None,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    fpr_grid: Any = None,
) -> dict[str, Any]:
    """ROC curve on a fixed FPR grid with pointwise cluster-bootstrap bands.

    The pairs ``(t, n)`` with ``valid[t, n]`` and a finite score form one pooled ROC
    (``sklearn.metrics.roc_curve``, higher score = positive). Its TPR is read at every FPR
    of ``fpr_grid`` along the ROC polyline (linear between ROC points; at an FPR where the
    curve is vertical, the top of the vertical segment). The bands come from a cluster
    bootstrap over the independent units of the target rows: each resample draws the
    ``groups`` with replacement and every row of a drawn group enters with the group's
    multiplicity (rows of one group, e.g. the unlearning runs started from one original
    model, are never split). At every grid FPR the band is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the resampled TPRs (resamples without a positive
    or without a negative pair are skipped), widened where needed to contain the point TPR
    (the percentile interval of a skewed, discrete TPR distribution can miss it at the
    lowest FPRs; a band that excludes its own curve would misdraw the figure). Like every
    percentile cluster bootstrap it covers somewhat less than nominal with few units: in a
    simulation with 24 groups of 3 rows whose attack strength varies by group, the 90% band
    covered the true TPR at FPR 0.1 / 0.3 in 91.5% / 88% of 200 data sets, while
    resampling the rows as independent covered it in 76.5% / 75%.

    Args:
        scores: ``[T, N]`` attack scores of T target models (rows) on N examples.
        positive: ``[T, N]`` bool ground truth (True = member / unlearned).
        valid: ``[T, N]`` bool, the pairs that are scored (bool masks broadcast).
        groups: ``[T]`` labels of the independent units of the rows; default: every row
            is its own unit.
        n_bootstrap: resamples (0: no band, ``tpr_lo = tpr_hi = tpr``, ``auc_ci`` None).
        confidence: the pointwise level of the band and of ``auc_ci``, in (0, 1).
        seed: the resampling seed (reproducible).
        fpr_grid: increasing FPRs in [0, 1]; default ``logspace(-4, 0, 81)``.

    Returns:
        dict with ``fpr_grid``, ``tpr``, ``tpr_lo``, ``tpr_hi`` (``[G]`` float64 arrays),
        ``auc`` (of the full ROC), ``auc_ci`` (percentile ``(low, high)`` or None),
        ``n_positive``, ``n_negative``, ``n_units``, ``n_bootstrap``, ``confidence``: the
        input :func:`plot_roc` takes per curve.

    Raises:
        ValueError: on shapes that differ, a class without scored pairs, ``groups`` of the
            wrong length, fewer than 2 units for a bootstrap, a negative ``n_bootstrap``,
            ``confidence`` outside (0, 1), or a bad ``fpr_grid``.
    """
    from sklearn.metrics import roc_curve

    from jaxmu import _checks
    from jaxmu.metrics import bootstrap_multiplicities, cluster_index

    s = _checks.as_array("scores", scores, ndim=2, finite=False)
    pos = _checks.as_mask("positive", positive, s.shape)
    val = _checks.as_mask("valid", valid, s.shape)
    if (isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer)
            or n_bootstrap < 0):
        raise ValueError(f"n_bootstrap: expected a non-negative integer, got {n_bootstrap!r}")
    if not isinstance(confidence, float | int | np.floating) or not 0 < confidence < 1:
        raise ValueError(f"confidence: must be a number in (0, 1), got {confidence!r}")
    grid = _default_fpr_grid() if fpr_grid is None else _vector("fpr_grid", fpr_grid,
                                                                allow_nan=False)
    _in_range("fpr_grid", grid, 0.0, 1.0)
    if np.any(np.diff(grid) <= 0):
        raise ValueError("fpr_grid: must be strictly increasing")
    ok = val & np.isfinite(s)
    y, sc = pos[ok], s[ok]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need scored pairs of both classes, got {n_pos} positive and "
                         f"{n_neg} negative")
    inv, n_units = cluster_index("groups", groups, s.shape[0])
    n_bootstrap = int(n_bootstrap)
    if n_bootstrap and n_units < 2:
        raise ValueError(f"groups: need at least 2 units for a bootstrap, got {n_units}")
    fpr, tpr, _ = roc_curve(y, sc, drop_intermediate=False)
    point = _tpr_at(fpr, tpr, grid)
    auc = float(0.5 * np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])))
    lo, hi, auc_ci = point.copy(), point.copy(), None
    if n_bootstrap:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n_units, size=(n_bootstrap, n_units))
        w = bootstrap_multiplicities(idx, n_units)[:, inv]  # [B, T] row weights
        boot, boot_auc = _weighted_roc_grid(s, pos, ok, w, grid)
        good = np.isfinite(boot_auc)
        if good.any():
            alpha = (1 - float(confidence)) / 2
            q_lo, q_hi = np.quantile(boot[good], [alpha, 1 - alpha], axis=0)
            lo, hi = np.minimum(q_lo, point), np.maximum(q_hi, point)
            a_lo, a_hi = np.quantile(boot_auc[good], [alpha, 1 - alpha])
            auc_ci = (float(a_lo), float(a_hi))
    return {
        "fpr_grid": grid,
        "tpr": point,
        "tpr_lo": lo,
        "tpr_hi": hi,
        "auc": auc,
        "auc_ci": auc_ci,
        "n_positive": n_pos,
        "n_negative": n_neg,
        "n_units": int(n_units),
        "n_bootstrap": n_bootstrap,
        "confidence": float(confidence),
    }


def plot_roc(curves: Mapping[str, Mapping], path: Any, *, title: str | None = None) -> Path:
    """ROC curves on log-log axes (FPR from 1e-4 to 1) with their bands, one PNG.

    Args:
        curves: name -> dict with ``fpr_grid``, ``tpr``, ``tpr_lo``, ``tpr_hi`` (``[G]``
            each, values in [0, 1], ``fpr_grid`` increasing; NaN / None entries are left
            out of the line or band) and optionally ``auc`` and ``auc_ci`` (shown in the
            legend), e.g. the output of :func:`roc_band` or its JSON round trip.
        path: the ``.png`` file to write (parent directories are created).
        title: the figure title (default "ROC").

    Returns:
        The path written.

    Raises:
        ValueError: on an empty ``curves``, a missing key, lengths that differ, values
            outside [0, 1], a band with its lower edge above its upper edge, a non-increasing
            grid, or a curve with no finite TPR at a positive FPR.
    """
    p = _png_path(path)
    parsed = []
    for name, c in _entries("curves", curves):
        where = f"curves[{name!r}]"
        grid = _vector(f"{where}['fpr_grid']", _field(where, c, "fpr_grid"), allow_nan=False)
        g = grid.size
        tpr = _vector(f"{where}['tpr']", _field(where, c, "tpr"), n=g)
        lo = _vector(f"{where}['tpr_lo']", _field(where, c, "tpr_lo"), n=g)
        hi = _vector(f"{where}['tpr_hi']", _field(where, c, "tpr_hi"), n=g)
        for key, arr in (("fpr_grid", grid), ("tpr", tpr), ("tpr_lo", lo), ("tpr_hi", hi)):
            _in_range(f"{where}['{key}']", arr, 0.0, 1.0)
        if np.any(np.diff(grid) <= 0):
            raise ValueError(f"{where}['fpr_grid']: must be strictly increasing")
        _ordered_band(where, lo, hi)
        if not np.any(np.isfinite(tpr) & (grid > 0)):
            raise ValueError(f"{where}: no finite TPR at a positive FPR to draw")
        auc = c.get("auc")
        auc = None if auc is None else float(_vector(f"{where}['auc']", [auc])[0])
        auc_ci = _interval(f"{where}['auc_ci']", c.get("auc_ci"))
        parsed.append((name, grid, tpr, lo, hi, auc, auc_ci))

    floor = _FPR_MIN
    fig = _new_figure(5.5, 5.0)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    line = np.logspace(-4, 0, 50)
    ax.plot(line, line, color="0.5", lw=0.8, ls="--", label="chance")
    for i, (name, grid, tpr, lo, hi, auc, auc_ci) in enumerate(parsed):
        keep = grid > 0
        x = grid[keep]
        color = f"C{i % 10}"
        label = name
        if auc is not None and math.isfinite(auc):
            label += f" (AUC {auc:.3f}"
            label += f" [{auc_ci[0]:.3f}, {auc_ci[1]:.3f}])" if auc_ci else ")"
        ax.plot(x, np.maximum(tpr[keep], floor), color=color, lw=1.5, label=label)
        _band(ax, x, np.maximum(lo[keep], floor), np.maximum(hi[keep], floor), color)
    ax.set_xlim(_FPR_MIN, 1.0)
    ax.set_ylim(floor, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "ROC")
    ax.legend(fontsize="small", loc="lower right")
    ax.grid(True, which="major", lw=0.4, alpha=0.5)
    return _write_png(fig, p)


# ----------------------------------------------------------------------------- KLoM margins


def _margins(name: str, x: Any, mask: Any, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``([M, N] float margins, [M, N] bool observed)``; observed values must be finite."""
    from jaxmu import _checks

    arr = _checks.as_array(name, x, ndim=2, finite=False)
    if n is not None and arr.shape[1] != n:
        raise ValueError(f"{name}: {arr.shape[1]} examples, expected {n}")
    m = (np.ones(arr.shape, bool) if mask is None
         else np.asarray(_checks.as_mask(f"{name} mask", mask, arr.shape)))
    bad = m & ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} observed value(s) are NaN or infinite")
    return arr, m


def _examples(examples: Any, n: int, both: np.ndarray) -> list[tuple[str, int]]:
    """``[(panel label, example index)]`` from a list of indices or a label -> index dict."""
    if examples is None:
        eligible = np.flatnonzero(both)
        pick = eligible[np.unique(np.linspace(0, eligible.size - 1, min(4, eligible.size))
                                  .round().astype(int))] if eligible.size else []
        return [(f"example {int(i)}", int(i)) for i in pick]
    items = (list(examples.items()) if isinstance(examples, Mapping)
             else [(None, e) for e in examples])
    if not items:
        raise ValueError("examples: is empty")
    out = []
    for label, e in items:
        if isinstance(e, bool) or not isinstance(e, int | np.integer) or not 0 <= e < n:
            raise ValueError(f"examples: expected indices in [0, {n}), got {e!r}")
        out.append((f"example {int(e)}" if label is None else f"{label} (#{int(e)})", int(e)))
    return out


def _shared_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """KLoM's bin edges: ``bins`` equal bins over ``[min, max]`` (``[min, min + 1]`` if equal)."""
    lo, hi = float(values.min()), float(values.max())
    return np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)


def plot_margin_histograms(
    unlearned_margins: Any,
    oracle_margins: Any,
    path: Any,
    *,
    unlearned_mask: Any = None,
    oracle_mask: Any = None,
    examples: Any = None,
    labels: Sequence[str] = ("unlearned", "retrained"),
    bins: int = 20,
    clip: tuple[float, float] = (-100.0, 100.0),
    title: str | None = None,
) -> Path:
    """Margin distributions of the unlearned and the oracle population, as KLoM bins them.

    One small panel per example: the fraction of the example's unlearned margins and of its
    oracle (retrained) margins in each of ``bins`` equal bins spanning the combined range of
    both after clipping to ``clip`` (``[min, min + 1]`` if all are equal, last bin closed:
    the binning KLoM takes its KL divergence over), and a last panel with every observation
    of all examples pooled, binned the same way over the pooled range. Histograms that
    fill the same bins in both populations are what good unlearning looks like; disjoint
    histograms mean a large KLoM.

    Args:
        unlearned_margins: ``[Mu, N]`` margins of Mu unlearned runs on N examples.
        oracle_margins: ``[Mo, N]`` margins of Mo retrained (oracle) runs, same N.
        path: the ``.png`` file to write (parent directories are created).
        unlearned_mask, oracle_mask: ``[Mu, N]`` / ``[Mo, N]`` bool, the observations that
            count (e.g. the runs in which the example was forgotten); default all. Values
            outside the mask may be NaN.
        examples: the examples to show, a list of indices or a dict label -> index (e.g.
            ``{"median KLoM": 12, "95th pct KLoM": 40}``); default up to 4 examples spread
            evenly over the indices with observations in both populations.
        labels: the legend names of the two populations.
        bins: the number of bins per panel (KLoM uses 20).
        clip: ``(low, high)`` the margins are clipped to before binning, as KLoM does.
        title: the figure title (default "Margin distributions").

    Returns:
        The path written.

    Raises:
        ValueError: on arrays that are not 2-D or disagree on N, masks of the wrong shape,
            NaN among the observed margins, an index out of range or an example without
            observations in one population, no observation at all, ``bins < 1``, a ``clip``
            that is not ``low < high``, or ``labels`` that are not two strings.
    """
    p = _png_path(path)
    u, um = _margins("unlearned_margins", unlearned_margins, unlearned_mask, None)
    o, om = _margins("oracle_margins", oracle_margins, oracle_mask, u.shape[1])
    n = u.shape[1]
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins: expected a positive integer, got {bins!r}")
    if (isinstance(labels, str) or len(labels) != 2
            or not all(isinstance(s, str) for s in labels)):
        raise ValueError(f"labels: expected two strings, got {labels!r}")
    try:
        c_lo, c_hi = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise ValueError(f"clip: expected a pair (low, high), got {clip!r}") from None
    if not c_lo < c_hi:
        raise ValueError(f"clip: expected low < high, got {clip!r}")
    both = um.any(axis=0) & om.any(axis=0)
    chosen = _examples(examples, n, both)
    for label, e in chosen:
        for pop, m in ((labels[0], um), (labels[1], om)):
            if not m[:, e].any():
                raise ValueError(f"examples: {label} has no {pop} observation")
    if not um.any() or not om.any():
        raise ValueError("no observed margins in one of the populations")

    u, o = np.clip(u, c_lo, c_hi), np.clip(o, c_lo, c_hi)
    panels = [(label, u[um[:, e], e], o[om[:, e], e]) for label, e in chosen]
    panels.append((f"all examples pooled (n={int(um.sum())} / {int(om.sum())})", u[um], o[om]))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _new_figure(3.2 * ncols, 2.5 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (label, a, b) in zip(axes, panels, strict=False):
        edges = _shared_bins(np.concatenate([a, b]), int(bins))
        for vals, name, color in ((a, labels[0], "C0"), (b, labels[1], "C1")):
            frac = np.histogram(vals, bins=edges)[0] / vals.size
            ax.stairs(frac, edges, fill=True, color=color, alpha=0.4,
                      label=f"{name} ({vals.size})")
            ax.stairs(frac, edges, color=color, lw=1.0)
        ax.set_title(label, fontsize="small")
        ax.set_xlabel("margin", fontsize="small")
        ax.legend(fontsize="x-small")
    for ax in axes[::ncols]:
        ax.set_ylabel("fraction of runs", fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title or "Margin distributions")
    return _write_png(fig, p)


# ----------------------------------------------------------------------------- relearning


def plot_relearn(
    curves: Mapping[str, Mapping],
    path: Any,
    *,
    title: str | None = None,
    original_acc: float | None = None,
) -> Path:
    """Forget-set accuracy against relearning steps, one line and CI band per method.

    Args:
        curves: name -> dict with ``steps`` (``[P]``, finite, non-decreasing), ``mean``,
            ``lo`` and ``hi`` (``[P]`` accuracies in [0, 1]; NaN / None entries are left out,
            ``lo`` / ``hi`` may be None for no band).
        path: the ``.png`` file to write (parent directories are created).
        title: the figure title (default "Relearning").
        original_acc: the original model's forget accuracy, drawn as a dashed horizontal
            line.

    Returns:
        The path written.

    Raises:
        ValueError: on an empty ``curves``, a missing key, lengths that differ, steps that
            are not finite or decrease, accuracies outside [0, 1], a band with its lower
            edge above its upper edge, a curve without a finite mean, or an
            ``original_acc`` outside [0, 1].
    """
    p = _png_path(path)
    parsed = []
    for name, c in _entries("curves", curves):
        where = f"curves[{name!r}]"
        steps = _vector(f"{where}['steps']", _field(where, c, "steps"), allow_nan=False)
        k = steps.size
        mean = _vector(f"{where}['mean']", _field(where, c, "mean"), n=k)
        lo = _vector(f"{where}['lo']", c.get("lo"), n=k)
        hi = _vector(f"{where}['hi']", c.get("hi"), n=k)
        if np.any(np.diff(steps) < 0):
            raise ValueError(f"{where}['steps']: must be non-decreasing")
        for key, arr in (("mean", mean), ("lo", lo), ("hi", hi)):
            _in_range(f"{where}['{key}']", arr, 0.0, 1.0)
        _ordered_band(where, lo, hi)
        if not np.isfinite(mean).any():
            raise ValueError(f"{where}['mean']: has no finite value")
        parsed.append((name, steps, mean, lo, hi))
    if original_acc is not None:
        orig = float(_vector("original_acc", [original_acc], allow_nan=False)[0])
        _in_range("original_acc", np.array([orig]), 0.0, 1.0)

    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    for i, (name, steps, mean, lo, hi) in enumerate(parsed):
        color = f"C{i % 10}"
        ax.plot(steps, mean, color=color, marker="o", ms=3, lw=1.5, label=name)
        _band(ax, steps, lo, hi, color)
    if original_acc is not None:
        ax.axhline(orig, color="0.3", lw=1.0, ls="--", label=f"original ({orig:.3f})")
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("relearning steps")
    ax.set_ylabel("forget-set accuracy")
    ax.set_title(title or "Relearning")
    ax.legend(fontsize="small", loc="lower right")
    ax.grid(True, lw=0.4, alpha=0.5)
    return _write_png(fig, p)


# ----------------------------------------------------------------------------- shadow curve


def plot_shadow_curve(
    table: Mapping[str, Mapping],
    path: Any,
    *,
    metric: str = "auc",
    title: str | None = None,
) -> Path:
    """Attack power against the number of shadow / reference models, one line per attack.

    The x axis is log2 (1, 2, 4, ... models, ticks at the counts given); for a metric whose
    chance level is 0.5 (AUC and the accuracies) a dashed line marks it.

    Args:
        table: attack name (e.g. "ulira", "lira", "rmia", "urmia") -> dict with
            ``shadows`` (``[P]`` positive, strictly increasing model counts), ``value`` and
            optionally ``lo`` / ``hi`` (``[P]``; NaN / None entries are left out).
        path: the ``.png`` file to write (parent directories are created).
        metric: the name of the metric plotted (the y label; "auc", "tpr_at_1fpr" and
            "tpr_at_0.1fpr" get readable labels).
        title: the figure title (default "Attack power vs number of shadow models").

    Returns:
        The path written.

    Raises:
        ValueError: on an empty ``table``, a missing key, lengths that differ, counts that
            are not positive integers in increasing order, a band with its lower edge above
            its upper edge, or an attack without a finite value.
    """
    p = _png_path(path)
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"metric: expected a non-empty string, got {metric!r}")
    parsed = []
    for name, c in _entries("table", table):
        where = f"table[{name!r}]"
        sh = _vector(f"{where}['shadows']", _field(where, c, "shadows"), allow_nan=False)
        if np.any(sh < 1) or np.any(sh != np.round(sh)):
            raise ValueError(f"{where}['shadows']: expected positive integer counts")
        if np.any(np.diff(sh) <= 0):
            raise ValueError(f"{where}['shadows']: must be strictly increasing")
        k = sh.size
        value = _vector(f"{where}['value']", _field(where, c, "value"), n=k)
        lo = _vector(f"{where}['lo']", c.get("lo"), n=k)
        hi = _vector(f"{where}['hi']", c.get("hi"), n=k)
        _ordered_band(where, lo, hi)
        if not np.isfinite(value).any():
            raise ValueError(f"{where}['value']: has no finite value")
        parsed.append((name, sh, value, lo, hi))

    from matplotlib.ticker import FixedLocator, NullLocator

    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    for i, (name, sh, value, lo, hi) in enumerate(parsed):
        color = f"C{i % 10}"
        ax.plot(sh, value, color=color, marker="o", ms=4, lw=1.5, label=name)
        _band(ax, sh, lo, hi, color)
    if metric.lower() in _CHANCE_METRICS:
        ax.axhline(0.5, color="0.5", lw=0.8, ls="--", label="chance")
    ticks = np.unique(np.concatenate([sh for _, sh, *_ in parsed]))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [f"{int(t)}" for t in ticks])
    ax.set_xlabel("shadow / reference models (log2)")
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric.replace("_", " ")))
    ax.set_title(title or "Attack power vs number of shadow models")
    ax.legend(fontsize="small")
    ax.grid(True, lw=0.4, alpha=0.5)
    return _write_png(fig, p)
