"""Provenance recorded in every result and checkpoint: versions, device, time."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "numpy",
             "scikit-learn", "jaxmu")


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


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes JSON atomically: to a temporary file beside ``path``, flushed to disk, then
    renamed over ``path``, so readers see the old file or the new one, never a part.

    Raises:
        TypeError: ``obj`` holds something not JSON-serialisable (nothing is written).
        WriteFailedError: the disk is full (or read-only, ...): one line naming ``path``;
            the previous file, if any, is kept.
    """
    from jaxmu.io._errors import as_write_error

    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        err = as_write_error(e, path, "result file")
        if err is e:
            raise
        raise err from e
    return path
