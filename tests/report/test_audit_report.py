"""The report's Audits section: one table per audit with one row per method (exact rows
from hand-written reports), the degenerate dagger, the shadow-curve figure, plot links,
RECIPES lines, validation and results.json."""

from __future__ import annotations

import copy
import json

import pytest
from test_report import PNG_MAGIC, make_study

from jaxmu.report import (
    audits_section_markdown,
    klom_table_markdown,
    recipes_markdown,
    relearn_table_markdown,
    rmia_table_markdown,
    shadow_curve_table_markdown,
    validate_study,
    write_report,
)

NAN = float("nan")
FLAGS = "--eval all --shadows 8 --forget-sets 2 --seed 0 --bootstrap 10"
DAGGER = "\u2020"


def _audit(shift: float, *, built: bool = False, steps=(4, [2, 8]), retrained=(None, [6, None])):
    """A hand-written run_audits report (only the keys the tables read, plus a few)."""
    klom = {}
    for i, role in enumerate(("forget", "retain", "unseen")):
        v = 1.0 + shift + i
        klom.update({f"{role}_p95": v, f"{role}_p95_ci": [v - 0.25, v + 0.5],
                     f"{role}_p95_null": 1.5 + i, f"{role}_p95_pvalue": 0.01 * (i + 1)})
    klom["per_example"] = {"forget": [0.1, 0.2], "retain": [0.0, 0.0], "unseen": [0.3, 0.1]}
    return {
        "population": {"num_shadows": 8, "num_forget_sets": 2, "num_targets": 2,
                       "forget_size": 61, "candidates": 1221, "seconds": 1.0,
                       "from_store": {"method": False, "oracle": not built,
                                      "originals": not built}},
        "ulira": {"ulira_accuracy": 0.5 + shift, "ulira_accuracy_ci": [0.45, 0.6 + shift],
                  "auc": 0.51, "auc_ci": None, "tpr_at_1fpr": 0.02,
                  "tpr_at_1fpr_ci": [0.0, 0.05]},
        "klom": klom,
        "rmia": {"membership": {"auc": 0.58, "auc_ci": [0.57, 0.59],
                                "reference_probability": [0.5, 0.5]},
                 "unlearning": {"urmia_accuracy": 0.55 + shift,
                                "urmia_accuracy_ci": [0.52, 0.57 + shift], "auc": 0.56,
                                "auc_ci": [0.53, 0.59], "tpr_at_1fpr": 0.012,
                                "tpr_at_1fpr_ci": [0.002, 0.029],
                                "reference_probability": [0.4, 0.6]}},
        "relearn": {"budget": 20, "variant": "retain", "original_forget_acc": 0.8155,
                    "config": {"variant": "retain", "steps": 20, "lr": 0.01},
                    "unlearned": {"median_steps_to_recover": {"value": steps[0],
                                                              "ci": steps[1]},
                                  "recovered_fraction": {"value": 1.0, "ci": [1.0, 1.0]}},
                    "retrained": {"median_steps_to_recover": {"value": retrained[0],
                                                              "ci": retrained[1]},
                                  "recovered_fraction": {"value": 0.5, "ci": [0.0, 1.0]}}},
        "shadow-curve": {"draws": 2, "counts": [1, 2, 6], "table": {
            "ulira": {"shadows": [1, 2, 6], "auc": [NAN, 0.5, 0.506 + shift],
                      "auc_lo": [NAN, 0.5, 0.506], "auc_hi": [NAN, 0.5, 0.506],
                      "accuracy": [NAN, 0.5, 0.5], "tpr_at_1fpr": [NAN, 0.0, 0.0],
                      "failed": [2, 0, 0]},
            "urmia": {"shadows": [1, 2, 6], "auc": [0.566, 0.581, 0.563],
                      "auc_lo": [0.565, 0.58, 0.563], "auc_hi": [0.567, 0.582, 0.563],
                      "accuracy": [0.56, 0.56, 0.55], "tpr_at_1fpr": [0.04, 0.03, 0.01],
                      "failed": [0, 0, 0]},
            "lira": {"shadows": [1, 2, 6], "auc": [NAN, 0.5, 0.52], "auc_lo": [NAN, 0.5, 0.52],
                     "auc_hi": [NAN, 0.5, 0.52]}}},
        "timings": {"klom": 0.3},
        "plots": {},
    }


def audit_study():
    """make_study's methods (retrain, msg marked degenerate, ga) with audits of each."""
    study = make_study()
    study["methods"]["msg"]["degenerate"] = "msg needs conv kernels; on mlp it is FT"
    study["methods"]["retrain"]["reference"] = True  # as run_benchmark marks references
    study["audits"] = {"retrain": _audit(0.0, built=True), "msg": _audit(0.25),
                       "ga": _audit(0.5, steps=(None, [12, None]))}
    study["config"].update(run_command="python -m experiments.digits --no-mia",
                           audits={"audits": ["ulira", "klom", "rmia", "relearn",
                                              "shadow-curve"],
                                   "config": {"num_shadows": 8}, "flags": FLAGS})
    return study


def _rows(table: str) -> list[str]:
    return [ln for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln][1:]


def test_klom_rows_with_null_and_p_value():
    rows = _rows(klom_table_markdown(audit_study()))
    assert rows == [
        "| retrain | 1.000 [0.750, 1.500] | 1.500 (p = 0.010) | 2.000 [1.750, 2.500] "
        "| 2.500 (p = 0.020) | 3.000 [2.750, 3.500] | 3.500 (p = 0.030) |",
        f"| msg {DAGGER} | 1.250 [1.000, 1.750] | 1.500 (p = 0.010) | 2.250 [2.000, 2.750] "
        "| 2.500 (p = 0.020) | 3.250 [3.000, 3.750] | 3.500 (p = 0.030) |",
        "| ga | 1.500 [1.250, 2.000] | 1.500 (p = 0.010) | 2.500 [2.250, 3.000] "
        "| 2.500 (p = 0.020) | 3.500 [3.250, 4.000] | 3.500 (p = 0.030) |"]


def test_klom_without_null_shows_a_dash():
    study = audit_study()
    for k in [k for k in study["audits"]["ga"]["klom"] if "_null" in k or "pvalue" in k]:
        del study["audits"]["ga"]["klom"][k]
    row = _rows(klom_table_markdown(study))[2]
    assert row == ("| ga | 1.500 [1.250, 2.000] | \u2013 | 2.500 [2.250, 3.000] | \u2013 "
                   "| 3.500 [3.250, 4.000] | \u2013 |")


def test_rmia_rows():
    rows = _rows(rmia_table_markdown(audit_study()))
    assert rows[0] == ("| retrain | 0.550 [0.520, 0.570] | 0.560 [0.530, 0.590] "
                       "| 0.012 [0.002, 0.029] | 0.580 [0.570, 0.590] |")
    assert rows[1].startswith(f"| msg {DAGGER} | 0.800 [0.520, 0.820] |")


def test_relearn_rows_write_censored_values_as_beyond_the_budget():
    rows = _rows(relearn_table_markdown(audit_study()))
    assert rows[0] == ("| retrain | 4 [2, 8] | 1.00 [1.00, 1.00] | > 20 [6, > 20] "
                       "| 0.50 [0.00, 1.00] | 0.816 |")
    assert rows[2] == ("| ga | > 20 [12, > 20] | 1.00 [1.00, 1.00] | > 20 [6, > 20] "
                       "| 0.50 [0.00, 1.00] | 0.816 |")


def test_shadow_curve_rows_one_per_method_and_attack():
    table = shadow_curve_table_markdown(audit_study())
    assert table.splitlines()[0] == ("| Method | Attack | 1 shadow | 2 shadows | 6 shadows |")
    rows = _rows(table)
    assert rows[:2] == ["| retrain | U-LiRA | \u2013 | 0.50 [0.50, 0.50] | 0.51 [0.51, 0.51] |",
                        "| retrain | U-RMIA | 0.57 [0.56, 0.57] | 0.58 [0.58, 0.58] "
                        "| 0.56 [0.56, 0.56] |"]
    assert [r.split(" | ")[:2] for r in rows] == [
        ["| retrain", "U-LiRA"], ["| retrain", "U-RMIA"], [f"| msg {DAGGER}", "U-LiRA"],
        [f"| msg {DAGGER}", "U-RMIA"], ["| ga", "U-LiRA"], ["| ga", "U-RMIA"]]


def test_section_has_every_table_explanations_and_footnotes():
    md = audits_section_markdown(audit_study(), {"audit_shadow_curve.png"})
    for head in ("## Audits", "### U-LiRA", "### KLoM", "### RMIA and U-RMIA",
                 "### Relearning attack", "### Attack power vs number of shadow models"):
        assert f"\n{head}\n" in f"\n{md}\n", head
    assert "0 = identical margins" in md and "against its null" in md
    assert "0.5 = perfect unlearning" in md
    assert "fine-tuned on the retain set (20 SGD steps, lr 0.01)" in md
    assert "(mean over 2 draws per count" in md
    assert "![Attack AUC vs shadow models](audit_shadow_curve.png)" in md
    assert "both built while auditing `retrain`" in md
    # each of the five tables is followed by the degenerate footnote
    assert md.count(f"{DAGGER} degenerate: cannot act on the model") == 5
    assert "### Audit plots per method" not in md  # no plots recorded
    assert audits_section_markdown(make_study()) == ""


def test_a_partial_study_gets_only_its_tables():
    study = audit_study()
    for rep in study["audits"].values():
        for k in ("ulira", "rmia", "relearn", "shadow-curve"):
            del rep[k]
    md = audits_section_markdown(study, set())
    assert "### KLoM" in md and "### RMIA" not in md and "### Relearning" not in md
    assert "### Attack power" not in md and "### U-LiRA" not in md


def test_write_report_figure_plot_links_and_results_json(tmp_path):
    study = audit_study()
    plots = tmp_path / "study" / "audits" / "msg"
    plots.mkdir(parents=True)
    (plots / "roc.png").write_bytes(PNG_MAGIC)
    study["audits"]["msg"]["plots"] = {"roc": str(plots / "roc.png")}
    out = tmp_path / "study" / "report"
    md = write_report(study, out).read_text(encoding="utf-8")
    assert "## Audits" in md and md.index("## U-LiRA") < md.index("## Audits")
    assert (f"| msg {DAGGER} | [ROC](../audits/msg/roc.png) | \u2013 | \u2013 | \u2013 |"
            in md)
    data = (out / "audit_shadow_curve.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    res = json.loads((out / "results.json").read_text())
    assert set(res["audits"]) == {"retrain", "msg", "ga"}
    assert res["audits"]["ga"]["klom"]["forget_p95"] == 1.5
    assert res["audits"]["ga"]["shadow-curve"]["table"]["ulira"]["auc"][0] is None  # NaN
    # read back from results.json, the study writes the same report
    again = write_report(res, tmp_path / "again").read_text(encoding="utf-8")
    assert again.split("## Audits")[1].split("### Audit plots")[0] == \
        md.split("## Audits")[1].split("### Audit plots")[0]
    # a study without audits drops the figure from an existing report directory
    write_report(make_study(), out)
    assert not (out / "audit_shadow_curve.png").exists()


def test_recipes_one_audit_command_per_method():
    text = recipes_markdown(audit_study())
    lines = [ln for ln in text.splitlines() if ln.endswith(FLAGS)]
    assert [ln.split("--method ")[1].split()[0] for ln in lines] == ["retrain", "msg", "ga"]
    assert lines[0] == f"python -m experiments.digits --no-mia --method retrain {FLAGS}"
    assert lines[1] == ("python -m experiments.digits --no-mia --method msg --hp init_rate=0.3 "
                        f"--hp lr=0.0031622776601683794 {FLAGS}")
    study = audit_study()
    study["config"]["audits"]["flags"] = None
    assert "No command line was recorded for the audits" in recipes_markdown(study)


@pytest.mark.parametrize("edit, match", [
    (lambda a: a["ga"]["klom"].update(forget_p95="big"), r"\['klom'\]\['forget_p95'\]"),
    (lambda a: a["ga"]["klom"].update(forget_p95_ci=[1.0]), r"forget_p95_ci.*\[low, high\]"),
    (lambda a: a["ga"]["rmia"].update(unlearning=[0.5]), r"\['rmia'\]\['unlearning'\]"),
    (lambda a: a["ga"]["relearn"]["unlearned"].update(recovered_fraction={"value": "x"}),
     r"recovered_fraction'\]\['value'\]"),
    (lambda a: a["ga"]["shadow-curve"]["table"]["ulira"].update(auc=[0.5]), "one length"),
    (lambda a: a["ga"]["shadow-curve"].pop("table"), "missing key 'table'"),
    (lambda a: a["ga"].update(plots={"roc": 3}), r"\['plots'\]\['roc'\]"),
    (lambda a: a.update(ga=[1]), r"study\['audits'\]\['ga'\]: expected a mapping"),
])
def test_validation_names_the_bad_audit_value(edit, match, tmp_path):
    study = audit_study()
    validate_study(copy.deepcopy(study))
    edit(study["audits"])
    with pytest.raises(ValueError, match=match):
        write_report(study, tmp_path / "r")
    assert not (tmp_path / "r").exists()
