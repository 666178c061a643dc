"""Shared pieces of the benchmarks: argument parsing, timing, FLOP counts, output.

Every benchmark is ``python -m benchmarks.<name> [--quick] [--json] ...``: it prints a
human-readable table first and, with ``--json``, ends with exactly one line holding one
JSON object (the full result: config, seed, provenance, measurements). Bad arguments exit
with status 2 and a single line on stderr.

Timing rules (docs/evaluation.md#run-time-and-rte):

* compilation is measured separately, ahead of time: ``jax.jit(f).lower(...).compile()``;
* run time is the median over repeats of the compiled function, each repeat ended by
  ``jax.block_until_ready``; a warm-up call precedes the repeats;
* ratios reported by a benchmark come from measurements taken side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

# argparse with one-line errors on stderr and exit status 2, shared with the experiment CLIs.
from jaxmu._argparse import ArgumentParser as ArgumentParser


def make_parser(prog: str, description: str) -> ArgumentParser:
    """A parser with the flags every benchmark shares: --quick, --json, --seed, --repeats."""
    p = ArgumentParser(prog=prog, description=description)
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats (a few minutes on a 2-core CPU); shapes unchanged")
    p.add_argument("--json", action="store_true",
                   help="end the output with one line holding the whole result as JSON")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help="timed repeats per measurement (default 5, 3 with --quick)")
    return p


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def csv_list(choices: Sequence[str] | None = None) -> Callable[[str], list[str]]:
    """argparse type: a comma-separated, non-empty list (optionally checked against choices)."""

    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a non-empty comma-separated list")
        if choices is not None:
            bad = [t for t in items if t not in choices]
            if bad:
                raise argparse.ArgumentTypeError(
                    f"unknown {', '.join(bad)}; valid: {', '.join(choices)}")
        return items

    return parse


def repeats(args: argparse.Namespace) -> int:
    """Number of timed repeats: ``--repeats`` if given, else 3 in quick mode, 5 otherwise."""
    return args.repeats if args.repeats is not None else (3 if args.quick else 5)


def threads() -> int:
    """CPU threads available to this process (what XLA:CPU and PyTorch are given)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- timing


def compile_timed(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """AOT-compiles ``fn`` (jitted or not) for these arguments; returns (compiled, seconds)."""
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args, **kwargs).compile()
    return compiled, time.perf_counter() - t0


def compile_cache():
    """The persistent XLA compilation cache, as a context manager, only when the environment
    asks for it: ``JAXMU_COMPILE_CACHE=1`` (``.jaxmu_cache/xla``) or ``=DIR`` (see
    :mod:`jaxmu._compile_cache`). Off by default, since benchmarks measure compile time and a
    cache hit turns it into a load time; ``provenance()["compile_cache"]`` records the dir."""
    from jaxmu._compile_cache import compile_cache as cache
    from jaxmu._compile_cache import resolve_compile_cache

    return cache(resolve_compile_cache(".jaxmu_cache", default_on=False))


def time_call(fn: Callable[[], Any], n_repeats: int, warmup: int = 1, min_total: float = 0.0,
              max_repeats: int = 200) -> dict[str, Any]:
    """Median wall time of ``fn()`` (blocked until ready) over repeated calls.

    Runs at least ``n_repeats`` calls, and more (up to ``max_repeats``) until the timed calls
    add up to ``min_total`` seconds: short functions get more samples, which keeps the median
    stable on a busy machine. Returns ``{"median_s", "min_s", "repeats", "times_s"}``.
    """
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times: list[float] = []
    while len(times) < n_repeats or (sum(times) < min_total and len(times) < max_repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times),
            "times_s": times}


class LoopTimer:
    """Times ``carry = step(*carry)`` run in a loop, as a training loop runs it.

    Each repeat runs ``inner`` consecutive calls (outputs fed back as inputs, so donation and
    asynchronous dispatch behave as in training) and is synchronised once at its end;
    ``inner`` is calibrated from one call after a warm-up call so that a repeat lasts about
    ``min_time``. Times are reported per call divided by ``per_call`` (e.g. the steps one
    call of a compiled epoch runs). Repeats of several timers can be interleaved (A B A B
    ...) so that a comparison sees the same machine load on both sides.
    """

    def __init__(self, step: Callable[..., Any], carry: Any, min_time: float = 0.2,
                 sync: Callable[[Any], Any] = jax.block_until_ready, per_call: int = 1):
        self.step, self.sync, self.times, self.per_call = step, sync, [], per_call
        carry = step(*carry)  # warm-up (first execution allocates and may load code)
        sync(carry)
        t0 = time.perf_counter()
        carry = step(*carry)
        sync(carry)
        one = time.perf_counter() - t0
        self.carry = carry
        self.inner = max(1, min(1000, math.ceil(min_time / max(one, 1e-6))))

    def repeat(self) -> float:
        """One timed repeat; returns (and records) the time per call."""
        carry, step = self.carry, self.step
        t0 = time.perf_counter()
        for _ in range(self.inner):
            carry = step(*carry)
        self.sync(carry)
        dt = (time.perf_counter() - t0) / (self.inner * self.per_call)
        self.carry = carry
        self.times.append(dt)
        return dt

    def result(self) -> dict[str, Any]:
        """``{"median_s", "min_s", "inner", "repeats"}`` (times per call)."""
        return {"median_s": statistics.median(self.times), "min_s": min(self.times),
                "inner": self.inner, "repeats": len(self.times)}


def time_loop(step: Callable[..., Any], carry: Any, n_repeats: int, min_time: float = 0.2,
              sync: Callable[[Any], Any] = jax.block_until_ready) -> dict[str, Any]:
    """Median time per call of ``carry = step(*carry)`` over ``n_repeats`` repeats
    (see :class:`LoopTimer`)."""
    timer = LoopTimer(step, carry, min_time, sync)
    for _ in range(n_repeats):
        timer.repeat()
    return timer.result()


def interleaved(timers: Sequence[LoopTimer], n_repeats: int) -> list[dict[str, Any]]:
    """Runs the timers' repeats alternately (A B A B ...); returns each one's result."""
    for _ in range(n_repeats):
        for t in timers:
            t.repeat()
    return [t.result() for t in timers]


def cost_flops(compiled: Any) -> float | None:
    """FLOPs of one call of an AOT-compiled function, from XLA's cost analysis.

    ``Compiled.cost_analysis()`` returns a dict in jax 0.10 (a list of per-program dicts in
    older releases); either is accepted. Returns None where XLA gives no count.
    """
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(ca, (list, tuple)):
        parts = [d.get("flops") for d in ca if isinstance(d, dict)]
        parts = [p for p in parts if p is not None]
        total = sum(parts) if parts else None
    elif isinstance(ca, dict):
        total = ca.get("flops")
    else:
        total = None
    return float(total) if total is not None and total > 0 else None


def matmul_peak(n: int, n_repeats: int, seed: int = 0) -> dict[str, Any]:
    """Measured f32 matmul throughput: ``n x n @ n x n`` with ``jnp.dot``.

    FLOPs are ``2 n^3`` (XLA's cost analysis agrees). The peak is the *best* repeat (the
    machine's capability; on a shared machine the median mostly measures other load), the
    median is reported next to it.
    """
    ka, kb = jax.random.split(jax.random.key(seed))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    compiled, compile_s = compile_timed(jnp.dot, a, b)
    t = time_call(lambda: compiled(a, b), max(n_repeats, 5))
    flops = 2.0 * n**3
    return {"n": n, "dtype": "float32", "flops": flops, "compile_s": compile_s,
            "best_s": t["min_s"], "median_s": t["median_s"], "repeats": t["repeats"],
            "flops_per_s": flops / t["min_s"], "median_flops_per_s": flops / t["median_s"],
            "xla_flops": cost_flops(compiled)}


# ----------------------------------------------------------------------------- output


def provenance(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``jaxmu.io.provenance()`` (versions, backend, devices, host, time) plus threads, XLA
    flags and the machine's load average (taken at the end of the run)."""
    from jaxmu.io import provenance as _prov

    out = _prov()
    out["threads"] = threads()
    try:  # other processes' load makes CPU timings noisy: record it
        out["load_avg_1_5_15min"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        out["load_avg_1_5_15min"] = None
    out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    out["compile_cache"] = jax.config.jax_compilation_cache_dir  # None: every compile is real
    if extra:
        out.update(extra)
    return out


def fmt_time(s: float | None) -> str:
    """Seconds in a readable unit."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_num(x: float | None, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table (cells converted with ``str``; ``|`` escaped)."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def to_json(result: dict[str, Any]) -> str:
    """One line of strict JSON through jaxmu's one codec (:func:`jaxmu.io.to_json`: NaN and
    inf become null, arrays and NumPy scalars become lists and numbers, records and
    dataclasses their dicts; anything else raises, naming its path)."""
    from jaxmu.io import to_json as plain_json

    return json.dumps(plain_json(result, "result"), allow_nan=False, separators=(",", ":"))


def emit(result: dict[str, Any], as_json: bool) -> None:
    """With ``--json``, prints the result as the last stdout line."""
    sys.stdout.flush()
    if as_json:
        print(to_json(result), flush=True)


def finish(result: dict[str, Any], text: str, args: argparse.Namespace, stem: str) -> int:
    """Prints the rendered ``text``; with ``--out DIR`` also writes ``DIR/<stem>.md`` and
    ``DIR/<stem>.json``; with ``--json`` prints the result as the last stdout line."""
    print(text, flush=True)
    if getattr(args, "out", None) is not None:
        from jaxmu.io import write_json, write_text

        args.out.mkdir(parents=True, exist_ok=True)
        write_text(args.out / f"{stem}.md", text + "\n")
        write_json(args.out / f"{stem}.json", result)
    emit(result, args.json)
    return 0


def log(msg: str) -> None:
    """Progress to stderr (keeps stdout for the table and the JSON line)."""
    print(msg, file=sys.stderr, flush=True)
