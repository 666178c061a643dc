"""Audits inside the benchmark: ``run_benchmark(..., audits=...)`` / ``audit_study`` and the
CLI's ``--benchmark --eval klom|rmia|relearn|shadow-curve|all``: every method and both
references audited on one shared population, stored and reused on resume, reported, and
each method's rows reproducible by its RECIPES command."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest
from _sweep_task import MODEL, RECIPE, splits

import jaxmu.audits
from jaxmu.audits import AUDITS, AuditConfig, RelearnConfig
from jaxmu.methods.retrain import recipe_hparams
from jaxmu.sweep import audit_names_of, audit_study, compact_audit_report, run_benchmark

CFG = AuditConfig(num_shadows=8, num_forget_sets=2, n_bootstrap=10, shadow_draws=2,
                  relearn=RelearnConfig(steps=10, eval_every=5), relearn_runs=4)


class FakeAudits:
    """Stands in for run_audits: records each call, writes one plot, returns a report."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, splits, method, audits, *, oracle_method, config, recipe,
                 strategy, chunk, cache_dir, plot_dir, progress):
        self.calls.append({"method": method.name, "hp": dict(method.hp),
                           "oracle": (oracle_method.name, dict(oracle_method.hp)),
                           "audits": tuple(audits), "config": config,
                           "cache_dir": cache_dir})
        plot_dir.mkdir(parents=True, exist_ok=True)
        (plot_dir / "roc.png").write_bytes(b"png")
        first = len(self.calls) == 1
        return {"population": {"from_store": {"method": False, "oracle": not first,
                                              "originals": not first}, "seconds": 1.0},
                "klom": {"forget_p95": 0.5 + len(self.calls), "per_example": {"forget": [1]}},
                "timings": {"klom": 0.1}, "plots": {"roc": str(plot_dir / "roc.png")}}


@pytest.fixture
def fake(monkeypatch):
    f = FakeAudits()
    monkeypatch.setattr(jaxmu.audits, "run_audits", f)
    return f


HP = {"original": {}, "retrain": {}, "ft": {"epochs": 1, "lr": 0.01}}


def _study(out, cfg=CFG, audits=("klom",), cache="cache"):
    return audit_study(MODEL, splits(), RECIPE, HP, out, audits=audits, config=cfg,
                       cache_dir=cache, progress=False, log=lambda s: None)


def test_audit_study_shares_one_oracle_and_config_and_resumes(fake, tmp_path):
    out = tmp_path / "audits"
    res = _study(out)
    assert [c["method"] for c in fake.calls] == ["original", "retrain", "ft"]
    oracle = ("retrain", recipe_hparams(RECIPE))
    assert all(c["oracle"] == oracle and c["config"] is CFG and c["cache_dir"] == "cache"
               and c["audits"] == ("klom",) for c in fake.calls)
    assert fake.calls[1]["hp"] == recipe_hparams(RECIPE)  # retrain: the recipe's own
    assert fake.calls[2]["hp"]["lr"] == 0.01
    for name in HP:
        stored = json.loads((out / f"{name}.json").read_text())
        assert stored["method"] == name and stored["audits"] == ["klom"]
        assert stored["config"]["relearn"]["steps"] == 10
        assert stored["report"] == res[name]
        assert res[name]["plots"] == {"roc": str((out / name / "roc.png").resolve())}
    # Resume: nothing audited again, same reports, files untouched.
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert _study(out) == res and len(fake.calls) == 3
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.json")} == mtimes
    # A moved directory is reused, its plot paths pointing into the new place.
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    again = _study(moved)
    assert len(fake.calls) == 3
    assert again["ft"]["plots"]["roc"] == str((moved / "ft" / "roc.png").resolve())
    # Another configuration, other audits or other hyperparameters: audited again.
    _study(out, cfg=AuditConfig(num_shadows=8, num_forget_sets=2, n_bootstrap=11))
    assert len(fake.calls) == 6
    _study(out, audits="all")
    assert len(fake.calls) == 9 and fake.calls[-1]["audits"] == AUDITS


def test_audit_names_and_compact_report():
    assert audit_names_of("all") == AUDITS
    assert audit_names_of(["relearn", "klom"]) == ("klom", "relearn")  # AUDITS order
    assert audit_names_of("klom") == ("klom",)
    for bad in ([], ["klom", "klom"], ["lira"], "fscore"):
        with pytest.raises(ValueError, match="audits: expected distinct names"):
            audit_names_of(bad)
    rep = {"klom": {"forget_p95": 1.0, "per_example": {"forget": [0.1]}},
           "rmia": {"membership": {"auc": 0.6, "reference_probability": [0.5]},
                    "unlearning": {"auc": 0.5, "reference_probability": [0.5]}},
           "relearn": {"steps": [0, 5]}, "plots": {}}
    assert compact_audit_report(rep) == {
        "klom": {"forget_p95": 1.0}, "rmia": {"membership": {"auc": 0.6},
                                             "unlearning": {"auc": 0.5}},
        "relearn": {"steps": [0, 5]}, "plots": {}}
    assert "per_example" in rep["klom"]  # the input is left alone
    with pytest.raises(ValueError, match="report: expected a mapping"):
        compact_audit_report([1])


@pytest.mark.parametrize("kw, match", [
    ({"audits": ["klom", "lira"]}, "audits: expected distinct names"),
    ({"audits": []}, "audits: expected distinct names"),
    ({"audits": ["klom"], "audit_config": {"num_shadows": 8}}, "audit_config: expected"),
    ({"audit_config": CFG}, "need audits"),
])
def test_bad_audits_raise_before_writing(tmp_path, kw, match):
    s = splits()
    with pytest.raises(ValueError, match=match):
        run_benchmark(s.pool, MODEL, s, RECIPE, tmp_path / "x", methods=["ft"], trials=1,
                      search_seeds=[0], seeds=1, progress=False, **kw)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("extra, match", [
    (["--eval", "klom", "--bootstrap", "-1"], "n_bootstrap"),
    (["--eval", "all", "--targets", "7"], "num_targets"),
    (["--eval", "relearn", "--relearn-runs", "0"], "relearn_runs"),
    (["--eval", "klom", "--ulira-flip"], "--ulira-flip"),
    (["--eval", "fscore"], "not --eval fscore"),
])
def test_cli_benchmark_bad_audit_option_exits_2(tmp_path, capsys, extra, match):
    from experiments._cli import main

    args = ["--benchmark", "--methods", "ft", "--shadows", "8", "--out", str(tmp_path / "o"),
            "--cache-dir", str(tmp_path / "c"), "--quiet", *extra]
    assert main("digits", args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err
    assert not (tmp_path / "o").exists()


def test_cli_audit_flags_reproduce_the_audit_config():
    """The flags recorded for a study's audits rebuild its AuditConfig in a single run."""
    from experiments import _audit_cli
    from experiments._cli import build_parser

    p = build_parser("digits")
    a = p.parse_args(["--benchmark", "--eval", "all", "--shadows", "16", "--forget-sets", "3",
                      "--seed", "2", "--targets", "3", "--bootstrap", "7", "--rmia-offline",
                      "--rmia-a", "0.45", "--relearn-variant", "forget", "--relearn-steps",
                      "30", "--relearn-lr", "0.02", "--relearn-runs", "5", "--shadow-draws",
                      "3", "--forget-fraction", "0.2"])
    flags = _audit_cli.flags(a)
    single = p.parse_args(["--method", "ft", "--forget-fraction", "0.2", *shlex.split(flags)])
    assert single.eval == "all" and not single.benchmark
    assert _audit_cli.config(single) == _audit_cli.config(a)
    b = p.parse_args(["--benchmark", "--eval", "klom"])
    again = p.parse_args(shlex.split(_audit_cli.flags(b)))
    assert _audit_cli.config(again) == _audit_cli.config(b)


@pytest.mark.slow
def test_cli_benchmark_eval_all_audits_every_method_once(tmp_path, monkeypatch):
    """digits MLP, 2 methods and both references, 8 shadows x 2 forget sets."""
    from experiments._cli import main

    base = ["--epochs", "3", "--quiet"]
    cache = ["--cache-dir", str(tmp_path / "cache")]
    audit = ["--eval", "all", "--shadows", "8", "--forget-sets", "2", "--bootstrap", "10",
             "--relearn-steps", "10", "--relearn-runs", "4", "--shadow-draws", "2"]
    args = base + cache + ["--out", str(tmp_path / "res"), "--benchmark", "--methods", "ft,ga",
                           "--trials", "2", "--search-seeds", "1", "--seeds", "1",
                           "--population-size", "2", "--no-mia", *audit]
    assert main("digits", args) == 0
    bench = tmp_path / "res" / "digits" / "benchmark-mlp"
    study = json.loads((bench / "study.json").read_text())
    names = ["original", "retrain", "ft", "ga"]
    assert set(study["audits"]) == set(names)  # study.json is written with sorted keys
    reports = {n: json.loads((bench / "audits" / f"{n}.json").read_text())["report"]
               for n in names}
    for n, rep in reports.items():
        assert set(AUDITS) <= set(rep), n
        assert len(rep["klom"]["per_example"]["forget"]) == rep["population"]["candidates"]
        assert "per_example" not in study["audits"][n]["klom"]  # compact in the study
        assert (bench / "audits" / n / "shadow_curve.png").exists()
    # One shared population: the originals and the oracle are built for the first method
    # only; every other method reads them from the population store.
    stores = {n: r["population"]["from_store"] for n, r in reports.items()}
    assert stores["original"] == {"method": False, "oracle": False, "originals": False}
    assert all(stores[n] == {"method": False, "oracle": True, "originals": True}
               for n in names[1:])
    md = (bench / "report" / "report.md").read_text()
    for head in ("## Audits", "### U-LiRA", "### KLoM", "### RMIA and U-RMIA",
                 "### Relearning attack", "### Attack power vs number of shadow models"):
        assert f"\n{head}\n" in md, head
    klom = md.split("### KLoM")[1].split("###")[0]
    assert [ln.split(" | ")[0] for ln in klom.splitlines() if ln.startswith("| ")][2:] == [
        f"| {n}" for n in names]
    assert (bench / "report" / "audit_shadow_curve.png").stat().st_size > 1000
    results = json.loads((bench / "report" / "results.json").read_text())
    assert list(results["audits"]) == names
    assert results["config"]["audits"]["audits"] == list(AUDITS)
    # Resume: no audit runs again.
    calls = []
    real = jaxmu.audits.run_audits
    monkeypatch.setattr(jaxmu.audits, "run_audits",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    mtimes = {p: p.stat().st_mtime_ns for p in (bench / "audits").glob("*.json")}
    assert main("digits", args) == 0
    assert calls == []
    assert {p: p.stat().st_mtime_ns for p in (bench / "audits").glob("*.json")} == mtimes
    # The ft row of every audit table is its RECIPES command, run on its own.
    recipes = (bench / "report" / "RECIPES.md").read_text()
    lines = [ln for ln in recipes.splitlines() if " --eval all " in ln and "--benchmark"
             not in ln]
    assert [shlex.split(ln)[shlex.split(ln).index("--method") + 1] for ln in lines] == names
    (line,) = [ln for ln in lines if "--method ft " in ln]
    assert main("digits", shlex.split(line)[3:] + base[2:] + cache
                + ["--out", str(tmp_path / "one")]) == 0
    (rec,) = (tmp_path / "one" / "digits").glob("ft_*all.json")
    one = json.loads(rec.read_text())["all"]
    assert one["population"]["from_store"] == {"method": True, "oracle": True,
                                               "originals": True}
    ft = reports["ft"]
    assert one["klom"]["forget_p95"] == ft["klom"]["forget_p95"]
    assert one["rmia"]["unlearning"]["urmia_accuracy"] == (
        ft["rmia"]["unlearning"]["urmia_accuracy"])
    assert one["relearn"]["unlearned"] == ft["relearn"]["unlearned"]
    assert one["ulira"]["ulira_accuracy"] == ft["ulira"]["ulira_accuracy"]
