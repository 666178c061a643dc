"""Invalid user data is refused in one line naming the file (library and CLI, exit code 2),
and the CLI trains and unlearns on real Fashion-MNIST IDX files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments._cli import main
from jaxmu.data import (
    SYSTEM_IDX_DIRS,
    find_idx_files,
    load_npz,
    random_splits,
    read_idx,
    write_idx,
)
from jaxmu.data._splits import scenario_splits

REPO = Path(__file__).resolve().parents[2]
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")
PROG = "python -m experiments.fashion_mnist: error: "

# the three invalid inputs: (x, y) of the train part and the problem each must be named by
BAD = {
    "lengths": (np.zeros((100, 28, 28), np.uint8), np.arange(99) % 10,
                "has 99 labels for 100 images in "),
    "nan": (np.full((100, 28, 28), np.nan, np.float32), np.arange(100) % 10,
            r"has 78400 non-finite values \(NaN or inf\) out of 78400"),
    "range": (np.linspace(-3, 7, 100 * 28 * 28).reshape(100, 28, 28), np.arange(100) % 10,
              r"values lie in \[-3, 7\]; images must be uint8, integers in \[0, 255\], or "
              r"floats in \[0, 1\] or \[0, 255\]"),
}


# ----------------------------------------------------------------------------- load_npz


@pytest.mark.parametrize("case", BAD)
@pytest.mark.parametrize("with_test", [False, True])
def test_load_npz_refuses_invalid_arrays(tmp_path, case, with_test):
    x, y, match = BAD[case]
    p = tmp_path / "bad.npz"
    extra = dict(x_test=np.zeros((10, 28, 28), np.uint8), y_test=np.arange(10)) if with_test \
        else {}
    np.savez(p, x=x, y=y, **extra)
    with pytest.raises(ValueError, match=match) as e:
        load_npz(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg


def test_load_npz_refuses_bad_labels_and_test_part(tmp_path):
    x = np.zeros((10, 4, 4), np.uint8)
    cases = {
        "neg": (dict(x=x, y=np.r_[-1, np.arange(9) % 2]), r"y labels lie in \[-1, 1\]; expected"),
        "over": (dict(x=x, y=np.arange(10) % 4), r"y labels lie in \[0, 3\]; expected \[0, 2\]"),
        "frac": (dict(x=x, y=np.full(10, 0.5)), "y must hold integer class labels"),
        "str": (dict(x=x, y=np.array(["a"] * 10)), "y must hold integer class labels, got "
                                                  "dtype <U1"),
        "test": (dict(x=x, y=np.arange(10) % 2, x_test=x[:3], y_test=[0, 1]),
                 "y_test has 2 labels for 3 images in x_test"),
        "empty": (dict(x=x, y=np.arange(10) % 2, x_test=x[:0], y_test=[]),
                  "the test set is empty"),
        "shape": (dict(x=x, y=np.arange(10) % 2, x_test=np.zeros((2, 5, 4), np.uint8),
                       y_test=[0, 1]), r"train/test image shapes differ: \(4, 4, 1\) vs"),
        "1d": (dict(x=np.zeros(10, np.uint8), y=np.arange(10) % 2),
               r"x must be \[N, H, W\] or \[N, H, W, C\] images, got shape \(10,\)"),
        "few": (dict(x=x[:3], y=[0, 1, 1]), "cannot split off a stratified test part of 0.2 "
                                            "from 3 examples"),
    }
    for name, (arrays, match) in cases.items():
        p = tmp_path / f"{name}.npz"
        np.savez(p, **arrays)
        with pytest.raises(ValueError, match=match) as e:
            load_npz(p, num_classes=3)
        assert str(e.value).startswith(f"{p}: ") and "\n" not in str(e.value), name


def test_load_npz_converts_documented_inputs(tmp_path):
    y = np.arange(4) % 2
    grid = np.array([0.0, 1.0, 0.5, 0.25])[:, None, None] * np.ones((4, 2, 2))
    cases = {  # file -> (x, expected uint8 pixel of each image)
        "unit": (grid, [0, 255, 128, 64]),                            # floats in [0, 1]
        "bytes": (grid * 200, [0, 200, 100, 50]),                      # floats in [0, 255]
        "ints": ((grid * 200).astype(np.int64), [0, 200, 100, 50]),    # integers in [0, 255]
        "f32": (np.float32(grid * 254.6), [0, 255, 127, 64]),          # rounded
    }
    for name, (x, want) in cases.items():
        p = tmp_path / f"{name}.npz"
        np.savez(p, x=x, y=y, x_test=x[:2], y_test=y[:2])
        got = np.asarray(load_npz(p).pool.x)
        assert got.dtype == np.uint8 and got.shape == (6, 2, 2, 1)
        np.testing.assert_array_equal(got[:4, 0, 0, 0], want, err_msg=name)
    np.savez(tmp_path / "inf.npz", x=np.full((4, 2, 2), np.inf), y=y)
    with pytest.raises(ValueError, match="has 16 non-finite values"):
        load_npz(tmp_path / "inf.npz")
    np.savez(tmp_path / "big.npz", x=np.full((4, 2, 2), 256, np.int32), y=y)
    with pytest.raises(ValueError, match=r"x values lie in \[256, 256\]"):
        load_npz(tmp_path / "big.npz")


# ----------------------------------------------------------------------------- splits


def test_splits_refuse_fractions_that_leave_a_set_empty():
    from _helpers import tiny_dataset

    with pytest.raises(ValueError, match=r"^val_fraction 0.15 of 1 examples leaves the train "
                                         "set empty; the dataset is too small"):
        random_splits(tiny_dataset(n_train=1, n_test=2, k=2))
    with pytest.raises(ValueError, match=r"^forget_fraction 0.1 of 1 examples leaves the "
                                         "retain set empty"):
        random_splits(tiny_dataset(n_train=2, n_test=2, k=2))
    with pytest.raises(ValueError, match="^val_fraction 0.9 of 2 examples leaves the train"):
        scenario_splits(tiny_dataset(n_train=2, n_test=2, k=2), "classwise:0", val_fraction=0.9)
    s = random_splits(tiny_dataset(n_train=3, n_test=2, k=2))  # the smallest that works
    assert s.sizes() == {"forget": 1, "retain": 1, "val": 1, "test": 2}


# ----------------------------------------------------------------------------- the CLI


def _idx_dir(d: Path, x_train, y_train, n_test=10) -> Path:
    d.mkdir()
    write_idx(d / f"{STEMS[0]}.gz", x_train)
    write_idx(d / f"{STEMS[1]}.gz", np.asarray(y_train).astype(np.uint8))
    write_idx(d / STEMS[2], np.zeros((n_test, 28, 28), np.uint8))
    write_idx(d / STEMS[3], (np.arange(n_test) % 10).astype(np.uint8))
    return d


def _cli(tmp_path, capsys, data_dir, *extra):
    rc = main("fashion_mnist", ["--data-dir", str(data_dir), "--out", str(tmp_path / "out"),
                                "--cache-dir", str(tmp_path / "cache"), "--quiet", *extra])
    std = capsys.readouterr()
    return rc, std


@pytest.mark.parametrize("case", BAD)
def test_cli_invalid_data_exits_2_with_one_line(tmp_path, capsys, case):
    x, y, match = BAD[case]
    d = _idx_dir(tmp_path / "data", x, y)
    rc, std = _cli(tmp_path, capsys, d)
    assert rc == 2 and std.out == ""
    lines = std.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PROG + str(d / f"{STEMS[0]}.gz")
                                                   if case != "lengths" else
                                                   PROG + str(d / f"{STEMS[1]}.gz"))
    assert re.search(match, lines[0])
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_cli_corrupt_missing_and_too_small_data_exit_2(tmp_path, capsys, monkeypatch):
    d = _idx_dir(tmp_path / "data", np.zeros((2, 28, 28), np.uint8), [0, 1])
    rc, std = _cli(tmp_path, capsys, d)  # 2 train examples: val 1, train 1, forget 1
    assert rc == 2 and std.err == (PROG + "forget_fraction 0.1 of 1 examples leaves the retain "
                                   "set empty; the dataset is too small for these fractions\n")
    (d / STEMS[2]).write_bytes((d / STEMS[2]).read_bytes()[:-5])
    rc, std = _cli(tmp_path, capsys, d)
    assert rc == 2 and std.err.count("\n") == 1
    assert std.err.startswith(PROG + f"{d / STEMS[2]}: truncated: the header declares uint8 "
                                     "[10, 28, 28] (7840 bytes of data), the file holds 7835")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setitem(SYSTEM_IDX_DIRS, "fashion_mnist",
                        (str(tmp_path / "none"), "dataset-fashion-mnist"))
    rc, std = _cli(tmp_path, capsys, empty)
    assert rc == 2 and std.err.count("\n") == 1
    assert std.err.startswith(PROG + f"dataset 'fashion_mnist' not found in {empty}: `apt-get "
                                     "install dataset-fashion-mnist`")


def test_cli_subprocess_exit_code_and_stderr(tmp_path):
    d = _idx_dir(tmp_path / "data", np.zeros((100, 28, 28), np.uint8), np.arange(99) % 10)
    r = subprocess.run([sys.executable, "-m", "experiments.fashion_mnist", "--data-dir", str(d),
                        "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (PROG + f"{d / STEMS[1]}.gz has 99 labels for 100 images in "
                               f"{d / STEMS[0]}.gz\n")


# ----------------------------------------------------------------------------- real data

FASHION_DIR = SYSTEM_IDX_DIRS["fashion_mnist"][0]
HAVE_REAL = Path(FASHION_DIR).is_dir() and find_idx_files(FASHION_DIR) is not None


@pytest.mark.skipif(not HAVE_REAL, reason=f"Fashion-MNIST IDX files not in {FASHION_DIR} "
                                          "(apt-get install dataset-fashion-mnist)")
def test_cli_trains_and_unlearns_on_real_fashion_mnist_subset(tmp_path, capsys):
    """The first 1,200 train and 300 test images of the real files, through --data-dir."""
    files = find_idx_files(FASHION_DIR)
    d = tmp_path / "data"
    d.mkdir()
    for stem, n in zip(STEMS, (1200, 1200, 300, 300), strict=True):
        write_idx(d / f"{stem}.gz", read_idx(files[stem])[:n])
    rc, std = _cli(tmp_path, capsys, d, "--model", "mlp", "--epochs", "3", "--batch-size",
                   "64", "--lr", "0.05", "--method", "ft", "--hp", "epochs=1", "--hp",
                   "batch_size=64", "--hp", "lr=0.01", "--no-mia")
    assert rc == 0, std.err
    path = tmp_path / "out" / "fashion_mnist" / "ft_seed0.json"
    rec = json.loads(path.read_text())
    # DU split sizes: val ceil(0.15 * 1200) = 180, forget ceil(0.1 * 1020) = 102
    assert rec["splits"] == {"forget": 102, "retain": 918, "val": 180, "test": 300}
    m = rec["metrics"]
    assert rec["experiment"] == "fashion_mnist" and rec["model"] == "mlp"
    for prefix in ("", "original_", "retrained_"):
        # 10 classes: chance is 0.1; a few epochs on 1,020 images reach well above it
        assert 0.5 < m[f"{prefix}ta"] <= 1, (prefix, m[f"{prefix}ta"])
    assert m["original_fa"] >= m["retrained_fa"] - 0.1  # O saw the forget set, R did not
    assert std.out.splitlines()[-1] == f"wrote {path}"


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_REAL, reason=f"Fashion-MNIST IDX files not in {FASHION_DIR} "
                                          "(apt-get install dataset-fashion-mnist)")
def test_cli_finds_the_installed_fashion_mnist_without_data_dir(tmp_path, capsys):
    """All 70,000 images from the Debian package's folder (about a minute on 2 cores)."""
    rc = main("fashion_mnist", ["--model", "mlp", "--epochs", "1", "--method", "ft", "--hp",
                                "epochs=1", "--no-mia", "--quiet", "--out", str(tmp_path / "out"),
                                "--cache-dir", str(tmp_path / "cache")])
    std = capsys.readouterr()
    assert rc == 0, std.err
    rec = json.loads((tmp_path / "out" / "fashion_mnist" / "ft_seed0.json").read_text())
    # Deep Unlearn's Fashion-MNIST split sizes
    assert rec["splits"] == {"forget": 5100, "retain": 45900, "val": 9000, "test": 10000}
    assert rec["config"]["data_dir"] is None
    for prefix in ("", "original_", "retrained_"):
        assert 0.6 < rec["metrics"][f"{prefix}ta"] <= 1
