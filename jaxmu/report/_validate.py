"""The report's check of a study dict: the typed records' own checks
(:meth:`jaxmu.records.StudyRecord.from_dict`: dataset, model, config, methods, runs,
summaries) plus what only the report reads (provenance, ranking, U-LiRA, audits).

Every check raises ``ValueError`` with a one-line message that names the offending key as a
path, e.g. ``study['methods']['msg']['runs'][1]['usable']: expected a bool, got str``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxmu.io import nan_if_none as as_float
from jaxmu.io import to_json
from jaxmu.records import (
    StudyRecord,
    expect_key,
    expect_mapping,
    expect_number,
    expect_reason,
    number_list,
)

RANKING_METRICS = ("retdev", "indisc")
GROUPS = ("G1", "G2", "G3", "F")
__all__ = ["GROUPS", "RANKING_METRICS", "as_float", "json_safe", "number_list",
           "validate_ranking", "validate_study"]


def _type(x: Any) -> str:
    return type(x).__name__


def validate_ranking(ranking: Any, path: str = "ranking") -> None:
    """Checks ``{metric: [{"method", "rank", "G1", "G2", "G3", "F"}, ...]}`` (None allowed);
    a row's optional ``"degenerate"`` must be a string or None.

    Raises:
        ValueError: naming the first bad key.
    """
    if expect_mapping(ranking, path, optional=True) is None:
        return
    for metric, rows in ranking.items():
        p = f"{path}[{metric!r}]"
        if rows is None:
            continue
        if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
            raise ValueError(f"{p}: expected a list, got {_type(rows)}")
        for i, row in enumerate(rows):
            q = f"{p}[{i}]"
            expect_mapping(row, q)
            if not isinstance(expect_key(row, "method", q), str):
                raise ValueError(f"{q}['method']: expected a string, got {_type(row['method'])}")
            expect_number(expect_key(row, "rank", q), f"{q}['rank']")
            for g in GROUPS:
                expect_number(row.get(g), f"{q}[{g!r}]")
            expect_reason(row.get("degenerate"), f"{q}['degenerate']")


def _ulira(x: Any, path: str) -> None:
    if expect_mapping(x, path, optional=True) is None:
        return
    for method, entry in x.items():
        p = f"{path}[{method!r}]"
        expect_mapping(entry, p)
        expect_number(entry.get("ulira_accuracy"), f"{p}['ulira_accuracy']")
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
    if expect_mapping(x, path, optional=True) is None:
        return
    for method, rep in x.items():
        p = f"{path}[{method!r}]"
        expect_mapping(rep, p)
        for audit, keys in _AUDIT_NUMBERS.items():
            if rep.get(audit) is None:
                continue
            expect_mapping(rep[audit], f"{p}[{audit!r}]")
            for key in keys:
                node, q = rep[audit], f"{p}[{audit!r}]"
                for k in key[:-1]:
                    node, q = node.get(k), f"{q}[{k!r}]"
                    if node is None:
                        break
                    expect_mapping(node, q)
                if node is not None:
                    expect_number(node.get(key[-1]), f"{q}[{key[-1]!r}]")
                    _pair(node.get(f"{key[-1]}_ci"), f"{q}[{key[-1] + '_ci'!r}]")
        for who in ("unlearned", "retrained"):
            r = (rep.get("relearn") or {}).get(who)
            if r is None:
                continue
            q = f"{p}['relearn'][{who!r}]"
            expect_mapping(r, q)
            for k in ("median_steps_to_recover", "recovered_fraction"):
                if r.get(k) is not None:
                    expect_mapping(r[k], f"{q}[{k!r}]")
                    expect_number(r[k].get("value"), f"{q}[{k!r}]['value']")
                    _pair(r[k].get("ci"), f"{q}[{k!r}]['ci']")
        curve = rep.get("shadow-curve")
        if curve is not None:
            q = f"{p}['shadow-curve']"
            expect_mapping(curve, q)
            table = expect_mapping(expect_key(curve, "table", q), f"{q}['table']")
            for attack, t in table.items():
                qa = f"{q}['table'][{attack!r}]"
                expect_mapping(t, qa)
                sizes = {number_list(expect_key(t, k, qa), f"{qa}[{k!r}]").size
                         for k in _CURVE_KEYS}
                if len(sizes) != 1:
                    raise ValueError(f"{qa}: {', '.join(_CURVE_KEYS)} must have one length")
        if rep.get("plots") is not None:
            for k, v in expect_mapping(rep["plots"], f"{p}['plots']").items():
                if not isinstance(v, str):
                    raise ValueError(f"{p}['plots'][{k!r}]: expected a path, got {_type(v)}")


def validate_study(study: Any) -> None:
    """Checks a study dict against the contract of :func:`jaxmu.report.write_report`.

    Required: what :meth:`jaxmu.records.StudyRecord.from_dict` requires (``dataset`` and
    ``model``, non-empty strings; ``config``; ``methods``, a non-empty mapping name ->
    ``{"hparams", "search" (mapping or None), "runs" (list of ``{"seed", "usable",
    "metrics"}``), "summary"}``, optionally ``"degenerate"``: None or why the method
    degenerates on the model) and ``provenance`` (a mapping of JSON values). Optional:
    ``ranking``, ``ulira``, ``audits`` (method -> audit report of
    :func:`jaxmu.audits.run_audits`; the numbers its tables read must be numbers or null).

    Raises:
        ValueError: one line naming the first missing or bad key.
    """
    StudyRecord.from_dict(study, "study")
    expect_mapping(expect_key(study, "provenance", "study"), "study['provenance']")
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
