"""Seeded split builders: random, class-wise, targeted (predicate/score) and label-skewed.

All builders split the official train part of a :class:`Dataset` into retain / forget / val
and use the official test part as test. Everything is seeded and reproducible.

References:
    Deep Unlearn ``munl/datasets/splits.py`` (the random split;
    docs/evaluation.md#the-deep-unlearn-setting); Comparative Analysis of Machine Unlearning
    Approaches for Data Protection §VI-D (red-dominant images as a realistic, targeted forget
    set); Qu et al., "Learn to Unlearn" survey §VI-C2 (label-skewed, non-IID deletion).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from jaxmu._names import SCENARIOS
from jaxmu.data._dataset import Dataset
from jaxmu.types import Splits

DEFAULT_SPLIT_SEED = 123


def _check_fraction(name: str, f: float, *, allow_one: bool = False) -> None:
    hi_ok = f <= 1 if allow_one else f < 1
    if not (0 < f and hi_ok):
        raise ValueError(f"{name} must lie in (0, 1{']' if allow_one else ')'}, got {f}")


def _split_off(idx: np.ndarray, fraction: float, name: str, taken: str, left: str,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split(idx, test_size=fraction)`` -> (left part, taken part), both
    non-empty, or a one-line ValueError naming the set that would be empty."""
    n_taken = int(np.ceil(fraction * len(idx)))  # sklearn's rounding
    if n_taken == 0 or n_taken >= len(idx):
        empty = taken if n_taken == 0 else left
        raise ValueError(f"{name} {fraction} of {len(idx)} examples leaves the {empty} set "
                         "empty; the dataset is too small for these fractions")
    from sklearn.model_selection import train_test_split

    rest, part = train_test_split(idx, test_size=fraction, random_state=seed)
    return rest, part


def _train_val(ds: Dataset, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    _check_fraction("val_fraction", val_fraction)
    idx = np.arange(ds.n_train)
    train, val = _split_off(idx, val_fraction, "val_fraction", "val", "train", seed)
    return np.sort(train), np.sort(val)


def _finish(ds: Dataset, train: np.ndarray, forget: np.ndarray, val: np.ndarray) -> Splits:
    retain = np.setdiff1d(train, forget)
    test = np.arange(ds.n_train, ds.pool.size)
    return Splits.build(ds.pool, forget=np.sort(forget), retain=retain, val=val, test=test)


def random_splits(
    ds: Dataset,
    forget_fraction: float = 0.1,
    val_fraction: float = 0.15,
    seed: int = DEFAULT_SPLIT_SEED,
) -> Splits:
    """Deep Unlearn's split: val = ``val_fraction`` of train, forget = ``forget_fraction``
    of the rest, both with ``sklearn.train_test_split(random_state=seed)``.

    With the defaults the forget set is 8.5% of the official train set (10% of the 85% that
    is not val).
    """
    _check_fraction("forget_fraction", forget_fraction)
    train, val = _train_val(ds, val_fraction, seed)
    _, forget = _split_off(train, forget_fraction, "forget_fraction", "forget", "retain", seed)
    return _finish(ds, train, forget, val)


def classwise_splits(
    ds: Dataset,
    classes: Sequence[int],
    fraction: float = 1.0,
    val_fraction: float = 0.15,
    seed: int = DEFAULT_SPLIT_SEED,
) -> Splits:
    """Forget ``fraction`` of the (non-val) train examples of each class in ``classes``."""
    _check_fraction("fraction", fraction, allow_one=True)
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < ds.pool.num_classes]
    if not classes or bad:
        raise ValueError(f"classes must be in [0, {ds.pool.num_classes - 1}], got {classes}")
    train, val = _train_val(ds, val_fraction, seed)
    y = np.asarray(ds.pool.y)[train]
    rng = np.random.default_rng(seed)
    forget = []
    for c in classes:
        members = train[y == c]
        k = int(np.ceil(fraction * len(members)))
        forget.append(rng.choice(members, size=k, replace=False))
    return _finish(ds, train, np.concatenate(forget), val)


def targeted_splits(
    ds: Dataset,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    size: int | float,
    val_fraction: float = 0.15,
    seed: int = DEFAULT_SPLIT_SEED,
) -> Splits:
    """Non-IID forget set: the ``size`` train examples with the highest ``score(x, y)``.

    Args:
        ds: dataset.
        score: ``(x uint8 [n, H, W, C], y [n]) -> float [n]``; a bool predicate also works
            (members of the predicate are taken first, ties broken by a seeded shuffle).
        size: number of examples, or a fraction in (0, 1) of the non-val train set.
        val_fraction: as in :func:`random_splits`.
        seed: split seed.
    """
    train, val = _train_val(ds, val_fraction, seed)
    x = np.asarray(ds.pool.x)[train]
    y = np.asarray(ds.pool.y)[train]
    s = np.asarray(score(x, y), dtype=np.float64).reshape(-1)
    if s.shape != (len(train),):
        raise ValueError(f"score must return one value per example, got shape {s.shape}")
    k = int(round(size * len(train))) if isinstance(size, float) and size < 1 else int(size)
    if not 0 < k < len(train):
        raise ValueError(f"targeted forget size must be in [1, {len(train) - 1}], got {k}")
    tiebreak = np.random.default_rng(seed).random(len(train))
    order = np.lexsort((tiebreak, -s))
    return _finish(ds, train, train[order[:k]], val)


def red_dominance(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """Red dominance, mean of ``R - (G + B) / 2`` over the image: the score of the targeted
    forget set (the most red-dominant images) of Comparative Analysis of Machine Unlearning
    Approaches for Data Protection, §VI-D."""
    if x.shape[-1] != 3:
        raise ValueError("red_dominance needs RGB images")
    f = x.astype(np.float64)
    return (f[..., 0] - 0.5 * (f[..., 1] + f[..., 2])).mean(axis=(1, 2))


def label_skewed_splits(
    ds: Dataset,
    forget_fraction: float = 0.1,
    skew_class: int = 0,
    skew: float = 0.3,
    val_fraction: float = 0.15,
    seed: int = DEFAULT_SPLIT_SEED,
) -> Splits:
    """Label-skewed deletion: ``skew`` of the forget set comes from ``skew_class``, the rest
    uniformly from the other classes (the Learn to Unlearn survey, §VI-C2, uses 30%)."""
    _check_fraction("forget_fraction", forget_fraction)
    _check_fraction("skew", skew, allow_one=True)
    if not 0 <= skew_class < ds.pool.num_classes:
        raise ValueError(f"skew_class must be in [0, {ds.pool.num_classes - 1}]")
    train, val = _train_val(ds, val_fraction, seed)
    y = np.asarray(ds.pool.y)[train]
    n = max(1, int(round(forget_fraction * len(train))))
    rng = np.random.default_rng(seed)
    in_c, out_c = train[y == skew_class], train[y != skew_class]
    k = min(len(in_c), int(round(skew * n)))
    forget = np.concatenate([
        rng.choice(in_c, size=k, replace=False),
        rng.choice(out_c, size=min(len(out_c), n - k), replace=False),
    ])
    return _finish(ds, train, forget, val)


def scenario_splits(
    ds: Dataset,
    scenario: str = "random",
    *,
    forget_fraction: float = 0.1,
    val_fraction: float = 0.15,
    seed: int = DEFAULT_SPLIT_SEED,
) -> Splits:
    """Builds splits from a CLI scenario string (see :data:`SCENARIOS`)."""
    kind, _, arg = scenario.partition(":")
    try:
        if kind == "random" and not arg:
            return random_splits(ds, forget_fraction, val_fraction, seed)
        if kind == "classwise":
            classes = [int(c) for c in (arg or "0").split(",")]
            return classwise_splits(ds, classes, 1.0, val_fraction, seed)
        if kind == "red":
            size = float(arg) if arg else forget_fraction
            size = int(size) if size >= 1 else size
            return targeted_splits(ds, red_dominance, size, val_fraction, seed)
        if kind == "label_skew":
            return label_skewed_splits(ds, forget_fraction, int(arg or 0), 0.3, val_fraction, seed)
    except ValueError as e:
        if "invalid literal" in str(e) or "could not convert" in str(e):
            raise ValueError(f"bad forget scenario {scenario!r}; valid: {SCENARIOS}") from None
        raise
    raise ValueError(f"unknown forget scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
