"""The report marks degenerate methods (tables, a reasons section, results.json) and counts
only finite per-example U-LiRA accuracies in the Examples column."""

from __future__ import annotations

import json
import math

import pytest
from test_report import make_study

from jaxmu.report import ranking_table_markdown, rte_table_markdown, validate_study, write_report

WHY = "msg needs conv kernels; on mlp it is fine-tuning (FT)"
NOTE = ("\u2020 degenerate: cannot act on the model as designed and reduces to a simpler "
        "method (reasons under *Degenerate methods*).")


def _degenerate_msg():
    study = make_study()
    study["methods"]["msg"]["degenerate"] = WHY
    study["methods"]["retrain"]["degenerate"] = None
    return study


@pytest.fixture(scope="module")
def marked_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("deg") / "r"
    md = write_report(_degenerate_msg(), out).read_text(encoding="utf-8")
    return out, md, md.splitlines()


def test_every_table_marks_the_degenerate_method(marked_report):
    _, md, lines = marked_report
    for row in (
        "| msg \u2020 | 5.00 | 2.50 | 2/2 |",  # Table 2
        "| msg \u2020 | 2/2 | 0.988 [0.980, 0.995] | 0.123 [0.100, 0.150] "
        "| 0.500 [0.400, 0.600] | \u2013 | 0.250 [0.200, 0.300] | 0.900 [0.850, 0.950] "
        "| \u2013 | 5.00 |",  # metrics
        "| msg \u2020 | init_rate=0.3, lr=0.003162 | 20 | 0 | 7 | 0.1200 "
        "| [0.100, 0.200, 0.300, 0.400] |",  # hyperparameters
        "| msg \u2020 | 0.530 [0.500, 0.560] | 0.580 | 0.600 [0.550, 0.650] | \u2013 | 4 |",
        "| retrain | 1.00 [1.00, 1.00] | 11.00 [10.00, 12.00] | 2/2 |",  # others unmarked
        "| ga | 0/2 | Failed | Failed | Failed | Failed | Failed | Failed | Failed | Failed |",
    ):
        assert row in lines, row
    assert "| 1 | retrain | 2 | 0 | 0 | 0 |  | 1.5 | msg \u2020 | 1 | 1 | 0 | 0 |" in lines
    # One footnote under each of Tables 1 and 2, metrics, hyperparameters and U-LiRA.
    assert lines.count(NOTE) == 5
    # The reasons, once, before the budget.
    i = lines.index("## Degenerate methods")
    assert i < lines.index("## Budget and provenance")
    assert f"| msg | {WHY} |" in lines
    assert md.count(WHY) == 1


def test_results_json_lists_degenerate_methods_and_reads_back(marked_report, tmp_path):
    out, md, _ = marked_report
    loaded = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert loaded["degenerate_methods"] == {"msg": WHY}
    assert loaded["methods"]["msg"]["degenerate"] == WHY
    # A study read back from results.json gives the same report and the same JSON.
    again = tmp_path / "again"
    assert write_report(loaded, again).read_text(encoding="utf-8") == md
    assert json.loads((again / "results.json").read_text(encoding="utf-8")) == loaded


def test_ranking_rows_mark_and_explain():
    # As jaxmu.report.study_ranking marks them (no reason in the method entries: an older
    # study); the ranking table is read on its own, so its footnote spells the reason out.
    study = make_study()
    for rows in study["ranking"].values():
        for r in rows:
            if r["method"] == "msg":
                r["degenerate"] = WHY
    table = ranking_table_markdown(study["ranking"])
    lines = table.splitlines()
    assert lines[4:7] == [
        "| 1 | retrain | 2 | 0 | 0 | 0 |  | 1.5 | msg \u2020 | 1 | 1 | 0 | 0 |",
        "| 2 | msg \u2020 | 1 | 1 | 0 | 0 |  | 1.5 | retrain | 1 | 1 | 0 | 0 |",
        "| 3 | ga | 0 | 0 | 0 | 2 |  | 3 | ga | 0 | 0 | 0 | 2 |",
    ]
    assert lines[-1] == ("\u2020 degenerate: cannot act on the model as designed and reduces "
                         f"to a simpler method (msg: {WHY}).")
    with pytest.raises(ValueError, match="degenerate: expected a mapping"):
        ranking_table_markdown(study["ranking"], ["msg"])
    # The other tables take the reason from the ranking rows too.
    assert rte_table_markdown(study).splitlines()[2] == "| msg \u2020 | 5.00 | 2.50 | 2/2 |"


def test_no_degenerate_method_no_marks(tmp_path):
    md = write_report(make_study(), tmp_path / "r").read_text(encoding="utf-8")
    assert "\u2020" not in md and "Degenerate methods" not in md


@pytest.mark.parametrize(("where", "value"), [("method", 3), ("ranking", ["x"])])
def test_bad_degenerate_reason_is_rejected(where, value):
    study = make_study()
    if where == "method":
        study["methods"]["msg"]["degenerate"] = value
        match = r"study\['methods'\]\['msg'\]\['degenerate'\]: expected a string"
    else:
        study["ranking"]["retdev"][0]["degenerate"] = value
        match = r"study\['ranking'\]\['retdev'\]\[0\]\['degenerate'\]: expected a string"
    with pytest.raises(ValueError, match=match):
        validate_study(study)


def test_examples_counts_finite_per_example_accuracies(tmp_path):
    study = make_study()
    nan = math.nan
    # 5 examples, 2 without a per-example accuracy (NaN in memory, null in JSON).
    study["ulira"]["msg"]["per_example_accuracy"] = [0.4, nan, 0.6, None, 0.55]
    study["ulira"]["retrain"]["per_example_accuracy"] = [nan, nan]
    study["ulira"]["original"] = {"ulira_accuracy": 0.9}  # no per-example accuracies
    md = write_report(study, tmp_path / "r").read_text(encoding="utf-8")
    lines = md.splitlines()
    assert "| msg | 0.530 [0.500, 0.560] | 0.580 | 0.600 [0.550, 0.650] | \u2013 | 3 |" in lines
    assert "| retrain | 0.500 | \u2013 | \u2013 | \u2013 | 0 |" in lines
    assert "| original | 0.900 | \u2013 | \u2013 | \u2013 | \u2013 |" in lines
    assert ("Examples: forget examples with a per-example accuracy (target pairs of both "
            "classes); examples without one are not counted.") in md
