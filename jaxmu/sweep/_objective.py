"""The Deep Unlearn HP-search objective ("objective10") and the best-trial selection.

References:
    Cadet et al., Deep Unlearn (2024) §4 (eqs. 5-6); reference code
    ``munl/hpsearch/objectives.py`` and ``find_trials.py``; docs/methods.md#search.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

OBJECTIVE_NAMES = ("ra_gap", "fa_gap", "va_gap", "val_mia_gap")
"""The four minimised objectives, in order."""


def _get(rec: Mapping[str, float], key: str, who: str) -> float:
    if key not in rec:
        raise ValueError(f"{who} metrics lack {key!r} (have {sorted(rec)})")
    return float(rec[key])


def objective_values(unlearned: Mapping[str, float],
                     retrained: Mapping[str, float]) -> tuple[float, float, float, float]:
    """The four minimised objectives of one trial.

    ``f1 = |RA_U - RA_R| / 3``, ``f2 = |FA_U - FA_R| / 3``, ``f3 = |VA_U - VA_R| / 3`` and
    ``f4 = |2 MIA_val(U) - 1| = 1 - indiscernibility`` (the retrained model's MIA is not
    used, as in the reference).

    Args:
        unlearned: metrics of U with keys ``ra fa va mia_val`` (accuracies as fractions).
        retrained: metrics of R with keys ``ra fa va``.

    Returns:
        ``(f1, f2, f3, f4)``; NaN inputs give ``inf`` (the reference's failed-trial value).

    Raises:
        ValueError: if a key is missing.

    References:
        Deep Unlearn's "objective10" (``munl/hpsearch/objectives.py::unlearner_optuna``);
        docs/methods.md#search.
    """
    vals = []
    for k in ("ra", "fa", "va"):
        vals.append(abs(_get(unlearned, k, "unlearned") - _get(retrained, k, "retrained")) / 3)
    vals.append(abs(2 * _get(unlearned, "mia_val", "unlearned") - 1))
    return tuple(v if math.isfinite(v) else math.inf for v in vals)  # type: ignore[return-value]


def trial_score(values: Sequence[float] | None) -> float:
    """Euclidean norm of the four objectives (``inf`` for a failed or missing trial)."""
    if values is None or len(values) != len(OBJECTIVE_NAMES):
        return math.inf
    if not all(math.isfinite(float(v)) for v in values):
        return math.inf
    return math.sqrt(sum(float(v) ** 2 for v in values))


def select_best(trials: Iterable[Mapping[str, Any]], first_n: int | None = None) -> dict:
    """The trial with the minimum L2 score among the first ``first_n`` complete ones.

    Args:
        trials: dicts with ``number`` (trial order), ``values`` (4 floats or None),
            ``params``, and optional ``study``/``seed``; pooled over the seed studies.
            Within each study only the ``first_n`` complete trials (by ``number``) count,
            as in the reference (``find_trials.py``), so extra trials run by concurrent
            workers never change the selection.
        first_n: trials per study to consider; None keeps all.

    Returns:
        The best trial's dict plus its ``score``. Ties go to the earliest study, then the
        lowest trial number.

    Raises:
        ValueError: if no trial has finite values.

    References:
        Deep Unlearn's ``munl/hpsearch/find_trials.py`` (first 100 complete trials per
        study, minimum Euclidean norm across the seed studies); docs/methods.md#search.
    """
    by_study: dict[Any, list[Mapping[str, Any]]] = {}
    for t in trials:
        if t.get("values") is None:
            continue
        by_study.setdefault(t.get("study"), []).append(t)
    best: dict | None = None
    for study in by_study:
        kept = sorted(by_study[study], key=lambda t: t["number"])
        if first_n is not None:
            kept = kept[:first_n]
        for t in kept:
            s = trial_score(t["values"])
            if math.isfinite(s) and (best is None or s < best["score"]):
                best = {**t, "score": s}
    if best is None:
        raise ValueError("no trial with finite objective values")
    return best
