"""``jaxmu.sweep.summarize`` covers every numeric run metric, the headline list first."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxmu.metrics import bootstrap_ci
from jaxmu.report import csv_rows, validate_study
from jaxmu.sweep import summarize
from jaxmu.sweep._benchmark import SUMMARY_METRICS, summary_metrics


def _runs():
    vals = {"ra": [0.9, 0.95, 0.92], "acc_err_forget": [0.1, 0.3, 0.2],
            "mia_auc_test": [0.55, 0.5, 0.6], "l2_original": [1.0, 2.0, 4.0],
            "fa": [0.8, 0.85, 0.9]}
    runs = []
    for i in range(3):
        m = {k: v[i] for k, v in vals.items()}
        m.update(note="text", flag=True, missing=None, bad=math.nan)  # not summarised
        runs.append({"seed": i, "usable": True, "metrics": m})
    runs.append({"seed": 3, "usable": False, "metrics": {"ra": 0.0, "only_unusable": 1.0}})
    return runs, vals


def test_summarize_every_numeric_metric_listed_first():
    runs, vals = _runs()
    s = summarize(runs, seed=0)
    assert list(s) == ["ra", "fa", "acc_err_forget", "l2_original", "mia_auc_test"]
    # "bad" is numeric but never finite: listed as a candidate, left out of the summary.
    assert summary_metrics(runs) == ["ra", "fa", "acc_err_forget", "bad", "l2_original",
                                     "mia_auc_test"]
    for k, v in vals.items():
        value, lo, hi = bootstrap_ci(np.array(v), seed=0)
        assert s[k] == {"value": pytest.approx(value), "ci": pytest.approx([lo, hi]), "n": 3}
        assert s[k]["ci"][0] <= s[k]["value"] <= s[k]["ci"][1]
    assert summarize(runs, seed=0) == s  # deterministic


def test_summarize_explicit_metrics_and_degenerate_cases():
    runs, _ = _runs()
    assert list(summarize(runs, ["mia_auc_test", "ra", "absent"])) == ["mia_auc_test", "ra"]
    assert list(summarize(runs, SUMMARY_METRICS)) == ["ra", "fa"]
    one = summarize(runs[:1])
    assert one["acc_err_forget"] == {"value": 0.1, "ci": [0.1, 0.1], "n": 1}
    same = [{"usable": True, "metrics": {"acc_dis": 0.25}} for _ in range(4)]
    assert summarize(same)["acc_dis"] == {"value": 0.25, "ci": [0.25, 0.25], "n": 4}
    assert summarize([]) == {}


def test_summary_with_extra_metrics_validates_for_the_report():
    runs, _ = _runs()
    runs = [{**r, "metrics": {k: v for k, v in r["metrics"].items()
                              if not isinstance(v, str | bool) and v is not None}}
            for r in runs]
    study = {"dataset": "d", "model": "m", "config": {}, "provenance": {},
             "methods": {"ft": {"hparams": {}, "search": None, "runs": runs,
                                "summary": summarize(runs)}}}
    validate_study(study)
    rows = [r for r in csv_rows(study) if r["seed"] == "summary"]
    assert {r["metric"] for r in rows} == {"ra", "fa", "acc_err_forget", "l2_original",
                                           "mia_auc_test"}
    assert all(r["ci_low"] and r["ci_high"] and r["n"] == "3" for r in rows)
