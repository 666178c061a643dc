"""The persistent XLA compilation cache of the CLIs: where it goes (flag, environment
variable, cache dir), that it leaves jax's settings as they were, that a second CLI run
loads its programs instead of compiling them, and that its entries check themselves (a
corrupt entry is moved aside with one warning line, never loaded, and compiled anew)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments._cli import build_parser
from jaxmu._compile_cache import (
    ENV_VAR,
    VerifiedFileCache,
    compile_cache,
    frozen_gc,
    pack_entry,
    resolve_compile_cache,
    unpack_entry,
)
from jaxmu.io import CorruptCompileCacheWarning

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


# --- self-checking entries -------------------------------------------------------------

def _entry(cache: VerifiedFileCache, key: str) -> Path:
    return cache._path / f"{key}-cache"


def test_entry_format_roundtrip_and_header_golden():
    value = b"\x78\x9c some compressed executable"
    data = pack_entry(value)
    # Independent transcription of the format: magic, big-endian length, SHA-256, value.
    assert data == (b"jaxmu-xla-sha256\n" + len(value).to_bytes(8, "big")
                    + hashlib.sha256(value).digest() + value)
    assert unpack_entry(data) == (value, None)
    assert unpack_entry(pack_entry(b"")) == (b"", None)


@pytest.mark.parametrize("damage, reason", [
    (lambda d: d[:-1], "truncated: 28 of 29 bytes"),
    (lambda d: d[:30], "truncated inside its header (30 bytes)"),
    (lambda d: d[:5], "truncated inside its header (5 bytes)"),
    (lambda d: b"", "empty file"),
    (lambda d: d + b"x", "too long: 30 of 29 bytes"),
    (lambda d: d[:-3] + bytes([d[-3] ^ 0x10]) + d[-2:], "checksum mismatch"),
    (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "truncated: 29 of"),  # length field
    (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "checksum mismatch"),  # digest
    (lambda d: b"\x78\x9c" + d[2:], "no jaxmu header"),  # jax's own (zlib) entry
])
def test_damaged_entries_are_recognised(damage, reason):
    data = pack_entry(b"\x78\x9c some compressed executable"[:29])
    value, why = unpack_entry(damage(data))
    assert value is None and why.startswith(reason), why


def test_a_corrupt_entry_is_moved_aside_with_one_warning_and_never_returned(tmp_path):
    cache = VerifiedFileCache(tmp_path)
    cache.put("k1", b"payload-1")
    cache.put("k1", b"other")  # an existing entry is kept (as jax's own cache does)
    assert cache.get("k1") == b"payload-1" and cache.get("absent") is None
    f = _entry(cache, "k1")
    f.write_bytes(f.read_bytes()[:-2])  # an interrupted copy
    with pytest.warns(CorruptCompileCacheWarning) as rec:
        assert cache.get("k1") is None
    assert len(rec) == 1 and str(f) in str(rec[0].message)
    assert "truncated" in str(rec[0].message) and "\n" not in str(rec[0].message)
    aside = list(tmp_path.glob("k1-cache.corrupt-*"))
    assert len(aside) == 1 and not f.exists()
    cache.put("k1", b"payload-1")  # jax compiles anew and stores it again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get("k1") == b"payload-1"


def test_a_foreign_entry_is_removed_quietly(tmp_path):
    cache = VerifiedFileCache(tmp_path)
    f = _entry(cache, "old")
    f.write_bytes(b"\x78\x9c written by jax itself")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get("old") is None
    assert not f.exists() and not list(tmp_path.glob("*.corrupt-*"))


def test_writes_are_atomic_and_dead_writers_temporaries_removed(tmp_path, monkeypatch):
    import socket

    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".a-cache.{dead.pid}-{host}-0000.tmp").write_bytes(b"part")
    (tmp_path / f".b-cache.{os.getpid()}-{host}-0000.tmp").write_bytes(b"live")
    (tmp_path / f".c-cache.{dead.pid}-otherhost-0000.tmp").write_bytes(b"remote")
    cache = VerifiedFileCache(tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f".b-cache.{os.getpid()}-{host}-0000.tmp",
                    f".c-cache.{dead.pid}-otherhost-0000.tmp"]

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)  # fails after the temporary is written
    with pytest.raises(OSError):
        cache.put("k", b"value")
    assert sorted(p.name for p in tmp_path.iterdir()) == left  # no entry, no temporary


def test_jax_reads_through_the_verified_cache_and_recompiles_a_corrupt_entry(tmp_path):
    """A real executable: written with the header, a truncated copy never loaded (one
    warning), the program compiled again with the same result and stored afresh."""
    d = tmp_path / "xla"

    def f(x):
        return jnp.sin(x) * 2.5 + jnp.float32(0.125)

    x = jnp.arange(6.0)
    with compile_cache(d):
        first = np.asarray(jax.jit(f)(x))
    (entry,) = [p for p in d.glob("jit_f-*-cache")]
    assert entry.read_bytes().startswith(b"jaxmu-xla-sha256\n")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    jax.clear_caches()  # the next compile goes to the disk cache
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with compile_cache(d):
            again = np.asarray(jax.jit(f)(x))
    msgs = [str(w.message) for w in rec if issubclass(w.category, CorruptCompileCacheWarning)]
    assert len(msgs) == 1 and entry.name in msgs[0], [str(w.message) for w in rec]
    assert not [w for w in rec if "persistent compilation cache" in str(w.message)]
    np.testing.assert_array_equal(again, first)
    assert unpack_entry(entry.read_bytes())[1] is None  # rewritten intact
    assert len(list(d.glob("jit_f-*.corrupt-*"))) == 1


@pytest.mark.slow
def test_cli_with_corrupt_compile_cache_entries_warns_once_each_and_gives_the_same_results(
        tmp_path):
    """Two real corrupt entries (one truncated, one with a flipped bit) in the CLI's XLA
    cache: the rerun exits 0, prints one warning line per entry naming it, and its metrics
    are those of the first run. No model cache (``--cache-dir ''``), so the rerun compiles
    (or loads) every program of the first run."""
    xla = tmp_path / "xla"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env[ENV_VAR] = str(xla)
    cmd = [sys.executable, "-m", "experiments.digits", "--method", "ft", "--hp", "epochs=1",
           "--epochs", "2", "--no-mia", "--quiet", "--cache-dir", "", "--out"]

    def run(out):
        p = subprocess.run([*cmd, str(tmp_path / out)], cwd=ROOT, env=env,
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        rec = json.loads((tmp_path / out / "digits" / "ft_seed0.json").read_text())
        return p.stderr, {k: v for k, v in rec["metrics"].items()
                          if k not in ("rte", "run_seconds", "compile_seconds")}

    err, first = run("a")
    assert "warning" not in err.lower()
    entries = sorted(xla.glob("*-cache"), key=lambda p: p.stat().st_size)
    assert len(entries) >= 2
    small, big = entries[0], entries[-1]
    small.write_bytes(small.read_bytes()[:-7])
    data = bytearray(big.read_bytes())
    data[len(data) // 2] ^= 0x04
    big.write_bytes(bytes(data))
    err, again = run("b")
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert all(ln.startswith("warning: corrupt compiled-program cache entry") for ln in lines)
    assert any(str(small) in ln and "truncated" in ln for ln in lines), lines
    assert any(str(big) in ln and "checksum mismatch" in ln for ln in lines), lines
    assert again == first
    assert unpack_entry(small.read_bytes())[1] is None and unpack_entry(big.read_bytes())[1] is None
