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

Entries check themselves. jax writes an entry with a plain ``write_bytes`` (a killed or
failed write leaves a truncated file that every later run trips over) and trusts what it
reads. Inside :func:`compile_cache`, jaxmu replaces jax's file cache by
:class:`VerifiedFileCache`: each entry ``<key>-cache`` starts with a header holding the
length and SHA-256 of jax's bytes, and is written to a temporary file that is renamed into
place (a reader sees the whole entry or none). Every read checks the header; an entry that
fails (a flipped bit, a truncated or emptied file) is never handed to jax: it is renamed to
``<key>-cache.corrupt-<UTC time>`` with one :class:`jaxmu.io.CorruptCompileCacheWarning`
line naming it, and the program is compiled again and stored afresh. Entries without the
header (written by jax itself or by jaxmu before this format) are removed quietly and
recompiled once. The directory is therefore not meant to be shared with jax used without
jaxmu (jax cannot read the header; point ``JAX_COMPILATION_CACHE_DIR`` elsewhere). jax's
``jax_compilation_cache_max_size`` (eviction) does not apply to it: it grows until deleted.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import secrets
import socket
import time
import warnings
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
    entry size (so small programs are kept too; a cache hit costs a file read), with
    self-checking entries (:class:`VerifiedFileCache`), and on exit restores the previous
    settings. ``path=None`` does nothing. Programs compiled before
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
    _install(path)
    try:
        yield path
    finally:
        for k, v in before.items():
            jax.config.update(k, v)
        cc.reset_cache()


_MAGIC = b"jaxmu-xla-sha256\n"
_HEADER = len(_MAGIC) + 8 + 32  # magic, payload length (big-endian), SHA-256 of the payload
_SUFFIX = "-cache"  # jax's name of an entry: <key>-cache
_FOREIGN = "no jaxmu header"


def pack_entry(value: bytes) -> bytes:
    """An entry's bytes as stored: the header (magic, length, SHA-256) then ``value``."""
    value = bytes(value)
    return _MAGIC + len(value).to_bytes(8, "big") + hashlib.sha256(value).digest() + value


def unpack_entry(data: bytes) -> tuple[bytes | None, str | None]:
    """Checks a stored entry against its header.

    Returns:
        ``(value, None)`` for an intact entry; ``(None, reason)`` otherwise, where the
        reason is ``"no jaxmu header"`` for a file that does not start like one (written by
        jax itself or an older jaxmu), else what is wrong (empty, truncated, checksum).
    """
    if not data:
        return None, "empty file"
    head = data[:len(_MAGIC)]
    if head != _MAGIC[:len(head)]:
        return None, _FOREIGN
    if len(data) < _HEADER:
        return None, f"truncated inside its header ({len(data)} bytes)"
    n = int.from_bytes(data[len(_MAGIC):len(_MAGIC) + 8], "big")
    value = data[_HEADER:]
    if len(value) != n:
        return None, f"{'truncated' if len(value) < n else 'too long'}: {len(value)} of {n} bytes"
    if hashlib.sha256(value).digest() != data[len(_MAGIC) + 8:_HEADER]:
        return None, "checksum mismatch"
    return value, None


class VerifiedFileCache:
    """jax's persistent compilation cache as self-checking, atomically written files.

    Stands in for jax's file cache (``jax._src.lru_cache.LRUCache``) inside
    :func:`compile_cache`; jax calls :meth:`get` and :meth:`put` with its cache keys and
    its (compressed) executables. Entries keep jax's names (``<key>-cache``); their content
    is :func:`pack_entry` of jax's bytes.

    Args:
        path: the cache directory (created by the first :meth:`put`). Temporary files of
            writers that died on this host (``.<key>-cache.<pid>-<host>-<token>.tmp``) are
            removed.
    """

    def __init__(self, path: str | os.PathLike):
        from jaxmu.io import pid_alive

        self._path = Path(path)  # created by the first put: a run that fails before
        self._host = socket.gethostname()  # compiling anything leaves no directory
        for tmp in self._path.glob(".*.tmp"):
            parts = tmp.name[:-len(".tmp")].rsplit(".", 1)[-1].split("-", 2)  # pid, host, token
            if (len(parts) == 3 and parts[0].isdigit() and parts[1] == self._host
                    and not pid_alive(int(parts[0]))):
                tmp.unlink(missing_ok=True)

    def _file(self, key: str) -> Path:
        if not key or "/" in key:
            raise ValueError(f"invalid cache key {key!r}")
        return self._path / f"{key}{_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        """jax's bytes for ``key``, or ``None`` when absent or bad (a bad entry is moved
        aside with one warning line, a foreign one removed; jax then compiles anew)."""
        f = self._file(key)
        try:
            data = f.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            self._set_aside(f, f"unreadable: {e.strerror or e}")
            return None
        value, reason = unpack_entry(data)
        if reason == _FOREIGN:
            f.unlink(missing_ok=True)
        elif reason is not None:
            self._set_aside(f, reason)
        return value

    def put(self, key: str, value: bytes) -> None:
        """Stores ``value`` under ``key`` unless an entry exists: written to a temporary
        file beside it and renamed into place, so no reader ever sees a part of it."""
        f = self._file(key)
        if f.exists():
            return
        tmp = f.with_name(f".{f.name}.{os.getpid()}-{self._host}-{secrets.token_hex(4)}.tmp")
        try:
            self._path.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(pack_entry(value))
            os.replace(tmp, f)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _set_aside(self, f: Path, reason: str) -> None:
        from jaxmu.io import CorruptCompileCacheWarning

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        dest = f.with_name(f"{f.name}.corrupt-{stamp}-{secrets.token_hex(2)}")
        try:
            os.rename(f, dest)
        except FileNotFoundError:  # another process moved it already
            return
        except OSError as e:
            warnings.warn(f"corrupt compiled-program cache entry {f} ({reason}) cannot be "
                          f"moved aside ({e.strerror}); compiling the program anew (delete "
                          "it)", CorruptCompileCacheWarning, stacklevel=3)
            return
        warnings.warn(f"corrupt compiled-program cache entry {f} ({reason}) moved aside "
                      f"(renamed to end in {dest.name[len(f.name):]}); compiling the program "
                      "anew", CorruptCompileCacheWarning, stacklevel=3)


def _install(path: Path) -> bool:
    """Makes jax use a :class:`VerifiedFileCache` at ``path`` (its cache settings are
    already set, its cache reset). Returns False on a jax whose internals differ (its own
    cache then opens as usual, unverified)."""
    try:
        from jax._src import compilation_cache as _cc

        with _cc._cache_initialized_mutex:
            _cc._cache = VerifiedFileCache(path)
            _cc._cache_initialized = True
    except (ImportError, AttributeError):
        return False
    return True


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
