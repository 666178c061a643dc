"""Studies on a real PostgreSQL server: two worker processes share one study, one is killed
(SIGKILL) mid-trial, and the study still ends with every requested trial exactly once and the
same selection as a one-worker SQLite run.

The fixture starts a private PostgreSQL cluster (Debian's ``postgresql`` package, its
``initdb``/``pg_ctl``) in a temporary directory, listening on a unix socket only (no TCP), as
the ``postgres`` user when run as root; it skips with the reason when that is not possible.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from jaxmu.sweep import (
    best_hparams,
    completed,
    open_storage,
    run_study,
    study_name,
    trials_of,
)

HERE = Path(__file__).resolve().parent
N_TRIALS = 4  # = the population: one NSGA-III generation
PORT = 5432  # only names the socket file, in a private directory (no TCP listener)

# One worker: runs the tiny "ft" study of _sweep_task.py. KILL_AT > 0: SIGKILLs itself inside
# its KILL_AT-th trial. WAIT_FOR: a file; the worker holds its first trial open until that
# file exists (the test creates it once the other worker is dead), then 3 s more, so the dead
# worker's trial has gone stale (grace 2 s) before this one asks for its next trial.
_WORKER = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from _sweep_task import task
from jaxmu.sweep import _study, open_storage, run_study
url, cache, n, kill_at, wait_for = sys.argv[2:7]
real, calls = _study.run_trial, []
def trial(*a, **kw):
    calls.append(1)
    if len(calls) == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
    out = real(*a, **kw)
    if wait_for != "-" and len(calls) == 1:
        t0 = time.time()
        while not os.path.exists(wait_for) and time.time() - t0 < 300:
            time.sleep(0.1)
        time.sleep(3)
    return out
_study.run_trial = trial
run_study(task(0, cache), "ft", n_trials=int(n), population_size=4,
          storage=open_storage(url, heartbeat_s=1, grace_s=2))
"""


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def postgres_url():
    """``postgresql://postgres@/postgres?host=<socket dir>&port=5432`` of a private server."""
    try:  # the driver SQLAlchemy uses for postgresql:// (psycopg2 or psycopg 3)
        sqlalchemy.engine.make_url("postgresql://").get_dialect().import_dbapi()
    except ImportError as e:
        pytest.skip(f"no PostgreSQL driver ({e}): pip install -e '.[postgres]'")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root and runuser is missing (needed to become postgres)")
        as_user = [runuser, "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="jaxmu-pg-"))  # short: unix socket paths are <108 B
    data = base / "data"
    if as_user:
        os.chmod(base, 0o755)
        shutil.chown(base, "postgres", "postgres")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)

    init = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
               "--no-sync", "-E", "UTF8")
    started = init.returncode == 0 and run(
        str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
        "-t", "60", "-o", f"-k {base} -c listen_addresses='' -p {PORT} -c fsync=off",
        "start").returncode == 0
    if not started:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        reason = (init.stderr or log or "unknown error").strip().splitlines()[-1:]
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"PostgreSQL server did not start: {' '.join(reason)}")
    try:
        yield f"postgresql://postgres@/postgres?host={base}&port={PORT}"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _worker(storage, cache, n, kill_at=0, wait_for="-"):
    return subprocess.Popen([sys.executable, "-c", _WORKER, str(HERE), str(storage), str(cache),
                             str(n), str(kill_at), str(wait_for)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _load(storage):
    return optuna.load_study(study_name=study_name("tiny", "ft", 0),
                             storage=open_storage(storage, heartbeat_s=1, grace_s=2))


def _key(params):
    return tuple(sorted(params.items()))


def test_postgres_url_opens(postgres_url):
    s = optuna.create_study(storage=open_storage(postgres_url), study_name="smoke")
    s.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(completed(s)) == 2


@pytest.mark.slow
def test_two_workers_on_postgres_survive_a_kill_and_match_one_sqlite_worker(
        postgres_url, tmp_path):
    sys.path.insert(0, str(HERE))
    from _sweep_task import task

    cache = tmp_path / "cache"
    task(0, cache)  # O and R cached before the workers start
    # The one-worker SQLite study (run here): the reference trajectory.
    one = run_study(task(0, cache), "ft", n_trials=N_TRIALS, population_size=4,
                    storage=tmp_path / "one.db")
    want = {_key(t.params): t.values for t in completed(one)}
    want_n = Counter(_key(t.params) for t in completed(one))  # NSGA-III may repeat a point
    assert sum(want_n.values()) == N_TRIALS
    # The same points queued on PostgreSQL (seeded samplers in several workers would each
    # replay the same random stream): the workers claim them, each exactly once.
    pg = optuna.create_study(storage=open_storage(postgres_url, heartbeat_s=1, grace_s=2),
                             study_name=study_name("tiny", "ft", 0),
                             directions=["minimize"] * 4)
    for t in sorted(completed(one), key=lambda t: t.number):
        pg.enqueue_trial(t.params)
    t0 = time.perf_counter()
    dead = tmp_path / "killed-worker-is-dead"
    killed = _worker(postgres_url, cache, N_TRIALS, kill_at=2)  # dies in its 2nd trial
    other = _worker(postgres_url, cache, N_TRIALS, wait_for=dead)
    out, _ = killed.communicate(timeout=600)
    dead.touch()
    assert killed.returncode == -9, out.decode()[-2000:]
    out, _ = other.communicate(timeout=600)
    assert other.returncode == 0, out.decode()[-2000:]
    print(f"two workers on PostgreSQL: {time.perf_counter() - t0:.1f} s")

    study = _load(postgres_url)
    done = completed(study)
    numbers = [t.number for t in done]
    assert len(done) == N_TRIALS and len(set(numbers)) == N_TRIALS
    # No trial lost or run twice: exactly the queued points, each once, same objectives.
    got = {_key(t.params): t.values for t in done}
    assert Counter(_key(t.params) for t in done) == want_n
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k
    # The killed trial went stale (heartbeat), was marked failed and re-run with its params.
    states = {t.state for t in study.trials}
    assert states == {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL}
    (failed,) = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    (retried,) = [t for t in done if t.system_attrs.get("failed_trial") == failed.number]
    assert retried.params == failed.params
    # Same selection and ranking as the one-worker SQLite study.
    best_one, best_pg = best_hparams([(one, 0)], N_TRIALS), best_hparams([(study, 0)], N_TRIALS)
    assert best_pg["score"] == pytest.approx(best_one["score"], abs=1e-9)
    tied = {_key(t["params"]) for t in trials_of(one)
            if _score(t) == pytest.approx(best_one["score"], abs=1e-9)}
    assert _key(best_pg["params"]) in tied

    def ranking(s):
        return sorted(_score(t) for t in trials_of(s))

    assert ranking(study) == pytest.approx(ranking(one), abs=1e-9)


def _score(t):
    from jaxmu.sweep._objective import trial_score

    return trial_score(t["values"])
