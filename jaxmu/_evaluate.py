"""``jaxmu.evaluate``: the full metric record of an unlearned model.

Device side: eval-mode logits of every split for U (and O, R when given). Host side:
:func:`jaxmu.metrics.evaluate_logits` (accuracies, retention, RetDev, MIAs,
indiscernibility, SAPE errors, JS divergence, weight distances, RTE).

References:
    Deep Unlearn (Cadet et al. 2024) §2; SFTC (Perifanis et al. 2024) §5.4;
    docs/evaluation.md (every metric, its source and where jaxmu differs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxmu.metrics import evaluate_logits
from jaxmu.train import labels, predict
from jaxmu.types import SPLIT_NAMES, Model, Splits

Pair = tuple[Any, Any]


def split_logits(model: Model, pair: Pair, splits: Splits) -> dict[str, np.ndarray]:
    """Eval-mode logits of every non-empty split, as NumPy arrays."""
    params, state = pair
    return {s: np.asarray(predict(model, params, state, splits, s))
            for s in SPLIT_NAMES if splits.size(s) > 0}


def evaluate(
    model: Model,
    unlearned: Pair,
    splits: Splits,
    *,
    original: Pair | None = None,
    retrained: Pair | None = None,
    timings: Mapping[str, float] | None = None,
    classifier_mias: bool = True,
    mia_max_samples: int | None = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """Every single-model metric of an unlearned model as a flat dict of floats.

    Args:
        model: the model.
        unlearned: ``(params, model_state)`` of U; ``original``/``retrained``: of O and R.
        splits: the splits (single model).
        timings: ``run_seconds``, ``compile_seconds``, ``reference_seconds`` (retrain time).
        classifier_mias: also run the logits-classifier MIA and the feature MIAs.
        mia_max_samples: per-class cap on the classifier/feature MIA training sets.
        seed: seed of the classifier MIAs.

    Returns:
        See :func:`jaxmu.metrics.evaluate_logits`: ``ra fa va ta``, ``mia_test``,
        ``indisc_test``, ``rr fr tr retdev``, ``rte``, ... and ``original_*``/``retrained_*``.

    Warns:
        jaxmu.metrics.MIASkippedWarning: when the forget set or a reference split (test,
            val) has fewer than 6 examples, the loss MIA against it cannot be
            cross-validated: its ``mia_*``, ``indisc_*`` and ``mia_auc_*`` keys are left out
            of the record (for U, O and R) and the warning names them and the sizes, so tiny
            datasets evaluate instead of raising.
    """
    lab = {s: np.asarray(labels(splits, s)) for s in SPLIT_NAMES if splits.size(s) > 0}
    params = {"unlearned": unlearned[0]}
    kw: dict[str, Any] = {}
    if original is not None:
        kw["original"] = split_logits(model, original, splits)
        params["original"] = original[0]
    if retrained is not None:
        kw["retrained"] = split_logits(model, retrained, splits)
        params["retrained"] = retrained[0]
    return evaluate_logits(
        split_logits(model, unlearned, splits), lab, timings=timings, params=params,
        classifier="hgb" if classifier_mias else None,
        feature_classifier="svc" if classifier_mias else None,
        mia_max_samples=mia_max_samples, seed=seed, **kw,
    )
