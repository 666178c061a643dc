"""``write_report``: a study dict -> report.md, results.csv, results.json and PNG figures.

References:
    Cadet et al., Deep Unlearn (2024) Tables 1-2; docs/evaluation.md (metrics, U-LiRA,
    ranking: #ranking), docs/methods.md#search (the hyperparameter search).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jaxmu.report import _plots, _tables
from jaxmu.report._audit_tables import audits_section_markdown
from jaxmu.report._format import (
    DEGENERATE_MARK,
    degenerate_reasons,
    is_failed,
    md_table,
)
from jaxmu.report._recipes import recipes_markdown
from jaxmu.report._validate import json_safe, validate_study

CSV_COLUMNS = ("method", "seed", "usable", "metric", "value", "ci_low", "ci_high", "n")
# (file name, drawing function); each function returns False when it has no data.
FIGURES: tuple[tuple[str, Callable[[Mapping, Path], bool]], ...] = (
    ("ranking.png", _plots.ranking_png),
    ("rte.png", _plots.rte_png),
    ("accuracy.png", _plots.accuracy_png),
    ("mia_hist.png", _plots.mia_hist_png),
    ("ulira_hist.png", _plots.ulira_hist_png),
    ("audit_shadow_curve.png", _plots.audit_shadow_curve_png),
)


def _num(x: Any) -> str:
    """A CSV number: shortest round-trip repr; empty for None and NaN."""
    if x is None:
        return ""
    f = float(x)
    return "" if math.isnan(f) else repr(f)


def csv_rows(study: Mapping) -> list[dict[str, str]]:
    """Long-format rows: every run metric (``seed`` an integer), then ``seed="summary"`` rows.

    Methods in study order, runs in list order, metrics sorted by name. Run rows leave
    ``ci_low``, ``ci_high`` and ``n`` empty; summary rows leave ``usable`` empty.
    """
    rows = []
    for name, m in study["methods"].items():
        for r in m["runs"]:
            for metric in sorted(r["metrics"]):
                rows.append({"method": name, "seed": str(int(r["seed"])),
                             "usable": str(bool(r["usable"])).lower(), "metric": metric,
                             "value": _num(r["metrics"][metric]), "ci_low": "",
                             "ci_high": "", "n": ""})
        for metric in sorted(m["summary"]):
            s = m["summary"][metric]
            ci = (None, None) if s.get("ci") is None else s["ci"]
            rows.append({"method": name, "seed": "summary", "usable": "", "metric": metric,
                         "value": _num(s.get("value")), "ci_low": _num(ci[0]),
                         "ci_high": _num(ci[1]),
                         "n": "" if s.get("n") is None else str(int(s["n"]))})
    return rows


def _csv_text(study: Mapping) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(study))
    return buf.getvalue()


def _img(name: str, alt: str, figures: set[str]) -> str:
    return f"![{alt}]({name})" if name in figures else ""


def report_markdown(study: Mapping, figures: set[str],
                    report_dir: str | os.PathLike | None = None) -> str:
    """The text of report.md; ``figures`` names the PNGs that exist next to it, and links
    to the per-method audit plots are relative to ``report_dir`` (the directory report.md
    lands in) when given."""
    methods = study["methods"]
    n_failed = sum(1 for m in methods.values() if is_failed(m))
    parts = [
        f"# jaxmu benchmark report: {study['dataset']} / {study['model']}",
        f"{len(methods)} methods ({n_failed} failed: no usable run). Numbers are means over "
        "the usable final-run seeds with 95% confidence intervals as `value [low, high]`; "
        "\u2013 marks a missing value. Data: [results.csv](results.csv) (long format), "
        "[results.json](results.json) (the whole study).",
        *_degenerate_section(study),
        "## Budget and provenance",
        _tables.budget_markdown(study),
        "## Table 1. Ranking",
        _tables.ranking_table_markdown(study.get("ranking"), degenerate_reasons(study)),
        _img("ranking.png", "Ranking", figures),
        "## Table 2. Run-time efficiency",
        "RTE = T_retrain / T_method (above 1: faster than retraining from scratch).",
        _tables.rte_table_markdown(study),
        _img("rte.png", "Run-time efficiency", figures),
        "## Metrics per method",
        "RA/FA/VA/TA: retain/forget/validation/test accuracy. RetDev: retention deviation "
        "from the retrained model (lower is better, 0 = matches it). Indisc (test): "
        "indiscernibility of forget from test examples (1 = indistinguishable). MIA (val): "
        "loss-attack accuracy of forget vs validation examples (0.5 = chance).",
        _tables.metrics_table_markdown(study),
        _img("accuracy.png", "Accuracies", figures),
        "## Chosen hyperparameters",
        "Exact commands for every cell: [RECIPES.md](RECIPES.md).",
        "Best trial of each method's HP search (trials, search seed, trial number, score "
        "and objective values); floats to 4 significant digits, exact values in "
        "results.json.",
        _tables.hparams_table_markdown(study),
    ]
    if "mia_hist.png" in figures:
        parts += ["## Forget-set losses",
                  "Per-example cross-entropy losses on the forget set (usable runs).",
                  _img("mia_hist.png", "Forget-set losses", figures)]
    if study.get("ulira"):
        parts += ["## U-LiRA",
                  "U-LiRA accuracy: balanced accuracy of the likelihood-ratio attack at "
                  "threshold 0, telling forget examples of the unlearned models from the same "
                  "examples in retrained ones (0.5 = indistinguishable), with its 95% CI over "
                  "target runs. Examples: forget examples with a per-example accuracy (target "
                  "pairs of both classes); examples without one are not counted. Their "
                  "distribution is the histogram below.",
                  _tables.ulira_table_markdown(study),
                  _img("ulira_hist.png", "Per-example U-LiRA accuracy", figures)]
    parts.append(audits_section_markdown(study, figures, report_dir))
    return "\n\n".join(p for p in parts if p) + "\n"


def _degenerate_section(study: Mapping) -> list[str]:
    """The "Degenerate methods" heading, note and table; empty when there are none."""
    reasons = degenerate_reasons(study)
    if not reasons:
        return []
    return ["## Degenerate methods",
            f"Marked {DEGENERATE_MARK} in every table: these methods cannot act on this model "
            "as designed and reduce to a simpler method, so their rows measure that method. "
            "They are ranked like the others.",
            md_table(["Method", "Why"], [[m, why] for m, why in reasons.items()])]


def _results_json(study: Mapping) -> dict[str, Any]:
    """The content of results.json: the (validated) study with NaN as None, plus
    ``"degenerate_methods"``: method -> why it degenerates on the model, from the methods'
    ``"degenerate"`` entries and else their ranking rows (``{}`` when none). It is
    recomputed on every write, so a study read back from results.json gives the same."""
    out = dict(json_safe(study))
    out["degenerate_methods"] = degenerate_reasons(study)
    return out


def _remove_dead_temps(out_dir: Path) -> None:
    """Removes the temporary directories ``.<name>.tmp-<pid>-<host>-<token>`` that writers of
    ``out_dir`` killed on this host left behind (a live writer's are kept)."""
    from jaxmu.io import pid_alive

    host = socket.gethostname()
    for tmp in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        pid, _, rest = tmp.name[len(f".{out_dir.name}.tmp-"):].partition("-")
        if pid.isdigit() and rest.rpartition("-")[0] == host and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def write_report(study: Mapping, out_dir: str | os.PathLike) -> Path:
    """Writes report.md, results.csv, results.json and PNG figures into ``out_dir``.

    The study is validated first; on a bad study nothing is written. All files are built in
    a temporary directory next to ``out_dir`` and then moved in with ``os.replace``
    (report.md last), so a reader never sees a half-written file. A new ``out_dir`` appears
    in one rename; in an existing one, figures of an earlier report that this study does
    not produce (e.g. ``ulira_hist.png``) are removed, other files are left alone.

    Figures (only those with data): ``ranking.png``, ``rte.png``, ``accuracy.png``,
    ``mia_hist.png`` (per-example forget losses), ``ulira_hist.png``,
    ``audit_shadow_curve.png`` (attack AUC vs shadow count of every audited method).

    A study with ``"audits"`` gets an *Audits* section: the shared design population, one
    table per audit (U-LiRA, KLoM, RMIA / U-RMIA, relearning, shadow curve) with one row
    per method and a line on how to read it, and links (relative to ``out_dir``) to each
    method's audit plots; results.json holds the audit reports as stored in the study.

    Methods that degenerate on the model (a ``"degenerate"`` reason in their entry or their
    ranking rows) are listed under *Degenerate methods* and marked with a dagger in every
    table; results.json is the study (NaN as null) plus ``"degenerate_methods"``: method ->
    reason (``{}`` when none).

    Args:
        study: the study dict of ``jaxmu.sweep`` (see :func:`validate_study`).
        out_dir: the report directory; its parents are created.

    Returns:
        The path of report.md.

    Raises:
        ValueError: one line naming the missing or bad key of ``study``, or ``out_dir``
            being an existing file.

    References:
        Cadet et al., Deep Unlearn (2024) Tables 1-2; docs/evaluation.md (metrics, U-LiRA,
        ranking: #ranking), docs/methods.md#search (the hyperparameter search).
    """
    validate_study(study)
    payload = json.dumps(_results_json(study), indent=2, allow_nan=False) + "\n"

    def build(tmp: Path) -> tuple[list[str], list[str]]:
        written = {name for name, draw in FIGURES if draw(study, tmp / name)}
        (tmp / "results.json").write_text(payload, encoding="utf-8")
        (tmp / "results.csv").write_text(_csv_text(study), encoding="utf-8")
        (tmp / "RECIPES.md").write_text(recipes_markdown(study), encoding="utf-8")
        (tmp / "report.md").write_text(report_markdown(study, written, out_dir),
                                       encoding="utf-8")
        names = sorted(written) + ["results.json", "results.csv", "RECIPES.md", "report.md"]
        return names, [name for name, _ in FIGURES if name not in written]

    return write_dir_atomically(out_dir, build) / "report.md"


def write_dir_atomically(out_dir: str | os.PathLike,
                         build: Callable[[Path], tuple[list[str], list[str]]]) -> Path:
    """Builds files in a temporary sibling of ``out_dir`` and moves them in.

    ``build(tmp)`` writes the files into ``tmp`` and returns ``(names, stale)``: the
    names written, in the order to move them (the last one, e.g. report.md, is the one
    readers open, so it lands last), and names of earlier outputs to delete from an existing
    ``out_dir``. A new ``out_dir`` appears in one rename; on any error the temporary
    directory is removed and ``out_dir`` is left as it was.

    Raises:
        ValueError: ``out_dir`` exists and is not a directory.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir: {str(out_dir)!r} exists and is not a directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(out_dir)
    # mkdir (not mkdtemp, which makes it 0o700): a new out_dir gets the usual umask mode.
    tmp = out_dir.parent / (f".{out_dir.name}.tmp-{os.getpid()}-{socket.gethostname()}-"
                            f"{uuid.uuid4().hex[:12]}")
    tmp.mkdir()
    try:
        names, stale = build(tmp)
        if not out_dir.exists():
            os.replace(tmp, out_dir)
            return out_dir
        for name in names[:-1]:
            os.replace(tmp / name, out_dir / name)
        for name in stale:
            (out_dir / name).unlink(missing_ok=True)
        os.replace(tmp / names[-1], out_dir / names[-1])
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir

