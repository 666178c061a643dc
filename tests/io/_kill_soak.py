"""Kill soak of a command (the experiment CLI, or a worker on the library path it takes):
SIGKILL it at random points, rerun it, compare with an uninterrupted run.

An *episode* starts the command in a fresh directory and, round after round, kills it after
a random delay drawn uniformly from ``[0, T)`` (``T``: the wall time of one uninterrupted
run of the same command, measured first), then starts it again, until a run finishes.
Kills therefore land anywhere: in the imports, in training (epoch checkpoints), in the
compilation and in writes of the XLA cache, in the unlearning population, in Optuna
trials, in the writing of result files and of the report. Episodes repeat until the
requested number of kills has landed.

After every kill every file the command left is checked (:func:`check_files`): results
(JSON, Markdown, CSV, PNG) parse completely or are absent, the study database passes
SQLite's integrity check, every checkpoint step passes its checksums and every XLA cache
entry its header; nothing was ever found corrupt and moved aside. The run that finishes
must exit 0 without a warning and give results equal (:func:`canonical`: everything but
timings, provenance and paths of temporaries) to those of the uninterrupted run.

Commands run with cwd set to their directory and relative output and cache paths, so the
paths recorded in the results are the same in every directory.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 1800  # only against a hung command; never a timing assertion

VOLATILE = frozenset({
    "timings", "provenance", "rte", "run_seconds", "compile_seconds", "reference_seconds",
    "compile_cache", "_path",
})
"""Keys whose values depend on wall time or on where the XLA cache lives; left out of
comparisons (at any depth)."""


def canonical(obj):
    """``obj`` without the :data:`VOLATILE` keys, at any depth."""
    if isinstance(obj, dict):
        return {k: canonical(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def results(out: Path) -> dict[str, object]:
    """Every non-hidden JSON file under ``out`` (relative path -> canonical content), and
    the names of every other non-hidden file (-> None)."""
    got: dict[str, object] = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            got[rel.as_posix()] = (canonical(json.loads(p.read_text()))
                                   if p.suffix == ".json" else None)
    return got


def _png_ok(p: Path) -> None:
    from PIL import Image

    with Image.open(p) as im:
        im.verify()  # chunk CRCs
    with Image.open(p) as im:
        im.load()  # the whole image decodes


def _temporary_kind(rel: Path) -> str | None:
    """``"temporaries"`` or ``"report_temporaries"`` for a temporary left by a killed writer
    (a hidden name whose parents are not hidden), else None."""
    if not rel.name.startswith(".") or any(q.startswith(".") for q in rel.parts[:-1]):
        return None
    return "report_temporaries" if rel.name.startswith(".report.tmp-") else "temporaries"


def check_files(root: Path) -> dict[str, int]:
    """Asserts that nothing under ``root`` is half-written or corrupt; returns counts.

    Non-hidden files must parse whole by their type (``.json``, ``.md``, ``.csv``,
    ``.png``, ``.db``); checkpoint steps must pass :func:`jaxmu.io.verify_step`; XLA cache
    entries (``*-cache``) must pass their header check. Hidden names (temporaries of
    writers that were killed) are counted by kind, not read.
    """
    from jaxmu._compile_cache import unpack_entry
    from jaxmu.io import MANIFEST, verify_step

    n = {"files": 0, "steps": 0, "xla": 0, "temporaries": 0, "report_temporaries": 0}
    assert not list(root.rglob("*.corrupt-*")), "something was found corrupt"
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            kind = _temporary_kind(rel)
            if kind:
                n[kind] += 1
            continue
        if not p.is_file():
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".md":
            assert p.read_text(encoding="utf-8").strip(), p
        elif p.suffix == ".csv":
            assert list(csv.reader(p.open(encoding="utf-8"))), p
        elif p.suffix == ".png":
            _png_ok(p)
        elif p.suffix == ".db":
            with sqlite3.connect(p) as con:
                assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", p
        elif p.name.endswith("-cache"):
            assert unpack_entry(p.read_bytes())[1] is None, p
            n["xla"] += 1
        else:
            continue
        n["files"] += 1
    for m in root.rglob(MANIFEST):
        if not any(part.startswith(".") for part in m.relative_to(root).parts):
            assert verify_step(m.parent) is None, m.parent
            n["steps"] += 1
    return n


def temporaries(root: Path) -> list[str]:
    """The hidden temporaries under ``root`` that :func:`check_files` counts as
    ``temporaries`` (for an assertion's message)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*")
                  if _temporary_kind(p.relative_to(root)) == "temporaries")


def complete_trials(db: Path) -> dict[tuple[str, int], tuple]:
    """The COMPLETE trials of every study in an Optuna SQLite file:
    ``(study, number) -> (params, values)``."""
    if not db.exists():
        return {}
    with sqlite3.connect(db) as con:
        try:
            rows = con.execute(
                "SELECT s.study_name, t.number, t.trial_id FROM trials t JOIN studies s "
                "ON s.study_id = t.study_id WHERE t.state = 'COMPLETE'").fetchall()
        except sqlite3.OperationalError:  # killed before Optuna created its tables
            return {}
        out = {}
        for study, number, tid in rows:
            params = tuple(sorted(con.execute(
                "SELECT param_name, param_value FROM trial_params WHERE trial_id = ?",
                (tid,)).fetchall()))
            values = tuple(sorted(con.execute(
                "SELECT objective, value FROM trial_values WHERE trial_id = ?",
                (tid,)).fetchall()))
            out[(study, number)] = (params, values)
    return out


def running_trials(db: Path) -> int:
    """How many trials of an Optuna SQLite file are RUNNING (cut off by a kill)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'"
                               ).fetchone()[0]
        except sqlite3.OperationalError:  # killed before Optuna created its tables
            return 0


@dataclass
class Soak:
    """One soak of a CLI command; see the module docstring.

    Attributes:
        cmd: the command's arguments after ``python``, with relative output and cache
            paths (e.g. ``["-m", "experiments.digits", ..., "--out", "out"]``); it runs with
            its directory as cwd and the XLA cache given by ``JAXMU_COMPILE_CACHE``.
        tmp: a fresh directory for everything.
        env: the environment of the command (the XLA cache directory is set per use).
        db: the Optuna database relative to a run directory, for studies (trials are
            checked never to be lost or changed by a kill).
        shared_xla: the soaked runs use the references' XLA cache (warm: cheaper, but
            kills then rarely land in its writes) instead of one of their own.
        ref_xla: the references' XLA cache directory (default ``tmp/ref-xla``); another
            soak's makes the references warm too.
    """

    cmd: list[str]
    tmp: Path
    db: str | None = None
    shared_xla: bool = False
    ref_xla: Path | None = None
    kills: int = 0
    in_trial: int = 0  # kills that left a study trial RUNNING
    rounds: int = 0
    episodes: int = 0
    checked: dict[str, int] = field(default_factory=dict)
    report_temporaries_left: int = 0
    window: float = 0.0
    env: dict[str, str] = field(default_factory=lambda: {
        k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXMU_COMPILE_CACHE")})

    @property
    def _ref_xla(self) -> Path:
        return self.ref_xla or self.tmp / "ref-xla"

    @property
    def _xla(self) -> Path:
        return self._ref_xla if self.shared_xla else self.tmp / "soak-xla"

    def start(self, cwd: Path, xla: Path) -> subprocess.Popen:
        cwd.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "JAXMU_COMPILE_CACHE": str(xla),
               "PYTHONPATH": os.pathsep.join([str(ROOT), self.env.get("PYTHONPATH", "")])}
        return subprocess.Popen([sys.executable, *self.cmd], cwd=cwd, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    def finish(self, proc: subprocess.Popen) -> str:
        out, err = proc.communicate(timeout=HANG_GUARD_S)
        assert proc.returncode == 0, f"exit {proc.returncode}: {err[-3000:]}"
        assert "Traceback" not in err and "warning" not in err.lower(), err[-3000:]
        return out

    def reference(self, name: str, prepare: Callable[[Path], None] | None = None
                  ) -> tuple[Path, float]:
        """An uninterrupted run in ``tmp/name`` (its own XLA cache); its wall time."""
        cwd = self.tmp / name
        cwd.mkdir(parents=True)
        if prepare is not None:
            prepare(cwd)
        t0 = time.monotonic()
        self.finish(self.start(cwd, self._ref_xla))
        return cwd, time.monotonic() - t0

    def episode(self, rng: random.Random, window_s: float, until_kills: int) -> Path:
        """Kills the command at random points until it has been killed ``until_kills``
        times in all (or it finishes); then runs it to the end. Returns its directory.

        Each kill comes after a delay drawn uniformly from ``[0, window)``: ``window_s``
        at first, then the wall time of the last run that went from scratch to the end
        (a warm XLA cache makes later episodes faster than the reference)."""
        cwd = self.tmp / f"soak-{self.episodes}"
        self.episodes += 1
        self.window = self.window or window_s
        seen: dict = {}
        fresh = True
        while True:
            t0 = time.monotonic()
            proc = self.start(cwd, self._xla)
            self.rounds += 1
            if self.kills < until_kills:
                try:
                    proc.wait(timeout=rng.uniform(0.0, self.window))
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:  # it exited on its own at the kill time
                        pass
                    out, err = proc.communicate(timeout=HANG_GUARD_S)
                    if proc.returncode == 0:  # it finished before the kill landed: no kill
                        assert "Traceback" not in err and "warning" not in err.lower(), err
                        end = self._check(cwd)
                        assert end["temporaries"] == 0, \
                            f"temporaries of killed writers left: {temporaries(cwd)}"
                        self.report_temporaries_left += end["report_temporaries"]
                        return cwd
                    assert proc.returncode == -signal.SIGKILL, err[-3000:]
                    assert "Traceback" not in err and "warning" not in err.lower(), err[-3000:]
                    self.kills += 1
                    self._check(cwd)
                    if self.db:
                        self.in_trial += bool(running_trials(cwd / self.db))
                        now = complete_trials(cwd / self.db)
                        lost = {k: v for k, v in seen.items() if now.get(k) != v}
                        assert not lost, f"a kill lost or changed complete trials: {lost}"
                        seen = now
                    fresh = False
                    continue
            self.finish(proc)
            if fresh:
                self.window = time.monotonic() - t0
            end = self._check(cwd)
            # Temporaries of killed writers are removed by the next writer or reader of the
            # same checkpoint directory, the next writer of the same file, or the next open
            # of the XLA cache; the report's are not (left to count).
            assert end["temporaries"] == 0, \
                f"temporaries of killed writers left: {temporaries(cwd)}"
            self.report_temporaries_left += end["report_temporaries"]
            return cwd

    def _check(self, cwd: Path) -> dict[str, int]:
        n = check_files(cwd)
        if self._xla.exists():
            shared = check_files(self._xla)
            n = {k: n[k] + shared[k] for k in n}
        for k, v in n.items():
            self.checked[k] = self.checked.get(k, 0) + v
        return n


def copy_db(src: Path, rel: str) -> Callable[[Path], None]:
    """A ``prepare`` for :meth:`Soak.reference`: the study database of ``src`` at ``rel``."""
    def prepare(cwd: Path) -> None:
        (cwd / rel).parent.mkdir(parents=True)
        shutil.copyfile(src / rel, cwd / rel)
    return prepare


def cli(*argv: str) -> list[str]:
    """``python -m experiments.digits ARGV`` with relative ``--out``/``--cache-dir``."""
    return ["-m", "experiments.digits", *argv, "--out", "out", "--cache-dir", "cache", "--quiet"]


def api(kind: str) -> list[str]:
    """``python _soak_api_worker.py KIND out cache`` (the library path, smallest size)."""
    return [str(Path(__file__).with_name("_soak_api_worker.py")), kind, "out", "cache"]
