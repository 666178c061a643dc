"""How the experiment CLI reports faults (in-process, with the run replaced): one line on
stderr and exit 2 for faults of the environment, 130 for Ctrl-C, a traceback for bugs."""

from __future__ import annotations

import errno
import os
import warnings

import pytest

from experiments import _cli
from jaxmu.io import CorruptCheckpointError, CorruptCheckpointWarning, WriteFailedError
from jaxmu.io._checkpoint import _REBUILD
from jaxmu.sweep._study import StorageError

PROG = "python -m experiments.digits"


def _main(monkeypatch, tmp_path, fault, *extra):
    seen = {}

    def run(a, dataset):
        seen["rebuild"] = _REBUILD.get()
        if isinstance(fault, Warning):
            warnings.warn(fault, stacklevel=1)
            raise KeyboardInterrupt
        raise fault

    monkeypatch.setattr(_cli, "run", run)
    monkeypatch.setenv("JAXMU_COMPILE_CACHE", "0")
    rc = _cli.main("digits", ["--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o"),
                              *extra])
    return rc, seen


@pytest.mark.parametrize("fault", [
    CorruptCheckpointError("corrupt checkpoint /c/k/final/0 (checksum mismatch in x); ..."),
    WriteFailedError("/o/digits/ft_seed0.json", "result file", errno.ENOSPC),
    StorageError("cannot open study storage sqlite:///x.db: database is locked; ..."),
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/o/report/report.md"),
    OSError(errno.EROFS, os.strerror(errno.EROFS), "/o/report/report.md"),
])
def test_faults_of_the_environment_exit_2_in_one_line(monkeypatch, tmp_path, capsys, fault):
    rc, _ = _main(monkeypatch, tmp_path, fault)
    err = capsys.readouterr().err
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"{PROG}: error: ")
    assert (getattr(fault, "filename", None) or str(fault)) in line


def test_other_errors_stay_tracebacks(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError):
        _main(monkeypatch, tmp_path, FileNotFoundError(errno.ENOENT, "No such file", "/x"))
    with pytest.raises(RuntimeError):
        _main(monkeypatch, tmp_path, RuntimeError("a bug"))


def test_ctrl_c_exits_130_in_one_line(monkeypatch, tmp_path, capsys):
    rc, _ = _main(monkeypatch, tmp_path, KeyboardInterrupt())
    assert rc == 130
    assert capsys.readouterr().err == f"{PROG}: interrupted; rerun the same command to resume\n"
    rc, _ = _main(monkeypatch, tmp_path, KeyboardInterrupt(), "--cache-dir", "")
    assert rc == 130 and capsys.readouterr().err == f"{PROG}: interrupted\n"


def test_no_rebuild_sets_the_policy_for_the_run_only(monkeypatch, tmp_path, capsys):
    _, seen = _main(monkeypatch, tmp_path, KeyboardInterrupt(), "--no-rebuild")
    assert seen["rebuild"] is False and _REBUILD.get() is True
    _, seen = _main(monkeypatch, tmp_path, KeyboardInterrupt())
    assert seen["rebuild"] is True


def test_a_moved_aside_checkpoint_is_one_warning_line(monkeypatch, tmp_path, capsys):
    msg = "corrupt checkpoint /c/k/final/0 (checksum mismatch in x) moved aside; rebuilding"
    _main(monkeypatch, tmp_path, CorruptCheckpointWarning(msg))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"warning: {msg}"
