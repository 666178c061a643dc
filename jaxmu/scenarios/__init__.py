"""Forget-set scenarios over time and size: deletion-ratio sweeps and request sequences.

* :func:`deletion_ratio_sweep`: random forget sets of growing size (the survey's deletion
  ratios); accuracy, RetDev and cost of each method next to retraining from scratch, and
  the ratio where retraining becomes the cheaper option (:func:`crossover`).
* :func:`sequential_deletion`: deletion requests applied one after another (approximate
  methods chain on their previous output, SISA retrains only the affected shards, the
  reference retrains from scratch on the shrinking retain set); metrics after each
  request, cost per request and cumulative.
* :func:`deletion_requests`: the disjoint request index sets the sequence uses.

References:
    Qu et al., "Learn to Unlearn: Insights into Machine Unlearning" (survey; §III SISA
    exact unlearning, §VI deletion ratios and time consumption); Bourtoule et al. 2021
    (SISA); Deep Unlearn §6 (repeated deletion as a limitation it left open).
"""

from jaxmu.scenarios._common import EXACT, TIMING_KEYS, check_methods, default_sisa_config
from jaxmu.scenarios._ratio import check_ratios, crossover, deletion_ratio_sweep
from jaxmu.scenarios._sequential import deletion_requests, sequential_deletion

__all__ = [
    "EXACT",
    "TIMING_KEYS",
    "check_methods",
    "check_ratios",
    "crossover",
    "default_sisa_config",
    "deletion_ratio_sweep",
    "deletion_requests",
    "sequential_deletion",
]
