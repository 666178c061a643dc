"""Scoring unlearned models from any framework against jaxmu's retrained population.

A user of another framework (e.g. PyTorch) exports a *task* (:func:`export_task`: a
dataset split and the eval rows to predict, with their images), runs their unlearned
models on those rows, writes the logits as a *submission* (:func:`make_submission`) and
scores it (:func:`score_submission`, or ``python -m jaxmu.score SUBMISSION.npz --task
TASK.npz``): the competition F-score, KLoM per role, offline U-LiRA and U-RMIA, and attack
power against the number of reference models, each with intervals, all against the
retrained population that ``jaxmu.evaluation.fscore_pipeline`` trains and caches for the
same setting. :func:`score_logits` is the computation on arrays. File formats and a
worked example: ``docs/scoring.md``.

The names are loaded on first use, so ``python -m jaxmu.score --help`` imports no jax.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_NAMES = {
    "AUDITS": "jaxmu.score._score",
    "RELEARN_NOTE": "jaxmu.score._score",
    "ROLES": "jaxmu.score._task",
    "Task": "jaxmu.score._task",
    "check_logits": "jaxmu.score._task",
    "export_task": "jaxmu.score._task",
    "jaxmu_unlearned_logits": "jaxmu.score._score",
    "load_submission": "jaxmu.score._task",
    "load_task": "jaxmu.score._task",
    "make_submission": "jaxmu.score._task",
    "population_eval_logits": "jaxmu.score._score",
    "reference_counts": "jaxmu.score._score",
    "score_logits": "jaxmu.score._score",
    "score_submission": "jaxmu.score._score",
    "task_hash": "jaxmu.score._task",
    "task_retrained_logits": "jaxmu.score._score",
    "task_splits": "jaxmu.score._task",
}

if TYPE_CHECKING:
    from jaxmu.score._score import (
        AUDITS,
        RELEARN_NOTE,
        jaxmu_unlearned_logits,
        population_eval_logits,
        reference_counts,
        score_logits,
        score_submission,
        task_retrained_logits,
    )
    from jaxmu.score._task import (
        ROLES,
        Task,
        check_logits,
        export_task,
        load_submission,
        load_task,
        make_submission,
        task_hash,
        task_splits,
    )

__all__ = [
    "AUDITS",
    "RELEARN_NOTE",
    "ROLES",
    "Task",
    "check_logits",
    "export_task",
    "jaxmu_unlearned_logits",
    "load_submission",
    "load_task",
    "make_submission",
    "population_eval_logits",
    "reference_counts",
    "score_logits",
    "score_submission",
    "task_hash",
    "task_retrained_logits",
    "task_splits",
]


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jaxmu.score' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES})
