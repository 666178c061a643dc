"""Hyperparameter value checks (clear ValueErrors): a config field's ``check`` is one of these,
called as ``check(name, value)``."""

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
    return clip_temperature(v)


def clip_temperature(v: float) -> float:
    """``max(v, 1e-3)`` (a temperature of 0 would divide by zero)."""
    return jnp.maximum(v, 1e-3) if _traced(v) else max(v, 1e-3)


def positive_integer(name: str, v: int) -> int:
    if int(v) != v or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v}")
    return int(v)


batch = positive_integer
"""A batch size: a positive integer."""


def integer(name: str, v: int) -> int:
    """An integer >= 0 (e.g. a block or step count where 0 is allowed)."""
    if int(v) != v or v < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {v}")
    return int(v)


def non_negative_integer(name: str, v: int) -> int:
    if int(v) != v or v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v}")
    return int(v)


def one_of(choices: tuple, text: str | None = None):
    """A check that the value is one of ``choices``; the message says ``must be <text>``
    (default ``one of <choices>``)."""
    def check(name: str, v):
        if v not in choices:
            raise ValueError(f"{name} must be {text or f'one of {choices}'}, got {v!r}")
        return v

    return check


BN = one_of(("train", "eval"), "'train' or 'eval'")
"""The BatchNorm mode of a loop: ``"train"`` or ``"eval"``."""
