"""Self-checking checkpoints: a pytree of arrays plus a JSON record, with checksums.

A checkpoint directory holds numbered steps (``<dir>/<step>/``). Each step holds the pytree
(params, model state, optimizer state, ...) as ``arrays.bin`` (every leaf's raw bytes) with
``index.json`` (each leaf's key path, dtype, shape and byte range), the JSON record as
``meta/metadata`` (config, seed, versions, timings; where orbax, used before, kept it), and
``jaxmu-sha256.json``: the size and SHA-256 of every file of the step, recorded when it was
written.

Writes are atomic and synchronous: a step is written into a hidden temporary directory
beside it, flushed to disk, its checksums recorded, and only then renamed to ``<step>``; a
killed or failed write (disk full) leaves no step behind and earlier steps untouched, and a
later write or read removes the leftovers of dead writers. (Earlier versions wrote orbax
checkpoints; after a failed or interrupted orbax save, its background threads kept the
process from exiting for 5-12 minutes, see docs/reliability.md.)

Reads verify: a step whose files differ from its checksums (a flipped byte, a truncated or
missing file) or that has no checksums (an interrupted write, an older jaxmu) is never used.
It is moved aside to ``<step>.corrupt-<UTC time>`` with one
:class:`~jaxmu.io.CorruptCheckpointWarning` naming it, and the previous intact step (or
none) counts as the latest, so callers rebuild it; under ``rebuild_corrupt(False)`` a
:class:`~jaxmu.io.CorruptCheckpointError` is raised instead and nothing is moved.

A directory is written by one process at a time (the cache takes a lock, see
:func:`jaxmu.io.entry_lock`). Arrays are gathered to the host to be written (multi-host
``jax.distributed`` arrays that no host holds whole are not supported).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import secrets
import shutil
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmu.io._errors import (
    CorruptCheckpointError,
    CorruptCheckpointWarning,
    as_write_error,
)
from jaxmu.io._interrupt import deferred_interrupt
from jaxmu.io._json import plain

MANIFEST = "jaxmu-sha256.json"
"""Name of the checksum file inside every step directory."""

_ARRAYS, _INDEX, _META = "arrays.bin", "index.json", "meta/metadata"
_FORMAT = 1
_TMP = ".tmp-"
_REBUILD: contextvars.ContextVar[bool] = contextvars.ContextVar("jaxmu_rebuild", default=True)
_VERIFIED: dict[str, tuple] = {}  # step path -> stat signature of its files when verified
_WRITING: set[str] = set()  # temporary directories of saves in progress in this process


@contextlib.contextmanager
def rebuild_corrupt(enabled: bool = True) -> Iterator[None]:
    """Sets what reading a corrupt checkpoint does inside the ``with`` block.

    Args:
        enabled: ``True`` (the default outside any block): move it aside with a one-line
            :class:`~jaxmu.io.CorruptCheckpointWarning` and treat it as absent, so it is
            rebuilt. ``False``: raise :class:`~jaxmu.io.CorruptCheckpointError` and move
            nothing (the CLI's ``--no-rebuild``).
    """
    token = _REBUILD.set(bool(enabled))
    try:
        yield
    finally:
        _REBUILD.reset(token)


# ---------------------------------------------------------------------------- checksums

def _files(step_dir: Path) -> list[Path]:
    """Every file of a step but its checksum file."""
    return sorted(p for p in step_dir.rglob("*")
                  if p.is_file() and not (p.parent == step_dir and p.name == MANIFEST))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _signature(step_dir: Path) -> tuple:
    out = []
    for p in sorted(step_dir.rglob("*")):
        if p.is_file():
            s = p.stat()
            out.append((p.relative_to(step_dir).as_posix(), s.st_ino, s.st_size, s.st_mtime_ns,
                        s.st_ctime_ns))
    return tuple(out)


def _write_manifest(step_dir: Path, step: int) -> None:
    files = {p.relative_to(step_dir).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
             for p in _files(step_dir)}
    with open(step_dir / MANIFEST, "w") as f:
        json.dump({"format": _FORMAT, "step": int(step), "files": files}, f, indent=1,
                  sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def verify_step(step_dir: str | os.PathLike) -> str | None:
    """Checks a step directory against its recorded checksums.

    Args:
        step_dir: ``<checkpoint dir>/<step>``.

    Returns:
        ``None`` if every file is present with its recorded size and SHA-256 and no file
        was added; otherwise the reason, e.g. ``"checksum mismatch in state/d/1f..."``.
        A step verified earlier in this process is not read again while its files' stat
        records (inode, size, mtime, ctime) are unchanged.
    """
    step_dir = Path(step_dir)
    key = str(step_dir.absolute())
    try:
        sig = _signature(step_dir)
        if _VERIFIED.get(key) == sig:
            return None
        try:
            manifest = json.loads((step_dir / MANIFEST).read_text())
            recorded = manifest["files"]
        except FileNotFoundError:
            return "no checksums: an interrupted write, or written by an older jaxmu"
        except (ValueError, KeyError, TypeError):
            return f"unreadable {MANIFEST}"
        if step_dir.name.isdigit() and manifest.get("step") != int(step_dir.name):
            return f"its checksums belong to step {manifest.get('step')}"
        present = {p.relative_to(step_dir).as_posix(): p for p in _files(step_dir)}
        missing, extra = sorted(set(recorded) - set(present)), sorted(set(present) - set(recorded))
        if missing:
            return f"missing file {missing[0]}"
        if extra:
            return f"unexpected file {extra[0]}"
        for name, rec in sorted(recorded.items()):
            p = present[name]
            if p.stat().st_size != rec["size"]:
                return f"size of {name} differs from its record (truncated?)"
            if _sha256(p) != rec["sha256"]:
                return f"checksum mismatch in {name}"
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    _VERIFIED[key] = sig
    return None


def _set_aside(step_dir: Path, reason: str) -> None:
    """Moves a bad step aside (or raises under ``rebuild_corrupt(False)``)."""
    if not _REBUILD.get():
        raise CorruptCheckpointError(
            f"corrupt checkpoint {step_dir} ({reason}); rebuilding is off (--no-rebuild): "
            "delete it, or rerun without --no-rebuild to rebuild it")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = step_dir.with_name(f"{step_dir.name}.corrupt-{stamp}")
    n = 1
    while dest.exists():
        dest, n = step_dir.with_name(f"{step_dir.name}.corrupt-{stamp}-{n}"), n + 1
    try:
        os.rename(step_dir, dest)
    except FileNotFoundError:  # another process moved it already
        return
    except OSError as e:
        raise CorruptCheckpointError(
            f"corrupt checkpoint {step_dir} ({reason}) cannot be moved aside "
            f"({e.strerror}); delete it and rerun") from e
    _VERIFIED.pop(str(step_dir.absolute()), None)
    warnings.warn(f"corrupt checkpoint {step_dir} ({reason}) moved aside to {dest.name}; "
                  "rebuilding", CorruptCheckpointWarning, stacklevel=2)


def set_aside(step_dir: str | os.PathLike, reason: str) -> None:
    """Moves a step that must not be used (e.g. made by another run) aside, as a corrupt
    one: ``<step>.corrupt-<UTC time>`` with one warning line naming it and ``reason``.

    Raises:
        CorruptCheckpointError: under ``rebuild_corrupt(False)`` (nothing is moved).
    """
    _set_aside(Path(step_dir).absolute(), reason)


# -------------------------------------------------------------------------------- steps

def _steps(directory: Path) -> list[int]:
    try:
        return sorted((int(p.name) for p in directory.iterdir()
                       if p.name.isdigit() and str(int(p.name)) == p.name and p.is_dir()),
                      reverse=True)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _latest_intact(directory: Path) -> int | None:
    # A writer killed after installing its step, or while pruning an old one, leaves a
    # temporary that no later save of a cached entry would remove: readers remove them too.
    _remove_dead_temps(directory)
    for step in _steps(directory):
        reason = verify_step(directory / str(step))
        if reason is None:
            return step
        _set_aside(directory / str(step), reason)
    return None


def _pick(directory: Path, step: int | None) -> int:
    if step is None:
        step = _latest_intact(directory)
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        return step
    step_dir = directory / str(int(step))
    if not step_dir.is_dir():
        raise FileNotFoundError(f"no checkpoint step {step} in {directory}")
    reason = verify_step(step_dir)
    if reason is not None:
        raise CorruptCheckpointError(f"corrupt checkpoint {step_dir} ({reason}); not used")
    return int(step)


def latest_step(directory: str | os.PathLike) -> int | None:
    """The last intact step in ``directory``, or ``None``.

    Steps that fail their checksums are moved aside on the way (see the module docstring),
    so the result is always safe to restore.

    Raises:
        CorruptCheckpointError: a corrupt step under ``rebuild_corrupt(False)``.
    """
    return _latest_intact(Path(directory).absolute())


# --------------------------------------------------------------------------- save / read

def _fsynced_write(path: Path, write) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _write_step(step_dir: Path, tree: Any, meta: dict | None) -> None:
    """Writes the files of one step (not its checksums) into the new directory ``step_dir``."""
    index, leaves = [], jax.tree_util.tree_flatten_with_path(tree)[0]

    def arrays(f):
        offset = 0
        for path, leaf in leaves:
            a = np.asarray(leaf)
            if a.dtype.kind not in "biufcV":  # V: bfloat16 and other ml_dtypes
                raise TypeError(f"cannot checkpoint leaf {jax.tree_util.keystr(path)} of type "
                                f"{type(leaf).__name__}")
            flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
            f.write(flat.data)
            index.append({"path": jax.tree_util.keystr(path), "dtype": str(a.dtype),
                          "shape": list(a.shape), "offset": offset, "nbytes": int(a.nbytes)})
            offset += int(a.nbytes)

    meta_text = json.dumps(plain(meta or {}, "meta"), sort_keys=True).encode()
    (step_dir / _META).parent.mkdir()
    _fsynced_write(step_dir / _ARRAYS, arrays)
    _fsynced_write(step_dir / _INDEX, lambda f: f.write(json.dumps(
        {"format": _FORMAT, "leaves": index}, indent=1).encode()))
    _fsynced_write(step_dir / _META, lambda f: f.write(meta_text))


def _read_tree(step_dir: Path, like: Any) -> Any:
    """The pytree of a (verified) step, in the structure, shapes and dtypes of ``like``."""
    leaves = json.loads((step_dir / _INDEX).read_text())["leaves"]
    saved = {e["path"]: e for e in leaves}
    flat, treedef = jax.tree_util.tree_flatten_with_path(like)
    wanted = [jax.tree_util.keystr(p) for p, _ in flat]
    if sorted(wanted) != sorted(saved):
        diff = sorted(set(wanted) ^ set(saved))
        raise ValueError(f"checkpoint {step_dir} holds another structure than requested "
                         f"({len(diff)} leaves differ, e.g. {diff[0]})")
    size = (step_dir / _ARRAYS).stat().st_size
    data = np.memmap(step_dir / _ARRAYS, np.uint8, "r") if size else np.zeros(0, np.uint8)
    out = []
    for key, (_, ref) in zip(wanted, flat, strict=True):
        e = saved[key]
        dtype, shape = jnp.dtype(e["dtype"]), tuple(e["shape"])
        if dtype != jnp.dtype(ref.dtype) or shape != tuple(ref.shape):
            raise ValueError(f"checkpoint {step_dir}: leaf {key} is {dtype}{list(shape)}, "
                             f"requested {jnp.dtype(ref.dtype)}{list(ref.shape)}")
        a = np.array(data[e["offset"]: e["offset"] + e["nbytes"]]).view(dtype).reshape(shape)
        sharding = ref.sharding if isinstance(ref, jax.Array) else None
        out.append(jax.device_put(a, sharding) if sharding is not None else jnp.asarray(a))
    del data
    return jax.tree_util.tree_unflatten(treedef, out)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts as
    alive): used to tell a killed writer's leftover temporary files from a live one's."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_temps(directory: Path) -> None:
    """Removes temporary step directories of dead writers on this host, and this process's
    own that no save is using (left when removing a failed one failed too). Called by every
    save and every read of the latest step; a directory that cannot be listed is left."""
    host, me = socket.gethostname(), os.getpid()
    try:
        temps = list(directory.glob(f"{_TMP}*"))
    except OSError:
        return
    for p in temps:
        parts = p.name[len(_TMP):].split("-", 3)  # step, token, pid, host
        if len(parts) != 4 or parts[3] != host or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        if (pid == me and str(p) not in _WRITING) or (pid != me and not pid_alive(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _install(tmp_step: Path, final: Path) -> None:
    """Renames a finished step into place; an existing step of that number is first moved
    into the temporary directory (removed with it)."""
    if final.exists():
        os.rename(final, tmp_step.parent / "replaced")
        _VERIFIED.pop(str(final), None)
    os.rename(tmp_step, final)


def _fsync_dir(directory: Path) -> None:
    """Makes a rename inside ``directory`` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    directory: str | os.PathLike,
    step: int,
    tree: Any,
    meta: dict | None = None,
    *,
    max_to_keep: int | None = 2,
) -> None:
    """Saves ``tree`` (any pytree of arrays) and ``meta`` (JSON) as step ``step``, atomically
    and with checksums; an existing step of that number is replaced.

    A Ctrl-C (SIGINT) during the save is held back until the step is installed and the
    temporaries removed, then raised as :class:`KeyboardInterrupt` (a second Ctrl-C
    interrupts at once; the next save removes what that leaves).

    Args:
        directory: the checkpoint directory (created if missing).
        step: the step number (>= 0).
        tree: a pytree of arrays.
        meta: a JSON-serialisable record.
        max_to_keep: keep this many newest steps and delete older ones (``None``: keep all).

    Raises:
        WriteFailedError: the disk is full (or read-only, or not writable): one line naming
            the directory; no part of the step is left behind and earlier steps are kept.
    """
    directory = Path(directory).absolute()
    step = int(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    with deferred_interrupt():  # a Ctrl-C lands after the save and its clean-up
        _save(directory, step, tree, meta, max_to_keep)


def _save(directory: Path, step: int, tree: Any, meta: dict | None,
          max_to_keep: int | None) -> None:
    tmp = directory / f"{_TMP}{step}-{secrets.token_hex(4)}-{os.getpid()}-{socket.gethostname()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _remove_dead_temps(directory)
        (tmp / "step").mkdir(parents=True)
        _WRITING.add(str(tmp))
        _write_step(tmp / "step", tree, meta)
        _write_manifest(tmp / "step", step)
        _install(tmp / "step", directory / str(step))
        _fsync_dir(directory)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        err = as_write_error(e, directory, f"checkpoint step {step} in")
        if err is e:
            raise
        raise err from e
    finally:
        _WRITING.discard(str(tmp))
    shutil.rmtree(tmp, ignore_errors=True)
    if max_to_keep is not None:
        for old in _steps(directory)[max(int(max_to_keep), 1):]:
            if old != step:
                _remove_step(directory, old)


def _remove_step(directory: Path, step: int) -> None:
    """Deletes a step without ever leaving a partial one: it is first renamed to a
    temporary name (atomic), then removed; a writer killed in between leaves a temporary
    that the next save removes."""
    doomed = directory / (f"{_TMP}{step}-{secrets.token_hex(4)}-{os.getpid()}-"
                          f"{socket.gethostname()}")
    try:
        os.rename(directory / str(step), doomed)
    except OSError:
        return
    _VERIFIED.pop(str(directory / str(step)), None)
    shutil.rmtree(doomed, ignore_errors=True)


def restore_checkpoint(
    directory: str | os.PathLike, like: Any, step: int | None = None
) -> tuple[Any, dict]:
    """Restores ``(tree, meta)`` of a verified step; ``like`` gives the target structure,
    shapes and dtypes.

    Args:
        directory: the checkpoint directory.
        like: a pytree of arrays or ``jax.ShapeDtypeStruct`` of the saved structure.
        step: the step (default: :func:`latest_step`, which moves corrupt steps aside).

    Raises:
        FileNotFoundError: no (intact) checkpoint in ``directory``.
        CorruptCheckpointError: the given ``step`` fails its checksums, or a corrupt step
            under ``rebuild_corrupt(False)``.
    """
    directory = Path(directory).absolute()
    step = _pick(directory, step)
    tree = _read_tree(directory / str(step), like)
    return tree, json.loads((directory / str(step) / _META).read_text())


def read_meta(directory: str | os.PathLike, step: int | None = None) -> dict:
    """The JSON record of a verified checkpoint step (default: the last) without its arrays.

    Raises:
        FileNotFoundError: no (intact) checkpoint in ``directory``.
        CorruptCheckpointError: as for :func:`restore_checkpoint`.
    """
    directory = Path(directory).absolute()
    step = _pick(directory, step)
    return json.loads((directory / str(step) / _META).read_text())


def run_identity(key: Any, masks: Any) -> dict[str, Any]:
    """What makes a training run itself, for checkpoint metadata: the key's raw data (and
    the seed when ``key`` is an int) and a SHA-256 of the membership mask(s)."""
    import numpy as np

    from jaxmu.types import as_key

    k = as_key(key)
    ident: dict[str, Any] = {
        "key": np.asarray(jax.random.key_data(k)).astype(np.uint32).ravel().tolist(),
        "masks_sha256": hashlib.sha256(np.ascontiguousarray(np.asarray(masks, bool))
                                       .tobytes()).hexdigest()[:16]}
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        ident["seed"] = int(key)
    return ident


def check_resume(saved: dict, meta: dict, directory: Any,
                 fields: tuple[str, ...] = ("config", "model", "n", "ids", "key",
                                            "masks_sha256")) -> None:
    """Refuses to resume from a checkpoint written by another run.

    Compares the ``fields`` present in ``meta`` with the saved metadata (a field missing
    from an old checkpoint is not checked).

    Raises:
        ValueError: one line naming the fields that differ.
    """
    diff = [f for f in fields if f in meta and f in saved and saved[f] != meta[f]]
    if diff:
        raise ValueError(f"checkpoint in {directory} was made by another run (differs in "
                         f"{', '.join(diff)}); use another checkpoint directory")
