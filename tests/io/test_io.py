"""Checkpoints (orbax) and result files: roundtrip, latest step, atomic JSON."""

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


def test_versions_and_provenance():
    v = versions()
    for k in ("python", "jax", "flax", "optax", "orbax-checkpoint", "numpy"):
        assert isinstance(v[k], str) and v[k]
    p = provenance()
    assert p["backend"] in ("cpu", "gpu", "tpu", "cuda", "rocm")
    assert p["device_count"] == len(p["devices"]) >= 1
    assert p["time_utc"].endswith("+00:00")
    json.dumps(p)  # serialisable as is
