"""Evaluation pipelines over populations: the competition F-score and U-LiRA.

This layer sits above :mod:`jaxmu.population` (which trains, unlearns and predicts the
models, and stores their logits) and :mod:`jaxmu.metrics` (which turns logits into
numbers), and below :mod:`jaxmu.audits` (which reuses the U-LiRA design population),
:mod:`jaxmu.score`, :mod:`jaxmu.experiment` and :mod:`jaxmu.sweep`.

* :func:`fscore_pipeline`: N unlearning runs from one original and N retrains, scored by
  :func:`jaxmu.metrics.forget_quality` (:func:`retrained_population_logits` is its cached
  retrained population, :func:`fscore_bootstrap_ci` its intervals).
* :func:`ulira_pipeline`: the U-LiRA shadow design (:func:`ulira_design`), its unlearned
  populations (:func:`design_logits`, a :class:`DesignRuns`) and
  :func:`jaxmu.metrics.ulira` on target pairs (:func:`target_pairs`,
  :func:`ulira_from_runs`).

References:
    docs/evaluation.md#the-competition-f-score, docs/evaluation.md#u-lira.
"""

from jaxmu.evaluation._pipelines import (
    DesignRuns,
    ULiRADesign,
    design_logits,
    fscore_bootstrap_ci,
    fscore_pipeline,
    retrained_population_logits,
    target_pairs,
    ulira_design,
    ulira_from_runs,
    ulira_pipeline,
)

__all__ = [
    "DesignRuns",
    "ULiRADesign",
    "design_logits",
    "fscore_bootstrap_ci",
    "fscore_pipeline",
    "retrained_population_logits",
    "target_pairs",
    "ulira_design",
    "ulira_from_runs",
    "ulira_pipeline",
]
