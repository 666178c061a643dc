"""Typed results: one run, one method of a study, a whole study; one JSON round trip each.

Every record converts to the JSON-shaped dict that result files hold (``to_dict``), writes
through jaxmu's one codec (:mod:`jaxmu.io`: NaN and +-inf as ``null`` in files) with
``to_json``, and reads back with ``from_dict`` / ``from_json``, also from files written by
earlier versions (bare ``NaN`` tokens, or ``null``): a ``null`` metric is read back as NaN.
The keys are those the report, the tests and older result files use.

``from_dict`` is also the check of a file's (or a study dict's) shape: a missing key or a
value of the wrong type raises ``ValueError`` with one line that names it as a path, e.g.
``study['methods']['msg']['runs'][1]['usable']: expected a bool, got str``
(:func:`jaxmu.report.validate_study` builds on it). The ``expect_*`` helpers and
:func:`number_list` are those checks, for other readers of such dicts.

This module sits low in the package (it needs only :mod:`jaxmu.io`), so the report, the
experiments and the benchmark study all read and write the same records.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxmu.io import dumps, loads, plain, to_json, write_json

# The keys of the single-run file (``run``/the CLIs), in order; the population evaluation
# (``--eval fscore``, ``ulira``, an audit) goes under the key named by ``eval``.
_RUN_FILE_KEYS = ("experiment", "eval", "method", "hparams", "config", "recipe", "model",
                  "degenerate", "splits", "seed", "metrics", "warnings", "timings", "cache",
                  "provenance")


def _type(x: Any) -> str:
    return type(x).__name__


def is_number(x: Any) -> bool:
    """True for real numbers (Python, NumPy, bool); False for strings, None, arrays."""
    return isinstance(x, numbers.Real) and not isinstance(x, np.ndarray)


def expect_mapping(x: Any, path: str, *, optional: bool = False) -> Mapping | None:
    """``x`` if it is a mapping with string keys (or None when ``optional``).

    Raises:
        ValueError: ``PATH: expected a mapping, got T`` / ``PATH: keys must be strings ...``.
    """
    if x is None and optional:
        return None
    if not isinstance(x, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {_type(x)}")
    for k in x:
        if not isinstance(k, str):
            raise ValueError(f"{path}: keys must be strings, got {_type(k)} key {k!r}")
    return x


def expect_key(m: Mapping, key: str, path: str) -> Any:
    """``m[key]``; raises ``ValueError`` ``PATH: missing key 'KEY'`` when absent."""
    if key not in m:
        raise ValueError(f"{path}: missing key {key!r}")
    return m[key]


def expect_number(x: Any, path: str, *, optional: bool = True) -> float:
    """``float(x)`` of a real number; ``None`` (a non-finite number in a file) is NaN when
    ``optional``.

    Raises:
        ValueError: ``PATH: expected a number[ or null], got T``.
    """
    if x is None and optional:
        return float("nan")
    if not is_number(x):
        raise ValueError(f"{path}: expected a number{' or null' if optional else ''}, "
                         f"got {_type(x)}")
    return float(x)


def expect_int(x: Any, path: str) -> int:
    """``int(x)`` of an integer (not a bool); raises ``ValueError`` naming ``path``."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise ValueError(f"{path}: expected an integer, got {_type(x)}")
    return int(x)


def expect_reason(x: Any, path: str) -> str | None:
    """A degenerate-method reason: None or a string."""
    if x is not None and not isinstance(x, str):
        raise ValueError(f"{path}: expected a string (why the method degenerates) or None, "
                         f"got {_type(x)}")
    return x


def number_list(x: Any, path: str) -> np.ndarray:
    """A 1-D float64 array from a list/tuple/array of numbers (``None`` entries -> NaN).

    Raises:
        ValueError: naming ``path`` (or its first bad entry).
    """
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, Sequence) and not isinstance(x, str | bytes):
        arr = np.asarray([expect_number(v, f"{path}[{i}]") for i, v in enumerate(x)],
                         dtype=np.float64)
    else:
        raise ValueError(f"{path}: expected a list of numbers, got {_type(x)}")
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{path}: expected a 1-D list of numbers, got shape {arr.shape} "
                         f"dtype {arr.dtype}")
    return arr.astype(np.float64)


def _list(x: Any, path: str) -> Sequence:
    if not isinstance(x, Sequence) or isinstance(x, str | bytes):
        raise ValueError(f"{path}: expected a list, got {_type(x)}")
    return x


def _floats(m: Mapping[str, Any] | None, path: str) -> dict[str, float]:
    return {k: expect_number(v, f"{path}[{k!r}]")
            for k, v in (expect_mapping(m, path, optional=True) or {}).items()}


def _interval(x: Any, path: str) -> list[float] | None:
    """None or ``[low, high]`` (numbers or null)."""
    if x is None:
        return None
    arr = number_list(x, path)
    if arr.shape != (2,):
        raise ValueError(f"{path}: expected [low, high], got {len(x)} values")
    return [float(v) for v in arr]


@dataclasses.dataclass
class RunRecord:
    """One unlearning run: a method with its hyperparameters on one seed, evaluated.

    Two file forms share it: the single-run file of :func:`jaxmu.experiment.run` and the
    CLIs (``experiment`` set: every key of ``_RUN_FILE_KEYS`` plus the population
    evaluation under ``eval``), and a study's final run (``experiment`` None: ``method``,
    ``seed``, ``hparams``, ``usable``, ``metrics``, ``forget_losses``, ``timings``).

    Attributes:
        method, seed, hparams: what ran.
        metrics: flat metric -> float (:func:`jaxmu.evaluate`); NaN for a failed number.
        timings: seconds (single run: ``original_s``, ``retrain_s``, ``unlearned_s``,
            ``compile_s``; final run: ``run_s``, ``compile_s``, ``retrain_s``).
        usable: the unlearned model is finite (final runs; None for single runs).
        forget_losses: per-example cross-entropy on forget (final runs).
        experiment ... provenance: the single run's context (see the module docstring).
        evaluation: the population evaluation of ``eval`` (None for ``"single"``).
        path: where the record was written (not part of the file).
    """

    method: str
    seed: int
    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    usable: bool | None = None
    forget_losses: list[float] | None = None
    experiment: str | None = None
    eval: str | None = None
    config: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None
    model: str | None = None
    degenerate: str | None = None
    splits: dict[str, int] | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    cache: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    path: str | None = dataclasses.field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-shaped dict of the file (NaN kept; :meth:`to_json` writes it)."""
        if self.experiment is None:  # a study's final run
            d = {"method": self.method, "seed": self.seed, "hparams": self.hparams,
                 "usable": bool(self.usable), "metrics": self.metrics}
            if self.forget_losses is not None:
                d["forget_losses"] = self.forget_losses
            d["timings"] = self.timings
            return plain(d, "run")
        d = {k: getattr(self, k) for k in _RUN_FILE_KEYS}
        if self.eval not in (None, "single"):
            d[self.eval] = self.evaluation
        return plain(d, "record")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "run") -> RunRecord:
        """The record of a file's dict (either form; unknown keys are ignored).

        Required: ``seed`` (an integer) and ``metrics`` (metric -> number or null); a final
        run (no ``experiment``) also ``usable`` (a bool). ``forget_losses``: numbers.

        Raises:
            ValueError: one line naming the first missing or bad key under ``path``.
        """
        expect_mapping(d, path)
        seed = expect_int(expect_key(d, "seed", path), f"{path}['seed']")
        if d.get("experiment") is None and not isinstance(expect_key(d, "usable", path),
                                                          bool | np.bool_):
            raise ValueError(f"{path}['usable']: expected a bool, got {_type(d['usable'])}")
        metrics = _floats(expect_key(d, "metrics", path), f"{path}['metrics']")
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls)
              if f.name in d and f.name not in ("evaluation", "path")}
        kw.update(method=d.get("method"), seed=seed, metrics=metrics,
                  timings=_floats(d.get("timings"), f"{path}['timings']"),
                  hparams=dict(expect_mapping(d.get("hparams"), f"{path}['hparams']",
                                              optional=True) or {}))
        if d.get("usable") is not None:
            kw["usable"] = bool(d["usable"])
        if d.get("forget_losses") is not None:
            kw["forget_losses"] = [float(x) for x in number_list(
                d["forget_losses"], f"{path}['forget_losses']")]
        expect_reason(d.get("degenerate"), f"{path}['degenerate']")
        ev = d.get("eval")
        if ev not in (None, "single"):
            kw["evaluation"] = d.get(ev)
        return cls(**kw)

    def to_json(self) -> str:
        """Strict JSON text (NaN and +-inf as null)."""
        return dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        return cls.from_dict(loads(text))

    def write(self, path: str | os.PathLike) -> RunRecord:
        """Writes the file atomically (:func:`jaxmu.io.write_json`); returns self with
        ``path`` set."""
        self.path = str(write_json(path, self.to_dict()))
        return self

    @classmethod
    def read(cls, path: str | os.PathLike) -> RunRecord:
        rec = cls.from_json(Path(path).read_text(encoding="utf-8"))
        rec.path = str(path)
        return rec


@dataclasses.dataclass
class MethodResult:
    """One method of a study: its chosen hyperparameters, the search that chose them, the
    final runs and their summary (metric -> ``{"value", "ci", "n"}``)."""

    hparams: dict[str, Any]
    runs: list[RunRecord]
    summary: dict[str, dict[str, Any]]
    search: dict[str, Any] | None = None
    reference: bool = False
    degenerate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return plain({"hparams": self.hparams, "search": self.search,
                      "runs": [r.to_dict() for r in self.runs], "summary": self.summary,
                      "reference": self.reference, "degenerate": self.degenerate}, "method")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "method") -> MethodResult:
        """The method of a study dict. Required: ``hparams`` (a mapping), ``search`` (a
        mapping or None), ``runs`` (final runs, :meth:`RunRecord.from_dict`) and
        ``summary`` (metric -> ``{"value": number or null, "ci": [low, high] or None,
        "n": int}``); ``degenerate``: None or a string.

        Raises:
            ValueError: one line naming the first missing or bad key under ``path``.
        """
        expect_mapping(d, path)
        hparams = dict(expect_mapping(expect_key(d, "hparams", path), f"{path}['hparams']"))
        search = expect_key(d, "search", path)
        if expect_mapping(search, f"{path}['search']", optional=True) is not None:
            for key in ("n_trials", "seed", "trial"):
                if search.get(key) is not None:
                    expect_int(search[key], f"{path}['search'][{key!r}]")
            expect_number(search.get("score"), f"{path}['search']['score']")
            if search.get("values") is not None:
                number_list(search["values"], f"{path}['search']['values']")
        runs = _list(expect_key(d, "runs", path), f"{path}['runs']")
        runs = [RunRecord.from_dict(r, f"{path}['runs'][{i}]") for i, r in enumerate(runs)]
        p = f"{path}['summary']"
        summary = {}
        for metric, s in expect_mapping(expect_key(d, "summary", path), p).items():
            q = f"{p}[{metric!r}]"
            expect_mapping(s, q)
            summary[metric] = {**s, "value": expect_number(expect_key(s, "value", q),
                                                            f"{q}['value']")}
            _interval(s.get("ci"), f"{q}['ci']")
            if s.get("n") is not None:
                expect_int(s["n"], f"{q}['n']")
        return cls(hparams=hparams, runs=runs, summary=summary, search=search,
                   reference=bool(d.get("reference", False)),
                   degenerate=expect_reason(d.get("degenerate"), f"{path}['degenerate']"))


_STUDY_EXTRAS = ("ranking", "ulira", "audits", "provenance", "timings", "report")


@dataclasses.dataclass
class StudyRecord:
    """A benchmark study (:func:`jaxmu.sweep.run_benchmark`): its configuration, every
    method's :class:`MethodResult`, the ranking and the optional U-LiRA / audit results;
    ``study.json`` is :meth:`to_json`, and the report reads :meth:`to_dict`."""

    dataset: str
    model: str
    config: dict[str, Any]
    methods: dict[str, MethodResult] = dataclasses.field(default_factory=dict)
    ranking: dict[str, Any] | None = None
    ulira: dict[str, Any] | None = None
    audits: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    timings: dict[str, float] | None = None
    report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The study dict (keys that are None are left out, as in the files)."""
        d: dict[str, Any] = {"dataset": self.dataset, "model": self.model,
                             "config": self.config,
                             "methods": {m: v.to_dict() for m, v in self.methods.items()}}
        d.update({k: getattr(self, k) for k in _STUDY_EXTRAS if getattr(self, k) is not None})
        return plain(d, "study")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "study") -> StudyRecord:
        """The study of a dict (``study.json`` parsed, or :meth:`to_dict`). Required:
        ``dataset`` and ``model`` (non-empty strings), ``config`` (a mapping of JSON
        values), ``methods`` (a non-empty mapping name -> :meth:`MethodResult.from_dict`);
        ``provenance``, when present, a mapping of JSON values. The other keys
        (``ranking``, ``ulira``, ``audits``, ...) are kept as they are.

        Raises:
            ValueError: one line naming the first missing or bad key under ``path``.
        """
        expect_mapping(d, path)
        for key in ("dataset", "model"):
            v = expect_key(d, key, path)
            if not isinstance(v, str) or not v:
                raise ValueError(f"{path}[{key!r}]: expected a non-empty string, got {v!r}")
        config = expect_mapping(expect_key(d, "config", path), f"{path}['config']")
        to_json(config, f"{path}['config']")
        if d.get("provenance") is not None:
            to_json(expect_mapping(d["provenance"], f"{path}['provenance']"),
                    f"{path}['provenance']")
        methods = expect_mapping(expect_key(d, "methods", path), f"{path}['methods']")
        if not methods:
            raise ValueError(f"{path}['methods']: expected at least one method, got none")
        methods = {m: MethodResult.from_dict(v, f"{path}['methods'][{m!r}]")
                   for m, v in methods.items()}
        return cls(dataset=d["dataset"], model=d["model"], config=dict(config),
                   methods=methods, **{k: d.get(k) for k in _STUDY_EXTRAS})

    def to_json(self) -> str:
        return dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudyRecord:
        return cls.from_dict(loads(text))


