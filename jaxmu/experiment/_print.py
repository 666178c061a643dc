"""Text output of experiments: the run table, population summaries, scenario tables and
the methods table (what the CLIs print; each function returns the text)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jaxmu.experiment._task import AUDIT_EVALS
from jaxmu.records import SCENARIO_KINDS, RunRecord, ScenarioRecord

MISSING = "–"  # en dash: a metric that is not in the record


def _fmt(v: Any, spec: str = "6.3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return f"{MISSING:>{len(format(0.0, spec))}}"
    return format(v, spec)


def _as_record(record: RunRecord | Mapping[str, Any]) -> RunRecord:
    return record if isinstance(record, RunRecord) else RunRecord.from_dict(record)


def format_table(record: RunRecord | Mapping[str, Any]) -> str:
    """Accuracies of O, R and U per split, test MIA, retention and timing as a text table."""
    r = _as_record(record)
    m, t = r.metrics, r.timings
    lines = [f"{'model':<12}{'RA':>8}{'FA':>8}{'VA':>8}{'TA':>8}{'T-MIA':>8}{'time s':>9}"]
    for who, prefix in (("original", "original_"), ("retrain", "retrained_"),
                        ("unlearned", "")):
        row = [m.get(f"{prefix}{k}") for k in ("ra", "fa", "va", "ta", "mia_test")]
        lines.append(f"{who:<12}" + "".join(f"{_fmt(v):>8}" for v in row)
                     + f"{t[f'{who}_s']:9.2f}")
    lines.append(f"retention vs R: RR {_fmt(m.get('rr'))}  FR {_fmt(m.get('fr'))}  "
                 f"TR {_fmt(m.get('tr'))}  RetDev {_fmt(m.get('retdev'))}  "
                 f"indiscernibility {_fmt(m.get('indisc_test'))}")
    lines.append(f"run time {t['unlearned_s']:.3f} s (compile {t['compile_s']:.2f} s excluded), "
                 f"RTE = T_retrain / T_method = {_fmt(m.get('rte'), '.2f')}x")
    return "\n".join(lines)


def format_run(record: RunRecord | Mapping[str, Any]) -> str:
    """What the experiment CLI prints for one run: a header, :func:`format_table`, the
    population summary (if any) and the file written."""
    r = _as_record(record)
    lines = [f"{r.experiment}: method {r.method}  model {r.model}  seed {r.seed}  "
             f"splits {r.splits}", format_table(r)]
    if r.eval not in (None, "single"):
        lines.append(population_summary(r.eval, r.evaluation))
    if r.path:
        lines.append(f"wrote {r.path}")
    return "\n".join(lines)


def format_scenario(res: ScenarioRecord | Mapping[str, Any]) -> str:
    """The table of a deletion scenario (:func:`jaxmu.experiment.run_scenario`): a
    :class:`~jaxmu.records.ScenarioRecord`, or its file's dict (checked by
    :meth:`~jaxmu.records.ScenarioRecord.from_dict`; ``_path``, if any, is where it was
    written). A NaN number prints as ``MISSING``."""
    if isinstance(res, ScenarioRecord):
        rec = res
    else:
        rec = ScenarioRecord.from_dict(res)
        rec.path = res.get("_path")
    rows = rec.table
    keys = [k for k in rows[0] if k != "method"] if rows else []
    lines = [f"{rec.experiment}: deletion {SCENARIO_KINDS[rec.kind]} ({', '.join(rec.methods)})",
             " ".join(f"{k:>10}" for k in ["method", *keys])]
    for r in rows:
        lines.append(" ".join(f"{_fmt(r[k]) if isinstance(r[k], float) else str(r[k]):>10}"
                              for k in ["method", *keys]))
    if rec.crossover is not None:
        lines.append("crossover (smallest ratio where retraining is cheaper): "
                     + ", ".join(f"{k}: {v}" for k, v in rec.crossover.items()))
    if rec.path:
        lines.append(f"wrote {rec.path}")
    return "\n".join(lines)


def _ci_text(ci) -> str:
    return f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def population_summary(kind: str, rep: Mapping[str, Any]) -> str:
    """One or more lines summarising the population evaluation ``kind`` (``fscore``,
    ``ulira`` or an audit) of a run."""
    if kind in AUDIT_EVALS:
        return "\n".join(audit_summary_lines(rep))
    if kind == "fscore":
        f = rep
        ra, ta = f["unlearned_ra"], f["unlearned_ta"]
        fci, sci = (_ci_text(f.get(k)) for k in ("forget_quality_ci", "score_ci"))
        return (f"competition F-score over {f['num_models']}+{f['num_models']} models: "
                f"forget quality F = {f['forget_quality']:.4f}{fci}, score = "
                f"{f['score']:.4f}{sci} "
                f"(RA_U {ra['value']:.3f} [{ra['ci'][0]:.3f}, {ra['ci'][1]:.3f}], "
                f"TA_U {ta['value']:.3f} [{ta['ci'][0]:.3f}, {ta['ci'][1]:.3f}])")
    u = rep
    ci = u.get("ulira_accuracy_ci")
    ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    mode = ("offline, " if u.get("variant") == "offline" else "") + (
        "flip, " if u.get("flip") else "")
    return (f"U-LiRA ({mode}{u['num_shadows']} shadows x {u['num_forget_sets']} forget sets, "
            f"{u['num_targets']} held-out targets): accuracy {u['ulira_accuracy']:.3f}{ci_s} "
            f"(0.5 = perfect unlearning), best-threshold {u['ulira_best_acc']:.3f}, "
            f"AUC {u['auc']:.3f}, TPR@1%FPR {u['tpr_at_1fpr']:.3f}")


def methods_table() -> str:
    """The README's methods table (Markdown), rendered from the registry: one row per
    ``list_methods()`` name with its one-line recipe (a preset's own) and its source
    (``paper (section)``). ``python -m experiments.digits --list-methods markdown`` prints it;
    ``tests/test_readme.py`` checks that README.md holds exactly this."""
    from jaxmu.methods import get_method, list_methods

    def cell(text: str) -> str:  # literal text inside a Markdown table cell
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")

    lines = ["| method | recipe | source |", "|---|---|---|"]
    for n in list_methods():
        m = get_method(n)
        sec = (f"[{m.section.split('#')[-1]}]({m.section})" if m.section.startswith("docs/")
               else cell(m.section))  # a link into the repo's docs renders as one
        lines.append(f"| `{n}` | {cell(m.summary)} | {cell(m.paper)} ({sec}) |")
    return "\n".join(lines)


def methods_list() -> str:
    """One line per registered method: its name and one-line recipe."""
    from jaxmu.methods import get_method, list_methods

    return "\n".join(f"{n:<20} {get_method(n).summary}" for n in list_methods())


def _ci(rep: Mapping[str, Any], key: str, fmt: str = ".3f") -> str:
    ci = rep.get(f"{key}_ci")
    v = rep.get(key)
    if v is None:
        return "n/a"
    return f"{v:{fmt}}" + (f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else "")


def audit_summary_lines(rep: Mapping[str, Any]) -> list[str]:
    """One printed line per audit (and one for the population)."""
    pop = rep["population"]
    src = ", ".join(f"{k} {'from the store' if v else 'built'}"
                    for k, v in pop["from_store"].items())
    lines = [f"audit population: {pop['num_shadows']} shadow originals x "
             f"{pop['num_forget_sets']} forget sets ({pop['forget_size']} examples each), "
             f"{pop['num_targets']} held-out targets; {src} ({pop['seconds']:.1f} s)"]
    if "ulira" in rep:
        u = rep["ulira"]
        lines.append(f"U-LiRA       accuracy {_ci(u, 'ulira_accuracy')} (0.5 = perfect), "
                     f"AUC {_ci(u, 'auc')}, TPR@1%FPR {_ci(u, 'tpr_at_1fpr')}")
    if "klom" in rep:
        k = rep["klom"]
        null = k.get("forget_p95_null")
        extra = (f", null {null:.3f}, p = {k['forget_p95_pvalue']:.3f}" if null is not None
                 else "")
        lines.append(f"KLoM         forget P95 {_ci(k, 'forget_p95')}{extra}; retain P95 "
                     f"{_ci(k, 'retain_p95')}; unseen P95 {_ci(k, 'unseen_p95')} "
                     f"(vs retrained runs; 0 = identical margins)")
    if "rmia" in rep:
        r = rep["rmia"]
        m, u = r["membership"], r["unlearning"]
        mode = ("offline" if not r["online"] else "online") + f", {r['references']} refs"
        lines.append(f"U-RMIA ({mode}) accuracy {_ci(u, 'urmia_accuracy')} (0.5 = perfect), "
                     f"AUC {_ci(u, 'auc')}, TPR@1%FPR {_ci(u, 'tpr_at_1fpr')}; "
                     f"RMIA on the originals: AUC {_ci(m, 'auc')}")
    if "relearn" in rep:
        r = rep["relearn"]
        u, o = r.get("unlearned", {}), r.get("retrained", {})
        lines.append(f"relearning   ({r['variant']}, {r['config']['steps']} steps, "
                     f"{r['runs']} runs): steps to the original's forget accuracy "
                     f"{_steps(u)} (retrained: {_steps(o)}); recovered "
                     f"{_frac(u)} (retrained {_frac(o)})")
    if "shadow-curve" in rep:
        t = rep["shadow-curve"]["table"]
        parts = []
        for name in ("ulira", "urmia", "lira", "rmia"):
            v = t.get(name)
            if v:
                parts.append(f"{name} " + " ".join(
                    f"{s}:{x:.2f}" for s, x in zip(v["shadows"], v["auc"], strict=True)))
        lines.append("shadow curve AUC by shadow originals: " + "; ".join(parts))
    if rep.get("plots"):
        lines.append("plots: " + ", ".join(rep["plots"].values()))
    return lines


def _steps(r: dict[str, Any]) -> str:
    m = r.get("median_steps_to_recover") or {}
    v, ci = m.get("value"), m.get("ci")
    if v is None:
        return "beyond the budget"
    hi = "beyond" if ci and ci[1] is None else (f"{ci[1]:g}" if ci else None)
    return f"{v:g}" + (f" [{ci[0]:g}, {hi}]" if ci and ci[0] is not None else "")


def _frac(r: dict[str, Any]) -> str:
    f = r.get("recovered_fraction") or {}
    return "n/a" if f.get("value") is None else f"{f['value']:.2f}"
