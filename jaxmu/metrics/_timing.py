"""Timing helpers and run-time efficiency (RTE).

Compile time is reported separately from run time; results are waited for with
``jax.block_until_ready`` so asynchronous dispatch does not hide device work. Keep evaluation
and checkpoint I/O outside the timed region.

References:
    Deep Unlearn §2 eq. 4 and ``run_time_efficiency.py``; docs/evaluation.md#run-time-and-rte
    (Deep Unlearn also times the checkpoints and evaluations some methods run inside their
    ``unlearn()``, which biases its RTE; jaxmu keeps them outside the timed region).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax

from jaxmu import _checks


def rte(t_reference: float, t_method: float) -> float:
    """Run-time efficiency ``T_reference / T_method`` (> 1: faster than the reference).

    ``t_reference`` is the retrain-from-scratch time in Deep Unlearn.

    Raises:
        ValueError: unless both times are finite and positive.

    References:
        Deep Unlearn §2 eq. 4 and ``run_time_efficiency.py`` (RTE of retraining is 1; below
        1 a method is slower than retraining).
    """
    return _checks.positive_scalar("t_reference", t_reference) / _checks.positive_scalar(
        "t_method", t_method
    )


class Timer:
    """Wall-clock context manager: ``with Timer() as t: out = t.block(f(x))``; ``t.seconds``.

    ``block`` waits for (possibly asynchronous) JAX results before the clock stops.

    References:
        docs/evaluation.md#run-time-and-rte (run time measured without evaluation or I/O).
    """

    def __init__(self) -> None:
        self.seconds: float = float("nan")
        self._start = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._start

    @staticmethod
    def block(x: Any) -> Any:
        return jax.block_until_ready(x)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """Runs ``fn(*args, **kwargs)`` and returns ``(result, run_seconds, compile_seconds)``.

    If ``fn`` is jitted (has ``.lower``), compile time is ``fn.lower(...).compile()`` and the
    run is one call of that compiled executable (a ``jax.jit`` call would not reuse it and
    would compile again inside the timed run). With static arguments, which a compiled
    executable does not take, the jitted ``fn`` is warmed up once and timed on a second
    call. Otherwise ``fn`` is called once to warm up
    (compiling whatever it jits inside), then timed on a second call;
    ``compile_seconds = max(first - second, 0)`` estimates the compile overhead. Each run
    waits with ``jax.block_until_ready``. Beware functions with side effects or donated
    buffers: a non-jitted ``fn`` runs twice.

    Returns:
        ``(result, run_seconds, compile_seconds)`` with the result of the timed run.

    References:
        docs/evaluation.md#run-time-and-rte (compile time reported separately).
    """
    if hasattr(fn, "lower"):
        t0 = time.perf_counter()
        compiled = fn.lower(*args, **kwargs).compile()
        compile_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            out = jax.block_until_ready(compiled(*args, **kwargs))
        except TypeError:  # static arguments: warm the jit cache, then time a cached call
            jax.block_until_ready(fn(*args, **kwargs))
            t0 = time.perf_counter()
            out = jax.block_until_ready(fn(*args, **kwargs))
        return out, time.perf_counter() - t0, compile_s
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args, **kwargs))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    run = time.perf_counter() - t0
    return out, run, max(first - run, 0.0)
