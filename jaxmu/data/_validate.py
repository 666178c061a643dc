"""Checks that turn user arrays into a pool's uint8 images and integer labels, or refuse them.

Every check raises a one-line :class:`ValueError` that starts with ``what`` (the file or array
it is about) and says what is wrong; nothing is converted partially.
"""

from __future__ import annotations

import numpy as np

IMAGE_RULE = "images must be uint8, integers in [0, 255], or floats in [0, 1] or [0, 255]"


def _num(v: float) -> str:
    return f"{v:g}"


def as_images(x, what: str) -> np.ndarray:
    """Returns validated uint8 images ``[N, H, W, C]``.

    Accepted inputs are ``[N, H, W]`` (grayscale, given a channel axis of 1) or
    ``[N, H, W, C]`` arrays of:

    * uint8, kept as they are;
    * any other integer dtype with every value in [0, 255], cast losslessly;
    * floats, every value finite, either all in [0, 1] (multiplied by 255 and rounded) or
      all in [0, 255] (rounded). When every value lies in [0, 1] the [0, 1] reading wins.

    Anything else (bool, complex or object arrays, NaN or inf, values outside those
    ranges, e.g. already normalised images) is refused.

    Args:
        x: array-like images.
        what: the file or array name that error messages start with.

    Raises:
        ValueError: the array is not a valid image batch.
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or 0 in x.shape[1:]:
        raise ValueError(f"{what} must be [N, H, W] or [N, H, W, C] images, got shape "
                         f"{tuple(np.shape(x))}")
    if x.dtype == np.uint8:
        return x
    integer = np.issubdtype(x.dtype, np.integer)
    if not (integer or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{what} has dtype {x.dtype}; {IMAGE_RULE}")
    if x.size == 0:
        return x.astype(np.uint8)
    if not integer:
        bad = x.size - int(np.count_nonzero(np.isfinite(x)))
        if bad:
            raise ValueError(f"{what} has {bad} non-finite values (NaN or inf) out of {x.size}")
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > 255:
        raise ValueError(f"{what} values lie in [{_num(lo)}, {_num(hi)}]; {IMAGE_RULE}")
    if integer:
        return x.astype(np.uint8)
    if hi <= 1:
        x = x.astype(np.float64) * 255.0
    return np.round(x).astype(np.uint8)


def as_labels(y, n: int, num_classes: int | None, what: str, images: str) -> np.ndarray:
    """Returns validated int64 labels ``[n]``.

    Labels are a 1-d array (``[n, 1]`` is flattened) of integers, or of floats that are all
    whole numbers, in ``[0, num_classes)`` (only ``>= 0`` when ``num_classes`` is None).

    Args:
        y: array-like labels.
        n: the number of images they belong to.
        num_classes: the number of classes, or None.
        what: the file or array name of the labels, for error messages.
        images: the file or array name of the images, for error messages.

    Raises:
        ValueError: the labels are not valid for these images.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{what} must be a 1-d array of class labels, got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{what} has {len(y)} labels for {n} images in {images}")
    if np.issubdtype(y.dtype, np.floating):
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise ValueError(f"{what} must hold integer class labels, got non-integer floats")
    elif not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} must hold integer class labels, got dtype {y.dtype}")
    if y.size == 0:
        return y.astype(np.int64)
    lo, hi = y.min(), y.max()
    top = None if num_classes is None else num_classes - 1
    if lo < 0 or (top is not None and hi > top):
        expected = "[0, inf)" if top is None else f"[0, {top}]"
        raise ValueError(f"{what} labels lie in [{_num(lo)}, {_num(hi)}]; expected {expected}")
    return y.astype(np.int64)
