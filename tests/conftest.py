"""Shared fixtures: tiny digits tasks with a trained original and retrained model.

Trained once per test session (MLP on 8x8 digits, a few seconds on a 2-core CPU).
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Four host CPU devices so sharded strategies are tested on CPU (must precede jax's import).
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=4").strip()

import pytest  # noqa: E402

from jaxmu.data import classwise_splits, load_digits, random_splits  # noqa: E402
from jaxmu.models import mlp, small_cnn  # noqa: E402
from jaxmu.train import TrainConfig, fit, split_accuracies  # noqa: E402

RECIPE = TrainConfig(epochs=30, batch_size=64, lr=0.05, augment=False)


@dataclasses.dataclass
class Task:
    """An unlearning task: model, splits, original and retrained models and accuracies."""

    model: object
    splits: object
    params: object
    model_state: object
    retrain_params: object
    retrain_state: object
    acc_original: dict
    acc_retrain: dict


def _task(model, splits, seed=0):
    o = fit(model, splits.pool, splits.mask("train"), seed, RECIPE, progress=False)
    r = fit(model, splits.pool, splits.retain, seed, RECIPE, progress=False)
    return Task(model, splits, o.params, o.model_state, r.params, r.model_state,
                split_accuracies(model, o.params, o.model_state, splits),
                split_accuracies(model, r.params, r.model_state, splits))


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def random_task(digits):
    """MLP on digits, random 10% forget set (forgetting signal is small on digits)."""
    return _task(mlp((8, 8, 1), 10), random_splits(digits))


@pytest.fixture(scope="session")
def class_task(digits):
    """MLP on digits, forget all of class 3: retrain FA = 0, original FA ~ 1 (clear signal)."""
    return _task(mlp((8, 8, 1), 10), classwise_splits(digits, [3]))


@pytest.fixture(scope="session")
def cnn_task(digits):
    """Small CNN (with BatchNorm) on digits, class-3 forgetting."""
    return _task(small_cnn((8, 8, 1), 10, channels=(8, 16)), classwise_splits(digits, [3]))
