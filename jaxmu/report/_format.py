"""Number formatting, markdown tables and per-method statistics for the report.

References:
    docs/evaluation.md (the metrics), docs/evaluation.md#ranking (the G1/G2/G3/F groups),
    docs/statistics.md#bootstrap-units (the intervals).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxmu.report._validate import as_float

DASH = "\u2013"  # "–", shown for NaN or missing values
FAILED = "Failed"
DEGENERATE_MARK = "\u2020"  # "†", after the name of a method that degenerates


class Stat(NamedTuple):
    """A summary statistic: value with its confidence interval and number of seeds."""

    value: float
    low: float
    high: float
    n: int | None


def fmt(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals; "–" for None, NaN or non-numbers."""
    try:
        f = as_float(x)
    except (TypeError, ValueError):
        return DASH
    return DASH if math.isnan(f) else f"{f:.{digits}f}"


def fmt_count(x: Any) -> str:
    """An integer-valued number without decimals (else one decimal); "–" when missing."""
    try:
        f = as_float(x)
    except (TypeError, ValueError):
        return DASH
    if math.isnan(f):
        return DASH
    return str(int(f)) if f.is_integer() else f"{f:.1f}"


def fmt_ci(stat: Stat, digits: int = 3) -> str:
    """``"value [low, high]"``; just ``"value"`` when the interval is missing; "–" for NaN."""
    if math.isnan(stat.value):
        return DASH
    if math.isnan(stat.low) or math.isnan(stat.high):
        return fmt(stat.value, digits)
    return f"{fmt(stat.value, digits)} [{fmt(stat.low, digits)}, {fmt(stat.high, digits)}]"


def fmt_value(x: Any) -> str:
    """A config/provenance/hyperparameter value: floats to 4 significant digits, containers as
    compact JSON, everything else as ``str``."""
    if x is None:
        return DASH
    if isinstance(x, float):
        return DASH if math.isnan(x) else f"{x:.4g}"
    if isinstance(x, Mapping | list | tuple):
        return json.dumps(x, separators=(", ", ": "), default=str)
    return str(x)


def cell(text: str) -> str:
    """Makes ``text`` safe inside a markdown table cell (pipes escaped, one line)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]],
             align: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table; ``align`` holds "l" or "r" per column."""
    align = align or ["l"] * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def usable_runs(method: Mapping) -> list[Mapping]:
    """The runs of a method entry with ``usable`` true."""
    return [r for r in method["runs"] if r["usable"]]


def is_failed(method: Mapping) -> bool:
    """True when a method entry has no usable run."""
    return not usable_runs(method)


def method_stat(method: Mapping, metric: str) -> Stat:
    """``method["summary"][metric]``; if absent, the mean over usable runs (no interval).

    Missing everywhere gives a NaN value.
    """
    s = method["summary"].get(metric)
    if s is not None:
        ci = (None, None) if s.get("ci") is None else s["ci"]
        return Stat(as_float(s.get("value")), as_float(ci[0]), as_float(ci[1]), s.get("n"))
    vals = [as_float(r["metrics"][metric]) for r in usable_runs(method)
            if metric in r["metrics"]]
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return Stat(math.nan, math.nan, math.nan, 0)
    return Stat(float(np.mean(vals)), math.nan, math.nan, len(vals))


def runs_count(method: Mapping) -> str:
    """``"usable/total"`` runs of a method entry, e.g. ``"2/2"``."""
    return f"{len(usable_runs(method))}/{len(method['runs'])}"


def degenerate_reasons(study: Mapping) -> dict[str, str]:
    """Methods of a study that degenerate on its model, with the reason, in study order.

    A method degenerates when it cannot act on the model as designed and reduces to a
    simpler one (e.g. CT on an MLP is fine-tuning; see
    :func:`jaxmu.methods.degenerate_reason`). The reason is taken from the method's
    ``"degenerate"`` entry, else from its ranking rows' ``"degenerate"`` key (studies
    written before methods carried it); methods with neither are left out.
    """
    reasons: dict[str, str] = {}
    for name, m in study["methods"].items():
        why = m.get("degenerate")
        if why:
            reasons[name] = str(why)
    for rows in (study.get("ranking") or {}).values():
        for r in rows or []:
            if r.get("degenerate") and r["method"] not in reasons:
                reasons[r["method"]] = str(r["degenerate"])
    return reasons


def marked(name: str, reasons: Mapping[str, str]) -> str:
    """``name`` followed by :data:`DEGENERATE_MARK` when it is a key of ``reasons``."""
    return f"{name} {DEGENERATE_MARK}" if name in reasons else name


def degenerate_footnote(names: Sequence[str], reasons: Mapping[str, str], *,
                        with_reasons: bool = False) -> str:
    """The line under a table whose rows ``names`` include degenerate methods ("" if none).

    Args:
        names: the methods shown in the table.
        reasons: method -> why it degenerates (:func:`degenerate_reasons`).
        with_reasons: spell out each shown method's reason (tables read on their own, e.g.
            a ranking over several settings); otherwise point to the list of reasons.
    """
    shown = [n for n in dict.fromkeys(names) if n in reasons]
    if not shown:
        return ""
    text = (f"{DEGENERATE_MARK} degenerate: cannot act on the model as designed and reduces "
            "to a simpler method")
    if with_reasons:
        return text + " (" + "; ".join(f"{n}: {reasons[n]}" for n in shown) + ")."
    return text + " (reasons under *Degenerate methods*)."

