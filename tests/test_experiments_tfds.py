"""End to end: ``python -m experiments.cifar10`` on a tiny cifar10 prepared offline.

The fake dataset (12 train, 5 test examples) is far too small for the loss MIA: the run must
still finish, leave the loss-MIA keys out, list why under ``"warnings"`` and print "–".
"""

from __future__ import annotations

import json
import math

import pytest
from _helpers import prepare_fake_tfds

from experiments._cli import MISSING, main

N_TRAIN, N_TEST = 12, 5


@pytest.fixture(scope="module")
def cifar10_dir(tmp_path_factory):
    pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.image_classification import cifar

    d = tmp_path_factory.mktemp("tfds")
    prepare_fake_tfds(d, ((cifar.Cifar10, (32, 32, 3)),), N_TRAIN, N_TEST)
    return str(d)


def test_cifar10_cli_end_to_end_on_tiny_data(cifar10_dir, tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    rc = main("cifar10", ["--method", "ft", "--data-dir", cifar10_dir, "--epochs", "1",
                          "--model", "mlp", "--batch-size", "8", "--out", str(out),
                          "--cache-dir", str(cache), "--quiet"])
    std = capsys.readouterr()
    assert rc == 0, std.err
    path = out / "cifar10" / "ft_seed0.json"
    assert [p.name for p in out.rglob("*.json")] == [path.name]

    def no_nan(c):
        raise AssertionError(f"non-finite value {c} in the JSON record")

    rec = json.loads(path.read_text(), parse_constant=no_nan)
    assert {"experiment", "method", "hparams", "config", "recipe", "model", "splits", "seed",
            "metrics", "warnings", "timings", "cache", "provenance"} <= set(rec)
    assert (rec["experiment"], rec["method"], rec["model"]) == ("cifar10", "ft", "mlp")
    # DU split sizes: val ceil(0.15 * 12) = 2, forget ceil(0.1 * 10) = 1, test = official test
    assert rec["splits"] == {"forget": 1, "retain": 9, "val": 2, "test": N_TEST}
    assert rec["recipe"]["epochs"] == 1 and rec["recipe"]["augment"] is True

    m = rec["metrics"]
    for prefix in ("", "original_", "retrained_"):
        for k in ("ra", "fa", "va", "ta"):
            assert 0 <= m[f"{prefix}{k}"] <= 1
    assert 0 <= m["classifier_mia"] <= 1 and "feature_mia_mean_gap" in m
    assert m["run_seconds"] > 0 and math.isfinite(m["rte"])
    # 1 forget example: no loss MIA for any model, and the reason is recorded once per split
    assert not [k for k in m if "mia_test" in k or "mia_val" in k or "indisc" in k]
    assert len(rec["warnings"]) == 2
    for ref, w in zip(("test", "val"), rec["warnings"], strict=True):
        assert w.startswith(f"loss MIA vs {ref} skipped") and f"mia_{ref}" in w
        assert "forget has 1 example" in w and "at least 6" in w
        assert f"warning: {w}" in std.err

    lines = std.out.splitlines()
    assert lines[0].startswith("cifar10: method ft  model mlp")
    header, rows = lines[1].split(), [ln.split() for ln in lines[2:5]]
    t_mia = header.index("T-MIA")
    assert [r[0] for r in rows] == ["original", "retrain", "unlearned"]
    assert all(r[t_mia] == MISSING for r in rows)  # missing values print as an en dash
    assert f"indiscernibility {MISSING}" in " ".join(lines[5].split())
    assert lines[-1] == f"wrote {path}"


def test_cifar10_cli_missing_data_dir_exits_2(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    rc = main("cifar10", ["--method", "ft", "--data-dir", str(tmp_path / "nowhere"),
                          "--epochs", "1", "--model", "small_cnn", "--out", str(out),
                          "--cache-dir", str(cache), "--quiet"])
    std = capsys.readouterr()
    assert rc == 2
    err = std.err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("python -m experiments.cifar10: error: ")
    assert "does not exist" in err[0] and "tfds build cifar10" in err[0]
    assert std.out == ""
    assert not out.exists() and not cache.exists()  # nothing written, not even a folder
