"""Typed results: one run, one method of a study, a whole study; one JSON round trip each.

Every record converts to the JSON-shaped dict that result files hold (``to_dict``), writes
through jaxmu's one codec (:mod:`jaxmu.io`: NaN and +-inf as ``null`` in files) with
``to_json``, and reads back with ``from_dict`` / ``from_json``, also from files written by
earlier versions (bare ``NaN`` tokens, or ``null``): a ``null`` metric is read back as NaN.
The keys are those the report, the tests and older result files use.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxmu.io import dumps, loads, nan_if_none, plain, write_json

# The keys of the single-run file (``run``/the CLIs), in order; the population evaluation
# (``--eval fscore``, ``ulira``, an audit) goes under the key named by ``eval``.
_RUN_FILE_KEYS = ("experiment", "eval", "method", "hparams", "config", "recipe", "model",
                  "degenerate", "splits", "seed", "metrics", "warnings", "timings", "cache",
                  "provenance")


def _floats(m: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: nan_if_none(v) for k, v in (m or {}).items()}


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
    def from_dict(cls, d: Mapping[str, Any]) -> RunRecord:
        """The record of a file's dict (either form; unknown keys are ignored)."""
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls)
              if f.name in d and f.name not in ("evaluation", "path")}
        kw["metrics"] = _floats(d.get("metrics"))
        kw["timings"] = _floats(d.get("timings"))
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
    def from_dict(cls, d: Mapping[str, Any]) -> MethodResult:
        summary = {m: {**s, "value": nan_if_none(s.get("value"))}
                   for m, s in (d.get("summary") or {}).items()}
        return cls(hparams=dict(d.get("hparams") or {}),
                   runs=[RunRecord.from_dict(r) for r in d.get("runs") or []],
                   summary=summary, search=d.get("search"),
                   reference=bool(d.get("reference", False)), degenerate=d.get("degenerate"))


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
    def from_dict(cls, d: Mapping[str, Any]) -> StudyRecord:
        return cls(dataset=d["dataset"], model=d["model"], config=dict(d.get("config") or {}),
                   methods={m: MethodResult.from_dict(v) for m, v in d["methods"].items()},
                   **{k: d.get(k) for k in _STUDY_EXTRAS})

    def to_json(self) -> str:
        return dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudyRecord:
        return cls.from_dict(loads(text))


