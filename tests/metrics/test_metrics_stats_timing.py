"""Bootstrap confidence intervals, RTE and the timing helpers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.metrics import Timer, bootstrap_ci, format_ci, rte, timed


def test_bootstrap_ci_contains_value_and_is_reproducible():
    x = np.random.default_rng(0).normal(0.7, 0.05, size=20)
    v, lo, hi = bootstrap_ci(x)
    assert v == pytest.approx(x.mean()) and lo < v < hi
    assert bootstrap_ci(x) == (v, lo, hi)  # seeded
    v2, lo2, hi2 = bootstrap_ci(x, np.median, method="BCa", confidence=0.9, n_resamples=500)
    assert v2 == pytest.approx(np.median(x)) and lo2 <= v2 <= hi2
    assert hi2 - lo2 < hi - lo + 0.1


def test_bootstrap_ci_constant_paired_and_axis():
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=30), rng.normal(size=30)
    v, lo, hi = bootstrap_ci((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis))
    assert v == pytest.approx(np.mean(a - b)) and lo < v < hi
    # A statistic without an axis argument is called per resample.
    v3, lo3, hi3 = bootstrap_ci(a, lambda x: float(np.max(x)), n_resamples=200)
    assert v3 == a.max() and lo3 <= v3 <= hi3
    v4, lo4, hi4 = bootstrap_ci(a[None, :], np.mean, axis=1)
    assert v4 == pytest.approx(a.mean()) and lo4 < v4 < hi4


def test_format_ci():
    assert format_ci(0.5, 0.4, 0.6) == "0.500 [0.400, 0.600]"
    assert format_ci(*bootstrap_ci([1.0, 1.0]), digits=1) == "1.0 [1.0, 1.0]"


@pytest.mark.parametrize(
    "args, kwargs, match",
    [(([1.0],), {}, "at least 2"),
     (([1.0, np.nan],), {}, "NaN"),
     (((np.zeros(3), np.zeros(4)),), {}, "equal length"),
     (([1.0, 2.0],), {"confidence": 1.5}, "confidence"),
     ((np.zeros((2, 5)),), {"statistic": np.mean, "axis": 1}, "scalar")],
)
def test_bootstrap_bad_inputs(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(*args, **kwargs)


def test_rte_golden_and_bad():
    assert rte(10.0, 2.0) == 5.0
    for bad in [(0.0, 1.0), (1.0, -1.0), (float("nan"), 1.0), (1.0, float("inf"))]:
        with pytest.raises(ValueError):
            rte(*bad)


def test_timed_jitted_and_plain():
    f = jax.jit(lambda x: jnp.sin(x) @ x)
    x = jnp.ones((8, 8))
    out, run_s, compile_s = timed(f, x)
    np.testing.assert_allclose(out, jnp.sin(x) @ x, rtol=1e-6)
    assert run_s >= 0 and compile_s > 0
    calls = []

    def plain(x):
        calls.append(1)
        return f(x) + 1

    g = jax.jit(lambda x, n: x * n, static_argnums=1)  # compiled executables take no statics
    out3, run3, comp3 = timed(g, x, 3)
    np.testing.assert_allclose(out3, x * 3)
    assert run3 >= 0 and comp3 > 0
    out2, run2, comp2 = timed(plain, x)
    assert len(calls) == 2  # warm-up + timed run
    np.testing.assert_allclose(out2, out + 1, rtol=1e-6)
    assert run2 >= 0 and comp2 >= 0


def test_timer_blocks():
    with Timer() as t:
        y = t.block(jnp.arange(10.0) * 2)
    assert t.seconds >= 0 and float(y[-1]) == 18.0
