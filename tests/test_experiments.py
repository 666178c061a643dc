"""The experiment CLIs: bad arguments exit 2 with one stderr line; a digits run is
reproducible."""

from __future__ import annotations

import json

import pytest

from experiments._cli import main

FAST = ["--epochs", "2", "--no-mia", "--quiet", "--cache-dir", ""]


@pytest.mark.parametrize("args", [
    ["--method", "nope"],
    ["--forget-fraction", "1.5"],
    ["--forget-fraction", "0"],
    ["--val-fraction", "-0.1"],
    ["--method", "ft", "--hp", "bogus=1"],
    ["--method", "ft", "--hp", "noequals"],
    ["--forget-scenario", "weird"],
    ["--epochs", "0"],
    ["--benchmark", "--methods", "ft,nope"],
    ["--benchmark", "--trials", "0"],
    ["--benchmark", "--seeds", "0"],
    ["--benchmark", "--trial-batch", "0"],
    ["--benchmark", "--eval", "fscore"],
    ["--benchmark", "--eval", "ulira", "--ulira-variant", "offline"],
    ["--benchmark", "--eval", "ulira", "--ulira-flip"],
    ["--deletion-ratios", "0.1,1.5"],
    ["--deletion-ratios", "0.1,x"],
    ["--deletion-ratios", "0.1", "--forget-scenario", "classwise:3"],
    ["--deletion-ratios", "0.1", "--compare-methods", "ft,nope"],
    ["--sequential-requests", "0"],
    ["--sequential-requests", "2", "--request-size", "-1"],
    ["--sequential-requests", "2", "--benchmark"],
    # detected by argparse itself: invalid choice, bad type, unknown flag, missing value
    ["--model", "nope"],
    ["--strategy", "fast"],
    ["--ulira-variant", "nope"],
    ["--seed", "x"],
    ["--forget-fraction", "half"],
    ["--nope"],
    ["--method"],
])
def test_bad_arguments_exit_2_with_one_line(args, capsys, tmp_path):
    assert main("digits", args + ["--out", str(tmp_path)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1, err  # no usage block
    assert err[0].startswith("python -m experiments.digits: error: ")
    assert "usage:" not in cap.err and not cap.out
    assert not any(tmp_path.rglob("*.json"))  # nothing half-written


def test_argparse_errors_name_the_argument(capsys):
    assert main("digits", ["--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m experiments.digits: error: argument --model: invalid "
                          "choice: 'nope' (choose from 'mlp', ")
    assert err.endswith(")\n") and err.count("\n") == 1
    assert main("digits", ["--seed", "x"]) == 2
    assert "argument --seed: invalid int value: 'x'" in capsys.readouterr().err


def test_help_still_works(capsys):
    assert main("digits", ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m experiments.digits") and "--list-methods" in out


def test_list_methods_gives_presets_their_own_summary(capsys):
    from jaxmu.methods import get_method
    from jaxmu.methods.presets import PRESETS, SUMMARIES

    assert main("digits", ["--list-methods"]) == 0
    listed = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    for name, (base, _) in PRESETS.items():
        # every preset overrides at least the epochs, so its recipe must read differently
        assert listed[name] == SUMMARIES[name] == get_method(name).summary
        assert listed[name] != listed[base] == get_method(base).definition.summary
    dev, grad = listed["deviation"], listed["gradient"]
    assert "every conv kernel" in dev and "stem" not in dev
    assert "0.6^2" in dev and "0.005^2" in dev and "9 epochs" in dev
    assert "30%" in grad and "grads x0 " in grad and "x0.1" not in grad
    assert "9 epochs" in grad


def test_missing_tfds_data_exits_2(capsys, tmp_path):
    assert main("cifar10", ["--data-dir", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tfds build cifar10" in err[0]


def _strip(rec):
    return {k: v for k, v in rec.items() if k not in ("timings", "provenance", "config")} | {
        "metrics": {k: v for k, v in rec["metrics"].items()
                    if "seconds" not in k and k != "rte"}}


def test_digits_run_is_reproducible(tmp_path, capsys):
    outs = []
    for i in range(2):
        out = tmp_path / str(i)
        assert main("digits", ["--method", "ct", "--hp", "epochs=1", "--out", str(out)]
                    + FAST) == 0
        outs.append(json.loads((out / "digits" / "ct_seed0.json").read_text()))
    assert "RA" in capsys.readouterr().out
    assert _strip(outs[0]) == _strip(outs[1])
    rec = outs[0]
    assert set(rec["provenance"]["versions"]) >= {"jax", "flax", "optax"}
    assert rec["seed"] == 0 and rec["hparams"]["epochs"] == 1
    assert 0 <= rec["metrics"]["fa"] <= 1 and rec["timings"]["unlearned_s"] > 0


@pytest.mark.parametrize("flags, flip, variant", [
    ([], False, "online"),
    (["--ulira-flip", "--ulira-variant", "offline"], True, "offline"),
])
def test_ulira_flags_reach_the_pipeline(monkeypatch, flags, flip, variant):
    import jaxmu.evaluation
    from experiments._cli import build_parser
    from jaxmu.experiment import Evaluation, population_eval
    from jaxmu.methods import get_method
    from jaxmu.models import mlp

    seen = {}
    monkeypatch.setattr(jaxmu.evaluation, "ulira_pipeline",
                        lambda *args, **kw: seen.update(kw) or {"ok": True})
    a = build_parser("digits").parse_args(["--eval", "ulira", *flags])
    assert (vars(a)["ulira_flip"], vars(a)["ulira_variant"]) == (flip, variant)  # in config
    model = mlp((8, 8, 1), 10, hidden=(4,))
    ev = Evaluation("ulira", ulira_flip=a.ulira_flip, ulira_variant=a.ulira_variant)
    assert population_eval(ev, model, None, None, get_method("ft"), None, None,
                           False) == {"ok": True}
    assert (seen["flip"], seen["variant"]) == (flip, variant)


def test_deletion_ratio_cli(tmp_path, capsys):
    args = ["--deletion-ratios", "0.05,0.2", "--compare-methods", "ft", "--hp", "epochs=1",
            "--method", "ft", "--out", str(tmp_path)] + FAST
    assert main("digits", args) == 0
    rec = json.loads((tmp_path / "digits" / "deletion_sweep_seed0.json").read_text())
    assert [r["method"] for r in rec["table"]] == ["retrain", "ft", "retrain", "ft"]
    assert [r["ratio"] for r in rec["table"]] == [0.05, 0.05, 0.2, 0.2]
    assert rec["table"][0]["retdev"] == 0.0 and rec["table"][1]["cost_s"] > 0
    out = capsys.readouterr().out
    assert "crossover" in out and "deletion_sweep_seed0.json" in out
