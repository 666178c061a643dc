"""Benchmarks run end to end in-process on their tiniest settings (no wall-clock asserts)."""

from __future__ import annotations

import json

import pytest

from benchmarks import deletion, fscore_pipeline, methods, train_step


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines, "benchmark printed nothing"
    assert len(lines) > 1, "the human-readable table must come before the JSON line"
    return json.loads(lines[-1])


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def test_train_step_quick_json(capsys):
    rc = train_step.main(["--quick", "--json", "--settings", "mlp", "--repeats", "1",
                          "--peak-n", "256", "--steps", "2", "--no-torch"])
    assert rc == 0
    out = capsys.readouterr().out
    res = json.loads(out.strip().splitlines()[-1])
    assert res["benchmark"] == "train_step"
    for k in ("config", "seed", "provenance", "peak", "settings", "load_start", "load_end",
              "foreign_cores", "valid"):
        assert k in res
    assert res["config"]["steps_per_epoch"] == 2 and res["config"]["max_load"] == 1.5
    assert "versions" in res["provenance"] and "backend" in res["provenance"]
    assert _positive(res["peak"]["flops_per_s"])
    m = res["settings"]["mlp"]
    assert m["batch"] == 256 and m["input_shape"] == [28, 28, 1]
    for k in ("params", "flops_per_step", "compile_scan_s", "compile_map_s", "compile_step_s"):
        assert _positive(m[k]), (k, m[k])
    for mode in ("scan", "map", "loop"):
        assert _positive(m["step_s"][mode]) and m["step_min_s"][mode] <= m["step_s"][mode]
    assert m["ratios"]["scan_over_loop"] == m["step_s"]["scan"] / m["step_s"]["loop"]
    assert "torch" not in m["step_s"] and m["torch_status"] == "skipped (--no-torch)"
    # the validity verdict follows the start load and other processes' CPU use
    assert res["foreign_cores"] is None or res["foreign_cores"] >= 0
    assert res["valid"] == (res["load_start"] <= 1.5 and (
        res["foreign_cores"] is None or res["foreign_cores"] <= 0.25))
    assert ("VALID: idle machine" in out) == res["valid"]


@pytest.mark.slow
def test_methods_quick_json(capsys, tmp_path):
    rc = methods.main(["--quick", "--json", "--methods", "ft,ct,no_such_method",
                       "--repeats", "1", "--min-time", "0", "--epochs", "2",
                       "--retrain-repeats", "2", "--out", str(tmp_path)])
    assert rc == 0
    res = _last_json(capsys)
    assert res["benchmark"] == "methods"
    for k in ("config", "seed", "provenance", "original", "retrain", "cifar_like", "methods",
              "targets"):
        assert k in res
    assert _positive(res["retrain"]["train_s"])
    assert len(res["retrain"]["train_s_all"]) == 2
    assert res["cifar_like"]["retrain_epochs"] == pytest.approx(182 / 5 * 5)
    rows = {r["method"]: r for r in res["methods"]}
    assert set(rows) == {"ft", "ct", "no_such_method"}
    for name in ("ft", "ct"):
        r = rows[name]
        assert r["error"] is None
        for k in ("compile_s", "run_s", "rte", "rte_best", "rte_cifar_like"):
            assert _positive(r[k]), (name, k, r[k])
        assert 0.0 <= r["acc"]["test"] <= 1.0
    # a failing method is recorded, not fatal
    assert rows["no_such_method"]["error"].startswith("ValueError")
    assert rows["no_such_method"]["rte"] is None
    t = {x["method"]: x for x in res["targets"]}
    assert t["ct"]["status"] in ("PASS", "FAIL") and t["msg"]["status"] == "NOT RUN"
    assert (tmp_path / "methods_mlp.md").read_text().startswith("methods on digits")
    assert json.loads((tmp_path / "methods_mlp.json").read_text())["benchmark"] == "methods"


@pytest.mark.parametrize("main, argv", [
    (train_step.main, ["--models", "vgg"]),
    (train_step.main, ["--repeats", "0"]),
    (train_step.main, ["--bogus"]),
    (methods.main, ["--model", "resnet50"]),
    (methods.main, ["--epochs", "x"]),
    (methods.main, ["--min-time", "-1"]),
    (methods.main, ["--retrain-repeats", "0"]),
    (fscore_pipeline.main, ["--models", "1"]),
    (fscore_pipeline.main, ["--method", "nope"]),
    (fscore_pipeline.main, ["--epochs", "0"]),
    (deletion.main, ["--ratios", "0.1,1.5"]),
    (deletion.main, ["--methods", "ft,nope"]),
    (deletion.main, ["--model", "nope"]),
    (train_step.main, ["--seed", "x"]),
    (fscore_pipeline.main, ["--nope"]),
])
def test_bad_arguments_exit_2(main, argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err
    assert err.startswith("python -m benchmarks.") and "usage:" not in err


@pytest.mark.slow
def test_fscore_pipeline_tiny_json(capsys):
    assert fscore_pipeline.main(["--models", "2", "--epochs", "1", "--method", "ft",
                                 "--json"]) == 0
    res = _last_json(capsys)
    assert res["num_models"] == 2 and res["method"] == "ft"
    assert 0.0 <= res["forget_quality"] <= 1.0
    assert all(_positive(v) for k, v in res["timings_s"].items() if k != "scoring_and_rest")
    assert _positive(res["total_over_target"])
