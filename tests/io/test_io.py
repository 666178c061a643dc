"""Checkpoints and result files: roundtrip, latest step, atomic JSON and text."""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import assert_tree_bitwise_equal

from jaxmu.io import (
    latest_step,
    provenance,
    restore_checkpoint,
    save_checkpoint,
    versions,
    write_json,
    write_text,
)


def _tree(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "params": {"dense": {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                             "bias": jnp.asarray(rng.normal(size=4), jnp.float32)}},
        "state": {"count": jnp.asarray(seed, jnp.int32),
                  "half": jnp.asarray(rng.normal(size=2), jnp.float16)},
        "opt": (jnp.asarray(rng.normal(size=(2, 2)), jnp.float32),),
    }


def test_roundtrip_with_meta(tmp_path):
    d = tmp_path / "ck"
    meta = {"config": {"lr": 0.1, "epochs": 3}, "history": [{"epoch": 1, "loss": 0.25}],
            "name": "x"}
    save_checkpoint(d, 1, _tree(1), meta)
    tree, saved = restore_checkpoint(d, _tree(0))  # `like` gives structure/shapes/dtypes
    assert_tree_bitwise_equal(tree, _tree(1))
    assert saved == meta
    assert latest_step(d) == 1


def test_latest_step_and_max_to_keep(tmp_path):
    d = tmp_path / "ck"
    assert latest_step(d) is None  # missing directory
    d.mkdir()
    assert latest_step(d) is None  # empty directory
    for step in (1, 2, 3):
        save_checkpoint(d, step, _tree(step), {"step": step})
    assert latest_step(d) == 3
    tree, meta = restore_checkpoint(d, _tree(0))
    assert meta == {"step": 3}
    assert_tree_bitwise_equal(tree, _tree(3))
    tree2, meta2 = restore_checkpoint(d, _tree(0), step=2)
    assert meta2 == {"step": 2}
    assert_tree_bitwise_equal(tree2, _tree(2))
    steps = sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())
    assert steps == [2, 3]  # max_to_keep=2 removed step 1


def test_save_without_meta_and_keep_all(tmp_path):
    d = tmp_path / "ck"
    for step in (1, 2, 3):
        save_checkpoint(d, step, _tree(step), max_to_keep=None)
    _, meta = restore_checkpoint(d, _tree(0), step=1)
    assert meta == {}
    assert sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) == [1, 2, 3]


def test_restore_missing_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        restore_checkpoint(tmp_path / "empty", _tree())


def test_write_json_serialises_numpy_and_is_atomic(tmp_path):
    out = tmp_path / "sub" / "dir" / "r.json"  # parents are created
    obj = {"f32": np.float32(0.5), "i64": np.int64(7), "arr": np.arange(3),
           "jax": jnp.asarray([1.5, 2.5]), "path": Path("/a/b"), "tup": (1, 2), "set": {3},
           "bool": np.bool_(True), "nested": {"x": [np.float64(1.25)]}}
    assert write_json(out, obj) == out
    back = json.loads(out.read_text())
    assert back == {"f32": 0.5, "i64": 7, "arr": [0, 1, 2], "jax": [1.5, 2.5], "path": "/a/b",
                    "tup": [1, 2], "set": [3], "bool": True, "nested": {"x": [1.25]}}
    assert out.read_text().endswith("\n")
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.json"]  # no temp files
    write_json(out, {"a": 1})  # overwrite
    assert json.loads(out.read_text()) == {"a": 1}
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.json"]


def test_write_json_failure_leaves_no_file(tmp_path):
    new = tmp_path / "new.json"
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json(new, {"ok": 1, "bad": object()})
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temp file
    old = tmp_path / "old.json"
    write_json(old, {"v": 1})
    with pytest.raises(TypeError):
        write_json(old, {"v": object()})
    assert json.loads(old.read_text()) == {"v": 1}  # previous content intact
    assert [p.name for p in tmp_path.iterdir()] == ["old.json"]


def test_write_text_is_atomic_and_refuses_non_text(tmp_path):
    out = tmp_path / "report.md"
    assert write_text(out, "# ä\n") == out and out.read_text(encoding="utf-8") == "# ä\n"
    with pytest.raises(TypeError, match="must be a str"):
        write_text(out, b"bytes")
    assert out.read_text(encoding="utf-8") == "# ä\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_temporaries_of_killed_writers_are_removed(tmp_path):
    """A writer killed between creating its temporary and the rename leaves
    ``.<name>.<pid>-<host>-<token>.tmp``; the next write of the same file removes those of
    dead processes on this host and keeps a live writer's and other files' temporaries."""
    import os
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    names = [f".r.json.{dead.pid}-{host}-00aa.tmp",  # dead writer of r.json: removed
             f".r.json.{os.getpid()}-{host}-00bb.tmp",  # a live one: kept
             f".r.json.{dead.pid}-elsewhere-00cc.tmp",  # another host's: kept
             f".other.json.{dead.pid}-{host}-00dd.tmp"]  # another file's: kept
    for n in names:
        (tmp_path / n).write_text("{ half")
    write_json(tmp_path / "r.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:] + ["r.json"])


def test_versions_and_provenance():
    v = versions()
    for k in ("python", "jax", "flax", "optax", "numpy"):
        assert isinstance(v[k], str) and v[k]
    assert "orbax-checkpoint" not in v  # no longer a dependency
    p = provenance()
    assert p["backend"] in ("cpu", "gpu", "tpu", "cuda", "rocm")
    assert p["device_count"] == len(p["devices"]) >= 1
    assert p["time_utc"].endswith("+00:00")
    json.dumps(p)  # serialisable as is


def test_pruning_old_steps_never_leaves_a_partial_step(tmp_path, monkeypatch):
    """A process killed while deleting a step beyond ``max_to_keep`` (here: the deletion
    stops after one file) leaves no partial step: the step is renamed to a temporary name
    first, and the next save removes what is left of it."""
    import shutil

    from jaxmu.io import _checkpoint as ck
    from jaxmu.io import verify_step

    d = tmp_path / "ck"
    save_checkpoint(d, 1, _tree(1))
    save_checkpoint(d, 2, _tree(2))

    rmtree = shutil.rmtree

    def killed_midway(path, ignore_errors=False):
        files = [p for p in Path(path).rglob("*") if p.is_file()]
        if not files:  # the save's own emptied temporary directory
            return rmtree(path, ignore_errors=ignore_errors)
        files[0].unlink()
        raise KeyboardInterrupt  # stands for SIGKILL: nothing after this runs

    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(d, 3, _tree(3))  # prunes step 1
    monkeypatch.undo()
    steps = sorted(p.name for p in d.iterdir() if p.name.isdigit())
    assert steps == ["2", "3"] and all(verify_step(d / s) is None for s in steps)
    leftovers = [p for p in d.iterdir() if p.name.startswith(ck._TMP)]
    assert len(leftovers) == 1  # what the killed deletion left, under a temporary name
    monkeypatch.setattr(ck, "pid_alive", lambda pid: False)  # as after the kill
    save_checkpoint(d, 4, _tree(4))
    assert sorted(p.name for p in d.iterdir()) == ["3", "4"]
