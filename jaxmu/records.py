"""Typed results: one run, one method of a study, a whole study, a deletion scenario; one
JSON round trip each.

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


class _JsonFile:
    """File I/O shared by the records that are one JSON file each (a ``to_dict`` /
    ``from_dict`` pair and a ``path`` attribute): strict JSON text through jaxmu's codec."""

    path: str | None

    def to_json(self) -> str:
        """Strict JSON text (NaN and +-inf as null)."""
        return dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        """The record of a JSON text (``from_dict`` of it)."""
        return cls.from_dict(loads(text))

    def write(self, path: str | os.PathLike):
        """Writes the file atomically (:func:`jaxmu.io.write_json`); returns self with
        ``path`` set."""
        self.path = str(write_json(path, self.to_dict()))
        return self

    @classmethod
    def read(cls, path: str | os.PathLike):
        """The record of a file, with ``path`` set."""
        rec = cls.from_json(Path(path).read_text(encoding="utf-8"))
        rec.path = str(path)
        return rec


@dataclasses.dataclass
class RunRecord(_JsonFile):
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




# A scenario's kind -> the name its file holds under ``scenario`` (the scenario function's
# name, as files written before ScenarioRecord hold it); ``from_dict`` reads either.
SCENARIO_KINDS = {"sweep": "deletion_ratio_sweep", "sequential": "sequential_deletion"}
_SCENARIO_HEAD = ("experiment", "scenario", "cli", "dataset", "model", "seed", "split_seed",
                  "val_fraction", "config")
_SCENARIO_KEYS = {
    "sweep": (*_SCENARIO_HEAD, "sisa_config", "methods", "hparams", "ratios", "repeats",
              "original", "sisa_setup", "rows", "table", "crossover", "provenance"),
    "sequential": (*_SCENARIO_HEAD, "methods", "hparams", "forget_set", "num_requests",
                   "request_size", "repeats", "original", "sisa_setup", "requests", "table",
                   "provenance"),
}
# Float-valued keys of a scenario's nested mappings (``original``, a row's or request's
# method entries, ``sisa_setup``): a ``null`` there is read back as NaN.
_SCENARIO_FLOATS = frozenset({"cost_s", "compile_s", "speedup", "cumulative_cost_s",
                              "cumulative_speedup", "retrain_s", "work_fraction", "setup_s",
                              "va", "ta"})
# Columns of a scenario's ``table`` that are not float metrics.
_TABLE_LABELS = {"method": "string", "ratio": "number", "request": "int", "n_deleted": "int"}


def _string(x: Any, path: str) -> str:
    if not isinstance(x, str):
        raise ValueError(f"{path}: expected a string, got {_type(x)}")
    return x


def _float_fields(m: Any, path: str, *, optional: bool = False) -> dict[str, Any] | None:
    """A copy of mapping ``m`` with its ``_SCENARIO_FLOATS`` keys as floats (null -> NaN)."""
    if expect_mapping(m, path, optional=optional) is None:
        return None
    return {k: expect_number(v, f"{path}[{k!r}]") if k in _SCENARIO_FLOATS else v
            for k, v in m.items()}


def _table_row(row: Any, path: str) -> dict[str, Any]:
    expect_mapping(row, path)
    _string(expect_key(row, "method", path), f"{path}['method']")
    out = {}
    for k, v in row.items():
        p, label = f"{path}[{k!r}]", _TABLE_LABELS.get(k)
        if label == "string":
            out[k] = v
        elif label == "int":
            out[k] = expect_int(v, p)
        else:  # ratio and the float metrics (null -> NaN)
            out[k] = expect_number(v, p, optional=label is None)
    return out


def _steps(x: Any, path: str, index: str) -> list[dict[str, Any]]:
    """A sweep's ``rows`` (``index`` ``ratio``) or a sequence's ``requests`` (``request``):
    each a mapping with ``index`` and ``methods`` (name -> entry with ``metrics``)."""
    out = []
    for i, row in enumerate(_list(x, path)):
        p = f"{path}[{i}]"
        row = _float_fields(row, p)
        v = expect_key(row, index, p)
        if index == "request":
            expect_int(v, f"{p}[{index!r}]")
        else:
            expect_number(v, f"{p}[{index!r}]", optional=False)
        methods = {}
        q = f"{p}['methods']"
        for name, e in expect_mapping(expect_key(row, "methods", p), q).items():
            e = _float_fields(e, f"{q}[{name!r}]")
            e["metrics"] = _floats(expect_key(e, "metrics", f"{q}[{name!r}]"),
                                   f"{q}[{name!r}]['metrics']")
            methods[name] = e
        out.append({**row, "methods": methods})
    return out


@dataclasses.dataclass
class ScenarioRecord(_JsonFile):
    """A deletion scenario (:func:`jaxmu.experiment.run_scenario`): a deletion-ratio sweep
    (:func:`jaxmu.scenarios.deletion_ratio_sweep`) or a sequence of deletion requests
    (:func:`jaxmu.scenarios.sequential_deletion`), with the experiment's context.

    The fields every scenario has are typed top-level fields; the kind-specific body is in
    typed optional fields that are None for the other kind (sweep: ``ratios``, ``rows``,
    ``crossover``, ``sisa_config``; sequential: ``requests``, ``forget_set``,
    ``num_requests``, ``request_size``). :meth:`to_dict` is the file's dict, the layout of
    ``deletion_<sweep|sequential>_seed<s>.json`` (same keys in the same order as before the
    record; the file's ``scenario`` key holds :data:`SCENARIO_KINDS` ``[kind]``, the
    scenario function's name).

    Attributes:
        experiment: the dataset name the experiment ran (the output folder).
        kind: ``"sweep"`` or ``"sequential"``.
        dataset, model, seed, split_seed, val_fraction: the setting.
        config: the O/R training recipe (:meth:`jaxmu.train.TrainConfig.to_dict`).
        methods: the compared methods, ``"retrain"`` first; hparams: name -> its
            hyperparameters (None for the exact baselines).
        table: one flat row per (ratio or request, method): ``method``, ``ratio`` or
            ``request``/``n_deleted``, float metrics and costs (NaN for a missing number).
        repeats: timed runs per cost; original: O's cost and accuracies; sisa_setup: the
            SISA ensemble's setup (None without SISA).
        provenance: where it ran (:func:`jaxmu.provenance.provenance`); cli: the invocation.
        ratios, rows, crossover, sisa_config: a sweep's body (see
            :func:`~jaxmu.scenarios.deletion_ratio_sweep`).
        requests, forget_set, num_requests, request_size: a sequence's body (see
            :func:`~jaxmu.scenarios.sequential_deletion`).
        path: where the record was written (not part of the file).
    """

    experiment: str
    kind: str
    dataset: str
    model: str
    seed: int
    split_seed: int
    val_fraction: float
    config: dict[str, Any]
    methods: list[str]
    hparams: dict[str, Any]
    table: list[dict[str, Any]]
    repeats: int = 1
    original: dict[str, Any] = dataclasses.field(default_factory=dict)
    sisa_setup: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    cli: dict[str, Any] | None = None
    ratios: list[float] | None = None
    rows: list[dict[str, Any]] | None = None
    crossover: dict[str, float | None] | None = None
    sisa_config: dict[str, Any] | None = None
    requests: list[dict[str, Any]] | None = None
    forget_set: str | None = None
    num_requests: int | None = None
    request_size: int | None = None
    path: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in SCENARIO_KINDS:
            raise ValueError(f"unknown scenario kind {self.kind!r}; valid: "
                             f"{', '.join(SCENARIO_KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        """The file's dict (NaN kept; :meth:`to_json` writes it as null)."""
        return plain({k: SCENARIO_KINDS[self.kind] if k == "scenario" else getattr(self, k)
                      for k in _SCENARIO_KEYS[self.kind]}, "record")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "record") -> ScenarioRecord:
        """The record of a scenario file's dict (:meth:`to_dict`, or the file parsed).

        Required: ``scenario`` (``"sweep"``/``"sequential"`` or its
        :data:`SCENARIO_KINDS` name), ``experiment``, ``dataset``, ``model`` (strings),
        ``seed``, ``split_seed`` (integers), ``val_fraction`` (a number), ``config``,
        ``hparams`` (mappings), ``methods`` (strings), ``table`` (rows with a string
        ``method``; its other columns numbers or null), ``original`` (a mapping); a sweep
        also ``ratios`` and ``rows``, a sequence ``requests``, ``forget_set``,
        ``num_requests`` and ``request_size``. ``null`` in a float field (a metric, a
        cost, a speedup) is read back as NaN; other keys of the file are ignored.

        Raises:
            ValueError: one line naming the first missing or bad key under ``path``.
        """
        expect_mapping(d, path)

        def key(k: str) -> tuple[Any, str]:
            return expect_key(d, k, path), f"{path}[{k!r}]"

        name = _string(*key("scenario"))
        kinds = {**{v: k for k, v in SCENARIO_KINDS.items()}, **{k: k for k in SCENARIO_KINDS}}
        if name not in kinds:
            raise ValueError(f"{path}['scenario']: unknown scenario kind {name!r}; valid: "
                             f"{', '.join(kinds)}")
        kind = kinds[name]
        kw: dict[str, Any] = {"kind": kind}
        for k in ("experiment", "dataset", "model"):
            kw[k] = _string(*key(k))
        for k in ("seed", "split_seed"):
            kw[k] = expect_int(*key(k))
        kw["val_fraction"] = expect_number(*key("val_fraction"), optional=False)
        config, p = key("config")
        kw["config"] = dict(expect_mapping(config, p))
        methods, p = key("methods")
        kw["methods"] = [_string(m, f"{p}[{i}]") for i, m in enumerate(_list(methods, p))]
        hparams, p = key("hparams")
        kw["hparams"] = {n: None if h is None else dict(expect_mapping(h, f"{p}[{n!r}]"))
                         for n, h in expect_mapping(hparams, p).items()}
        table, p = key("table")
        kw["table"] = [_table_row(r, f"{p}[{i}]") for i, r in enumerate(_list(table, p))]
        kw["original"] = _float_fields(*key("original"))
        if "repeats" in d:
            kw["repeats"] = expect_int(*key("repeats"))
        kw["sisa_setup"] = _float_fields(d.get("sisa_setup"), f"{path}['sisa_setup']",
                                         optional=True)
        for k in ("provenance", "cli", "sisa_config"):
            v = expect_mapping(d.get(k), f"{path}[{k!r}]", optional=True)
            kw[k] = None if v is None else dict(v)
        if kind == "sweep":
            kw["ratios"] = [float(r) for r in number_list(*key("ratios"))]
            kw["rows"] = _steps(*key("rows"), "ratio")
            cross = expect_mapping(d.get("crossover"), f"{path}['crossover']", optional=True)
            kw["crossover"] = None if cross is None else {
                n: None if v is None else expect_number(v, f"{path}['crossover'][{n!r}]")
                for n, v in cross.items()}
        else:
            kw["requests"] = _steps(*key("requests"), "request")
            kw["forget_set"] = _string(*key("forget_set"))
            kw["num_requests"] = expect_int(*key("num_requests"))
            kw["request_size"] = expect_int(*key("request_size"))
        return cls(**kw)

