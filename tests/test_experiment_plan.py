"""The library checks the experiment options (Study, Plan) with the CLI's one-line messages;
the records check the shape of what they read; one method key for every caller."""

import math

import pytest

from jaxmu.experiment import Evaluation, Plan, Scenario, Study, Task
from jaxmu.records import MethodResult, RunRecord, StudyRecord


@pytest.mark.parametrize("kw, match", [
    (dict(trials=0), r"^--trials must be >= 1, got 0$"),
    (dict(search_seeds=0), r"^--search-seeds must be >= 1, got 0$"),
    (dict(seeds=-1), r"^--seeds must be >= 1, got -1$"),
    (dict(population_size=0), r"^--population-size must be >= 1, got 0$"),
    (dict(trial_batch=0), r"^--trial-batch must be >= 1, got 0$"),
    (dict(methods=["ft", "nope"]), r"^unknown method 'nope'"),
])
def test_study_options_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        Study(**kw)
    assert Study(methods=["ft"]).methods == ("ft",)


def test_plan_rejects_what_does_not_combine():
    task, ratios = Task("digits"), Scenario(("ft", "sisa"), ratios=(0.1,))
    with pytest.raises(ValueError, match="^deletion scenarios cannot be combined"):
        Plan(task, scenario=ratios, study=Study())
    with pytest.raises(ValueError, match="^deletion scenarios cannot be combined"):
        Plan(task, scenario=ratios, evaluation=Evaluation("ulira"))
    with pytest.raises(ValueError, match="^--deletion-ratios needs --forget-scenario random$"):
        Plan(Task("digits", forget_scenario="classwise:3"), scenario=ratios)
    with pytest.raises(ValueError, match="not --eval fscore$"):
        Plan(task, evaluation=Evaluation("fscore"), study=Study())
    with pytest.raises(ValueError, match="^--ulira-flip and --ulira-variant apply"):
        Plan(task, evaluation=Evaluation("ulira", ulira_flip=True), study=Study())
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        Plan(task, "ft", {"nope": 1})
    Plan(Task("digits", forget_scenario="classwise:3"),
         scenario=Scenario(("ft",), requests=2))  # sequential requests take any scenario
    Plan(task, evaluation=Evaluation("ulira"), study=Study())
    assert Task("digits", cache_dir="").cache_dir is None


def test_one_method_key():
    import jaxmu.experiment
    import jaxmu.methods
    import jaxmu.sweep

    assert jaxmu.experiment.method_key is jaxmu.sweep.method_key is jaxmu.methods.method_key


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["methods"]["ft"]["runs"][0].pop("seed"), r"^study\['methods'\]\['ft'\]"
     r"\['runs'\]\[0\]: missing key 'seed'$"),
    (lambda d: d["methods"]["ft"]["runs"][0].update(usable="yes"), r"\['usable'\]: expected "
     "a bool, got str$"),
    (lambda d: d["methods"]["ft"]["summary"]["ra"].update(ci=[1.0]), r"\['ra'\]\['ci'\]: "
     r"expected \[low, high\]"),
    (lambda d: d["methods"]["ft"].update(degenerate=3), r"\['degenerate'\]: expected a "
     "string"),
    (lambda d: d.update(methods={}), r"^study\['methods'\]: expected at least one method"),
])
def test_study_record_reads_and_names_bad_keys(edit, match):
    run = RunRecord("ft", 0, {"epochs": 1}, {"ra": math.nan}, {"run_s": 0.1}, usable=True,
                    forget_losses=[0.5, math.nan])
    study = StudyRecord("digits", "mlp", {"seeds": 1}, {"ft": MethodResult(
        {"epochs": 1}, [run], {"ra": {"value": 0.9, "ci": [0.8, 1.0], "n": 1}})})
    back = StudyRecord.from_json(study.to_json())
    assert math.isnan(back.methods["ft"].runs[0].metrics["ra"])
    assert math.isnan(back.methods["ft"].runs[0].forget_losses[1])
    d = study.to_dict()
    edit(d)
    with pytest.raises(ValueError, match=match):
        StudyRecord.from_dict(d)
