"""A tiny sweep setting shared by the sweep tests and their worker subprocesses."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _helpers import digits_subset_splits  # noqa: E402

from jaxmu.models import mlp  # noqa: E402
from jaxmu.train import TrainConfig  # noqa: E402

RECIPE = TrainConfig(epochs=10, batch_size=32, lr=0.05, augment=False)  # E_max = 2
MODEL = mlp((8, 8, 1), 10, hidden=(16,))


def splits():
    return digits_subset_splits(n=200, n_forget=20, n_val=30, n_test=30)


def task(seed=0, cache_dir=None):
    from jaxmu.sweep import prepare_task

    s = splits()
    return prepare_task(MODEL, s.pool, s, seed, RECIPE, cache_dir=cache_dir, name="tiny")


if __name__ == "__main__":
    # python _sweep_task.py STORAGE CACHE N_TRIALS [KILL_AFTER_COMPLETE | kill-in-trial-K
    #                                               | kill-in-batch-K] [BATCH]
    import os
    import signal

    from jaxmu.sweep import _study, completed, run_study

    storage, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else ""
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    callbacks = []
    if mode.isdigit():
        def kill_after(study, trial, k=int(mode)):
            if len(completed(study)) >= k:
                os.kill(os.getpid(), signal.SIGKILL)
        callbacks.append(kill_after)
    elif mode.startswith("kill-in-trial-"):
        k, real = int(mode.rsplit("-", 1)[1]), _study.run_trial
        calls = []

        def dying(*a, **kw):
            calls.append(1)
            if len(calls) == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **kw)
        _study.run_trial = dying
    elif mode.startswith("kill-in-batch-"):
        k, real_batch = int(mode.rsplit("-", 1)[1]), _study.run_trials
        batches = []

        def dying_batch(*a, **kw):
            batches.append(1)
            if len(batches) == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_batch(*a, **kw)
        _study.run_trials = dying_batch
    storage = _study.open_storage(storage, heartbeat_s=1, grace_s=2)
    run_study(task(0, cache), "ft", n_trials=n, storage=storage, callbacks=callbacks,
              population_size=4, batch=batch)
