"""Deletion scenarios: ratio sweep and sequential requests on tiny digits settings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jaxmu.methods import get_method
from jaxmu.metrics import evaluate_logits
from jaxmu.models import mlp
from jaxmu.scenarios import (
    TIMING_KEYS,
    _common,
    crossover,
    deletion_ratio_sweep,
    deletion_requests,
    sequential_deletion,
)
from jaxmu.train import TrainConfig

RECIPE = TrainConfig(epochs=1, batch_size=64, lr=0.05, augment=False)
MODEL = mlp((8, 8, 1), 10, hidden=(32,))
SWEEP = dict(methods=["ft", "sisa"], ratios=[0.3, 0.05], seed=0, config=RECIPE)
SEQ = dict(methods=["sisa", "ft"], num_requests=2, request_size=25, seed=0, config=RECIPE)


def _strip(o):
    """The result without wall-clock numbers (and what derives from them)."""
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items()
                if k not in TIMING_KEYS and k not in ("cumulative_speedup",)}
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return o


@pytest.fixture(scope="module")
def sweep(digits):
    return deletion_ratio_sweep(digits, MODEL, **SWEEP)


@pytest.fixture(scope="module")
def seq(digits):
    return sequential_deletion(digits, MODEL, **SEQ)


def test_sweep_structure(sweep):
    json.dumps(sweep, allow_nan=False)  # JSON-safe
    assert sweep["ratios"] == [0.05, 0.3]  # sorted
    assert sweep["methods"] == ["retrain", "ft", "sisa"]
    assert set(sweep["crossover"]) == {"ft", "sisa"}
    assert len(sweep["table"]) == 2 * 3
    for row in sweep["rows"]:
        assert row["n_forget"] == pytest.approx(row["ratio"] * (row["n_forget"]
                                                                + row["n_retain"]), abs=1)
        assert row["retrain_s"] > 0
        for name, m in row["methods"].items():
            assert m["exact"] == (name in ("retrain", "sisa"))
            assert m["cost_s"] > 0 and m["speedup"] > 0
            for k in ("ra", "fa", "ta", "rr", "fr", "tr", "retdev", "indisc_test"):
                assert 0 <= m["metrics"][k] <= 3, (name, k)
        assert row["methods"]["retrain"]["speedup"] == 1.0
        assert row["methods"]["sisa"]["affected_shards"] >= 1
    assert sweep["sisa_setup"]["num_shards"] == 5


def test_exact_retrain_has_zero_retdev(sweep, seq):
    for row in sweep["rows"] + seq["requests"]:
        met = row["methods"]["retrain"]["metrics"]
        assert met["retdev"] == 0.0 and met["rr"] == met["fr"] == met["tr"] == 1.0
        assert met["l2_to_retrained"] == 0.0


def test_sweep_deterministic_except_timings(sweep, digits):
    # A sweep over one of the ratios reproduces that ratio's row: same seed, same numbers
    # (timings aside), and every ratio is computed independently of the others.
    again = deletion_ratio_sweep(digits, MODEL, **{**SWEEP, "ratios": [0.05]})
    assert _strip(again["rows"]) == _strip(sweep["rows"][:1])
    assert _strip(again["sisa_setup"]) == _strip(sweep["sisa_setup"])


def test_crossover_is_smallest_ratio_where_retrain_is_cheaper():
    rows = [{"ratio": r, "retrain_s": 1.0, "methods": {"a": {"cost_s": c}, "b": {"cost_s": .5}}}
            for r, c in ((0.1, 0.5), (0.2, 1.5), (0.3, 0.9))]
    assert crossover(rows, "a") == 0.2 and crossover(rows, "b") is None


def test_metrics_equal_evaluate_logits_without_val_mia():
    rng = np.random.default_rng(0)
    lab = {s: rng.integers(0, 3, n) for s, n in (("retain", 40), ("forget", 12),
                                                   ("val", 10), ("test", 20))}
    lg = [{s: rng.normal(size=(len(y), 3)) + 2 * np.eye(3)[y] for s, y in lab.items()}
          for _ in range(3)]
    want = evaluate_logits(lg[0], lab, original=lg[1], retrained=lg[2], classifier=None,
                           feature_classifier=None)
    got = _common.metrics(lg[0], lab, original=_common.reference(lg[1], lab),
                          retrained=_common.reference(lg[2], lab), params=None)
    val_mia = {k for k in want if k.endswith(("mia_val", "indisc_val", "mia_auc_val"))}
    assert len(val_mia) == 9  # the scenarios run the loss MIA against test only
    assert got == pytest.approx({k: v for k, v in want.items() if k not in val_mia})


def test_sequential_requests(seq, digits):
    reqs = deletion_requests(digits, 2, 25)
    assert [len(r) for r in reqs] == [25, 25]
    assert not np.intersect1d(reqs[0], reqs[1]).size  # disjoint
    assert reqs[0].tolist() == deletion_requests(digits, 1, 25)[0].tolist()  # a prefix
    assert seq["methods"] == ["retrain", "sisa", "ft"] and seq["forget_set"] == "cumulative"
    json.dumps(seq, allow_nan=False)
    cum = dict.fromkeys(seq["methods"], 0.0)
    for k, row in enumerate(seq["requests"]):
        assert row["request"] == k + 1
        assert row["indices"] == reqs[k].tolist()
        assert row["n_request"] == 25 and row["n_deleted"] == 25 * (k + 1)  # cumulative
        for name, m in row["methods"].items():
            cum[name] += m["cost_s"]
            assert m["cumulative_cost_s"] == pytest.approx(cum[name])
            assert m["exact"] == (name != "ft")
        assert row["methods"]["sisa"]["affected_shards"] >= 1
    assert len(seq["table"]) == 2 * 3


@pytest.mark.parametrize("ratios", [[0.0], [1.0], [0.2, 1.5], [-0.1], [math.nan], [],
                                    "0.1", [True]])
def test_bad_ratios(digits, ratios):
    with pytest.raises(ValueError) as e:
        deletion_ratio_sweep(digits, MODEL, ["ft"], ratios, config=RECIPE)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw, match", [
    (dict(methods=["no_such_method"]), "unknown method"),
    (dict(methods=["ft", "ft"]), "duplicate"),
    (dict(methods="ft"), "list of method names"),
    (dict(methods=[get_method("retrain")]), "exact baseline"),
    (dict(num_requests=0), "num_requests"),
    (dict(num_requests=2.5), "num_requests"),
    (dict(num_requests=100, request_size=50), "exceed the training set"),
    (dict(request_size=0.99, num_requests=2), "exceed the training set"),
    (dict(request_size=0), "request_size"),
    (dict(request_size=1.5), "request_size"),
    (dict(forget_set="all"), "forget_set"),
    (dict(repeats=0), "repeats"),
])
def test_bad_sequential_inputs(digits, kw, match):
    args = {**SEQ, **kw}
    with pytest.raises(ValueError, match=match) as e:
        sequential_deletion(digits, MODEL, **args)
    assert "\n" not in str(e.value)


def test_bad_sweep_methods(digits):
    with pytest.raises(ValueError, match="unknown method") as e:
        deletion_ratio_sweep(digits, MODEL, ["nope"], [0.1], config=RECIPE)
    assert "\n" not in str(e.value)


def test_benchmark_renders_results(sweep, seq):
    from benchmarks import deletion

    res = {"config": {"model": "mlp", "recipe": RECIPE.to_dict(), "repeats": 1},
           "provenance": {"backend": "cpu", "devices": ["cpu"], "threads": 2,
                          "load_avg_1_5_15min": None, "versions": {"jax": "x"}},
           "wall_s": 1.0, "sweep": sweep, "sequential": seq}
    text = deletion.render(res)
    assert "crossover (smallest ratio where retraining is cheaper): ft:" in text
    assert text.count("| sisa |") == 2 + 2 and "| 2 | 50 | ft |" in text


@pytest.mark.parametrize("argv", [["--ratios", "0"], ["--ratios", "0.1,x"],
                                  ["--methods", "nope"], ["--methods", "ft,ft"],
                                  ["--request-size", "0"], ["--requests", "-1"],
                                  ["--requests", "3", "--request-size", "0.5"]])
def test_benchmark_bad_arguments_exit_2(argv, capsys):
    from benchmarks import deletion

    try:
        rc = deletion.main(argv)
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err
