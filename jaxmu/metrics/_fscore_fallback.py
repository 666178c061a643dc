"""Fallback epsilons with thresholds at the data points instead of the official 0.01 grid.

Only used for forget examples where no official grid threshold survives (the two
populations overlap by less than one grid step), where the official scorer aborts at its
assertion. The rates are step functions of the threshold, so their best epsilon is reached
at thresholds next to data points: this gives the same or a larger epsilon than a grid.
jaxmu flags these examples (``FScoreResult.fallback``).
"""

from __future__ import annotations

import numpy as np

from jaxmu.metrics._fscore_grid import _band_setup


def datapoint_max(pos, neg, table):
    """Max epsilon over thresholds placed at the data points, per example.

    Used only for examples where no official grid threshold survives (the official scorer
    aborts there). Single rule ``value >= t`` and band rule ``L <= value <= R`` with ``t``,
    ``L`` and ``R`` ranging over the pooled values; band orientation as in the scorer.
    """
    s, n = pos.shape
    bpos, bneg, *_ = _band_setup(pos, neg)
    out = np.full(s, np.nan)
    for a, b, band in ((pos, neg, False), (bpos, bneg, True)):
        z = np.sort(np.concatenate([a, b], axis=1), axis=1)
        a_s, b_s = np.sort(a, axis=1), np.sort(b, axis=1)
        below = [_searchsorted_rows(v, z, "left") for v in (a_s, b_s)]  # #{v < z_k}
        if not band:
            eps = table[below[0] * (n + 1) + (n - below[1])]
        else:
            upto = [_searchsorted_rows(v, z, "right") for v in (a_s, b_s)]  # #{v <= z_k}
            tp = np.maximum(upto[0][:, None, :] - below[0][:, :, None], 0)
            fp = np.maximum(upto[1][:, None, :] - below[1][:, :, None], 0)
            eps = table[(n - tp) * (n + 1) + fp].reshape(s, -1)
        out = np.fmax(out, np.fmax.reduce(eps, axis=1))
    return out


def _searchsorted_rows(v, q, side):
    """Row-wise ``np.searchsorted(v[s], q[s], side)`` for sorted rows, vectorised."""
    s = v.shape[0]
    key_v = np.concatenate([v, q], axis=1)
    tag = np.concatenate([np.zeros_like(v, dtype=np.int8), np.ones_like(q, dtype=np.int8)], 1)
    # For "left", queries sort before equal values; for "right", after.
    sec = 1 - tag if side == "left" else tag
    order = np.lexsort((sec, key_v), axis=1)
    is_v = np.take_along_axis(tag, order, axis=1) == 0
    before = np.cumsum(is_v, axis=1) - is_v
    res = np.empty(q.shape, dtype=np.int64)
    rows = np.broadcast_to(np.arange(s)[:, None], order.shape)
    qpos = order - v.shape[1]
    m = ~is_v
    res[rows[m], qpos[m]] = before[m]
    return res
