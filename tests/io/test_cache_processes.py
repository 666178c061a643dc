"""The model cache across real processes: a corrupt entry is rebuilt by the next process,
and two processes that need one entry at once train it once.

Workers are ``_cache_worker.py`` subprocesses (``cached_fit`` of a tiny MLP on digits).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_integrity import _data_file, flip_byte

WORKER = Path(__file__).with_name("_cache_worker.py")
HANG_GUARD_S = 600  # only against a hung test; never a timing assertion


def _start(cache: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(cache), str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return err


def _fits(cache: Path) -> int:
    f = Path(f"{cache}.fits")
    return len(f.read_text().split()) if f.exists() else 0


@pytest.mark.slow
def test_a_corrupt_entry_is_rebuilt_by_the_next_process(tmp_path):
    cache = tmp_path / "cache"
    _finish(_start(cache, tmp_path / "a.json"))
    first = json.loads((tmp_path / "a.json").read_text())
    assert first["cache_hit"] is False and _fits(cache) == 1
    (entry,) = [p for p in cache.iterdir() if p.is_dir()]

    flip_byte(_data_file(entry / "final" / "0"))  # one byte of the trained model
    err = _finish(_start(cache, tmp_path / "b.json"))
    rebuilt = json.loads((tmp_path / "b.json").read_text())
    lines = [ln for ln in err.splitlines() if "corrupt checkpoint" in ln]
    assert len(lines) == 1 and str(entry / "final" / "0") in lines[0], err
    assert rebuilt["cache_hit"] is False
    assert rebuilt["params_sha256"] == first["params_sha256"]
    assert len(list((entry / "final").glob("0.corrupt-*"))) == 1

    for step in (entry / "final" / "0", entry / "epochs" / "1", entry / "epochs" / "2"):
        flip_byte(_data_file(step))  # everything: trained again from scratch
    _finish(_start(cache, tmp_path / "c.json"))
    again = json.loads((tmp_path / "c.json").read_text())
    assert again["params_sha256"] == first["params_sha256"]

    _finish(_start(cache, tmp_path / "d.json"))  # intact now: a plain hit
    assert json.loads((tmp_path / "d.json").read_text())["cache_hit"] is True
    assert _fits(cache) == 3


def test_two_processes_needing_one_entry_train_it_once(tmp_path):
    """A holds the entry (paused inside training); B, started then, must wait on the lock
    (it says so on stderr) and load A's finished entry instead of training it again."""
    cache, hold = tmp_path / "cache", tmp_path / "hold"
    a = _start(cache, tmp_path / "a.json", "--hold", str(hold))
    deadline = time.monotonic() + HANG_GUARD_S
    while not Path(f"{hold}.training").exists():
        assert a.poll() is None, a.communicate()[1]
        assert time.monotonic() < deadline, "worker A never started training"
        time.sleep(0.05)
    b = _start(cache, tmp_path / "b.json", "--announce")
    seen = []
    for line in b.stderr:  # B blocks on the lock and says so before A may go on
        seen.append(line)
        if "waiting for" in line:
            break
    assert any("waiting for" in ln and f"{cache}" in ln for ln in seen), "".join(seen)
    assert not (tmp_path / "b.json").exists()
    hold.touch()
    _finish(a)
    _finish(b)
    ra = json.loads((tmp_path / "a.json").read_text())
    rb = json.loads((tmp_path / "b.json").read_text())
    assert (ra["cache_hit"], rb["cache_hit"]) == (False, True)
    assert ra["params_sha256"] == rb["params_sha256"]
    assert _fits(cache) == 1  # trained once
    (entry,) = [p.name for p in cache.iterdir() if p.is_dir()]
    assert sorted(p.name for p in cache.iterdir()) == [entry, f"{entry}.lock"]
