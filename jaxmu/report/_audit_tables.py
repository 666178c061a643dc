"""Markdown tables of a study's audits: one table per audit, one row per method.

A study run with audits (``jaxmu.sweep.run_benchmark(..., audits=...)``) holds
``study["audits"]``: method -> the report of :func:`jaxmu.audits.run_audits` (without its
per-example arrays). Every method was audited on the same design population, so the rows
of a table are directly comparable, and the references ``original`` (nothing unlearned)
and ``retrain`` (exact unlearning, against an independent retrained population) anchor
each table.

References:
    Georgiev et al. 2024 (KLoM); Zarifzadeh et al., ICML 2024 (RMIA); Deep Unlearn (paper
    004) U-LiRA.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxmu.report._format import (
    DASH,
    Stat,
    degenerate_footnote,
    degenerate_reasons,
    fmt,
    fmt_ci,
    fmt_count,
    marked,
    md_table,
)
from jaxmu.report._validate import as_float

ROLES = (("forget", "Forget"), ("retain", "Retain"), ("unseen", "Unseen"))
CURVE_ATTACKS = (("ulira", "U-LiRA"), ("urmia", "U-RMIA"))
PLOTS = (("roc", "ROC"), ("klom", "KLoM margins"), ("relearn", "Relearning"),
         ("shadow_curve", "Shadow curve"))


def _with_footnote(table: str, footnote: str) -> str:
    return table + "\n\n" + footnote if footnote else table


def _entries(study: Mapping, audit: str) -> list[tuple[str, Mapping]]:
    """(method, its report of ``audit``) for the methods that have it, in study order."""
    return [(name, rep[audit]) for name, rep in (study.get("audits") or {}).items()
            if isinstance(rep, Mapping) and isinstance(rep.get(audit), Mapping)]


def _stat(rep: Mapping, key: str) -> Stat:
    ci = rep.get(f"{key}_ci") or (None, None)
    return Stat(as_float(rep.get(key)), as_float(ci[0]), as_float(ci[1]), None)


def _ci_cell(rep: Mapping, key: str, digits: int = 3) -> str:
    return fmt_ci(_stat(rep, key), digits)


def _table(study: Mapping, header: list[str], rows: list[list[str]], names: list[str],
           align: list[str] | None = None) -> str:
    if not rows:
        return ""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    return _with_footnote(md_table(header, rows, align),
                          degenerate_footnote(names, degenerate_reasons(study)))


def klom_table_markdown(study: Mapping) -> str:
    """KLoM per method: the 95th percentile over the examples of each role (forget, retain,
    unseen) with its 95% interval, and next to it the mean of the permutation null and the
    one-sided p-value. "–" where a value is missing (e.g. no null without permutations);
    "" when no method has a KLoM report. Degenerate methods are marked with a dagger."""
    reasons = degenerate_reasons(study)
    rows, names = [], []
    for name, k in _entries(study, "klom"):
        row = [marked(name, reasons)]
        for role, _ in ROLES:
            null, p = as_float(k.get(f"{role}_p95_null")), as_float(k.get(f"{role}_p95_pvalue"))
            row += [_ci_cell(k, f"{role}_p95"),
                    DASH if math.isnan(null) else f"{fmt(null)} (p = {fmt(p)})"]
        rows.append(row)
        names.append(name)
    header = ["Method"]
    for _, label in ROLES:
        header += [f"{label} P95 [95% CI]", "null (p)"]
    return _table(study, header, rows, names)


def rmia_table_markdown(study: Mapping) -> str:
    """RMIA per method: U-RMIA (forgotten vs never-seen on the target runs) accuracy at
    RMIA's threshold, AUC and TPR at 1% FPR, and the membership RMIA AUC on the target
    originals, each with its 95% interval; "" when no method has an RMIA report."""
    reasons = degenerate_reasons(study)
    rows, names = [], []
    for name, r in _entries(study, "rmia"):
        u, m = r.get("unlearning") or {}, r.get("membership") or {}
        rows.append([marked(name, reasons), _ci_cell(u, "urmia_accuracy"), _ci_cell(u, "auc"),
                     _ci_cell(u, "tpr_at_1fpr"), _ci_cell(m, "auc")])
        names.append(name)
    return _table(study, ["Method", "U-RMIA accuracy [95% CI]", "U-RMIA AUC",
                          "U-RMIA TPR@1%FPR", "RMIA AUC (membership)"], rows, names)


def _steps_cell(s: Any, budget: Any) -> str:
    """A median of steps to recover with its interval; None (beyond the budget) as "> B"."""
    if not isinstance(s, Mapping):
        return DASH
    beyond = f"> {fmt_count(budget)}"

    def one(x: Any) -> str:
        return beyond if x is None else fmt_count(x)

    ci = s.get("ci")
    text = one(s.get("value"))
    return f"{text} [{one(ci[0])}, {one(ci[1])}]" if ci else text


def _fraction_cell(f: Any) -> str:
    if not isinstance(f, Mapping):
        return DASH
    ci = f.get("ci") or (None, None)
    return fmt_ci(Stat(as_float(f.get("value")), as_float(ci[0]), as_float(ci[1]), None), 2)


def relearn_table_markdown(study: Mapping) -> str:
    """The relearning attack per method: median steps until the forget accuracy is back at
    the original's (with its 95% interval; "> B" when beyond the budget of B steps) and the
    fraction of runs that get there within the budget, for the method's runs and for the
    retrained runs relearned the same way, and the original's forget accuracy (the target);
    "" when no method has a relearning report."""
    reasons = degenerate_reasons(study)
    rows, names = [], []
    for name, r in _entries(study, "relearn"):
        u, o = r.get("unlearned") or {}, r.get("retrained") or {}
        budget = r.get("budget", (r.get("config") or {}).get("steps"))
        rows.append([marked(name, reasons),
                     _steps_cell(u.get("median_steps_to_recover"), budget),
                     _fraction_cell(u.get("recovered_fraction")),
                     _steps_cell(o.get("median_steps_to_recover"), budget),
                     _fraction_cell(o.get("recovered_fraction")),
                     fmt(r.get("original_forget_acc"))])
        names.append(name)
    return _table(study, ["Method", "Steps to recover [95% CI]", "Recovered",
                          "Retrained: steps", "Retrained: recovered",
                          "Original forget acc."], rows, names)


def shadow_curve_table_markdown(study: Mapping) -> str:
    """Attack power against the number of shadow originals: per method, one row for U-LiRA
    and one for U-RMIA, the AUC for each shadow count (mean over the random draws of shadow
    subsets, with the 2.5-97.5% range over draws); "–" where an attack could not run (e.g.
    U-LiRA needs 2 shadows); "" when no method has a shadow curve."""
    reasons = degenerate_reasons(study)
    entries = _entries(study, "shadow-curve")
    counts = sorted({int(c) for _, sc in entries for a, _ in CURVE_ATTACKS
                     for c in ((sc.get("table") or {}).get(a) or {}).get("shadows") or []})
    rows, names = [], []
    for name, sc in entries:
        for attack, label in CURVE_ATTACKS:
            t = (sc.get("table") or {}).get(attack)
            if not isinstance(t, Mapping):
                continue
            by_count = {int(c): i for i, c in enumerate(t.get("shadows") or [])}

            def at(key: str, c: int, t=t, by_count=by_count) -> float:
                i = by_count.get(c)
                vals = t.get(key) or []
                return as_float(vals[i]) if i is not None and i < len(vals) else math.nan

            rows.append([marked(name, reasons), label,
                         *(fmt_ci(Stat(at("auc", c), at("auc_lo", c), at("auc_hi", c), None), 2)
                           for c in counts)])
            names.append(name)
    header = ["Method", "Attack", *(f"{c} shadow{'s' if c != 1 else ''}" for c in counts)]
    return _table(study, header, rows, names, ["l", "l"] + ["r"] * len(counts))


def audit_ulira_table_markdown(study: Mapping) -> str:
    """U-LiRA on the audit population per method: accuracy at threshold 0, AUC and TPR at
    1% FPR with their 95% intervals; "" when no method has one."""
    reasons = degenerate_reasons(study)
    rows, names = [], []
    for name, u in _entries(study, "ulira"):
        rows.append([marked(name, reasons), _ci_cell(u, "ulira_accuracy"), _ci_cell(u, "auc"),
                     _ci_cell(u, "tpr_at_1fpr")])
        names.append(name)
    return _table(study, ["Method", "U-LiRA accuracy [95% CI]", "AUC", "TPR@1%FPR"], rows,
                  names)


def audit_plots_markdown(study: Mapping, report_dir: str | os.PathLike | None = None) -> str:
    """Links to each method's audit plots (ROC curves with bands, KLoM margin histograms,
    relearning curves, attack power vs shadows), relative to ``report_dir`` when given;
    "" when no method has plots."""
    reasons = degenerate_reasons(study)
    rows, names = [], []
    for name, rep in (study.get("audits") or {}).items():
        plots = rep.get("plots") if isinstance(rep, Mapping) else None
        if not isinstance(plots, Mapping) or not plots:
            continue
        cells = []
        for key, label in PLOTS:
            p = plots.get(key)
            if p is None:
                cells.append(DASH)
                continue
            link = str(p)
            if report_dir is not None:
                link = os.path.relpath(Path(p).resolve(), Path(report_dir).resolve())
            cells.append(f"[{label}]({Path(link).as_posix()})")
        rows.append([marked(name, reasons), *cells])
        names.append(name)
    return _table(study, ["Method", *(label for _, label in PLOTS)], rows, names,
                  ["l"] * (1 + len(PLOTS)))


def _population_text(study: Mapping) -> str:
    """One paragraph on the shared design population (from the first report)."""
    audits = {n: r for n, r in (study.get("audits") or {}).items() if isinstance(r, Mapping)}
    pop = next((r["population"] for r in audits.values()
                if isinstance(r.get("population"), Mapping)), None)
    if pop is None:
        return ""
    text = (f"All methods are audited on one design population: "
            f"{fmt_count(pop.get('num_shadows'))} shadow originals, each trained on a random "
            f"half of the {fmt_count(pop.get('candidates'))} train candidates, with "
            f"{fmt_count(pop.get('num_forget_sets'))} forget sets of "
            f"{fmt_count(pop.get('forget_size'))} examples each; the runs of "
            f"{fmt_count(pop.get('num_targets'))} held-out target originals are attacked, the "
            "others serve as shadows and references. The originals and the retrained (oracle) "
            "population are the same models for every method")
    built = {who: [n for n, r in audits.items()
                   if not ((r.get("population") or {}).get("from_store") or {}).get(who, True)]
             for who in ("originals", "oracle")}
    def who_built(names: list[str]) -> str:
        return ", ".join(f"`{n}`" for n in names)

    if built["originals"] and built["originals"] == built["oracle"]:
        said = [f"both built while auditing {who_built(built['oracle'])}"]
    else:
        said = [f"{who} built while auditing {who_built(names)}"
                for who, names in built.items() if names]
    text += (" (" + "; ".join(said) + "; every other method read them from the population "
             "store)." if said else " (all read from the population store).")
    return text + (" `original` (nothing unlearned) and `retrain` (exact unlearning) are the "
                   "references. Full reports, with per-example values: "
                   "`audits/<method>.json`.")


def audits_section_markdown(study: Mapping, figures: set[str] | None = None,
                            report_dir: str | os.PathLike | None = None) -> str:
    """The report's "Audits" section: the shared population, then one table per audit the
    study ran (U-LiRA, KLoM, RMIA / U-RMIA, relearning, shadow curve), each under a one-line
    reading guide, the shadow-curve figure when ``figures`` holds
    ``audit_shadow_curve.png``, and links to the per-method plots; "" without audits."""
    if not study.get("audits"):
        return ""
    figures = figures or set()
    parts = ["## Audits", _population_text(study)]
    table = audit_ulira_table_markdown(study)
    if table:
        parts += ["### U-LiRA",
                  "Balanced accuracy of the per-example likelihood-ratio attack telling "
                  "forgotten examples of the target runs from the same examples in runs that "
                  "never saw them (0.5 = indistinguishable: perfect unlearning), with AUC and "
                  "TPR at 1% FPR; 95% CIs over target runs.", table]
    table = klom_table_markdown(study)
    if table:
        parts += ["### KLoM",
                  "Per example, the KL divergence between its margin distributions (true-class "
                  "logit minus the largest other) in the method's runs and in an independent "
                  "retrained population; P95 over the examples each run forgot, kept (retain) "
                  "or never saw (unseen), 95% jackknife CI over originals. 0 = identical "
                  "margins, but two finite retrained populations also score above 0: read "
                  "each value against its null (runs of the two populations swapped pairwise "
                  "at random; p small = distinguishable from retraining).", table]
    table = rmia_table_markdown(study)
    if table:
        parts += ["### RMIA and U-RMIA",
                  "U-RMIA: RMIA's relative likelihood-ratio attack telling forgotten examples "
                  "of the target runs from never-seen ones, accuracy at RMIA's threshold "
                  "(0.5 = perfect unlearning) and AUC (0.5 = chance); RMIA AUC (membership): "
                  "the same attack on members vs non-members of the target originals, the "
                  "attack's power before unlearning (the same originals in every row). 95% "
                  "CIs resample originals.", table]
    table = relearn_table_markdown(study)
    if table:
        cfg = next((r.get("config") for _, r in _entries(study, "relearn")
                    if isinstance(r.get("config"), Mapping)), {}) or {}
        how = ("on the retain set" if cfg.get("variant", "retain") == "retain" else
               "on a small part of the forget set")
        parts += ["### Relearning attack",
                  f"Each target run fine-tuned {how} ({fmt_count(cfg.get('steps'))} SGD "
                  f"steps, lr {cfg.get('lr', DASH)}): median steps until its forget accuracy "
                  "is back at its original's, and the fraction of runs that get there; "
                  "retrained runs relearned the same way are the reference (recovering much "
                  "faster than them means the forgotten knowledge is still there).", table]
    table = shadow_curve_table_markdown(study)
    if table:
        draws = next((sc.get("draws") for _, sc in _entries(study, "shadow-curve")), None)
        parts += ["### Attack power vs number of shadow models",
                  f"AUC of U-LiRA and U-RMIA recomputed with random subsets of the shadow "
                  f"originals (mean over {fmt_count(draws)} draws per count, 2.5-97.5% range "
                  "over draws; nothing retrained): where the AUC stops changing, more shadow "
                  "models would not change the verdict. 0.5 = chance.", table]
        if "audit_shadow_curve.png" in figures:
            parts.append("![Attack AUC vs shadow models](audit_shadow_curve.png)")
    table = audit_plots_markdown(study, report_dir)
    if table:
        parts += ["### Audit plots per method", table]
    return "\n\n".join(p for p in parts if p)
