"""``subset_dataset`` and the CLI's --train-size / --test-size: stratified, seeded,
validated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments._cli import main
from jaxmu.data import load_digits, subset_dataset


def _labels(ds, part):
    y = np.asarray(ds.pool.y)
    return y[:ds.n_train] if part == "train" else y[ds.n_train:]


def test_subset_is_stratified_seeded_and_keeps_statics():
    ds = load_digits()
    sub = subset_dataset(ds, 500, 100, seed=3)
    assert (sub.n_train, sub.n_test, sub.pool.size) == (500, 100, 600)
    for part, n in (("train", 500), ("test", 100)):
        full = np.bincount(_labels(ds, part), minlength=10) / len(_labels(ds, part))
        got = np.bincount(_labels(sub, part), minlength=10)
        assert np.all(np.abs(got - n * full) <= 1.0), (part, got, n * full)
    # every kept image is one of the full part's images, with its own label, none twice
    x, y = np.asarray(ds.pool.x), np.asarray(ds.pool.y)
    xs, ys = np.asarray(sub.pool.x), np.asarray(sub.pool.y)
    rows = {img.tobytes(): [] for img in x}
    for i, img in enumerate(x):
        rows[img.tobytes()].append(i)
    for j in range(sub.pool.size):
        origin = rows[xs[j].tobytes()]
        assert any(y[i] == ys[j] and ((i < ds.n_train) == (j < sub.n_train)) for i in origin)
    again = subset_dataset(ds, 500, 100, seed=3)
    np.testing.assert_array_equal(np.asarray(again.pool.x), xs)
    other = subset_dataset(ds, 500, 100, seed=4)
    assert not np.array_equal(np.asarray(other.pool.y), ys)
    assert (sub.pool.mean, sub.pool.std, sub.pool.name) == (ds.pool.mean, ds.pool.std,
                                                            ds.pool.name)


def test_subset_of_one_part_keeps_the_other_whole():
    ds = load_digits()
    sub = subset_dataset(ds, n_test=50, seed=0)
    assert sub.n_train == ds.n_train and sub.n_test == 50
    np.testing.assert_array_equal(np.asarray(sub.pool.x)[:ds.n_train],
                                  np.asarray(ds.pool.x)[:ds.n_train])
    assert subset_dataset(ds) .pool.size == ds.pool.size


@pytest.mark.parametrize("kw", [dict(n_train=5), dict(n_train=10**6), dict(n_test=0),
                                dict(n_train=100.5), dict(n_test=True)])
def test_bad_sizes_raise_one_line(kw):
    with pytest.raises(ValueError) as e:
        subset_dataset(load_digits(), **kw)
    assert "\n" not in str(e.value) and "digits" in str(e.value)


@pytest.mark.parametrize("args", [["--train-size", "5"], ["--test-size", "100000"],
                                  ["--train-size", "x"]])
def test_cli_bad_sizes_exit_2(args, capsys, tmp_path):
    assert main("digits", args + ["--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m experiments.digits: error: ")
    assert not any(tmp_path.rglob("*.json"))


def test_cli_run_on_a_subset_records_it(tmp_path, capsys):
    args = ["--method", "ft", "--hp", "epochs=1", "--epochs", "1", "--no-mia", "--quiet",
            "--cache-dir", "", "--train-size", "400", "--test-size", "120",
            "--out", str(tmp_path)]
    assert main("digits", args) == 0
    rec = json.loads(next(tmp_path.rglob("ft_seed0.json")).read_text())
    assert rec["config"]["train_size"] == 400 and rec["config"]["test_size"] == 120
    s = rec["splits"]
    assert s["test"] == 120 and s["forget"] + s["retain"] + s["val"] == 400
