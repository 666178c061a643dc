"""The experiment CLI under faults, in real subprocesses: a corrupt cache entry (rebuilt, or
exit 2 under ``--no-rebuild``), Ctrl-C during training (one line, then the rerun resumes), a
full disk (a real tmpfs: one line, exit 2, the previous state kept) and an unreachable study
database (one line, exit 2).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_integrity import _data_file, flip_byte

from jaxmu.io import latest_step

REPO = Path(__file__).resolve().parents[2]
PROG = "python -m experiments.digits"
ENV = {**os.environ, "JAXMU_COMPILE_CACHE": "0"}  # nothing but our files on the disk
HANG_GUARD_S = 900  # only against a hung test; never a timing assertion


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "experiments.digits", "--quiet", "--no-mia", *args]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)


def _stderr_lines(p: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in p.stderr, p.stderr
    return p.stderr.strip().splitlines()


def _record(out: Path, name: str = "ft_seed0.json") -> dict:
    return json.loads((out / "digits" / name).read_text())


def _results(record: dict) -> dict:
    """The metrics that do not depend on timing."""
    return {k: v for k, v in record["metrics"].items()
            if "seconds" not in k and k != "rte"}


@pytest.mark.slow
def test_a_corrupt_cache_entry_is_rebuilt_and_no_rebuild_exits_2(tmp_path):
    cache, args = tmp_path / "cache", ("--epochs", "2", "--cache-dir", str(tmp_path / "cache"))
    first = _run(*args, "--out", str(tmp_path / "o1"))
    assert first.returncode == 0 and _stderr_lines(first) == [], first.stderr
    rec1 = _record(tmp_path / "o1")
    step = cache / rec1["cache"]["original"] / "final" / "0"
    arrays = (step / "arrays.bin").read_bytes()

    flip_byte(_data_file(step))
    second = _run(*args, "--out", str(tmp_path / "o2"))
    assert second.returncode == 0, second.stderr
    (line,) = _stderr_lines(second)
    assert line.startswith(f"warning: corrupt checkpoint {step} (checksum mismatch in "), line
    assert "moved aside to 0.corrupt-" in line and line.endswith("; rebuilding")
    assert _results(_record(tmp_path / "o2")) == _results(rec1)
    assert (step / "arrays.bin").read_bytes() == arrays  # the same model, bit for bit

    flip_byte(_data_file(step))
    refused = _run(*args, "--out", str(tmp_path / "o3"), "--no-rebuild")
    assert refused.returncode == 2
    (line,) = _stderr_lines(refused)
    assert line.startswith(f"{PROG}: error: corrupt checkpoint {step} (checksum mismatch")
    assert "--no-rebuild" in line
    assert step.exists() and len(list(step.parent.glob("0.corrupt-*"))) == 1  # not moved
    assert not (tmp_path / "o3").exists()


def _sigint_ignored() -> bool:
    """Whether this test process ignores SIGINT (a run started in the background, ``&``),
    which the CLI would inherit."""
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def _sigint_default() -> None:
    """Ctrl-C as in a terminal for the CLI (runs in the forked child before exec; used only
    when needed, since forking a process that has JAX's threads is best avoided)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _first_epoch_checkpoint(cache: Path, proc: subprocess.Popen) -> Path:
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        found = [p for p in cache.glob("*/epochs/*") if p.name.isdigit()]
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no epoch checkpoint appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_ctrl_c_during_training_ends_in_one_line_and_the_rerun_resumes(tmp_path):
    args = ("--epochs", "40", "--cache-dir", str(tmp_path / "cache"), "--out",
            str(tmp_path / "out"))
    proc = subprocess.Popen(_cli(*args), cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_default if _sigint_ignored() else None)
    epochs = _first_epoch_checkpoint(tmp_path / "cache", proc).parent
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [f"{PROG}: interrupted; rerun the same command to "
                                        "resume"], err
    assert latest_step(epochs) is not None  # an intact checkpoint to resume from
    assert not list((tmp_path / "cache").rglob(".tmp-*"))  # nothing half-written
    assert not (tmp_path / "out").exists()

    resumed = _run(*args)
    assert resumed.returncode == 0 and _stderr_lines(resumed) == [], resumed.stderr
    reference = _run("--epochs", "40", "--cache-dir", str(tmp_path / "ref"), "--out",
                     str(tmp_path / "ref_out"))
    assert reference.returncode == 0, reference.stderr
    rec, ref = _record(tmp_path / "out"), _record(tmp_path / "ref_out")
    assert _results(rec) == _results(ref)
    for who in ("original", "retrain"):
        a = tmp_path / "cache" / rec["cache"][who] / "final" / "0" / "arrays.bin"
        b = tmp_path / "ref" / ref["cache"][who] / "final" / "0" / "arrays.bin"
        assert a.read_bytes() == b.read_bytes()  # identical models


def _private_tmpfs_works(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    r = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                        str(probe)], capture_output=True)
    return r.returncode == 0


@pytest.mark.slow
def test_a_full_disk_gives_one_line_exit_2_and_keeps_the_previous_state(tmp_path):
    """On a real 4 MiB tmpfs (``_full_disk_driver.py``): filled to the last byte, a run that
    must write checkpoints and a run that must replace its result file each fail in one
    line naming the path; the cache and the old result stay intact; after freeing space
    the failed run succeeds."""
    if not _private_tmpfs_works(tmp_path):
        pytest.skip("needs `unshare -rm` (a private mount namespace) to mount a tmpfs")
    report = tmp_path / "report.json"
    subprocess.run(["unshare", "-rm", sys.executable, str(Path(__file__).with_name(
        "_full_disk_driver.py")), str(tmp_path), str(report)], check=True, env=ENV,
        timeout=HANG_GUARD_S)
    r = json.loads(report.read_text())
    disk = r["disk"]
    assert r["fits"]["rc"] == 0, r["fits"]["stderr"]
    assert r["fill_errno"] == 28
    for name, path in (("train_on_full_disk", f"checkpoint step 1 in {disk}/cache/"),
                       ("rerun_on_full_disk", f"result file {disk}/out/digits/ft_seed0.json")):
        run = r[name]
        assert run["rc"] == 2, run["stderr"]
        (line,) = run["stderr"].strip().splitlines()
        assert line.startswith(f"{PROG}: error: cannot write {path}"), line
        assert "No space left on device; the previous state is kept" in line
    before, after = r["after_fit"], r["after_full"]
    assert after["results"] == before["results"]  # the old result file, unchanged
    assert after["temporaries"] == [] and after["hidden_files"] == []
    for entry, step in before["final_steps"].items():
        assert step == 0 and after["final_steps"][entry] == 0  # intact, verified
    assert r["train_after_freeing"]["rc"] == 0, r["train_after_freeing"]["stderr"]
    assert len(r["after_freeing"]["results"]) == 2


def test_an_unreachable_study_database_gives_one_line_exit_2(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    storage = tmp_path / "file" / "study.db"
    p = _run("--benchmark", "--epochs", "1", "--methods", "ft", "--trials", "1",
             "--search-seeds", "1", "--seeds", "1", "--storage", str(storage),
             "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"))
    assert p.returncode == 2
    (line,) = _stderr_lines(p)
    assert line.startswith(f"{PROG}: error: cannot open study storage {storage}: "), line
    assert not (tmp_path / "cache").exists()  # failed before training anything
