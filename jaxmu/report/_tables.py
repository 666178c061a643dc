"""Markdown tables of a study: rankings (Table 1), run-time efficiency (Table 2), metrics,
hyperparameters, U-LiRA, budget and provenance.

References:
    Cadet et al., Deep Unlearn (2024) Tables 1-2. In this repository: docs/methods.md#search
    (HP search), docs/evaluation.md (metrics; #run-time-and-rte, #u-lira, #ranking).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxmu.report._format import (
    DASH,
    FAILED,
    Stat,
    degenerate_footnote,
    degenerate_reasons,
    fmt,
    fmt_ci,
    fmt_count,
    fmt_value,
    is_failed,
    marked,
    md_table,
    method_stat,
    runs_count,
)
from jaxmu.report._validate import (
    GROUPS,
    as_float,
    number_list,
    validate_ranking,
    validate_study,
)

# (summary key, column header, decimals) of the per-method metrics table.
METRIC_COLUMNS = (
    ("ra", "RA", 3),
    ("fa", "FA", 3),
    ("va", "VA", 3),
    ("ta", "TA", 3),
    ("retdev", "RetDev", 3),
    ("indisc_test", "Indisc (test)", 3),
    ("mia_val", "MIA (val)", 3),
    ("rte", "RTE", 2),
)
RANKING_TITLES = {"retdev": "Retention Deviation (RetDev)", "indisc": "Indiscernibility (Indisc)"}
_BUDGET_KEYS = (
    ("trials", "Trials per method (HP search)"),
    ("search_seeds", "Search seeds"),
    ("seeds", "Final-run seeds"),
    ("e_max", "E_max (epoch budget)"),
)


def sorted_ranking(rows: Any) -> list[Mapping]:
    """Ranking rows sorted by rank (missing ranks last), ties by method name."""
    def key(r):
        rank = as_float(r.get("rank"))
        return (math.isnan(rank), 0.0 if math.isnan(rank) else rank, r["method"])
    return sorted(rows or [], key=key)


def ranking_table_markdown(ranking: Mapping | None,
                           degenerate: Mapping[str, str] | None = None) -> str:
    """Table 1: the RetDev and the Indisc rankings side by side, each sorted by rank.

    Columns per ranking: Rank, Method, G1, G2, G3, F (G1-G3: how often the method fell into
    each cluster of the agglomerative grouping, F: how often it failed). Row ``i`` shows the
    ``i``-th method of each ranking; a ranking that is missing or shorter leaves blank cells.
    A method whose rows carry ``"degenerate"`` (it cannot act on the model as designed, see
    :func:`jaxmu.methods.degenerate_reason`), or that is a key of ``degenerate``, is marked
    with a dagger, and a footnote under the table gives each marked method's reason (with
    ``degenerate`` given, it points to the report's list of reasons instead).

    Args:
        ranking: ``{"retdev": [...], "indisc": [...]}``, rows ``{"method", "rank", "G1",
            "G2", "G3", "F"}`` and optionally ``"degenerate"`` (the reason); None or empty
            gives a one-line note instead of a table.
        degenerate: method -> reason of the study's degenerate methods (a report that
            lists them), or None.

    Returns:
        Markdown text (a caption line, the table and, with degenerate methods, a footnote).

    Raises:
        ValueError: on a malformed ranking.

    References:
        Cadet et al., Deep Unlearn (2024) Table 1; docs/evaluation.md#ranking.
    """
    validate_ranking(ranking)
    sides = [sorted_ranking((ranking or {}).get(m)) for m in RANKING_TITLES]
    if not any(sides):
        return "_No ranking in this study._"
    if degenerate is not None and not isinstance(degenerate, Mapping):
        raise ValueError(f"degenerate: expected a mapping method -> reason or None, "
                         f"got {type(degenerate).__name__}")
    reasons = {r["method"]: str(r["degenerate"]) for side in sides for r in side
               if r.get("degenerate")}
    reasons.update(degenerate or {})
    half = ["Rank", "Method", *GROUPS]
    rows = []
    for i in range(max(len(s) for s in sides)):
        row: list[str] = []
        for j, side in enumerate(sides):
            if j:
                row.append("")
            if i < len(side):
                r = side[i]
                row += [fmt_count(r.get("rank")), marked(r["method"], reasons),
                        *(fmt_count(r.get(g)) for g in GROUPS)]
            else:
                row += [""] * len(half)
        rows.append(row)
    align = ["r", "l", "r", "r", "r", "r"]
    caption = (f"Left: {RANKING_TITLES['retdev']}. Right: {RANKING_TITLES['indisc']}. "
               "G1-G3: times in each group, F: times failed.")
    table = caption + "\n\n" + md_table([*half, "", *half], rows, [*align, "l", *align])
    return _with_footnote(table, degenerate_footnote(
        [r["method"] for side in sides for r in side], reasons,
        with_reasons=degenerate is None))


def _with_footnote(table: str, footnote: str) -> str:
    return table + "\n\n" + footnote if footnote else table


def rte_table_markdown(study: Mapping) -> str:
    """Table 2: run-time efficiency per method, fastest first; failed methods last.

    Columns: Method, RTE (``T_retrain / T_method``, mean [95% CI]), run seconds (mean
    [95% CI]), runs (usable/total). Two decimals. Degenerate methods
    (:func:`degenerate_reasons`) are marked with a dagger and a footnote.

    Raises:
        ValueError: on a study that breaks the contract of :func:`validate_study`.

    References:
        Cadet et al., Deep Unlearn (2024) Table 2 and eq. 4 (RTE = T_R / T_U, above 1 is
        faster than retraining); docs/evaluation.md#run-time-and-rte.
    """
    validate_study(study)
    methods = study["methods"]

    def key(name):
        v = method_stat(methods[name], "rte").value
        return (is_failed(methods[name]), math.isnan(v), -v if not math.isnan(v) else 0.0)

    reasons = degenerate_reasons(study)
    rows = []
    for name in sorted(methods, key=key):
        m = methods[name]
        if is_failed(m):
            rows.append([marked(name, reasons), FAILED, FAILED, runs_count(m)])
        else:
            rows.append([marked(name, reasons), fmt_ci(method_stat(m, "rte"), 2),
                         fmt_ci(method_stat(m, "run_seconds"), 2), runs_count(m)])
    return _with_footnote(
        md_table(["Method", "RTE", "Run seconds", "Runs"], rows, ["l", "r", "r", "r"]),
        degenerate_footnote(list(methods), reasons))


def metrics_table_markdown(study: Mapping) -> str:
    """Per-method metrics, "value [low, high]" over usable seeds, in study order; degenerate
    methods marked with a dagger and a footnote."""
    reasons = degenerate_reasons(study)
    rows = []
    for name, m in study["methods"].items():
        if is_failed(m):
            rows.append([marked(name, reasons), runs_count(m), *[FAILED] * len(METRIC_COLUMNS)])
        else:
            rows.append([marked(name, reasons), runs_count(m),
                         *(fmt_ci(method_stat(m, k), d) for k, _, d in METRIC_COLUMNS)])
    header = ["Method", "Runs", *(h for _, h, _ in METRIC_COLUMNS)]
    return _with_footnote(md_table(header, rows, ["l"] + ["r"] * (len(header) - 1)),
                          degenerate_footnote(list(study["methods"]), reasons))


def hparams_table_markdown(study: Mapping) -> str:
    """Chosen hyperparameters per method and the search that found them; degenerate methods
    marked with a dagger and a footnote."""
    reasons = degenerate_reasons(study)
    rows = []
    for name, m in study["methods"].items():
        hp = ", ".join(f"{k}={fmt_value(v)}" for k, v in m["hparams"].items()) or DASH
        label = marked(name, reasons)
        label = f"{label} ({FAILED})" if is_failed(m) else label
        s = m["search"]
        if s is None:
            rows.append([label, hp, "no search", DASH, DASH, DASH, DASH])
            continue
        values = s.get("values")
        vals = DASH if values is None else "[" + ", ".join(fmt(v) for v in values) + "]"
        score = "search failed" if s.get("failed") else fmt(s.get("score"), 4)
        rows.append([label, hp, fmt_count(s.get("n_trials")), fmt_count(s.get("seed")),
                     fmt_count(s.get("trial")), score, vals])
    header = ["Method", "Hyperparameters", "Trials", "Search seed", "Trial", "Score",
              "Objective values"]
    return _with_footnote(md_table(header, rows, ["l", "l", "r", "r", "r", "r", "l"]),
                          degenerate_footnote(list(study["methods"]), reasons))


def ulira_table_markdown(study: Mapping) -> str:
    """U-LiRA per method, each with its bootstrap CI over target runs where present:
    balanced accuracy at threshold 0 (ideal 0.5), best-threshold accuracy, AUC, TPR at 1%
    FPR; and Examples, the number of examples in the per-example accuracy distribution.

    Examples counts the finite entries of ``per_example_accuracy`` only: an example without
    target pairs of both classes (member and non-member) has no per-example accuracy and is
    stored as NaN (None in JSON), so it is not counted; "–" when the study has no
    per-example accuracies. Degenerate methods are marked with a dagger and a footnote.
    """
    def cell(u: Mapping, key: str) -> str:
        ci = u.get(f"{key}_ci") or (math.nan, math.nan)
        return fmt_ci(Stat(as_float(u.get(key)), as_float(ci[0]), as_float(ci[1]), None))

    reasons = degenerate_reasons(study)
    ulira = study.get("ulira") or {}
    rows = []
    for name, u in ulira.items():
        per = u.get("per_example_accuracy")
        examples = DASH if per is None else str(int(np.isfinite(
            number_list(per, f"study['ulira'][{name!r}]['per_example_accuracy']")).sum()))
        rows.append([marked(name, reasons),
                     *(cell(u, k) for k in ("ulira_accuracy", "ulira_best_acc", "auc",
                                            "tpr_at_1fpr")), examples])
    return _with_footnote(
        md_table(["Method", "U-LiRA accuracy [95% CI]", "Best-threshold acc.", "AUC",
                  "TPR@1%FPR", "Examples"], rows, ["l", "r", "r", "r", "r", "r"]),
        degenerate_footnote(list(ulira), reasons))


def budget_markdown(study: Mapping) -> str:
    """Budget (from ``config``), provenance (versions, device, the rest) and the optional
    top-level ``timings`` of the study as one table."""
    config, prov = study["config"], study["provenance"]
    rows = [[label, fmt_value(config.get(k))] for k, label in _BUDGET_KEYS]
    rows += [[f"config.{k}", fmt_value(v)] for k, v in config.items()
             if k not in dict(_BUDGET_KEYS)]
    device = prov.get("device")
    if device is None and prov.get("devices") is not None:  # jaxmu.io.provenance() layout
        devs = prov["devices"]
        if isinstance(devs, list):
            device = ", ".join(f"{n} x {k}" for k, n in Counter(map(str, devs)).items())
        backend = prov.get("backend")
        if backend is not None and str(backend).lower() not in str(device).lower():
            device = f"{backend}: {device}"
    rows.append(["Device", fmt_value(device)])
    versions = prov.get("versions")
    if isinstance(versions, Mapping):
        vtext = ", ".join(f"{k} {v}" for k, v in versions.items()) or DASH
    else:
        vtext = fmt_value(versions)
    rows.append(["Versions", vtext])
    rows += [[f"provenance.{k}", fmt_value(v)] for k, v in prov.items()
             if k not in ("device", "devices", "backend", "versions")]
    timings = study.get("timings")
    if isinstance(timings, Mapping):  # optional wall times of the study itself
        rows += [[f"timings.{k}", fmt_value(v)] for k, v in timings.items()]
    return md_table(["Item", "Value"], rows)
