"""The persistent XLA compilation cache of the CLIs: where it goes (flag, environment
variable, cache dir), that it leaves jax's settings as they were, and that a second CLI run
loads its programs instead of compiling them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from experiments._cli import build_parser
from jaxmu._compile_cache import ENV_VAR, compile_cache, frozen_gc, resolve_compile_cache

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("env, disabled, cache_dir, default_on, expect", [
    ({}, False, ".jaxmu_cache", True, ".jaxmu_cache/xla"),     # CLI default: on
    ({}, True, ".jaxmu_cache", True, None),                    # --no-compile-cache
    ({ENV_VAR: "0"}, False, ".jaxmu_cache", True, None),
    ({ENV_VAR: " Off "}, False, "c", True, None),
    ({ENV_VAR: "1"}, False, "c", True, "c/xla"),
    ({ENV_VAR: ""}, False, "c", True, "c/xla"),                # empty = unset
    ({ENV_VAR: "/tmp/x"}, False, "c", True, "/tmp/x"),         # a directory of its own
    ({ENV_VAR: "/tmp/x"}, True, "c", True, None),              # the flag wins
    ({}, False, "", True, None),                               # --cache-dir '' : no caches
    ({ENV_VAR: "/tmp/x"}, False, "", True, "/tmp/x"),
    ({}, False, "c", False, None),                             # benchmarks: off ...
    ({ENV_VAR: "yes"}, False, "c", False, "c/xla"),            # ... unless asked for
    ({ENV_VAR: "/tmp/x"}, False, None, False, "/tmp/x"),
])
def test_resolve_compile_cache(env, disabled, cache_dir, default_on, expect):
    got = resolve_compile_cache(cache_dir, disabled=disabled, default_on=default_on,
                                environ=env)
    assert got == (None if expect is None else Path(expect))


def test_resolve_reads_the_environment_by_default(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "false")
    assert resolve_compile_cache(".jaxmu_cache") is None
    monkeypatch.delenv(ENV_VAR)
    assert resolve_compile_cache(".jaxmu_cache") == Path(".jaxmu_cache/xla")


def test_cli_flag():
    p = build_parser("digits")
    assert p.parse_args([]).no_compile_cache is False
    assert p.parse_args(["--no-compile-cache"]).no_compile_cache is True


def test_compile_cache_writes_entries_and_restores_settings(tmp_path):
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    before = {k: getattr(jax.config, k) for k in names}
    with compile_cache(tmp_path / "xla") as d:
        assert d == tmp_path / "xla" and jax.config.jax_compilation_cache_dir == str(d)
        jax.jit(lambda x: jnp.cos(x) * 3.0 + 1.0).lower(jnp.ones(7)).compile()
    assert any(f.name.startswith("jit__lambda") for f in d.iterdir())  # CPU executables too
    assert {k: getattr(jax.config, k) for k in names} == before
    with compile_cache(None) as d:
        assert d is None and jax.config.jax_compilation_cache_dir == before[names[0]]


def test_frozen_gc_freezes_for_the_block_only():
    import gc

    assert gc.get_freeze_count() == 0
    with frozen_gc():
        n = gc.get_freeze_count()
        assert n > 0
        with frozen_gc():  # nested: left to the outer one
            assert gc.get_freeze_count() == n
        assert gc.get_freeze_count() == n
    assert gc.get_freeze_count() == 0


def _cli_compile_seconds(tmp_path: Path, out: str) -> float:
    cmd = [sys.executable, "-m", "experiments.digits", "--method", "ft", "--hp", "epochs=1",
           "--epochs", "1", "--no-mia", "--quiet", "--cache-dir", str(tmp_path / "cache"),
           "--out", str(tmp_path / out)]
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "XLA_FLAGS")}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True)
    rec = json.loads((tmp_path / out / "digits" / "ft_seed0.json").read_text())
    assert rec["config"]["compile_cache"] == str(tmp_path / "cache" / "xla")
    return rec["timings"]["compile_s"]


@pytest.mark.slow
def test_second_cli_run_loads_instead_of_compiling(tmp_path):
    """The same command twice: the method's recorded compile time (trace, lower and
    compile-or-load) falls to a fraction of the first run's."""
    first = _cli_compile_seconds(tmp_path, "a")
    entries = list((tmp_path / "cache" / "xla").iterdir())
    assert any(f.name.startswith("jit_run-") for f in entries)  # the method's program
    second = _cli_compile_seconds(tmp_path, "b")
    assert second < first / 2, (first, second)  # ~4.7x measured idle, 2.8x at load 6
