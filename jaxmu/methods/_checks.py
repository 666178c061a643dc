"""Hyperparameter value checks shared by the method builders (clear ValueErrors)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _traced(v) -> bool:
    """Traced values (hyperparameters passed as arguments, e.g. by a sweep that compiles one
    program per structural setting) are validated before tracing, not here."""
    return isinstance(v, jax.core.Tracer)


def positive(name: str, v: float) -> float:
    if _traced(v):
        return v
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def non_negative(name: str, v: float) -> float:
    if _traced(v):
        return v
    if not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def unit(name: str, v: float) -> float:
    if _traced(v):
        return v
    if not 0 <= v <= 1:
        raise ValueError(f"{name} must lie in [0, 1], got {v}")
    return v


def temperature(name: str, v: float) -> float:
    """The reference samples temperatures in [0, 5] and divides by 0 at 0; jaxmu clips to
    1e-3 (docs/methods.md#temperature)."""
    non_negative(name, v)
    return jnp.maximum(v, 1e-3) if _traced(v) else max(v, 1e-3)


def batch(name: str, v: int) -> int:
    if int(v) != v or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v}")
    return int(v)
