"""SIGKILL soak: a training process killed at random points, again and again, never leaves a
corrupt checkpoint, and the run that finally completes gives bit-identical parameters.

Each round starts ``_soak_worker.py`` (``cached_fit``, or ``cached_fit_population`` of 4
models), waits until it has written two new epoch checkpoints, sleeps a random fraction of
the time the second one took (so the kill lands anywhere in an epoch: a training step, the
array writes, the fsyncs, the checksums, the rename or the pruning) and sends SIGKILL.
Seeded; where the kills land still varies from run to run.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _soak_worker import build

WORKER = Path(__file__).with_name("_soak_worker.py")
HANG_GUARD_S = 600  # only against a hung test; never a timing assertion


def _newest_epoch(cache: Path) -> int:
    return max((int(p.name) for p in cache.glob("*/epochs/*") if p.name.isdigit()), default=-1)


def _wait_for_epoch_after(cache: Path, step: int, proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + HANG_GUARD_S
    while (newest := _newest_epoch(cache)) <= step:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.002)
    return newest


def _soak(tmp_path: Path, kind: str, kills: int, epochs: int, seed: int) -> None:
    rng = random.Random(seed)
    cache, out = tmp_path / "cache", tmp_path / "out.json"
    killed = 0
    while killed < kills:
        before = _newest_epoch(cache)
        proc = subprocess.Popen([sys.executable, str(WORKER), kind, str(cache), str(epochs),
                                 str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        first = _wait_for_epoch_after(cache, before, proc)
        t1 = time.monotonic()
        _wait_for_epoch_after(cache, first, proc)
        time.sleep(rng.uniform(0.0, time.monotonic() - t1))  # anywhere in the next epoch
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=HANG_GUARD_S)
        assert "Traceback" not in err and "corrupt" not in err, err
        assert proc.returncode == -signal.SIGKILL, f"finished after {killed} kills: {err}"
        killed += 1
        assert not list(cache.rglob("*.corrupt-*")), "a kill left a corrupt checkpoint"
    done = subprocess.run([sys.executable, str(WORKER), kind, str(cache), str(epochs),
                           str(out)], capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0 and "corrupt" not in done.stderr, done.stderr
    assert not list(cache.rglob("*.corrupt-*")) and not list(cache.rglob(".tmp-*"))
    reference, _ = build(kind, None, epochs)  # trained in one go, in this process
    assert json.loads(out.read_text())["params_sha256"] == reference


def test_a_few_kills_of_cached_fit(tmp_path):
    _soak(tmp_path, "fit", kills=2, epochs=20, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["fit", "population"])
def test_five_kills(tmp_path, kind, seed):
    """Four seeds per kind (each test under ~2 min on 2 busy cores): 20 kills of each kind
    in the slow set."""
    _soak(tmp_path, kind, kills=5, epochs=40, seed=seed)
