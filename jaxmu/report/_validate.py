"""Validation of the study dict that ``jaxmu.sweep`` produces, and its JSON-safe copy.

Every check raises ``ValueError`` with a one-line message that names the offending key as a
path, e.g. ``study['methods']['msg']['runs'][1]['usable']: expected a bool, got str``.

References:
    methods-spec.md §4 (HP search), §6 (metrics), §8 (ranking G1/G2/G3).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxmu.io import to_json

RANKING_METRICS = ("retdev", "indisc")
GROUPS = ("G1", "G2", "G3", "F")


def _type(x: Any) -> str:
    return type(x).__name__


def is_number(x: Any) -> bool:
    """True for real numbers (Python, NumPy, bool); False for strings, None, arrays."""
    return isinstance(x, numbers.Real) and not isinstance(x, np.ndarray)


def as_float(x: Any) -> float:
    """``float(x)``, with ``None`` mapped to NaN."""
    return math.nan if x is None else float(x)


def _mapping(x: Any, path: str, *, optional: bool = False) -> Mapping | None:
    if x is None and optional:
        return None
    if not isinstance(x, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {_type(x)}")
    for k in x:
        if not isinstance(k, str):
            raise ValueError(f"{path}: keys must be strings, got {_type(k)} key {k!r}")
    return x


def _require(m: Mapping, key: str, path: str) -> Any:
    if key not in m:
        raise ValueError(f"{path}: missing key {key!r}")
    return m[key]


def _number(x: Any, path: str, *, optional: bool = True) -> float:
    if x is None and optional:
        return math.nan
    if not is_number(x):
        raise ValueError(f"{path}: expected a number{' or null' if optional else ''}, "
                         f"got {_type(x)}")
    return float(x)


def _int(x: Any, path: str) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise ValueError(f"{path}: expected an integer, got {_type(x)}")
    return int(x)


def number_list(x: Any, path: str) -> np.ndarray:
    """A 1-D float64 array from a list/tuple/array of numbers (``None`` entries -> NaN)."""
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, Sequence) and not isinstance(x, str | bytes):
        for i, v in enumerate(x):
            _number(v, f"{path}[{i}]")
        arr = np.asarray([as_float(v) for v in x], dtype=np.float64)
    else:
        raise ValueError(f"{path}: expected a list of numbers, got {_type(x)}")
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{path}: expected a 1-D list of numbers, got shape {arr.shape} "
                         f"dtype {arr.dtype}")
    return arr.astype(np.float64)


def _search(x: Any, path: str) -> None:
    if _mapping(x, path, optional=True) is None:
        return
    for key in ("n_trials", "seed", "trial"):
        if x.get(key) is not None:
            _int(x[key], f"{path}[{key!r}]")
    _number(x.get("score"), f"{path}['score']")
    if x.get("values") is not None:
        number_list(x["values"], f"{path}['values']")


def _run(x: Any, path: str) -> None:
    _mapping(x, path)
    _int(_require(x, "seed", path), f"{path}['seed']")
    if not isinstance(_require(x, "usable", path), bool | np.bool_):
        raise ValueError(f"{path}['usable']: expected a bool, got {_type(x['usable'])}")
    metrics = _mapping(_require(x, "metrics", path), f"{path}['metrics']")
    for k, v in metrics.items():
        _number(v, f"{path}['metrics'][{k!r}]")
    if x.get("forget_losses") is not None:
        number_list(x["forget_losses"], f"{path}['forget_losses']")


def _summary(x: Any, path: str) -> None:
    _mapping(x, path)
    for metric, s in x.items():
        p = f"{path}[{metric!r}]"
        _mapping(s, p)
        _number(_require(s, "value", p), f"{p}['value']")
        ci = s.get("ci")
        if ci is not None:
            if number_list(ci, f"{p}['ci']").shape != (2,):
                raise ValueError(f"{p}['ci']: expected [low, high], got {len(ci)} values")
        if s.get("n") is not None:
            _int(s["n"], f"{p}['n']")


def _method(x: Any, path: str) -> None:
    _mapping(x, path)
    _mapping(_require(x, "hparams", path), f"{path}['hparams']")
    _search(_require(x, "search", path), f"{path}['search']")
    runs = _require(x, "runs", path)
    if not isinstance(runs, Sequence) or isinstance(runs, str | bytes):
        raise ValueError(f"{path}['runs']: expected a list, got {_type(runs)}")
    for i, r in enumerate(runs):
        _run(r, f"{path}['runs'][{i}]")
    _summary(_require(x, "summary", path), f"{path}['summary']")
    _reason(x.get("degenerate"), f"{path}['degenerate']")


def _reason(x: Any, path: str) -> None:
    """A degenerate-method reason: None (or absent) or a string."""
    if x is not None and not isinstance(x, str):
        raise ValueError(f"{path}: expected a string (why the method degenerates) or None, "
                         f"got {_type(x)}")


def validate_ranking(ranking: Any, path: str = "ranking") -> None:
    """Checks ``{metric: [{"method", "rank", "G1", "G2", "G3", "F"}, ...]}`` (None allowed);
    a row's optional ``"degenerate"`` must be a string or None.

    Raises:
        ValueError: naming the first bad key.
    """
    if _mapping(ranking, path, optional=True) is None:
        return
    for metric, rows in ranking.items():
        p = f"{path}[{metric!r}]"
        if rows is None:
            continue
        if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
            raise ValueError(f"{p}: expected a list, got {_type(rows)}")
        for i, row in enumerate(rows):
            q = f"{p}[{i}]"
            _mapping(row, q)
            if not isinstance(_require(row, "method", q), str):
                raise ValueError(f"{q}['method']: expected a string, got {_type(row['method'])}")
            _number(_require(row, "rank", q), f"{q}['rank']")
            for g in GROUPS:
                _number(row.get(g), f"{q}[{g!r}]")
            _reason(row.get("degenerate"), f"{q}['degenerate']")


def _ulira(x: Any, path: str) -> None:
    if _mapping(x, path, optional=True) is None:
        return
    for method, entry in x.items():
        p = f"{path}[{method!r}]"
        _mapping(entry, p)
        _number(entry.get("ulira_accuracy"), f"{p}['ulira_accuracy']")
        if entry.get("per_example_accuracy") is not None:
            number_list(entry["per_example_accuracy"], f"{p}['per_example_accuracy']")


# The numbers the audit tables read: audit -> key paths inside its report.
_AUDIT_NUMBERS = {
    "ulira": (("ulira_accuracy",), ("auc",), ("tpr_at_1fpr",)),
    "klom": tuple((f"{r}_p95{s}",) for r in ("forget", "retain", "unseen")
                  for s in ("", "_null", "_pvalue")),
    "rmia": (("unlearning", "urmia_accuracy"), ("unlearning", "auc"),
             ("unlearning", "tpr_at_1fpr"), ("membership", "auc")),
    "relearn": (("original_forget_acc",),),
}
_CURVE_KEYS = ("shadows", "auc", "auc_lo", "auc_hi")


def _pair(x: Any, path: str) -> None:
    """An interval: None or [low, high] (numbers or null)."""
    if x is not None and number_list(x, path).shape != (2,):
        raise ValueError(f"{path}: expected [low, high], got {len(x)} values")


def _audits(x: Any, path: str) -> None:
    """``study["audits"]``: method -> audit report (:func:`jaxmu.audits.run_audits`); the
    values the report's audit tables read must be numbers or null."""
    if _mapping(x, path, optional=True) is None:
        return
    for method, rep in x.items():
        p = f"{path}[{method!r}]"
        _mapping(rep, p)
        for audit, keys in _AUDIT_NUMBERS.items():
            if rep.get(audit) is None:
                continue
            _mapping(rep[audit], f"{p}[{audit!r}]")
            for key in keys:
                node, q = rep[audit], f"{p}[{audit!r}]"
                for k in key[:-1]:
                    node, q = node.get(k), f"{q}[{k!r}]"
                    if node is None:
                        break
                    _mapping(node, q)
                if node is not None:
                    _number(node.get(key[-1]), f"{q}[{key[-1]!r}]")
                    _pair(node.get(f"{key[-1]}_ci"), f"{q}[{key[-1] + '_ci'!r}]")
        for who in ("unlearned", "retrained"):
            r = (rep.get("relearn") or {}).get(who)
            if r is None:
                continue
            q = f"{p}['relearn'][{who!r}]"
            _mapping(r, q)
            for k in ("median_steps_to_recover", "recovered_fraction"):
                if r.get(k) is not None:
                    _mapping(r[k], f"{q}[{k!r}]")
                    _number(r[k].get("value"), f"{q}[{k!r}]['value']")
                    _pair(r[k].get("ci"), f"{q}[{k!r}]['ci']")
        curve = rep.get("shadow-curve")
        if curve is not None:
            q = f"{p}['shadow-curve']"
            table = _mapping(_require(_mapping(curve, q), "table", q), f"{q}['table']")
            for attack, t in table.items():
                qa = f"{q}['table'][{attack!r}]"
                _mapping(t, qa)
                sizes = {number_list(_require(t, k, qa), f"{qa}[{k!r}]").size
                         for k in _CURVE_KEYS}
                if len(sizes) != 1:
                    raise ValueError(f"{qa}: {', '.join(_CURVE_KEYS)} must have one length")
        if rep.get("plots") is not None:
            for k, v in _mapping(rep["plots"], f"{p}['plots']").items():
                if not isinstance(v, str):
                    raise ValueError(f"{p}['plots'][{k!r}]: expected a path, got {_type(v)}")


def validate_study(study: Any) -> None:
    """Checks a study dict against the contract of :func:`jaxmu.report.write_report`.

    Required: ``dataset`` and ``model`` (non-empty strings), ``config`` and ``provenance``
    (mappings of JSON values), ``methods`` (a non-empty mapping name -> ``{"hparams",
    "search" (mapping or None), "runs" (list of ``{"seed", "usable", "metrics"}``),
    "summary"}``, optionally ``"degenerate"``: None or why the method degenerates on the
    model). Optional: ``ranking``, ``ulira``, ``audits`` (method -> audit report of
    :func:`jaxmu.audits.run_audits`; the numbers its tables read must be numbers or null).

    Raises:
        ValueError: one line naming the first missing or bad key.

    References:
        methods-spec.md §4, §6, §8.
    """
    _mapping(study, "study")
    for key in ("dataset", "model"):
        v = _require(study, key, "study")
        if not isinstance(v, str) or not v:
            raise ValueError(f"study[{key!r}]: expected a non-empty string, got {v!r}")
    for key in ("config", "provenance"):
        json_safe(_mapping(_require(study, key, "study"), f"study[{key!r}]"),
                  f"study[{key!r}]")
    methods = _mapping(_require(study, "methods", "study"), "study['methods']")
    if not methods:
        raise ValueError("study['methods']: expected at least one method, got none")
    for name, m in methods.items():
        _method(m, f"study['methods'][{name!r}]")
    validate_ranking(study.get("ranking"), "study['ranking']")
    _ulira(study.get("ulira"), "study['ulira']")
    _audits(study.get("audits"), "study['audits']")
    json_safe(study, "study")


def json_safe(obj: Any, path: str = "study") -> Any:
    """A copy of ``obj`` made of JSON types only: NaN and +-inf become None
    (:func:`jaxmu.io.to_json`, the one codec of jaxmu's files).

    Raises:
        ValueError: naming the first value that has no JSON form.
    """
    return to_json(obj, path)
