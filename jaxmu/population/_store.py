"""The population store: logits (and other arrays) of a population, written once, reused.

An entry holds named arrays (e.g. the ``[R, N, C]`` logits of R unlearning runs on N pool
examples, their membership masks) together with the *identity* of everything that produced
them: dataset content, splits, model, training recipe, method and hyperparameters, seeds,
design and library version. The key is a SHA-256 of that identity, and the identity is also
stored in the entry and compared on every read, so an entry is only ever reused for exactly
the request that made it.

Entries are checkpoints of :mod:`jaxmu.io` (arrays with SHA-256 checksums, written to a
temporary directory and renamed): a killed writer leaves no entry, a corrupt entry (a disk
error, an interrupted copy) or one whose stored identity differs from the request is moved
aside with one warning line and rebuilt, and two processes asking for the same entry take a
lock so one builds it and the other loads it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxmu.io import entry_lock, latest_step, restore_checkpoint, save_checkpoint, set_aside
from jaxmu.io import versions as _versions

_SUBDIR = "populations"


def array_digest(*arrays: Any) -> str:
    """SHA-256 (hex, 16 characters) of the contents, dtypes and shapes of ``arrays``."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1).data if a.size else b"")
    return h.hexdigest()[:16]


def pool_digest(pool: Any) -> str:
    """Content hash of a :class:`jaxmu.types.Pool`: images, labels and normalisation."""
    return array_digest(pool.x, pool.y, np.asarray(pool.mean, np.float64),
                        np.asarray(pool.std, np.float64))


def method_identity(method: Any) -> dict[str, Any]:
    """What identifies a method's runs: registered name, label and resolved
    hyperparameters (``None`` for the no-op "original")."""
    if method is None:
        return {"name": None}
    return {"name": method.definition.name, "label": method.name,
            "hparams": {k: _jsonable(v) for k, v in sorted(method.hp.items())}}


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


def _canonical(identity: Mapping[str, Any]) -> str:
    return json.dumps(_jsonable(dict(identity)), sort_keys=True, separators=(",", ":"))


class PopulationStore:
    """Named arrays of populations under ``<root>/populations/<kind>_<hash>/``.

    Args:
        root: the cache directory (``None``: nothing is stored or reused, every request
            is built; what ``--no-cache`` gives).

    The identity of an entry automatically includes the jaxmu version, so a new release
    never reuses an older release's logits.
    """

    def __init__(self, root: str | Path | None):
        self.root = None if root is None else Path(root)

    def key(self, kind: str, identity: Mapping[str, Any]) -> str:
        """``<kind>_<16 hex of SHA-256(identity + jaxmu version)>``."""
        if not kind or not kind.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"kind must be a non-empty word, got {kind!r}")
        text = _canonical({**identity, "_jaxmu": _versions().get("jaxmu")})
        return f"{kind}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def path(self, kind: str, identity: Mapping[str, Any]) -> Path | None:
        """The entry's directory (``None`` without a root)."""
        return None if self.root is None else self.root / _SUBDIR / self.key(kind, identity)

    def load(self, kind: str, identity: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """The stored arrays of this request, or ``None`` if there is no usable entry.

        A corrupt entry, or one whose stored identity differs from ``identity`` (a hash
        collision, a hand-copied directory), is moved aside with one warning line and
        ``None`` is returned.
        """
        path = self.path(kind, identity)
        if path is None or latest_step(path) is None:
            return None
        from jaxmu.io import read_meta

        meta = read_meta(path)
        want = json.loads(_canonical({**identity, "_jaxmu": _versions().get("jaxmu")}))
        if meta.get("identity") != want:
            set_aside(path / str(latest_step(path)),
                      "its stored identity differs from the request")
            return None
        like = {k: jax.ShapeDtypeStruct(tuple(s), np.dtype(d))
                for k, (d, s) in meta["arrays"].items()}
        tree, _ = restore_checkpoint(path, like)
        return {k: np.asarray(v) for k, v in tree.items()}

    def save(self, kind: str, identity: Mapping[str, Any], arrays: Mapping[str, Any],
             extra: Mapping[str, Any] | None = None) -> None:
        """Stores ``arrays`` atomically (no-op without a root); ``extra`` is JSON metadata
        kept beside them (e.g. the timings of the run that built them)."""
        path = self.path(kind, identity)
        if path is None:
            return
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        meta = {"identity": json.loads(_canonical({**identity,
                                                   "_jaxmu": _versions().get("jaxmu")})),
                "arrays": {k: [v.dtype.str, list(v.shape)] for k, v in arrays.items()},
                "extra": _jsonable(dict(extra or {}))}
        save_checkpoint(path, 0, arrays, meta, max_to_keep=1)

    def extra(self, kind: str, identity: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON metadata saved with an entry (``{}`` if none)."""
        path = self.path(kind, identity)
        if path is None or latest_step(path) is None:
            return {}
        from jaxmu.io import read_meta

        return dict(read_meta(path).get("extra", {}))

    def get_or_build(self, kind: str, identity: Mapping[str, Any],
                     build: Callable[[], tuple[Mapping[str, Any], Mapping[str, Any]]],
                     *, progress: bool = False
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Loads the entry, or builds and stores it under the entry's lock.

        Args:
            build: returns ``(arrays, extra)``; called only when no usable entry exists.
            progress: announce on stderr when another process holds the entry.

        Returns:
            ``(arrays, info)``: info has ``from_store`` (bool), ``wall_s`` (seconds this
            call took) and the stored ``extra`` of the run that built the entry.
        """
        t0 = time.perf_counter()
        path = self.path(kind, identity)
        if path is None:
            arrays, extra = build()
            return ({k: np.asarray(v) for k, v in arrays.items()},
                    {"from_store": False, "wall_s": time.perf_counter() - t0, **dict(extra)})
        with entry_lock(path, announce=progress):
            got = self.load(kind, identity)
            if got is not None:
                return got, {**self.extra(kind, identity), "from_store": True,
                             "wall_s": time.perf_counter() - t0}
            arrays, extra = build()
            arrays = {k: np.asarray(v) for k, v in arrays.items()}
            self.save(kind, identity, arrays, extra)
        return arrays, {**dict(extra), "from_store": False, "wall_s": time.perf_counter() - t0}


__all__ = ["PopulationStore", "array_digest", "method_identity", "pool_digest"]
