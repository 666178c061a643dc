"""Sweep studies: traced hyperparameters, trials, resume after a kill, two workers, and the
whole benchmark on a tiny digits setting."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optuna
import pytest
from _sweep_task import MODEL, RECIPE, splits, task

from jaxmu.methods import get_method
from jaxmu.sweep import (
    FAST_COMPILE,
    best_hparams,
    completed,
    dynamic_names,
    open_storage,
    run_benchmark,
    run_study,
    run_trial,
    run_trials,
    storage_url,
    study_sampler,
    suggest_hparams,
    traceable_names,
)
from jaxmu.sweep._study import SweepTask

WORKER = str(Path(__file__).with_name("_sweep_task.py"))
SMALL = {"epochs": 1, "batch_size": 16}


@pytest.fixture(scope="module")
def tiny_task():
    return task(0)


# Methods whose builders take a traced value through a path fixed for it (saliency masks,
# pruning counts, temperatures, deviations, confusion fractions); rni keeps noise_ratio
# static (it sets a number of layers).
TRACED = ["ft", "msg", "salun", "prmq", "cfw", "sftc", "scrub", "activation_pruning", "rni"]
TRACED_BY_DEFAULT = {"ft", "msg", "rni"}  # the rest: pytest -m slow


@pytest.mark.parametrize("name", [n if n in TRACED_BY_DEFAULT else
                                  pytest.param(n, marks=pytest.mark.slow) for n in TRACED])
def test_traced_hyperparameters_match_the_static_program(name, tiny_task):
    hp = {k: v for k, v in SMALL.items() if k in get_method(name).hp}
    for k in ("retain_epochs", "fine_epochs", "reset_epochs", "msteps", "forget_epochs"):
        if k in get_method(name).hp:
            hp[k] = 1
    method = get_method(name, **hp).bind(MODEL)
    args = (*tiny_task.original, tiny_task.splits, jax.random.key(3))
    names = traceable_names(method, args)
    assert names and set(names) <= set(dynamic_names(method.definition))
    if name == "rni":
        assert "noise_ratio" not in names and "lr" in names
    values = {k: np.float32(method.hp[k]) for k in names}
    got = jax.jit(method.dynamic_fn(names), compiler_options=FAST_COMPILE)(*args, values)
    want = jax.jit(method.fn, compiler_options=FAST_COMPILE)(*args)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_dynamic_fn_bad_names():
    m = get_method("ft").bind(MODEL)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        m.dynamic_fn(["nope"])
    with pytest.raises(ValueError, match="not bound"):
        get_method("ft").dynamic_fn(["lr"])


def test_run_trial_reuses_the_program_across_learning_rates(tiny_task):
    a = run_trial(tiny_task, "ft", {**SMALL, "lr": 1e-3})
    b = run_trial(tiny_task, "ft", {**SMALL, "lr": 1e-1})
    assert b["compile_seconds"] == 0.0
    assert a["values"] != b["values"] or a["metrics"]["ra"] != b["metrics"]["ra"]
    assert len(a["values"]) == 4 and all(v >= 0 for v in a["values"])
    # Same hyperparameters -> identical objective (deterministic key per seed).
    assert run_trial(tiny_task, "ft", {**SMALL, "lr": 1e-3})["values"] == a["values"]
    with pytest.raises(ValueError, match="lr must be > 0"):
        run_trial(tiny_task, "ft", {**SMALL, "lr": -1.0})


def test_suggest_hparams_covers_the_space_and_clean_drops_dead():
    d = get_method("scrub").definition
    study = optuna.create_study(directions=["minimize"] * 4)
    hp = suggest_hparams(d, study.ask(), e_max=3)
    assert set(hp) == set(d.space)
    assert 1 <= hp["epochs"] <= 3 and hp["momentum"] == 0.9 if "momentum" in hp else True
    dead = {n for n, h in d.space.items() if h.dead}
    assert dead and not dead & set(suggest_hparams(d, study.ask(), 3, clean=True))


def test_storage_url(tmp_path):
    assert storage_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert storage_url(tmp_path / "a" / "s.db") == f"sqlite:///{tmp_path / 'a' / 's.db'}"


def test_study_counts_complete_trials_and_records_attrs(tmp_path, tiny_task):
    study = run_study(tiny_task, "ft", n_trials=3, storage=tmp_path / "s.db",
                      population_size=4)
    done = completed(study)
    assert len(done) == 3 and [t.number for t in done] == [0, 1, 2]
    t = done[0]
    assert len(t.values) == 4 and {"ra", "fa", "va", "mia_val", "run_seconds"} <= set(
        t.user_attrs)
    assert 1 <= t.params["epochs"] <= 2  # E_max = ceil(0.2 * 10)
    # Resuming a finished study runs nothing.
    again = run_study(tiny_task, "ft", n_trials=3, storage=tmp_path / "s.db",
                      population_size=4)
    assert len(again.trials) == 3
    with pytest.raises(ValueError, match="n_trials"):
        run_study(tiny_task, "ft", n_trials=0, storage=tmp_path / "s.db")
    with pytest.raises(ValueError, match="unknown method"):
        run_study(tiny_task, "nope", n_trials=1, storage=tmp_path / "s.db")


def test_failed_trial_returns_inf(tmp_path, tiny_task, monkeypatch):
    from jaxmu.sweep import _study

    def boom(*a, **kw):
        raise FloatingPointError("diverged")

    monkeypatch.setattr(_study, "run_trial", boom)
    study = run_study(tiny_task, "ft", n_trials=1, storage=tmp_path / "f.db")
    (t,) = completed(study)
    assert t.values == [math.inf] * 4 and "diverged" in t.user_attrs["error"]


def _worker(storage, cache, n, mode="", batch=1):
    return subprocess.Popen([sys.executable, WORKER, str(storage), str(cache), str(n), mode,
                             str(batch)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _load(storage):
    s = open_storage(storage, heartbeat_s=1, grace_s=2)
    (summary,) = optuna.get_all_study_summaries(s)
    return optuna.load_study(study_name=summary.study_name, storage=s)


_OPEN_AT = """
import sys, time
import optuna
from jaxmu.sweep import open_storage
db, t0 = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, t0 - time.time()))
optuna.create_study(storage=open_storage(db), study_name="s", load_if_exists=True)
"""


@pytest.mark.slow
def test_workers_opening_a_fresh_database_at_once_all_succeed(tmp_path):
    # Regression: two workers started together on a new SQLite file raced on the schema
    # (UNIQUE constraint failed: alembic_version); the loser now retries.
    for round_ in range(2):
        db, t0 = tmp_path / f"fresh{round_}.db", time.time() + 6
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, str(db), str(t0)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for _ in range(4)]
        for p in procs:
            out, _ = p.communicate(timeout=300)
            assert p.returncode == 0, out.decode()[-2000:]
        assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(db))] == ["s"]


def _stored(study):
    """Every trial of ``study``: ``(number, state, params, values)``."""
    return [(t.number, t.state.name, t.params, t.values) for t in study.trials]


def test_study_resumes_after_kills_as_if_never_killed(tmp_path):
    # Killed inside its 3rd trial, then right after its 4th complete trial was stored,
    # then inside the first trial of that restart (trial 4, the first of NSGA-III's second
    # generation); restarted at once each time (no wait for heartbeats to go stale).
    db, cache = tmp_path / "study.db", tmp_path / "cache"
    whole = run_study(task(0, cache), "ft", n_trials=6, storage=tmp_path / "whole.db",
                      population_size=4)  # uninterrupted, in this process
    want = _stored(whole)
    for mode, n_done in (("kill-in-trial-3", 2), ("4", 4), ("kill-in-trial-1", 4)):
        p = _worker(db, cache, 6, mode)
        out, _ = p.communicate(timeout=600)
        assert p.returncode == -9, out.decode()[-2000:]
        got = _stored(_load(db))
        assert [t[0] for t in got if t[1] == "COMPLETE"] == list(range(n_done))
        assert got[:n_done] == want[:n_done]  # complete trials are never changed
    p = _worker(db, cache, 6)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out.decode()[-2000:]
    assert "warning" not in out.decode().lower()
    study = _load(db)
    # Each killed trial was resumed under its number with its parameters: the same trials,
    # numbers and values as the uninterrupted study (bitwise), nothing failed or repeated,
    # and the same selection.
    assert _stored(study) == want
    best = [best_hparams([(s, 0)], 6) for s in (study, whole)]
    assert [{k: v for k, v in b.items() if k != "user_attrs"} for b in best] == [
        {k: v for k, v in best[1].items() if k != "user_attrs"}] * 2  # timings aside


def test_run_trials_vmaps_a_structural_group_like_single_trials(tiny_task):
    hps = [{**SMALL, "lr": 1e-3}, {**SMALL, "lr": 5e-2}, {**SMALL, "lr": 1e-2, "epochs": 2},
           {**SMALL, "lr": -1.0}]
    res = run_trials(tiny_task, "ft", hps, width=4)
    assert isinstance(res[3], ValueError) and "lr must be > 0" in str(res[3])
    for hp, r in zip(hps[:3], res[:3], strict=True):
        one = run_trial(tiny_task, "ft", hp)
        for a, b in zip(jax.tree.leaves(r["unlearned"]), jax.tree.leaves(one["unlearned"]),
                        strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
        assert r["values"] == pytest.approx(one["values"], abs=1.5 / 3 / 20)  # <= 1 example
    # The first two share (epochs, batch_size): one vmapped program reused on a second call.
    again = run_trials(tiny_task, "ft", hps[:2], width=4)
    assert again[0]["compile_seconds"] == 0.0
    with pytest.raises(ValueError, match="width"):
        run_trials(tiny_task, "ft", hps, width=2)


def test_batched_study(tmp_path, tiny_task):
    study = run_study(tiny_task, "ft", n_trials=5, storage=tmp_path / "b.db",
                      population_size=4, batch=3)
    done = completed(study)
    assert len(done) == 5 and len(study.trials) == 5  # batches of 3 then 2
    assert all(len(t.values) == 4 and "ra" in t.user_attrs for t in done)
    with pytest.raises(ValueError, match="batch"):
        run_study(tiny_task, "ft", n_trials=1, storage=tmp_path / "b.db", batch=0)


@pytest.mark.slow
def test_batched_study_resumes_after_a_kill_mid_batch(tmp_path):
    db, cache = tmp_path / "study.db", tmp_path / "cache"
    whole = run_study(task(0, cache), "ft", n_trials=6, storage=tmp_path / "whole.db",
                      population_size=4, batch=3)
    p = _worker(db, cache, 6, "kill-in-batch-2", batch=3)  # dies inside its 2nd batch
    p.communicate(timeout=600)
    assert p.returncode == -9
    first = _stored(_load(db))
    assert [t[1] for t in first] == ["COMPLETE"] * 3 + ["RUNNING"] * 3
    p = _worker(db, cache, 6, batch=3)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out.decode()[-2000:]
    # The killed batch was re-run whole under its numbers: the uninterrupted trials.
    assert _stored(_load(db)) == _stored(whole)


# --- Sampler seeds of several workers -------------------------------------------------------
# Trials are scored by a stand-in objective (a fixed function of the parameters), so the
# sampler's trajectory is deterministic and takes milliseconds.

FAKE_TASK = SweepTask(model=None, splits=None, seed=0, original=None, retrained=None,
                      retrained_metrics={}, e_max=3, name="fake")


def _fake_values(hp):
    xs = [float(v) for _, v in sorted(hp.items())]
    return [abs(sum(math.sin((j + 1) * (i + 1) * x) for i, x in enumerate(xs)))
            for j in range(4)]


@pytest.fixture
def fake_trials(monkeypatch):
    from jaxmu.sweep import _study

    def one(task, method_name, hp, **kw):
        return {"values": _fake_values(hp), "metrics": {}, "run_seconds": 0.0,
                "compile_seconds": 0.0}

    monkeypatch.setattr(_study, "run_trial", one)
    monkeypatch.setattr(_study, "run_trials",
                        lambda task, m, hps, **kw: [one(task, m, hp) for hp in hps])


def _points(study):
    return [tuple(sorted(t.params.items())) for t in completed(study)]


# (lr, weight_decay, batch_size, epochs) of 10 ft trials (seed 0, population 4, E_max 3,
# the stand-in objective) recorded with the code before per-trial seeds, which built
# NSGAIIISampler(seed=0) in every worker. Trials 3 and 4 coincide: a generation-1 child
# can copy a parent (that is NSGA-III, not a seeding bug).
LONE_WORKER = {
    1: [(0.0015676677195506068, 0.007257005721594277, 64, 2),
        (0.0005627932047415167, 0.03690557729213761, 64, 2),
        (0.001871450068624067, 0.05039489598671213, 128, 3),
        (0.01296065659727973, 0.03020289640158666, 64, 3),
        (0.01296065659727973, 0.03020289640158666, 64, 3),
        (0.0015676677195506068, 2.972334644335654e-05, 64, 2),
        (0.01296065659727973, 0.03690557729213761, 64, 2),
        (3.7446665357415675e-05, 0.06007249475906202, 64, 2),
        (0.001222906594703436, 0.00045566719139214756, 128, 3),
        (0.001871450068624067, 0.007257005721594277, 64, 1)],
    3: [(0.0015676677195506068, 0.007257005721594277, 64, 2),
        (0.0005627932047415167, 0.03690557729213761, 64, 2),
        (0.001871450068624067, 0.05039489598671213, 128, 3),
        (0.01296065659727973, 0.03020289640158666, 64, 3),
        (2.972334644335654e-05, 0.0036281404040243792, 128, 2),
        (0.00011434638743472202, 0.01250071223083625, 128, 2),
        (0.001871450068624067, 0.05039489598671213, 128, 3),
        (0.0005627932047415167, 0.002807908107885727, 64, 2),
        (2.972334644335654e-05, 0.05039489598671213, 128, 2),
        (0.05956516018710565, 0.005336803302756713, 64, 2)],
}


@pytest.mark.parametrize("batch", [1, 3])
def test_a_lone_worker_draws_the_same_trials_as_before(tmp_path, fake_trials, batch):
    study = run_study(FAKE_TASK, "ft", n_trials=10, storage=tmp_path / "s.db",
                      population_size=4, batch=batch)
    got = [(t.params["lr"], t.params["weight_decay"], t.params["batch_size"],
            t.params["epochs"]) for t in completed(study)]
    assert got == LONE_WORKER[batch]  # bitwise


def test_a_lone_worker_matches_optunas_nsga3_sampler(tmp_path, fake_trials):
    # Independent check on a 12-dimensional space: Optuna's own sampler, same seed.
    study = run_study(FAKE_TASK, "scrub", n_trials=10, storage=tmp_path / "s.db",
                      population_size=4)
    definition = get_method("scrub").definition
    plain = optuna.create_study(
        directions=["minimize"] * 4,
        sampler=optuna.samplers.NSGAIIISampler(seed=0, population_size=4))
    plain.optimize(lambda t: tuple(_fake_values(suggest_hparams(definition, t, 3))),
                   n_trials=10)
    assert _points(study) == _points(plain)


def test_a_resumed_worker_draws_new_points_reproducibly(tmp_path, fake_trials):
    # Population 50: all 8 trials are first-generation random draws, so any repeat comes
    # from a replayed random stream. Before per-trial seeds, trials 3-5 repeated 0-2.
    runs = []
    for k in range(2):
        db = tmp_path / f"r{k}.db"
        first = _points(run_study(FAKE_TASK, "ft", n_trials=3, storage=db))
        study = run_study(FAKE_TASK, "ft", n_trials=8, storage=db)
        points = _points(study)
        assert points[:3] == first and len(set(points)) == 8
        runs.append(points)
    assert runs[0] == runs[1]  # the same resume gives the same trials
    # The first three are the lone worker's draws.
    whole = _points(run_study(FAKE_TASK, "ft", n_trials=3, storage=tmp_path / "one.db"))
    assert runs[0][:3] == whole


class _Interrupt(BaseException):
    """SIGKILL in-process: nothing catches it and the trial it cuts off stays RUNNING."""


@pytest.mark.parametrize("batch", [1, 3])
def test_an_interrupted_study_resumes_as_if_never_interrupted(tmp_path, fake_trials,
                                                             monkeypatch, batch):
    from jaxmu.sweep import _study

    whole = _stored(run_study(FAKE_TASK, "scrub", n_trials=10, storage=tmp_path / "w.db",
                              population_size=4, batch=batch))
    calls = {"n": 0, "at": 0}

    def counted(f):
        def g(*a, **kw):
            calls["n"] += 1
            if calls["n"] == calls["at"]:
                raise _Interrupt
            return f(*a, **kw)
        return g

    monkeypatch.setattr(_study, "run_trial", counted(_study.run_trial))
    monkeypatch.setattr(_study, "run_trials", counted(_study.run_trials))
    db = tmp_path / "cut.db"
    # Cut inside the first evaluation of a run (the very first trial, a trial in the second
    # generation, ...) or right after the k-th complete trial was stored (between trials;
    # with batch 3, in the middle of storing a batch).
    for at, after in ((1, 0), (0, 4), (2, 0), (0, 8), (1, 0), (0, 9)):
        calls.update(n=0, at=at)

        def cut(study, trial, k=after):
            if len(completed(study)) == k:
                raise _Interrupt

        with pytest.raises(_Interrupt):
            run_study(FAKE_TASK, "scrub", n_trials=10, storage=db, population_size=4,
                      batch=batch, callbacks=[cut])
    calls.update(n=0, at=0)
    study = run_study(FAKE_TASK, "scrub", n_trials=10, storage=db, population_size=4,
                      batch=batch)
    assert _stored(study) == whole  # numbers, states, parameters and values


def test_a_study_another_worker_is_running_is_not_replayed(tmp_path, fake_trials):
    import socket

    from jaxmu.sweep._study import OWNER_ATTR

    db = tmp_path / "s.db"
    lone = _points(run_study(FAKE_TASK, "ft", n_trials=5, storage=tmp_path / "lone.db"))
    study = run_study(FAKE_TASK, "ft", n_trials=2, storage=db)
    # A trial that a live worker (this process's parent) is running.
    study._storage.create_new_trial(study._study_id, template_trial=optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING,
        system_attrs={OWNER_ATTR: f"{socket.gethostname()} {os.getppid()} "}))
    with pytest.warns(UserWarning, match="trial 2 is running in another worker.*per-trial"):
        study = run_study(FAKE_TASK, "ft", n_trials=5, storage=db)
    points = _points(study)
    assert points[:2] == lone[:2] and len(set(points)) == 5
    assert not set(points[2:]) & set(lone)  # trials 3-5: streams seeded (0, n)


def test_trials_a_lone_worker_would_not_draw_are_not_replayed(tmp_path, fake_trials):
    import dataclasses

    db = tmp_path / "s.db"
    run_study(dataclasses.replace(FAKE_TASK, seed=1), "ft", n_trials=2, storage=db, name="x")
    with pytest.warns(UserWarning, match="trial 0 is not the one a lone worker draws"):
        study = run_study(FAKE_TASK, "ft", n_trials=4, storage=db, name="x")
    assert len(completed(study)) == 4


def _interleave(storage, samplers, n):
    """Two workers in turns on one study: each asks, suggests and tells one trial."""
    definition = get_method("ft").definition
    studies = [optuna.create_study(storage=storage, study_name="w", sampler=s,
                                   directions=["minimize"] * 4, load_if_exists=True)
               for s in samplers]
    for i in range(n):
        study = studies[i % len(studies)]
        trial = study.ask()
        study.tell(trial, _fake_values(suggest_hparams(definition, trial, 3)))
    return _points(studies[0])


def test_two_interleaved_workers_never_repeat_a_point(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    points = _interleave(open_storage(tmp_path / "a.db"),
                         [study_sampler(0, 50), study_sampler(0, 50)], 8)
    assert len(points) == 8 and len(set(points)) == 8
    # Worker 0 took trial 0 with the lone-worker stream: the same point as a lone worker.
    lone = _interleave(open_storage(tmp_path / "b.db"), [study_sampler(0, 50)], 1)
    assert points[0] == lone[0]
    # The same two workers with Optuna's sampler (one seed each) repeat each other.
    plain = _interleave(open_storage(tmp_path / "c.db"),
                        [optuna.samplers.NSGAIIISampler(seed=0, population_size=50)
                         for _ in range(2)], 8)
    assert plain[0] == plain[1] and len(set(plain)) == 4
    with pytest.raises(ValueError, match="population_size"):
        study_sampler(0, 1)


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path):
    db, cache = tmp_path / "study.db", tmp_path / "cache"
    task(0, cache)  # O and R cached before the workers start
    procs = [_worker(db, cache, 6) for _ in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out.decode()[-2000:]
    done = completed(_load(db))
    numbers = [t.number for t in done]
    assert 6 <= len(done) <= 7 and len(set(numbers)) == len(numbers)
    # The first generation (population 4) is random draws: the two workers' seeds differ,
    # so no point is drawn twice (both started from seed 0's stream before).
    first = [tuple(sorted(t.params.items())) for t in done if t.number < 4]
    assert len(first) == len(set(first))


@pytest.mark.slow
def test_benchmark_end_to_end_and_resume(tmp_path):
    s = splits()
    ds = s.pool
    out = tmp_path / "bench"
    kw = dict(methods=["ft", "ng"], trials=2, search_seeds=[0], seeds=2,
              cache_dir=str(tmp_path / "cache"), classifier_mias=False, population_size=4,
              progress=False, log=lambda s: None)
    study = run_benchmark(ds, MODEL, s, RECIPE, out, **kw).to_dict()
    for f in ("config.json", "study.db", "best_hparams.json", "study.json",
              "runs/ft/seed0.json", "runs/ng/seed1.json", "runs/retrain/seed1.json",
              "report/report.md", "report/results.csv"):
        assert (out / f).exists(), f
    assert set(study["methods"]) == {"original", "retrain", "ft", "ng"}
    ft = study["methods"]["ft"]
    assert ft["search"]["n_trials"] == 2 and ft["hparams"]["epochs"] in (1, 2)
    assert {r["seed"] for r in ft["runs"]} == {0, 1}
    assert study["methods"]["retrain"]["summary"]["retdev"]["value"] == 0.0
    assert {t["method"] for t in study["ranking"]["retdev"]} == {"ft", "ng"}
    best = json.loads((out / "best_hparams.json").read_text())
    assert best["ft"]["hparams"] == ft["hparams"]
    # Resume: nothing recomputed (same run files, same trials), same numbers.
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    again = run_benchmark(ds, MODEL, s, RECIPE, out, **kw).to_dict()
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")} == mtimes
    assert len(_trials_in(out / "study.db")) == 4
    assert again["methods"]["ft"]["summary"] == ft["summary"]
    import dataclasses

    with pytest.raises(ValueError, match="another setting .*recipe"):
        run_benchmark(ds, MODEL, s, dataclasses.replace(RECIPE, lr=0.01), out, **kw)
    other = splits()
    other = type(other).build(other.pool, forget=other.indices("forget")[1:],
                              retain=np.concatenate([other.indices("retain"),
                                                     other.indices("forget")[:1]]),
                              val=other.indices("val"), test=other.indices("test"))
    with pytest.raises(ValueError, match="another setting"):
        run_benchmark(ds, MODEL, other, RECIPE, out, **kw)
    with pytest.raises(ValueError, match="unknown method"):
        run_benchmark(ds, MODEL, s, RECIPE, tmp_path / "x", **{**kw, "methods": ["zz"]})
    with pytest.raises(ValueError, match="trials"):
        run_benchmark(ds, MODEL, s, RECIPE, tmp_path / "x", **{**kw, "trials": 0})
    assert not (tmp_path / "x").exists()


def _trials_in(db):
    s = open_storage(db)
    return [t for summary in optuna.get_all_study_summaries(s)
            for t in optuna.load_study(study_name=summary.study_name, storage=s).trials]
