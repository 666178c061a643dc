"""Accuracy family: top-1 accuracy, retention, RetDev, SAPE-based accuracy errors.

Accuracies are fractions in [0, 1] throughout jaxmu (Deep Unlearn's retention asserts this
range); multiply by 100 for percent tables.

References:
    Deep Unlearn (Cadet et al. 2024) §2 eqs. 1-3 and ``munl/evaluation``; SFTC (Perifanis et
    al. 2024) §5.4 eqs. 4-7; docs/evaluation.md#accuracy-retention-and-retdev.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import ArrayLike

from jaxmu import _checks
from jaxmu.metrics._typing import Logits


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Stable float64 log-softmax over the last axis."""
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def _logits_labels(logits: Any, labels: Any, name: str = "logits"):
    z = _checks.as_logits(name, logits)
    y = _checks.as_labels(f"{name} labels", labels, z.shape[-1], z.shape[-2])
    return z, y


def accuracy(
    logits: Logits, labels: ArrayLike
) -> float | np.ndarray:
    """Top-1 accuracy (fraction) of ``argmax(logits)`` against integer labels.

    Args:
        logits: ``[N, K]`` or ``[..., N, K]`` (leading model axes are kept), finite.
        labels: integer labels ``[N]``.

    Returns:
        A float for ``[N, K]`` input, else an array of the leading shape. Argmax ties take
        the first class.

    Raises:
        ValueError: on NaN logits, shape mismatch or labels out of range.

    References:
        Deep Unlearn §2 eq. 1: RA, FA, VA and TA are this accuracy on the retain, forget,
        val and test sets, in eval mode.
    """
    z, y = _logits_labels(logits, labels)
    acc = np.mean(np.argmax(z, axis=-1) == y, axis=-1)
    return float(acc) if np.ndim(acc) == 0 else acc


def retention(new: ArrayLike, ref: ArrayLike) -> float:
    """Accuracy retention ``new / ref`` (e.g. RR = RA_U / RA_R).

    Raises:
        ValueError: if either accuracy lies outside [0, 1] or ``ref`` is 0.

    References:
        Deep Unlearn §2 eq. 2 and ``retention.py`` (RR, FR, TR: retain, forget and test
        accuracy of the unlearned model over the retrained model's).
    """
    a = float(_checks.as_unit_interval("new", new).mean())
    b = float(_checks.as_unit_interval("ref", ref).mean())
    if b <= 0:
        raise ValueError("ref: the reference accuracy must be positive for a retention")
    return a / b


def retdev(rr: float, fr: float, tr: float) -> float:
    """Retention deviation ``|1 - RR| + |1 - FR| + |1 - TR|`` (0 means "matches retraining").

    References:
        Deep Unlearn §2 eq. 3. The released code has no RetDev; the public fork
        ``santimebi/deepunlearn`` computes it on seed means.
    """
    vals = [float(_checks.as_array(n, v)) for n, v in (("rr", rr), ("fr", fr), ("tr", tr))]
    if any(v < 0 for v in vals):
        raise ValueError(f"retentions must be non-negative, got {vals}")
    return float(sum(abs(1.0 - v) for v in vals))


def sape(a: ArrayLike, b: ArrayLike, *, percent: bool = True) -> float | np.ndarray:
    """Symmetric absolute percentage error ``100 |b - a| / (|a| + |b|)``; 0 when both are 0.

    ``percent=False`` gives SFTC's eq. 4 form ``|b - a| / (a + b)`` (its tables use it).

    References:
        Deep Unlearn ``symmetric_absolute_percentage_error.py`` (defined there but never
        called); SFTC (Perifanis et al. 2024) eq. 4.
    """
    x, y = _checks.as_array("a", a), _checks.as_array("b", b)
    den = np.abs(x) + np.abs(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, np.abs(y - x) / np.where(den > 0, den, 1.0), 0.0)
    out = out * (100.0 if percent else 1.0)
    return float(out) if out.ndim == 0 else out


def accuracy_errors(
    ta_u: float,
    fa_u: float,
    *,
    ta_r: float | None = None,
    fa_r: float | None = None,
    ta_o: float | None = None,
    percent: bool = True,
) -> dict[str, float]:
    """SFTC accuracy errors: AccErr vs retrain, AccDis (forget set), AccErr vs original.

    Returns the keys that the given references allow: ``acc_err_retrained`` =
    SAPE(TA_R, TA_U) (eq. 5), ``acc_dis`` = SAPE(FA_R, FA_U) (eq. 6), ``acc_err_original`` =
    SAPE(TA_O, TA_U) (eq. 7).

    References:
        SFTC (Perifanis et al. 2024) §5.4 eqs. 4-7.
    """
    out = {}
    if ta_r is not None:
        out["acc_err_retrained"] = float(sape(ta_r, ta_u, percent=percent))
    if fa_r is not None:
        out["acc_dis"] = float(sape(fa_r, fa_u, percent=percent))
    if ta_o is not None:
        out["acc_err_original"] = float(sape(ta_o, ta_u, percent=percent))
    return out
