"""benchmarks.fscore end to end on a tiny setting (no wall-clock asserts)."""

from __future__ import annotations

import json

import pytest

from benchmarks import fscore


def test_fscore_benchmark_quick_json(capsys):
    rc = fscore.main(["--quick", "--json", "--models", "16", "--examples", "4",
                      "--ref-examples", "2", "--repeats", "1"])
    assert rc == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) > 1
    res = json.loads(lines[-1])  # the last stdout line is the JSON object
    assert res["benchmark"] == "fscore"
    assert res["config"]["reference_examples"] == 2 and res["config"]["models"] == 16
    assert res["max_abs_delta_eps"] == 0.0 and res["scores_identical"] is True
    for k in ("speedup", "speedup_wall", "vectorised_cpu_ms_per_example",
              "reference_cpu_ms_per_example"):
        assert res[k] > 0, k


@pytest.mark.parametrize("argv", [["--models", "1"], ["--examples", "0"], ["--bogus"],
                                  ["--examples", "3", "--ref-examples", "4"]])
def test_fscore_benchmark_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        fscore.main(argv)
    assert exc.value.code == 2
