"""Bootstrap confidence intervals for aggregate metrics.

References:
    Efron & Tibshirani 1993; ``scipy.stats.bootstrap``; docs/statistics.md#bootstrap-units
    (which unit each jaxmu metric resamples, and the coverage measured by simulation).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxmu import _checks


def bootstrap_ci(
    values: Any,
    statistic: Callable[..., Any] = np.mean,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    axis: int = 0,
    method: str = "percentile",
) -> tuple[float, float, float]:
    """Point value and bootstrap confidence interval of ``statistic(values)``.

    Args:
        values: an array (e.g. per-seed or per-target-model metric values) or a tuple of
            arrays resampled jointly (paired) along ``axis``, e.g. ``(scores, labels)``.
        statistic: maps the array(s) to a scalar; if it accepts an ``axis`` keyword it is
            called vectorised with the resampled axis (``np.mean``, ``np.median`` do),
            otherwise once per resample.
        n_resamples, confidence, seed: the resampling (seeded, reproducible).
        axis: the axis of the independent units (seeds, models, examples).
        method: "percentile" (default, robust on constant data), "basic" or "BCa".

    Returns:
        ``(value, low, high)`` with ``value = statistic(values)`` on the original data. For
        constant data the interval collapses to the value.

    Raises:
        ValueError: on fewer than 2 units, NaN values, mismatched paired lengths, a
            non-scalar statistic, or a confidence outside (0, 1).

    References:
        ``scipy.stats.bootstrap``; docs/statistics.md#bootstrap-units (resample what is
        independent between repetitions: seeds, target models).
    """
    data = values if isinstance(values, tuple) else (values,)
    arrays = tuple(_checks.as_array(f"values[{i}]", v, dtype=None if np.asarray(v).dtype ==
                                    bool else np.float64) for i, v in enumerate(data))
    n = {a.shape[axis] if a.ndim else 0 for a in arrays}
    if len(n) != 1:
        raise ValueError(f"paired values must have equal length along axis {axis}, got {n}")
    (n_units,) = n
    if n_units < 2:
        raise ValueError(f"need at least 2 values along axis {axis} for a bootstrap, got "
                         f"{n_units}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    try:
        takes_axis = "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):  # builtins without a signature
        takes_axis = False
    value = statistic(*arrays, axis=axis) if takes_axis else statistic(*arrays)
    value = np.asarray(value, dtype=np.float64)
    if value.size != 1:
        raise ValueError(f"statistic must return a scalar, got shape {value.shape}")
    value = value.item()
    if np.all([np.all(a == np.take(a, [0], axis=axis)) for a in arrays]):
        return value, value, value
    from scipy import stats  # ~0.5 s to import: only when a bootstrap runs

    res = stats.bootstrap(
        arrays,
        statistic,
        n_resamples=int(n_resamples),
        confidence_level=confidence,
        method=method,
        axis=axis,
        paired=len(arrays) > 1,
        vectorized=takes_axis,
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return value, np.asarray(ci.low).item(), np.asarray(ci.high).item()


def format_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    """``"value [low, high]"`` with ``digits`` decimals, e.g. ``"0.512 [0.498, 0.527]"``.

    Use as ``format_ci(*bootstrap_ci(values))``.
    """
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
