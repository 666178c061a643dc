"""The audits of the experiment CLI: ``--eval klom|rmia|relearn|shadow-curve|all``.

All of them (and ``--eval ulira``'s design) share one cached population: shadow originals
on balanced halves of the train candidates, K forget sets each, the method's runs and an
independent exact-unlearning (retrain) population, stored under ``CACHE_DIR/populations``.
"""

from __future__ import annotations

import argparse
from typing import Any

from jaxmu._names import AUDIT_EVALS  # jax-free


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


def config(a: argparse.Namespace) -> Any:
    """The :class:`jaxmu.audits.AuditConfig` of the parsed options (None unless ``--eval``
    is an audit).

    Raises:
        AuditUsageError: an option out of range (one line).
    """
    if a.eval not in AUDIT_EVALS:
        return None
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


def flags(a: argparse.Namespace) -> str:
    """The options of ``--eval <audit>`` that fix :func:`config`
    (:meth:`jaxmu.experiment.Evaluation.audit_flags`): appended to a single-method command
    they reproduce that method's audits of a ``--benchmark`` study."""
    from jaxmu.experiment import Evaluation

    return Evaluation(a.eval, shadows=a.shadows, forget_sets=a.forget_sets,
                      audit=config(a)).audit_flags()
