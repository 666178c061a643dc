"""Persistent XLA compilation cache for the command-line tools.

The experiment CLIs (``python -m experiments.<dataset>``) keep every program XLA compiles in
``<cache dir>/xla`` (``.jaxmu_cache/xla`` by default), so that running the same command again
loads the executables from disk instead of compiling them. The benchmarks opt in only through
the environment variable, because they measure compile time. Importing jaxmu changes no jax
setting: the cache is switched on by :func:`compile_cache`, a context manager that restores
the previous settings on exit. :func:`frozen_gc` keeps the garbage collector from re-scanning
the imported modules while jax traces (the CLIs use both).

``JAXMU_COMPILE_CACHE`` (environment variable): ``0`` (or ``false``/``no``/``off``) turns
the cache off, ``1`` (or ``true``/``yes``/``on``) turns it on at the default directory, any
other value is the cache directory itself. The CLI flag ``--no-compile-cache`` overrides it.

The cache is trusted code: do not point it at a directory others may write to (see jax's
``set_cache_dir``). Its keys hold the program, the jax/jaxlib version, the backend and the
XLA flags, so a stale entry is never loaded for a different setting; the directory may be
deleted at any time.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

ENV_VAR = "JAXMU_COMPILE_CACHE"
SUBDIR = "xla"
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def resolve_compile_cache(cache_dir: str | os.PathLike | None, *, disabled: bool = False,
                          default_on: bool = True,
                          environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the persistent compilation cache goes, or None when it is off.

    Precedence: ``disabled`` (the ``--no-compile-cache`` flag) turns it off; then
    ``JAXMU_COMPILE_CACHE`` (off values, on values, or a directory); then ``default_on``.
    When on without a directory of its own, the cache is ``<cache_dir>/xla``, and a
    ``cache_dir`` of None or ``""`` (caching disabled) turns it off.

    Args:
        cache_dir: the tool's cache directory (the CLI's ``--cache-dir``).
        disabled: True when the user asked for no compilation cache.
        default_on: whether the cache is on when the environment variable is unset or
            empty (True for the CLIs, False for the benchmarks).
        environ: environment to read (default ``os.environ``).

    Returns:
        The cache directory, or None.
    """
    if disabled:
        return None
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if value.lower() in _OFF:
        return None
    if value and value.lower() not in _ON:
        return Path(value).expanduser()
    if not (value or default_on) or not cache_dir:
        return None
    return Path(cache_dir) / SUBDIR


_SETTINGS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")


@contextlib.contextmanager
def compile_cache(path: str | os.PathLike | None) -> Iterator[Path | None]:
    """Keeps every executable XLA compiles inside the block in the directory ``path``.

    Sets jax's persistent cache to ``path`` with no minimum compile time and no minimum
    entry size (so small programs are kept too; a cache hit costs a file read), and on exit
    restores the previous settings. ``path=None`` does nothing. Programs compiled before
    the block and still in jax's in-memory caches are not written.

    Args:
        path: cache directory (created on first write), or None.

    Yields:
        ``path`` as a :class:`~pathlib.Path` (or None).
    """
    if path is None:
        yield None
        return
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    path = Path(path)
    before = {k: getattr(jax.config, k) for k in _SETTINGS}
    cc.reset_cache()  # jax opens its cache once per process: drop one opened before
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # -1: no minimum
    try:
        yield path
    finally:
        for k, v in before.items():
            jax.config.update(k, v)
        cc.reset_cache()


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Leaves the objects alive on entry out of the garbage collector's passes until exit.

    After jax and jaxmu are imported a process holds about 250,000 objects, and a full
    collection, which the allocations of tracing and lowering trigger now and then, scans
    them all (about 0.3 s on a 2-core CPU). ``gc.freeze()`` moves them to the permanent
    generation for the block (they are mostly modules and functions, alive anyway);
    ``gc.unfreeze()`` on exit returns them to the collector. Reference counting frees
    objects as usual meanwhile. Does nothing if objects are frozen already (by the caller).
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
