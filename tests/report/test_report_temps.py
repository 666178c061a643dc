"""A report write killed mid-way leaves its temporary directory; the next write of the same
report removes it (a live writer's is kept)."""

from __future__ import annotations

import os
import socket

from jaxmu.report._write import _remove_dead_temps


def test_dead_writers_temporaries_are_removed(tmp_path):
    out = tmp_path / "report"
    host = socket.gethostname()
    dead = tmp_path / f".report.tmp-{2**22 + 4321}-{host}-abc123"  # above pid_max: dead
    live = tmp_path / f".report.tmp-{os.getpid()}-{host}-def456"
    foreign = tmp_path / f".report.tmp-{2**22 + 4321}-otherhost-0a0b"  # another host's
    legacy = tmp_path / ".report.tmp-0123456789ab"  # an old name: cannot tell, kept
    for d in (dead, live, foreign, legacy):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f.md").write_text("x")
    _remove_dead_temps(out)
    assert not dead.exists()
    assert live.exists() and foreign.exists() and legacy.exists()
