"""Input validation of arrays shared by the metrics and the audits: every bad input is one
clear ``ValueError``. Imports nothing beyond NumPy, so any jaxmu package may use it."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_array(
    name: str,
    x: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    min_ndim: int | None = None,
    dtype: Any = np.float64,
    finite: bool = True,
) -> np.ndarray:
    """Converts ``x`` (NumPy/JAX/list) to a NumPy array and validates rank and finiteness.

    Always returns a fresh array when ``dtype`` changes; never writes into the caller's array.
    """
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: cannot convert to an array ({err})") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise ValueError(f"{name}: expected {' or '.join(map(str, allowed))}-D, got shape "
                             f"{arr.shape}")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim}-D, got shape {arr.shape}")
    if finite and np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN or infinite value(s)")
    if arr.size == 0:
        raise ValueError(f"{name}: is empty (shape {arr.shape})")
    return arr


def as_logits(name: str, logits: Any, *, min_classes: int = 2) -> np.ndarray:
    """Float64 logits ``[..., N, K]`` with ``K >= min_classes``, all finite."""
    arr = as_array(name, logits, min_ndim=2)
    if arr.shape[-1] < min_classes:
        raise ValueError(f"{name}: needs at least {min_classes} classes on the last axis, got "
                         f"shape {arr.shape}")
    return arr


def as_labels(name: str, labels: Any, num_classes: int, n: int) -> np.ndarray:
    """Integer labels ``[N]`` in ``[0, num_classes)`` matching ``n`` examples."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected 1-D labels, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name}: {arr.shape[0]} labels for {n} examples")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name}: labels must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got range "
                         f"[{arr.min()}, {arr.max()}]")
    return arr


def broadcast_labels(name: str, labels: Any, logits_shape: tuple[int, ...]) -> np.ndarray:
    """Integer labels broadcast to ``logits_shape[:-1]``, checked against the class count."""
    lab = np.asarray(labels)
    try:
        lab = np.broadcast_to(lab, logits_shape[:-1])
    except ValueError:
        raise ValueError(f"{name}: shape {lab.shape} does not broadcast to the logits' "
                         f"{logits_shape[:-1]}") from None
    flat = as_labels(name, lab.reshape(-1), logits_shape[-1], lab.size)
    return flat.reshape(lab.shape)


def as_unit_interval(name: str, x: Any) -> np.ndarray:
    """A finite array with every value in ``[0, 1]`` (accuracies, probabilities)."""
    arr = as_array(name, x)
    if np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"{name}: values must lie in [0, 1], got range "
                         f"[{arr.min():.6g}, {arr.max():.6g}]")
    return arr


def as_mask(name: str, mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask broadcastable to ``shape`` (returned broadcast, read-only)."""
    arr = np.asarray(mask)
    if arr.dtype != bool:
        if not np.all(np.isin(arr, (0, 1))):
            raise ValueError(f"{name}: expected a boolean mask, got dtype {arr.dtype}")
        arr = arr.astype(bool)
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"{name}: shape {arr.shape} does not broadcast to {shape}") from None


def positive_scalar(name: str, x: Any) -> float:
    """A finite, strictly positive float."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {type(x).__name__}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a finite positive number, got {v}")
    return v


def logits_layout(name: str, z: np.ndarray, n: int, augmented: bool | None) -> bool:
    """Whether logits ``z`` for ``n`` labelled examples are ``[..., n, A, C]`` (augmented
    views, True) or ``[..., n, C]`` (False).

    Args:
        name: the argument's name, for messages.
        z: the logits array.
        n: the number of labels.
        augmented: the caller's answer, or None to infer it from the shape.

    Raises:
        ValueError: the shape fits neither layout, fits both with ``augmented`` unset
            (ambiguous: pass ``augmented=``), or not the layout requested.
    """
    plain = z.shape[-2] == n
    aug = z.ndim >= 3 and z.shape[-3] == n
    if augmented is None:
        if plain and aug:
            raise ValueError(f"{name}: shape {z.shape} with {n} labels is ambiguous (it fits "
                             f"both [..., N, C] and [..., N, A, C]): pass augmented=True or "
                             f"False")
        augmented = aug and not plain
    if augmented and not aug:
        raise ValueError(f"{name}: expected [..., N={n}, A, C] with augmentations, got shape "
                         f"{z.shape}")
    if not augmented and not plain:
        raise ValueError(f"{name}: expected [..., N={n}, C] (or [..., N, A, C]), got shape "
                         f"{z.shape}")
    return bool(augmented)
