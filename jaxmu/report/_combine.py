"""Several studies, one per (dataset, architecture) setting, as one Table 1.

:func:`combine_studies` ranks the methods over the final runs of all settings at once (the
same rows and ranking code as :func:`jaxmu.sweep.run_benchmark` uses for one setting), so
the G1/G2/G3/F columns count a method's memberships over the settings as in Deep Unlearn's
Table 1. :func:`write_combined_report` writes it as ``report.md``, ``ranking.png`` and
``results.json``; :func:`jaxmu.report.write_report` renders one setting only (its metric,
RTE and hyperparameter tables are per setting) and rejects a combined study.

References:
    Cadet et al., Deep Unlearn (2024) §4 "Ranking" and Table 1; jaxmu's procedure:
    docs/evaluation.md#ranking.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxmu.report import _plots
from jaxmu.report._format import DASH, fmt_value, md_table
from jaxmu.report._ranking import is_reference, ranking_rows, setting_name, study_ranking
from jaxmu.report._tables import RANKING_TITLES, ranking_table_markdown, sorted_ranking
from jaxmu.report._validate import GROUPS, json_safe, validate_ranking, validate_study
from jaxmu.report._write import write_dir_atomically

KIND = "combined"
"""``combined["kind"]``: tells a combined study from a single-setting one."""


def _seed_count(study: Mapping) -> int | None:
    """Final-run seeds of a study: ``config["seeds"]`` (a count, or a list of seeds), else
    the most runs any ranked method has; None when there is none."""
    s = study["config"].get("seeds")
    if isinstance(s, numbers.Integral) and not isinstance(s, bool):
        return int(s)
    if isinstance(s, Sequence) and not isinstance(s, str | bytes):
        return len(s)
    counts = [len(m["runs"]) for n, m in study["methods"].items()
              if not is_reference(n, m)]
    return max(counts) if counts else None


def _groups(ranking: Mapping[str, Sequence[Mapping]]) -> dict[str, dict[str, str]]:
    """metric -> method -> its group, from a one-setting ranking (one count of 1 per row)."""
    return {metric: {r["method"]: next(g for g in GROUPS if r[g]) for r in rows}
            for metric, rows in ranking.items()}


def combine_studies(studies: Sequence[Mapping], *, sources: Sequence[str] | None = None
                    ) -> dict[str, Any]:
    """Table 1 over several settings: one study dict per (dataset, architecture).

    The ranking is recomputed from every study's per-seed final runs at once with
    :func:`jaxmu.report.ranking_rows` and :func:`jaxmu.report.study_ranking`
    (what :func:`jaxmu.sweep.run_benchmark` does for one setting): per setting, each method's
    seed mean is clustered into G1/G2/G3 (F: fewer usable runs than seeds), and the table
    counts those memberships over the settings. The settings' seed count is their common
    ``config["seeds"]``; when they differ, each setting needs as many usable runs as the
    most any method has there (the same for :func:`run_benchmark` studies, whose methods
    all have ``seeds`` runs).

    Args:
        studies: study dicts as read from ``study.json`` (see
            :func:`jaxmu.report.validate_study`), at least one, distinct (dataset, model).
        sources: optional path of each study's ``study.json``, used in error messages and
            by :func:`write_combined_report` to link each setting's report.

    Returns:
        ``{"kind": "combined", "seeds", "ranking": {"retdev": [...], "indisc": [...]},
        "settings": [...]}``; ``ranking`` rows are ``{"method", "G1", "G2", "G3", "F",
        "rank"}`` as in a study, ``seeds`` is what the ranking needed per setting (None: the
        most runs per setting), and each setting is ``{"setting", "dataset", "model",
        "source", "methods", "references", "seeds", "search_seeds", "trials", "groups"}``
        with ``groups`` = metric -> method -> "G1" | "G2" | "G3" | "F" in that setting.

    Raises:
        ValueError: one line: no study, a bad study (named by its source or index), a
            duplicate setting, or ``sources`` of the wrong length.

    References:
        Cadet et al., Deep Unlearn (2024) Table 1; docs/evaluation.md#ranking.
    """
    studies = list(studies)
    if not studies:
        raise ValueError("studies: need at least one study, got none")
    if sources is None:
        labels = [f"studies[{i}]" for i in range(len(studies))]
    else:
        labels = [str(s) for s in sources]
        if len(labels) != len(studies):
            raise ValueError(f"sources: expected {len(studies)} paths (one per study), "
                             f"got {len(labels)}")
    seen: dict[Any, str] = {}
    for label, study in zip(labels, studies, strict=True):
        try:
            validate_study(study)
        except ValueError as e:
            raise ValueError(f"{label}: {e}") from None
        key, name = (study["dataset"], study["model"]), setting_name(study)
        if key in seen:
            raise ValueError(f"duplicate setting (dataset {key[0]!r}, model {key[1]!r}): "
                             f"{seen[key]} and {label}")
        if name in seen:
            raise ValueError(f"settings of {seen[name]} and {label} share the label {name!r}")
        seen[key] = seen[name] = label

    counts = {_seed_count(s) for s in studies}
    seeds = counts.pop() if len(counts) == 1 else None
    ranking = study_ranking([row for s in studies for row in ranking_rows(s)], seeds)
    settings = []
    for i, study in enumerate(studies):
        config = study["config"]
        settings.append({
            "setting": setting_name(study), "dataset": study["dataset"],
            "model": study["model"], "source": None if sources is None else labels[i],
            "methods": [m for m, v in study["methods"].items() if not is_reference(m, v)],
            "references": [m for m, v in study["methods"].items() if is_reference(m, v)],
            "seeds": _seed_count(study),
            "search_seeds": config.get("search_seeds"), "trials": config.get("trials"),
            "groups": _groups(study_ranking(ranking_rows(study), seeds))})
    return {"kind": KIND, "seeds": seeds, "ranking": ranking, "settings": settings}


def validate_combined(combined: Any) -> None:
    """Checks the dict of :func:`combine_studies`.

    Raises:
        ValueError: one line naming the first missing or bad key.
    """
    if not isinstance(combined, Mapping):
        raise ValueError(f"combined: expected a mapping, got {type(combined).__name__}")
    if combined.get("kind") != KIND:
        raise ValueError(f"combined['kind']: expected {KIND!r} (from combine_studies), "
                         f"got {combined.get('kind')!r}")
    settings = combined.get("settings")
    if not isinstance(settings, Sequence) or isinstance(settings, str) or not settings:
        raise ValueError("combined['settings']: expected a non-empty list")
    for i, s in enumerate(settings):
        p = f"combined['settings'][{i}]"
        if not isinstance(s, Mapping):
            raise ValueError(f"{p}: expected a mapping, got {type(s).__name__}")
        for key in ("setting", "dataset", "model"):
            if not isinstance(s.get(key), str) or not s[key]:
                raise ValueError(f"{p}[{key!r}]: expected a non-empty string, "
                                 f"got {s.get(key)!r}")
        if not isinstance(s.get("groups", {}), Mapping):
            raise ValueError(f"{p}['groups']: expected a mapping")
    validate_ranking(combined.get("ranking"), "combined['ranking']")
    json_safe(combined, "combined")


def _report_link(source: str | None, out_dir: Path) -> str:
    """A link from ``out_dir`` to the setting's report (else its study.json); "–" if none."""
    if not source:
        return DASH
    study_json = Path(os.path.abspath(source))
    report = study_json.parent / "report" / "report.md"
    target = report if report.is_file() else study_json
    rel = os.path.relpath(target, os.path.abspath(out_dir)).replace(os.sep, "/")
    return f"[{target.name}]({rel})"


def combined_markdown(combined: Mapping, figures: set[str], out_dir: Path) -> str:
    """The text of the combined report.md; ``figures`` names the PNGs next to it."""
    settings = combined["settings"]
    ranking = combined.get("ranking") or {}
    methods = sorted({m for s in settings for m in s["methods"]})
    seeds = combined.get("seeds")
    need = (f"fewer usable runs than the {seeds} final-run seeds" if seeds is not None else
            "fewer usable runs than the most runs any method has in that setting")
    parts = [
        f"# jaxmu benchmark report: Table 1 over {len(settings)} settings",
        f"{len(methods)} methods ranked over {len(settings)} (dataset, architecture) "
        "settings. In each setting, a method's RetDev (lower is better) and test "
        "indiscernibility (higher is better), averaged over its final-run seeds, are "
        "clustered into performance groups G1/G2/G3 (Ward linkage, best first); F: "
        f"{need}. Table 1 counts each method's memberships over the settings and ranks by "
        "the G1, G2, G3 counts, then fewest F (equal counts share a rank). Data: "
        "[results.json](results.json).",
        "## Table 1. Ranking over settings",
        ranking_table_markdown(ranking),
        "![Ranking](ranking.png)" if "ranking.png" in figures else "",
        "## Settings",
        md_table(["Setting", "Dataset", "Model", "Methods", "References", "Seeds",
                  "Search seeds", "Trials", "Report"],
                 [[s["setting"], s["dataset"], s["model"], str(len(s.get("methods", []))),
                   ", ".join(s.get("references", [])) or DASH, fmt_value(s.get("seeds")),
                   fmt_value(s.get("search_seeds")), fmt_value(s.get("trials")),
                   _report_link(s.get("source"), out_dir)] for s in settings],
                 ["l", "l", "l", "r", "l", "r", "l", "r", "l"]),
    ]
    order = [r["method"] for r in sorted_ranking(ranking.get("retdev"))]
    order += [m for m in methods if m not in order]
    if order:
        rows = []
        for m in order:
            row = [m]
            for s in settings:
                g = [(s.get("groups") or {}).get(k, {}).get(m) for k in RANKING_TITLES]
                row.append(DASH if g == [None] * len(g) else
                           " / ".join(DASH if x is None else x for x in g))
            rows.append(row)
        parts += ["## Groups per setting",
                  "Each method's group in each setting: RetDev / Indisc (the memberships "
                  "Table 1 counts); \u2013: not in that setting.",
                  md_table(["Method", *(s["setting"] for s in settings)], rows,
                           ["l"] * (len(settings) + 1))]
    return "\n\n".join(p for p in parts if p) + "\n"


def write_combined_report(combined: Mapping, out_dir: str | os.PathLike) -> Path:
    """Writes ``report.md`` (Table 1 over the settings, the settings with their method and
    seed counts and links to their reports, each method's group per setting),
    ``ranking.png`` and ``results.json`` (the combined dict, NaN as null) into ``out_dir``.

    Like :func:`jaxmu.report.write_report`: validated first (nothing written on a bad
    input); the files are built in a temporary sibling directory and moved in with
    ``os.replace``, report.md last, so a new ``out_dir`` appears in one rename and a reader
    never sees a half-written file; a stale ``ranking.png`` is removed.

    Args:
        combined: the dict of :func:`combine_studies`.
        out_dir: the report directory; its parents are created.

    Returns:
        The path of report.md.

    Raises:
        ValueError: one line naming the bad key, or ``out_dir`` being an existing file.
    """
    validate_combined(combined)
    payload = json.dumps(json_safe(combined, "combined"), indent=2, allow_nan=False) + "\n"

    def build(tmp: Path) -> tuple[list[str], list[str]]:
        figures = {"ranking.png"} if _plots.ranking_png(combined, tmp / "ranking.png") else set()
        (tmp / "results.json").write_text(payload, encoding="utf-8")
        (tmp / "report.md").write_text(combined_markdown(combined, figures, Path(out_dir)),
                                       encoding="utf-8")
        return [*sorted(figures), "results.json", "report.md"], (
            [] if figures else ["ranking.png"])

    return write_dir_atomically(out_dir, build) / "report.md"
