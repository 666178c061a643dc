"""The key an unlearning method runs with: one definition for every caller (the single
run of :func:`jaxmu.experiment.run`, the search trials and final runs of
:mod:`jaxmu.sweep`), so a trial, a final run and a CLI run of the same seed agree."""

from __future__ import annotations

import jax


def method_key(seed: int) -> jax.Array:
    """The key a method runs with on model seed ``seed``: ``fold_in(key(seed), 2)`` (the
    model's init and data order use the other folds of the same seed)."""
    return jax.random.fold_in(jax.random.key(seed), 2)
