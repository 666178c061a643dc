"""U-LiRA inside the benchmark: ``run_benchmark(..., ulira=...)`` and the CLI's
``--benchmark --eval ulira``: every method and both references scored, cached, reported,
and each row reproducible by its RECIPES command."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from _sweep_task import MODEL, RECIPE, splits

from jaxmu.evaluation import ulira_pipeline
from jaxmu.methods import get_method
from jaxmu.sweep import ULIRA_DEFAULTS, run_benchmark, ulira_design_config, ulira_study

DESIGN = {"shadows": 4, "forget_sets": 2, "forget_fraction": 0.1, "seed": 0}


def test_ulira_study_matches_the_pipeline_caches_and_resumes(tmp_path):
    s, cache, out = splits(), str(tmp_path / "cache"), tmp_path / "ulira"
    hp = {**get_method("ft").hp, "epochs": 1}
    kw = dict(design=DESIGN, cache_dir=cache, progress=False, log=lambda s: None)
    res = ulira_study(MODEL, s, RECIPE, {"original": {}, "ft": hp}, out, **kw)
    assert set(res) == {"original", "ft"}
    for name, u in res.items():
        lo, hi = u["ulira_accuracy_ci"]
        assert 0.0 <= lo <= u["ulira_accuracy"] <= hi <= 1.0, name
        assert (u["num_shadows"], u["num_forget_sets"]) == (4, 2)
    # The ft row is exactly the pipeline run with those hyperparameters (the CLI's
    # ``--eval ulira`` path), on the same cached shadow originals.
    direct = ulira_pipeline(MODEL, s, get_method("ft", **hp).bind(MODEL), num_shadows=4,
                            num_forget_sets=2, forget_fraction=0.1, seed=0, config=RECIPE,
                            cache_dir=cache, progress=False)
    assert direct["ulira_accuracy"] == res["ft"]["ulira_accuracy"]
    np.testing.assert_array_equal(direct["per_example_accuracy"],
                                  res["ft"]["per_example_accuracy"])
    # Resume: nothing recomputed; other hyperparameters or another design recompute.
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    again = ulira_study(MODEL, s, RECIPE, {"original": {}, "ft": hp}, out, **kw)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.json")} == mtimes
    assert again["ft"]["ulira_accuracy"] == res["ft"]["ulira_accuracy"]
    other = ulira_study(MODEL, s, RECIPE, {"original": {}}, out,
                        **{**kw, "design": {**DESIGN, "forget_sets": 1}})
    assert other["original"]["num_forget_sets"] == 1
    assert (out / "original.json").stat().st_mtime_ns != mtimes[out / "original.json"]


@pytest.mark.slow
def test_benchmark_with_ulira_reports_and_resumes(tmp_path):
    s = splits()
    out = tmp_path / "bench"
    kw = dict(methods=["ft"], trials=1, search_seeds=[0], seeds=1,
              cache_dir=str(tmp_path / "cache"), classifier_mias=False, population_size=4,
              ulira=DESIGN, progress=False, log=lambda s: None)
    study = run_benchmark(s.pool, MODEL, s, RECIPE, out, **kw).to_dict()
    assert set(study["ulira"]) == {"original", "retrain", "ft"}
    assert all((out / "ulira" / f"{n}.json").exists() for n in study["ulira"])
    md = (out / "report" / "report.md").read_text()
    assert "## U-LiRA" in md and "U-LiRA accuracy [95% CI]" in md
    assert (out / "report" / "ulira_hist.png").stat().st_size > 1000
    assert json.loads((out / "config.json").read_text())["ulira"] == DESIGN
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "ulira").glob("*.json")}
    again = run_benchmark(s.pool, MODEL, s, RECIPE, out, **kw).to_dict()
    assert {p: p.stat().st_mtime_ns for p in (out / "ulira").glob("*.json")} == mtimes
    assert again["ulira"] == json.loads((out / "study.json").read_text())["ulira"]


@pytest.mark.parametrize("design, match", [
    ({"shadows": 3}, "even number"),
    ({"shadows": 2}, "even number"),
    ({"forget_sets": 0}, "forget_sets"),
    ({"forget_fraction": 1.0}, "forget_fraction"),
    ({"shadows": 4.5}, "integer"),
    ({"models": 4}, "unknown keys"),
    ([4, 1], "mapping"),
])
def test_bad_ulira_design_raises_before_writing(tmp_path, design, match):
    s = splits()
    with pytest.raises(ValueError, match=match):
        run_benchmark(s.pool, MODEL, s, RECIPE, tmp_path / "x", methods=["ft"], trials=1,
                      search_seeds=[0], seeds=1, ulira=design, progress=False)
    assert not (tmp_path / "x").exists()


def test_ulira_design_defaults():
    assert ulira_design_config({}) == ULIRA_DEFAULTS
    assert ulira_design_config({"shadows": 8.0})["shadows"] == 8


@pytest.mark.slow
def test_cli_benchmark_ulira_rows_reproduce_from_recipes(tmp_path, capsys):
    from experiments._cli import main

    base = ["--epochs", "4", "--out", str(tmp_path / "res"), "--cache-dir",
            str(tmp_path / "cache"), "--quiet"]
    args = base + ["--benchmark", "--methods", "ft", "--trials", "1", "--search-seeds", "1",
                   "--seeds", "1", "--population-size", "2", "--no-mia", "--eval", "ulira",
                   "--shadows", "4", "--forget-sets", "1"]
    assert main("digits", args) == 0
    bench = tmp_path / "res" / "digits" / "benchmark-mlp"
    study = json.loads((bench / "study.json").read_text())
    assert set(study["ulira"]) == {"original", "retrain", "ft"}
    recipes = (bench / "report" / "RECIPES.md").read_text()
    lines = [ln for ln in recipes.splitlines() if "--eval ulira --shadows 4" in ln
             and "--benchmark" not in ln]
    assert len(lines) == 3
    for line in lines:
        argv = shlex.split(line)[3:]  # drop "python -m experiments.digits"
        name = argv[argv.index("--method") + 1]
        assert main("digits", argv + base[2:] + ["--out", str(tmp_path / "one")]) == 0
        (rec,) = (tmp_path / "one" / "digits").glob(f"{name}_*ulira*.json")
        assert json.loads(rec.read_text())["ulira"]["ulira_accuracy"] == pytest.approx(
            study["ulira"][name]["ulira_accuracy"], abs=1e-12), name
        rec.unlink()
