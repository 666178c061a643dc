"""Experiments as library calls: a :class:`Task`, ``run(task, method)``, typed records.

* :class:`Task` – one setting (dataset, splits, model, O/R recipe, seed, cache); fields
  left None take the dataset's defaults. :class:`Evaluation` – one model or a population
  (F-score, U-LiRA, audits). :class:`Scenario` – a deletion scenario. :class:`Study` – a
  benchmark study's options (:func:`jaxmu.sweep.run_task_benchmark`). :class:`Plan` – one
  invocation (a run, a scenario or a study), checked to combine before anything trains.
* :func:`run` – train (or load) O and R, run the method, evaluate, optionally judge it on
  a population, write the :class:`RunRecord`. The experiment CLIs, the benchmark study
  (:func:`jaxmu.sweep.final_run` through :func:`run_fitted`) and the scenarios
  (:func:`run_scenario`) share it.
* :class:`RunRecord`, :class:`MethodResult`, :class:`StudyRecord`, :class:`ScenarioRecord`
  (what :func:`run_scenario` returns) – results with one JSON round trip through
  :mod:`jaxmu.io`'s codec (NaN and +-inf written as ``null``, read back as NaN in float
  fields; older files with ``NaN`` tokens read too).
* :func:`format_run`, :func:`format_scenario`, :func:`methods_table` – the printed text.
* :func:`session` – the process settings a run uses (cache rebuild policy, compile cache).

Example::

    from jaxmu.experiment import Task, run, format_run
    rec = run(Task("digits", epochs=3, cache_dir=".jaxmu_cache"), "ft", {"epochs": 1})
    print(format_run(rec)); rec.metrics["retdev"]
"""

from jaxmu._names import REFERENCES
from jaxmu.experiment._print import (
    MISSING,
    audit_summary_lines,
    format_run,
    format_scenario,
    format_table,
    methods_list,
    methods_table,
    population_summary,
)
from jaxmu.experiment._run import (
    Fitted,
    as_method,
    fit_references,
    population_eval,
    record_path,
    run,
    run_fitted,
    run_scenario,
    unlearn,
)
from jaxmu.experiment._session import session
from jaxmu.experiment._task import AUDIT_EVALS, EVALS, Evaluation, Plan, Scenario, Study, Task
from jaxmu.methods import method_key
from jaxmu.records import MethodResult, RunRecord, ScenarioRecord, StudyRecord

__all__ = [
    "AUDIT_EVALS",
    "EVALS",
    "MISSING",
    "REFERENCES",
    "Evaluation",
    "Fitted",
    "MethodResult",
    "Plan",
    "RunRecord",
    "Scenario",
    "ScenarioRecord",
    "Study",
    "StudyRecord",
    "Task",
    "as_method",
    "audit_summary_lines",
    "fit_references",
    "format_run",
    "format_scenario",
    "format_table",
    "method_key",
    "methods_list",
    "methods_table",
    "population_eval",
    "population_summary",
    "record_path",
    "run",
    "run_fitted",
    "run_scenario",
    "session",
    "unlearn",
]
