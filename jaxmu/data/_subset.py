"""Stratified subsets of a :class:`Dataset` (smaller studies on CPU)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxmu.data._dataset import Dataset


def _stratified(y: np.ndarray, n: int, seed: int, part: str, name: str) -> np.ndarray:
    if n == len(y):
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    try:
        _, keep = train_test_split(np.arange(len(y)), test_size=n, random_state=seed,
                                   stratify=y)
    except ValueError as e:  # fewer examples than classes, a class with one example ...
        raise ValueError(f"{name}: cannot draw a stratified {part} subset of {n}: {e}") from None
    return np.sort(keep)


def subset_dataset(ds: Dataset, n_train: int | None = None, n_test: int | None = None,
                   seed: int = 0) -> Dataset:
    """A class-stratified random subset of the official train and/or test part.

    The subset keeps the dataset's name, normalisation (the full dataset's mean and std)
    and augmentation settings; only the examples change. The draw is
    ``sklearn.model_selection.train_test_split(stratify=labels, random_state=seed)``, so
    the same ``seed`` gives the same examples on every machine, and a subset of ``n``
    holds each class in proportion (to within one example).

    Args:
        ds: the full dataset.
        n_train: examples kept of the official train part (``None``: all).
        n_test: examples kept of the official test part (``None``: all).
        seed: the subset seed.

    Returns:
        A new :class:`Dataset` (train part first, then test part, each in original order).

    Raises:
        ValueError: a size is not an integer in ``[num_classes, part size]`` (one line).
    """
    pool = ds.pool
    y = np.asarray(pool.y)
    picks = []
    for part, n, lo, hi in (("train", n_train, 0, ds.n_train),
                            ("test", n_test, ds.n_train, pool.size)):
        size = hi - lo
        if n is None:
            picks.append(np.arange(lo, hi))
            continue
        if isinstance(n, bool) or int(n) != n or not pool.num_classes <= n <= size:
            raise ValueError(f"{ds.name}: the {part} subset must be an integer in "
                             f"[{pool.num_classes}, {size}], got {n}")
        picks.append(lo + _stratified(y[lo:hi], int(n), seed, part, ds.name))
    idx = np.concatenate(picks)
    sub = dataclasses.replace(pool, x=jnp.asarray(np.asarray(pool.x)[idx]),
                              y=jnp.asarray(y[idx]))
    return Dataset(pool=sub, n_train=len(picks[0]))
