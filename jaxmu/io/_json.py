"""jaxmu's one JSON codec: every result file, report and record goes through it.

The NaN policy, in one place:

* :func:`plain` makes an in-memory value JSON-shaped (dicts with string keys, lists, Python
  scalars) and **keeps** NaN and +-inf as floats, so code that computes on the value sees
  the numbers (``math.isnan`` still works on a metric that could not be computed).
* :func:`to_json` (what :func:`dumps` and :func:`jaxmu.io.write_json` write) is
  :func:`plain` with every non-finite float written as ``null``: the files are strict JSON
  that any reader parses (no ``NaN`` / ``Infinity`` tokens).
* :func:`loads` / :func:`read_json` read both the strict files and the ones written by
  earlier versions with bare ``NaN`` tokens. Typed readers (:mod:`jaxmu.records`) map a
  ``null`` in a float-typed field (a metric, an interval end) back to NaN.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any


class JSONValueError(TypeError, ValueError):
    """A value with no JSON form; the message names it by its path (``record['x'][2]``).
    Both a ``TypeError`` (as :func:`json.dumps` raises) and a ``ValueError``."""


def _type(x: Any) -> str:
    return type(x).__name__


def _convert(obj: Any, path: str, finite: bool) -> Any:
    if obj is None or isinstance(obj, str | bool):
        return obj
    if hasattr(obj, "to_dict") and not isinstance(obj, Mapping):  # a jaxmu record
        return _convert(obj.to_dict(), path, finite)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _convert(dataclasses.asdict(obj), path, finite)
    if type(obj).__name__ == "bool_":  # numpy.bool_ (numpy is not imported here)
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        return None if finite and not math.isfinite(f) else f
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise JSONValueError(f"{path}: keys must be strings, got {_type(k)} key {k!r}")
            out[str(k)] = _convert(v, f"{path}[{k!r}]", finite)
        return out
    if hasattr(obj, "tolist") and hasattr(obj, "shape"):  # NumPy / jax array or scalar
        return _convert(obj.tolist(), path, finite)
    if isinstance(obj, set | frozenset):
        return _convert(sorted(obj, key=repr), path, finite)
    if isinstance(obj, Sequence) and not isinstance(obj, bytes):
        return [_convert(v, f"{path}[{i}]", finite) for i, v in enumerate(obj)]
    raise JSONValueError(f"{path}: not JSON serialisable: {_type(obj)}")


def plain(obj: Any, path: str = "value") -> Any:
    """A copy of ``obj`` made of JSON types (dicts, lists, str, int, float, bool, None),
    NaN and +-inf kept as floats. Mappings become dicts with string keys, tuples, sets
    and arrays lists, NumPy scalars Python scalars, paths strings, dataclasses (and
    records with ``to_dict``) dicts.

    Raises:
        JSONValueError: naming the first value that has no JSON form.
    """
    return _convert(obj, path, finite=False)


def to_json(obj: Any, path: str = "value") -> Any:
    """:func:`plain` with every NaN and +-inf written as ``None``: the form written to files.

    Raises:
        JSONValueError: naming the first value that has no JSON form.
    """
    return _convert(obj, path, finite=True)


def dumps(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON text of :func:`to_json` (``obj``)."""
    return json.dumps(to_json(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def loads(text: str) -> Any:
    """Parses JSON text; bare ``NaN`` / ``Infinity`` tokens of older files are accepted."""
    return json.loads(text)


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON file at ``path`` (UTF-8; see :func:`loads`)."""
    return loads(Path(path).read_text(encoding="utf-8"))


def nan_if_none(x: Any) -> float:
    """``float(x)``, with ``None`` (a non-finite number in a file) read back as NaN."""
    return math.nan if x is None else float(x)
