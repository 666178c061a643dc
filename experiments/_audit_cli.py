"""The audits of the experiment CLI: ``--eval klom|rmia|relearn|shadow-curve|all``.

All of them (and ``--eval ulira``'s design) share one cached population: shadow originals
on balanced halves of the train candidates, K forget sets each, the method's runs and an
independent exact-unlearning (retrain) population, stored under ``CACHE_DIR/populations``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

AUDIT_EVALS = ("klom", "rmia", "relearn", "shadow-curve", "all")


class AuditUsageError(ValueError):
    """A bad audit option (the CLI exits with code 2)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The audit options (the design reuses --shadows, --forget-sets, --forget-fraction)."""
    g = p.add_argument_group("audits (--eval klom|rmia|relearn|shadow-curve|all, one cached "
                             "population; --shadows / --forget-sets set its design)")
    g.add_argument("--no-cache", action="store_true",
                   help="build every model and population anew (nothing read from or "
                        "written to the cache)")
    g.add_argument("--targets", type=int, default=None,
                   help="held-out target originals (default: shadows // 8, at least 2)")
    g.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap resamples of every audit's intervals (0: none)")
    g.add_argument("--rmia-offline", action="store_true",
                   help="RMIA / U-RMIA with OUT references only (scaling --rmia-a)")
    g.add_argument("--rmia-a", type=float, default=0.3, help="RMIA's offline parameter a")
    g.add_argument("--rmia-references", type=int, default=None,
                   help="reference originals of RMIA / U-RMIA (default: all shadows; the "
                        "paper's setting is 1, 2 or 4)")
    g.add_argument("--relearn-variant", default="retain", choices=("retain", "forget"),
                   help="relearn on the retain set, or on 10%% of the forget set")
    g.add_argument("--relearn-steps", type=int, default=100,
                   help="relearning budget in SGD steps")
    g.add_argument("--relearn-lr", type=float, default=0.01, help="relearning learning rate")
    g.add_argument("--relearn-runs", type=int, default=32,
                   help="target runs relearned (and as many oracle runs)")
    g.add_argument("--shadow-draws", type=int, default=5,
                   help="random shadow subsets per count in the shadow curve")


def audits_of(name: str) -> tuple[str, ...]:
    """The audits an ``--eval`` value runs (``all``: every audit incl. U-LiRA)."""
    from jaxmu.audits import AUDITS

    return AUDITS if name == "all" else (name,)


def config(a: argparse.Namespace) -> Any:
    """The :class:`jaxmu.audits.AuditConfig` of the parsed options.

    Raises:
        AuditUsageError: an option out of range (one line).
    """
    from jaxmu.audits import AuditConfig, RelearnConfig

    try:
        relearn = RelearnConfig(variant=a.relearn_variant, steps=a.relearn_steps,
                                eval_every=_eval_every(a.relearn_steps), lr=a.relearn_lr,
                                seed=a.seed)
        return AuditConfig(num_shadows=a.shadows, num_forget_sets=a.forget_sets,
                           forget_fraction=a.forget_fraction, num_targets=a.targets,
                           flip=a.ulira_flip, seed=a.seed, n_bootstrap=a.bootstrap,
                           rmia_offline=a.rmia_offline, rmia_a=a.rmia_a,
                           rmia_references=a.rmia_references,
                           shadow_draws=a.shadow_draws, relearn=relearn,
                           relearn_runs=a.relearn_runs)
    except ValueError as e:
        raise AuditUsageError(str(e)) from None


def _eval_every(steps: int) -> int:
    """The largest divisor of ``steps`` that still gives at least 10 evaluations (every
    step for budgets under 10); nonsense budgets are left to :class:`RelearnConfig`."""
    if not isinstance(steps, int) or steps < 1:
        return 1
    return max(d for d in range(1, steps + 1) if steps % d == 0 and steps // d >= min(10, steps))


def run(a: argparse.Namespace, model: Any, splits: Any, method: Any, oracle: Any,
        recipe: Any, cache: str | None, plot_dir: Path, progress: bool) -> dict[str, Any]:
    """Runs the audits of ``--eval`` and returns their JSON-ready report."""
    from jaxmu.audits import run_audits

    return run_audits(model, splits, method.bind(model), audits_of(a.eval),
                      oracle_method=oracle.bind(model), config=config(a), recipe=recipe,
                      strategy=a.strategy, chunk=a.chunk, cache_dir=cache, plot_dir=plot_dir,
                      progress=progress)


def _ci(rep: dict[str, Any], key: str, fmt: str = ".3f") -> str:
    ci = rep.get(f"{key}_ci")
    v = rep.get(key)
    if v is None:
        return "n/a"
    return f"{v:{fmt}}" + (f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else "")


def summary_lines(rep: dict[str, Any]) -> list[str]:
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
