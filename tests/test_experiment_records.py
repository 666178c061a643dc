"""Typed results: one JSON round trip per record, NaN written as null and read back as NaN."""

import json
import math

import pytest

from jaxmu.experiment import Evaluation, MethodResult, RunRecord, StudyRecord, Task


def _single():
    return RunRecord(method="ft", seed=0, hparams={"epochs": 1}, experiment="digits",
                     eval="ulira", metrics={"ra": 0.9, "mia_test": math.nan},
                     timings={"unlearned_s": 0.1}, degenerate=None,
                     evaluation={"ulira_accuracy": 0.5, "auc": math.nan})


def test_single_run_file_keys_and_round_trip(tmp_path):
    rec = _single().write(tmp_path / "r.json")
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["metrics"]["mia_test"] is None and d["ulira"]["auc"] is None  # strict JSON
    assert {"experiment", "eval", "degenerate", "warnings", "cache", "ulira"} <= set(d)
    back = RunRecord.read(rec.path)
    assert math.isnan(back.metrics["mia_test"]) and back.evaluation["ulira_accuracy"] == 0.5
    assert back.to_dict()["metrics"]["ra"] == 0.9 and back.path == rec.path


def test_old_file_with_nan_tokens_reads():
    old = '{"experiment": "digits", "eval": "single", "method": "ft", "seed": 0, ' \
          '"metrics": {"ra": NaN}, "timings": {}}'
    assert math.isnan(RunRecord.from_json(old).metrics["ra"])


def test_study_round_trip_keeps_final_run_form():
    run = RunRecord(method="ga", seed=1, hparams={}, usable=False,
                    metrics={"run_seconds": 0.2}, timings={"run_s": 0.2})
    study = StudyRecord("digits", "mlp", {"seeds": 1}, {"ga": MethodResult(
        {}, [run], {"ra": {"value": math.nan, "ci": None, "n": 0}})}, ranking={"x": 1})
    d = json.loads(study.to_json())
    assert set(d["methods"]["ga"]["runs"][0]) == {"method", "seed", "hparams", "usable",
                                                  "metrics", "timings"}
    back = StudyRecord.from_json(study.to_json())
    assert back.methods["ga"].runs[0] == run and "ulira" not in back.to_dict()


def test_task_defaults_are_data_and_bad_values_raise():
    t = Task("digits")
    assert (t.model, t.recipe.epochs) == ("mlp", t.epochs) and t.cache_dir is None
    assert "--model mlp" in t.setting_flags()
    with pytest.raises(ValueError, match=r"forget_fraction must lie in \(0, 1\)"):
        Task("digits", forget_fraction=1.5)
    with pytest.raises(ValueError, match="shadows must be an even number"):
        Evaluation("ulira", shadows=5)
