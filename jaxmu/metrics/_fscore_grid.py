"""Vectorised per-example epsilons of the NeurIPS-2023 unlearning competition scorer.

This is the engine behind :func:`jaxmu.metrics.forget_quality`. It reproduces the official
scorer's threshold grids (single threshold, ~160k double-threshold bands), its epsilon rules
and its peaky shortcut, for all forget examples at once, without the official per-example
loop or its ``[N, 160k]`` tiles.

How it stays exact while being fast:

* Every grid point is computed with the official arithmetic (``np.linspace`` for the bands,
  the CUDA ``torch.linspace`` formula for the single family), in float64.
* Counting is done from the data side. Thresholds of the band grid lie on a sheared lattice
  ``L_ij ~= a + (i*rho + j)*s``; with 400 (or 401) right edges, ``rho`` is 1 (or 399/400), so
  the count of values below every left edge is a 1-D cumulative histogram read through a
  sliding-window view (or a gather). A value whose lattice coordinate lies within a tolerance
  (1e-11 relative, far above the float64 round-off of the grid) of a lattice point is a
  near-tie; its comparisons against the exact grid points on that lattice line are
  re-evaluated and the counts corrected. Any other grid size, or values beyond 1e5 in
  magnitude, use an exact per-(value, right edge) search instead.
* The single-threshold and right-edge grids are counted the same way: a value's position on
  the grid gives its count, and only values within round-off of a grid point are compared
  exactly against the neighbouring grid points.
* Epsilon depends only on the integer pair (FN count, FP count), so it is read from a float32
  table computed with exactly the scorer's float32 expressions.

References:
    google-deepmind/unlearning_evaluation ``metric.py`` (ffae0ff);
    docs/evaluation.md#the-competition-f-score (the two threshold families, the epsilon
    rules and the peaky shortcut in words).
"""

from __future__ import annotations

import functools

import numpy as np

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
BAND_BUFFER = 2.0
PEAKY_RATIO = 0.01
_N_LEFT = int(np.ceil(2 * BAND_BUFFER * THRESHOLDS_PER_UNIT))  # 400 left edges per right edge
_BAND_CHUNK = 32  # examples per chunk of the band family (~160k bands each)
_SINGLE_BUDGET = 4_000_000  # single-family thresholds per chunk
_MAX_SINGLE = 20_000_000  # single-family thresholds per example
_LATTICE_MAX_ABS = 1e5  # values beyond this magnitude use the exact band search


def epsilon_table(num_models: int, delta: float = DELTA) -> np.ndarray:
    """Per-threshold epsilon for every (FN count, FP count), flattened, plus a NaN sentinel.

    Entry ``fn * (n + 1) + fp`` is +inf when both counts are 0 (perfect separation), NaN when
    exactly one is 0 or when both log arguments are non-positive (the scorer discards those
    thresholds), else ``max(log(1-delta-FPR) - log(FNR), log(1-delta-FNR) - log(FPR))``
    clipped at 0, in float32 as the official scorer computes it. The last entry is NaN and
    marks padding.
    """
    n = int(num_models)
    rate = np.arange(n + 1, dtype=np.float32) / np.float32(n)
    fnr, fpr = rate[:, None], rate[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(1 - delta - fpr) - np.log(fnr)
        b = np.log(1 - delta - fnr) - np.log(fpr)
        eps = np.clip(np.fmax(a, b), 0, None).astype(np.float32)
    zero_fn, zero_fp = (fnr == 0), (fpr == 0)
    eps = np.where(zero_fn & zero_fp, np.float32(np.inf), eps)
    eps = np.where(zero_fn ^ zero_fp, np.float32(np.nan), eps)
    return np.append(eps.reshape(-1), np.float32(np.nan))


@functools.lru_cache(maxsize=8)
def pair_table(num_models: int, delta: float = DELTA) -> np.ndarray:
    """:func:`epsilon_table` indexed by raw in-band counts ``(tp + n) * (2n + 1) + fp + n``.

    Raw counts of an inverted band can be negative; they clamp to 0 as in the scorer.
    """
    n = int(num_models)
    base = epsilon_table(n, delta)
    raw = np.maximum(np.arange(-n, n + 1), 0)
    code = (n - raw[:, None]) * (n + 1) + raw[None, :]
    out = np.append(base[code.reshape(-1)], np.float32(np.nan))
    out.flags.writeable = False
    return out


# ----------------------------------------------------------------------------- grids


def _np_linspace_at(start, stop, num, k):
    """Value ``k`` of ``np.linspace(start, stop, num)``, elementwise (all float64)."""
    step = (stop - start) / np.maximum(num - 1, 1)
    return np.where((k == num - 1) & (num > 1), stop, k * step + start)


def _torch_linspace_at(start, stop, num, k):
    """Value ``k`` of CUDA ``torch.linspace(start, stop, num)`` (symmetric formula)."""
    step = (stop - start) / np.maximum(num - 1, 1)
    val = np.where(k < num // 2, start + step * k, stop - step * (num - k - 1))
    return np.where(num == 1, start, val)


def _count_grid(x, linspace_at, start, stop, num, strict):
    """Exact ``#{k < num : g(k) <= x}`` (``< x`` if strict) for a linspace grid, vectorised.

    ``g(k) = linspace_at(start, stop, num, k)``; ``start``, ``stop`` and ``num`` broadcast
    against ``x``. The position ``t = (x - start) / step`` gives the count ``floor(t) + 1``
    unless ``t`` lies within the grid's float64 round-off of an integer; those near-ties
    (rare, except for values equal to grid points) are settled by exact comparisons with
    the four grid points around ``t``.
    """
    shape = np.broadcast_shapes(x.shape, np.shape(start), np.shape(stop), np.shape(num))
    start, stop, num = (np.broadcast_to(v, shape) for v in (start, stop, num))
    x = np.broadcast_to(x, shape)
    step = (stop - start) / np.maximum(num - 1, 1)
    safe = np.where(step > 0, step, 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        t = (x - start) / safe
    mag = 1.0 + np.maximum(np.maximum(np.abs(start), np.abs(stop)), np.abs(x))
    near = (np.abs(t - np.rint(t)) <= 1e-12 * mag / safe) | (num <= 1)
    count = np.clip(np.floor(t) + 1, 0, num).astype(np.int64)
    if near.any():
        xs, ts, s0, s1, ns = (v[near] for v in (x, t, start, stop, num))
        k0 = np.clip(np.rint(ts), -2, ns + 1).astype(np.int64)
        cand = k0[:, None] + np.arange(-2, 3)
        valid = (cand >= 0) & (cand < ns[:, None])
        g = linspace_at(s0[:, None], s1[:, None], ns[:, None],
                        np.clip(cand, 0, np.maximum(ns[:, None] - 1, 0)))
        hit = (g < xs[:, None]) if strict else (g <= xs[:, None])
        count[near] = np.clip(k0 - 2, 0, ns) + np.sum(valid & hit, axis=1)
    return count


def _cumulative_counts(index, nbins):
    """Row-wise ``C[s, k] = #{m : index[s, m] <= k}`` for ``k < nbins`` (index in [0, nbins])."""
    s = index.shape[0]
    flat = (index + (nbins + 1) * np.arange(s)[:, None]).ravel()
    hist = np.bincount(flat, minlength=s * (nbins + 1)).reshape(s, nbins + 1)
    return np.cumsum(hist[:, :nbins], axis=1, dtype=np.int32)


# ----------------------------------------------------------------------------- single family


def single_family_max(pos, neg, table):
    """Max epsilon over the single-threshold family, per example (NaN if none survives).

    ``pos`` is the population with the larger median (``[S, N]``); "positive" iff
    ``value >= threshold``; ``ceil(100 * range)`` thresholds from the pooled min to max.
    """
    s, n = pos.shape
    pooled = np.concatenate([pos, neg], axis=1)
    lo, hi = pooled.min(axis=1), pooled.max(axis=1)
    num = np.ceil((hi - lo) * THRESHOLDS_PER_UNIT).astype(np.int64)
    if num.max() > _MAX_SINGLE:
        raise ValueError(
            f"confidence range {float((hi - lo).max()):.3g} needs more than {_MAX_SINGLE} "
            "single thresholds; check the confidences"
        )
    out = np.full(s, np.nan)
    order = np.argsort(num, kind="stable")  # chunks of examples with similar grid sizes
    start = 0
    while start < s:
        peek = int(num[order[min(s - 1, start + 255)]])
        stop = start + min(256, max(1, _SINGLE_BUDGET // max(peek, 1)))
        idx = order[start:stop]
        out[idx] = _single_chunk(pos[idx], neg[idx], lo[idx], hi[idx], num[idx], table, n)
        start = stop
    return out


def _single_chunk(pos, neg, lo, hi, num, table, n):
    tmax = int(num.max())
    if tmax == 0:
        return np.full(pos.shape[0], np.nan)
    lo_, hi_, num_ = lo[:, None], hi[:, None], num[:, None]
    # Thresholds t_k <= x exactly when k < count; x < t_k exactly when count <= k.
    cnt_pos = _count_grid(pos, _torch_linspace_at, lo_, hi_, num_, strict=False)
    cnt_neg = _count_grid(neg, _torch_linspace_at, lo_, hi_, num_, strict=False)
    fn = _cumulative_counts(cnt_pos, tmax)  # #{pos < t_k}
    fp = n - _cumulative_counts(cnt_neg, tmax)  # #{neg >= t_k}
    code = fn * (n + 1) + fp
    code[np.arange(tmax)[None, :] >= num_] = table.size - 1  # padding -> NaN
    return np.fmax.reduce(table[code], axis=1)


# ----------------------------------------------------------------------------- band family


def band_family_max(pos, neg, table, *, force_exact=False):
    """Max epsilon over the double-threshold (band) family, per example (NaN if none survives).

    ``table`` is :func:`pair_table` for ``N = pos.shape[1]``.

    ``pos``/``neg`` are oriented by median; as in the scorer, the population with the smaller
    range (ties: the median-negative one) becomes "positive" and a value is predicted
    positive iff ``L <= value <= R``. ``force_exact`` disables the lattice fast path (tests).
    """
    s = pos.shape[0]
    out = np.full(s, np.nan)
    n_right = _band_setup(pos, neg)[-1]
    # The lattice path needs the grid's float64 round-off far below one lattice unit
    # (1/400 of a step); beyond |value| ~ 1e5 use the exact search.
    small = np.maximum(np.abs(pos).max(axis=1), np.abs(neg).max(axis=1)) < _LATTICE_MAX_ABS
    groups = [(small & (n_right == _N_LEFT), True), (small & (n_right == _N_LEFT + 1), True)]
    groups.append((~(groups[0][0] | groups[1][0]), False))
    for mask, fast in groups:
        idx = np.flatnonzero(mask)
        fast = fast and not force_exact
        chunk = _BAND_CHUNK if fast else 2
        for start in range(0, idx.size, chunk):
            sub = idx[start : start + chunk]
            out[sub] = _band_chunk(pos[sub], neg[sub], table, fast)
    return out


def _band_setup(pos, neg):
    pos_diff = pos.max(axis=1) - pos.min(axis=1)
    neg_diff = neg.max(axis=1) - neg.min(axis=1)
    width = np.where(pos_diff > neg_diff, neg_diff, pos_diff)
    swap = (pos_diff >= neg_diff)[:, None]
    bpos, bneg = np.where(swap, neg, pos), np.where(swap, pos, neg)
    rmin = bpos.min(axis=1) + width - BAND_BUFFER
    rmax = bpos.max(axis=1) + BAND_BUFFER
    n_right = np.ceil((rmax - rmin) * THRESHOLDS_PER_UNIT).astype(np.int64)
    return bpos, bneg, width, rmin, rmax, n_right


def _left_at(rmin, rmax, n_right, width, i, j):
    """Exact left edge ``j`` of right edge ``i`` (the scorer's nested np.linspace calls)."""
    tr = _np_linspace_at(rmin, rmax, n_right, i)
    return _np_linspace_at(tr - width - BAND_BUFFER, tr - width + BAND_BUFFER, _N_LEFT, j)


def _band_chunk(pos, neg, table, fast):
    s, n = pos.shape
    bpos, bneg, width, rmin, rmax, n_right = _band_setup(pos, neg)
    nr = int(n_right.max())
    grid = (rmin[:, None], rmax[:, None], n_right[:, None])
    # x <= R_i  <=>  i >= #{R < x}.
    pr, qr = (
        _cumulative_counts(_count_grid(x, _np_linspace_at, *grid, strict=True), nr)
        for x in (bpos, bneg)
    )
    # Code of the raw pair (tp, fp) = (#pos in band, #neg in band), each in [-n, n]:
    # (tp + n) * w2 + (fp + n), with tp = pr - #{pos < L} and fp = qr - #{neg < L}.
    w2 = 2 * n + 1
    code = ((pr + n) * w2 + (qr + n))[:, :, None]
    if fast:
        hp, corr_p = _left_counts_lattice(bpos, rmin, rmax, n_right, width)
        hn, corr_n = _left_counts_lattice(bneg, rmin, rmax, n_right, width)
        k = w2 * hp + hn
        if nr == _N_LEFT:  # #{x < L_ij} = h[i + j]
            view = np.lib.stride_tricks.sliding_window_view(k, _N_LEFT, axis=1)[:, :nr]
        else:  # #{x < L_ij} = h[rank of 399 i + 400 j among the sorted lattice values]
            view = k[:, _lattice_index(nr)[1]]
        code = code - view
        for (e, i, j, d), mult in ((corr_p, w2), (corr_n, 1)):
            np.add.at(code, (e, i, j), -mult * d)
    else:
        gp = _left_counts_exact(bpos, rmin, rmax, n_right, width)
        code = code - (w2 * gp + _left_counts_exact(bneg, rmin, rmax, n_right, width))
        if np.any(n_right < nr):
            pad = np.arange(nr)[None, :, None] >= n_right[:, None, None]
            code[np.broadcast_to(pad, code.shape)] = table.size - 1
    return np.fmax.reduce(table[code].reshape(s, -1), axis=1)


@functools.lru_cache(maxsize=4)
def _lattice_index(nr):
    """Sorted distinct lattice values ``399 i + 400 j`` and the rank of every ``(i, j)``."""
    i, j = np.arange(nr)[:, None], np.arange(_N_LEFT)[None, :]
    values, rank = np.unique((_N_LEFT - 1) * i + _N_LEFT * j, return_inverse=True)
    return values, rank.reshape(nr, _N_LEFT)


def _left_counts_exact(x, rmin, rmax, n_right, width):
    """``#{x < L_ij}`` as ``[S, nr, 400]`` by an exact search per (value, right edge)."""
    s, n = x.shape
    nr = int(n_right.max())
    i = np.arange(nr)[None, None, :]  # [1, 1, nr]
    sh = (slice(None), None, None)
    tr = _np_linspace_at(rmin[sh], rmax[sh], n_right[sh], np.minimum(i, n_right[sh] - 1))
    a, b = tr - width[sh] - BAND_BUFFER, tr - width[sh] + BAND_BUFFER
    # #{j : L_ij <= x} for every (value, right edge).
    cnt = _count_grid(x[:, :, None], _np_linspace_at, a, b, np.int64(_N_LEFT), strict=False)
    cnt = np.moveaxis(cnt, 2, 1).reshape(s * nr, n)
    return _cumulative_counts(cnt, _N_LEFT).reshape(s, nr, _N_LEFT)


def _left_counts_lattice(x, rmin, rmax, n_right, width):
    """Lattice form of ``#{x < L_ij}``: a cumulative histogram and exact corrections.

    Returns ``(h, (e, i, j, d))``: ``#{x < L_ij}`` is ``h[e, i + j]`` (400 right edges) or
    ``h[e, 399 i + 400 j]`` (401), plus ``d`` at the listed near-tie grid points.
    """
    nr = int(n_right[0])
    step = 2 * BAND_BUFFER / (_N_LEFT - 1)
    base = (rmin - width - BAND_BUFFER)[:, None]
    scale = np.abs(x).max(axis=1) + width + 2 * BAND_BUFFER + 1.0
    res = 1 if nr == _N_LEFT else _N_LEFT  # lattice units per left step
    u = (x - base) * (res / step)  # lattice coordinate of x
    fl = np.floor(u)
    if res == 1:  # h[k] = #{x : floor(u) < k}, k < 799
        nbins = 2 * _N_LEFT - 1
        h = _cumulative_counts(np.clip(fl + 1, 0, nbins).astype(np.int64), nbins)
    else:  # h[q] = #{x : floor(u) < values[q]}, over the sorted lattice values
        values = _lattice_index(nr)[0]
        first = np.searchsorted(values, fl + 1, side="left")  # first lattice value counted
        h = _cumulative_counts(first, values.size)
    # Near-ties: only the grid points on the lattice line round(u) can compare differently.
    tol = 1e-11 * scale[:, None] * res / step
    e, v = np.nonzero(np.abs(u - np.rint(u)) <= tol)
    lat = np.rint(u[e, v]).astype(np.int64)
    if res == 1:
        ii = np.arange(nr)[None, :] + np.zeros_like(lat)[:, None]
        jj = lat[:, None] - ii
    else:
        i0 = (-lat) % res
        ii = np.stack([i0, i0 + res], axis=1)
        jj = (lat[:, None] - (res - 1) * ii) // res
    ok = (ii >= 0) & (ii < nr) & (jj >= 0) & (jj < _N_LEFT)
    ee = np.broadcast_to(e[:, None], ii.shape)[ok]
    xv = np.broadcast_to(x[e, v][:, None], ii.shape)[ok]
    approx = np.broadcast_to((fl[e, v] < lat)[:, None], ii.shape)[ok]
    ii, jj = ii[ok], jj[ok]
    exact = xv < _left_at(rmin[ee], rmax[ee], n_right[ee], width[ee], ii, jj)
    return h, (ee, ii, jj, exact.astype(np.int32) - approx.astype(np.int32))
