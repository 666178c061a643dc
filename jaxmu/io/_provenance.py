"""Provenance recorded in every result and checkpoint: versions, device, time."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
from pathlib import Path
from typing import Any

from jaxmu.io._json import to_json

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "scikit-learn", "jaxmu")


def versions() -> dict[str, str]:
    """Installed versions of jaxmu and the libraries its numbers depend on."""
    out = {"python": platform.python_version()}
    for p in _PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def provenance() -> dict[str, Any]:
    """Versions, backend/device description, host and UTC timestamp."""
    import jax

    devs = jax.devices()
    return {
        "versions": versions(),
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in devs],
        "device_count": len(devs),
        "host": platform.node(),
        "platform": platform.platform(),
        "time_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _remove_dead_temps(path: Path) -> None:
    """Removes temporaries of ``path`` left by writers on this host that died mid-write."""
    import glob
    import socket

    from jaxmu.io._checkpoint import pid_alive

    host = socket.gethostname()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid, _, rest = tmp.name[len(path.name) + 2:-len(".tmp")].partition("-")
        if pid.isdigit() and rest.rpartition("-")[0] == host and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _write_atomically(path: str | os.PathLike, write, what: str) -> Path:
    """Calls ``write(file)`` on a temporary file beside ``path`` (named
    ``.<name>.<pid>-<host>-<token>.tmp``), flushes it to disk and renames it over ``path``;
    on any error removes it and raises (a disk fault as :class:`WriteFailedError`)."""
    import secrets
    import socket

    from jaxmu.io._errors import as_write_error

    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_temps(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{socket.gethostname()}-"
                             f"{secrets.token_hex(4)}.tmp")
        with open(tmp, "x", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        err = as_write_error(e, path, what)
        if err is e:
            raise
        raise err from e
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes JSON atomically: to a temporary file beside ``path``, flushed to disk, then
    renamed over ``path``, so readers see the old file or the new one, never a part.
    Temporaries left by writers of ``path`` that were killed are removed.

    Raises:
        TypeError: ``obj`` holds something not JSON-serialisable (nothing is written;
            :class:`jaxmu.io.JSONValueError` naming it by its path).
        WriteFailedError: the disk is full (or read-only, ...): one line naming ``path``;
            the previous file, if any, is kept.
    """
    data = to_json(obj, "result")  # the one codec: NaN and +-inf are written as null

    def write(f):
        json.dump(data, f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")

    return _write_atomically(path, write, "result file")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes a text file (UTF-8) atomically, like :func:`write_json`.

    Raises:
        TypeError: ``text`` is not a string (nothing is written).
        WriteFailedError: as for :func:`write_json`.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _write_atomically(path, lambda f: f.write(text), "result file")
