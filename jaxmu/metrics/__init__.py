"""jaxmu.metrics: unlearning metrics on logits, statistics and parameter pytrees.

Everything here runs on the host in float64 NumPy/SciPy/scikit-learn and is vectorised over
examples and models; device code produces the logits (``[M, N, K]``) that feed it.

* Accuracy family: :func:`accuracy`, :func:`retention`, :func:`retdev`, :func:`sape`,
  :func:`accuracy_errors`.
* Population MIAs: :func:`population_mia`, :func:`mia_auc`, :func:`indiscernibility`,
  :func:`discernibility`, :func:`classifier_mia`, :func:`feature_mia`.
* Competition score: :func:`logit_scaled_confidence`, :func:`forget_quality`,
  :func:`competition_score`.
* Per-example attacks: :func:`ulira`, :func:`lira`.
* Distances: :func:`js_divergence`, :func:`l2_distance`, :func:`golatkar_distance`,
  :func:`normalized_l2_distance`.
* Statistics and timing: :func:`bootstrap_ci`, :func:`format_ci`, :func:`rte`,
  :class:`Timer`, :func:`timed`.
* Bootstrap building blocks of the attack intervals (for pipelines that resample
  differently): :func:`cluster_index`, :func:`bootstrap_multiplicities`,
  :func:`bootstrap_roc`, :func:`percentile_ci`.
* The full record: :func:`evaluate_logits` (:class:`MIASkippedWarning` when a split is too
  small for an MIA).

References:
    docs/evaluation.md: what each metric computes, the paper or reference code it comes
    from, and where jaxmu differs from that code.
"""

from jaxmu.metrics._accuracy import accuracy, accuracy_errors, retdev, retention, sape
from jaxmu.metrics._bootstrap import bootstrap_ci, format_ci
from jaxmu.metrics._distances import (
    golatkar_distance,
    js_divergence,
    l2_distance,
    normalized_l2_distance,
)
from jaxmu.metrics._fscore import (
    FScoreResult,
    competition_score,
    epsilon_points,
    forget_quality,
    forget_quality_details,
    logit_scaled_confidence,
)
from jaxmu.metrics._klom import klom, klom_report, margins
from jaxmu.metrics._lira import (
    bootstrap_multiplicities,
    bootstrap_roc,
    cluster_index,
    lira,
    percentile_ci,
)
from jaxmu.metrics._mia import (
    classifier_mia,
    cross_entropy_losses,
    discernibility,
    feature_mia,
    indiscernibility,
    mia_auc,
    mia_features,
    population_mia,
)
from jaxmu.metrics._record import MIASkippedWarning, evaluate_logits
from jaxmu.metrics._rmia import rmia, rmia_scores, rmia_signal, tune_offline_a, u_rmia
from jaxmu.metrics._timing import Timer, rte, timed
from jaxmu.metrics._ulira import membership_statistic, ulira

__all__ = [
    "FScoreResult",
    "MIASkippedWarning",
    "Timer",
    "accuracy",
    "accuracy_errors",
    "bootstrap_ci",
    "bootstrap_multiplicities",
    "bootstrap_roc",
    "classifier_mia",
    "cluster_index",
    "competition_score",
    "cross_entropy_losses",
    "discernibility",
    "epsilon_points",
    "evaluate_logits",
    "feature_mia",
    "forget_quality",
    "forget_quality_details",
    "format_ci",
    "golatkar_distance",
    "indiscernibility",
    "js_divergence",
    "klom",
    "klom_report",
    "l2_distance",
    "lira",
    "logit_scaled_confidence",
    "margins",
    "membership_statistic",
    "mia_auc",
    "mia_features",
    "normalized_l2_distance",
    "percentile_ci",
    "population_mia",
    "retdev",
    "retention",
    "rmia",
    "rmia_scores",
    "rmia_signal",
    "rte",
    "sape",
    "timed",
    "tune_offline_a",
    "u_rmia",
    "ulira",
]
