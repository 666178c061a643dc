"""HP sweeps (Optuna NSGA-III, resumable, multi-worker), multi-seed runs and ranking.

The Deep Unlearn study pipeline: :func:`run_study` searches one method on one model seed,
:func:`best_hparams` picks the trial with the smallest L2 norm of the four objectives
across seed studies, :func:`final_run` / :func:`summarize` produce per-seed records and
bootstrap CIs, :func:`rank_methods` builds Table 1, and :func:`run_benchmark` does it all
for one (dataset, architecture) setting (``python -m experiments.digits --benchmark``),
with U-LiRA of every method on request (:func:`ulira_study`) and every audit of
:mod:`jaxmu.audits` on one shared design population (:func:`audit_study`).

References:
    Cadet et al., Deep Unlearn (2024) §4-5; docs/methods.md#search (objective, sampler,
    selection), docs/evaluation.md#ranking (Table 1).
"""

from jaxmu._names import REFERENCES
from jaxmu.methods import method_key
from jaxmu.report import GROUPS, performance_groups, rank_methods
from jaxmu.sweep._benchmark import (
    ULIRA_DEFAULTS,
    audit_names_of,
    audit_study,
    compact_audit_report,
    default_methods,
    e_max,
    final_run,
    prepare_task,
    run_benchmark,
    run_task_benchmark,
    summarize,
    ulira_design_config,
    ulira_study,
)
from jaxmu.sweep._objective import OBJECTIVE_NAMES, objective_values, select_best, trial_score
from jaxmu.sweep._study import (
    FAST_COMPILE,
    SweepTask,
    best_hparams,
    completed,
    dynamic_names,
    make_objective,
    open_storage,
    run_study,
    run_trial,
    run_trials,
    storage_url,
    study_name,
    study_sampler,
    suggest_hparams,
    traceable_names,
    trials_of,
)

__all__ = [
    "FAST_COMPILE",
    "GROUPS",
    "OBJECTIVE_NAMES",
    "REFERENCES",
    "ULIRA_DEFAULTS",
    "SweepTask",
    "audit_names_of",
    "audit_study",
    "best_hparams",
    "compact_audit_report",
    "completed",
    "default_methods",
    "dynamic_names",
    "e_max",
    "final_run",
    "make_objective",
    "method_key",
    "objective_values",
    "open_storage",
    "performance_groups",
    "prepare_task",
    "rank_methods",
    "run_benchmark",
    "run_task_benchmark",
    "run_study",
    "run_trial",
    "run_trials",
    "select_best",
    "storage_url",
    "study_name",
    "study_sampler",
    "suggest_hparams",
    "summarize",
    "trial_score",
    "traceable_names",
    "trials_of",
    "ulira_design_config",
    "ulira_study",
]
