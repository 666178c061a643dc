"""Tests of jaxmu.report.combine_studies / write_combined_report and the combine CLI:
Table 1 counts over settings checked by hand."""

from __future__ import annotations

import json
import runpy
import sys
import warnings

import pytest
from test_report import PNG_MAGIC, _run, make_study

from jaxmu.report import combine_studies, write_combined_report, write_report
from jaxmu.report.__main__ import main
from jaxmu.sweep._benchmark import ranking_rows, study_ranking

# Per setting: method -> (mean RetDev, mean Indisc (test)); None = no usable run. Each
# setting has two seeds (values mean -+ 0.001). Ward groups by hand (G1 best):
#   digits-mlp       RetDev: A G1, B G2, C G3, D F    Indisc: A G1, B G2, C G3, D F
#   mnist-resnet18   RetDev: A,D G1, C G2, B G3       Indisc: A,B G1, C G2, D G3
#   cifar10-resnet18 RetDev: A G1, B G2, C G3, D F    Indisc: A G1, B G2, C G3, D F
#                    (D: one usable run of two -> Failed)
SETTINGS = {
    ("digits", "mlp"): {"A": (0.01, 0.99), "B": (0.2, 0.7), "C": (0.6, 0.3), "D": None},
    ("mnist", "resnet18"): {"A": (0.02, 0.9), "B": (0.8, 0.95), "C": (0.3, 0.5),
                            "D": (0.025, 0.1)},
    ("cifar10", "resnet18"): {"A": (0.05, 0.8), "B": (0.06, 0.6), "C": (0.07, 0.4),
                              "D": "half"},
}
RETDEV = [  # (method, G1, G2, G3, F, rank)
    ("A", 3, 0, 0, 0, 1), ("D", 1, 0, 0, 2, 2), ("B", 0, 2, 1, 0, 3), ("C", 0, 1, 2, 0, 4)]
INDISC = [
    ("A", 3, 0, 0, 0, 1), ("B", 1, 2, 0, 0, 2), ("C", 0, 1, 2, 0, 3), ("D", 0, 0, 1, 2, 4)]


def _table(rows):
    return [{"method": m, "G1": g1, "G2": g2, "G3": g3, "F": f, "rank": r}
            for m, g1, g2, g3, f, r in rows]


def _method(spec):
    if spec is None:
        runs = [_run(s, usable=False) for s in (0, 1)]
    elif spec == "half":
        runs = [_run(0, retdev=0.01, indisc_test=0.99), _run(1, usable=False)]
    else:
        rd, ind = spec
        runs = [_run(s, retdev=rd + d, indisc_test=ind + d)
                for s, d in ((0, -0.001), (1, 0.001))]
    return {"hparams": {}, "search": None, "runs": runs, "summary": {}}


def synthetic_study(dataset, model):
    """make_study()'s shape with methods A-D and the references (never ranked)."""
    study = make_study()
    del study["ranking"], study["ulira"]
    study.update(dataset=dataset, model=model)
    study["config"] = {**study["config"], "seeds": 2}
    refs = {"original": _method((0.9, 0.1)), "retrain": _method((0.0, 1.0))}
    study["methods"] = {**refs, **{m: _method(v) for m, v in SETTINGS[dataset, model].items()}}
    study["ranking"] = study_ranking(ranking_rows(study), 2)  # as run_benchmark does
    return study


@pytest.fixture
def studies():
    return [synthetic_study(*k) for k in SETTINGS]


def test_combined_counts_by_hand(studies):
    c = combine_studies(studies)
    assert c["kind"] == "combined" and c["seeds"] == 2
    assert c["ranking"] == {"retdev": _table(RETDEV), "indisc": _table(INDISC)}


def test_settings_summary_and_groups_add_up(studies):
    c = combine_studies(studies, sources=["a/study.json", "b/study.json", "c/study.json"])
    s = c["settings"]
    assert [x["setting"] for x in s] == ["digits-mlp", "mnist-resnet18", "cifar10-resnet18"]
    assert s[1] == {"setting": "mnist-resnet18", "dataset": "mnist", "model": "resnet18",
                    "source": "b/study.json", "methods": ["A", "B", "C", "D"],
                    "references": ["original", "retrain"], "seeds": 2, "search_seeds": [0],
                    "trials": 20,
                    "groups": {"retdev": {"A": "G1", "D": "G1", "C": "G2", "B": "G3"},
                               "indisc": {"A": "G1", "B": "G1", "C": "G2", "D": "G3"}}}
    assert s[2]["groups"]["retdev"]["D"] == "F"
    for metric, table in c["ranking"].items():  # Table 1 = the per-setting groups, counted
        for row in table:
            got = [x["groups"][metric][row["method"]] for x in s]
            assert {g: got.count(g) for g in ("G1", "G2", "G3", "F")} == {
                g: row[g] for g in ("G1", "G2", "G3", "F")}
    # one setting alone: its own (run_benchmark) ranking
    assert combine_studies(studies[:1])["ranking"] == studies[0]["ranking"]


def test_references_come_from_the_study_flag_not_the_name():
    """A study marks its reference methods ("reference": true, as run_benchmark writes
    them); the report leaves those out of the ranking whatever their names, and an
    unflagged study (written before the flag) falls back to original/retrain by name."""
    study = synthetic_study("digits", "mlp")
    assert {r["method"] for r in ranking_rows(study)} == {"A", "B", "C", "D"}  # by name
    study["methods"]["A"]["reference"] = True  # a user's own reference method
    study["methods"]["retrain"]["reference"] = False  # explicitly ranked
    assert {r["method"] for r in ranking_rows(study)} == {"B", "C", "D", "retrain"}
    s = combine_studies([study])["settings"][0]
    assert s["references"] == ["original", "A"]
    assert s["methods"] == ["retrain", "B", "C", "D"]


def test_json_nulls_and_list_seeds(studies):
    """A study read back from results.json (NaN as null) and config seeds as a list."""
    studies[0]["methods"]["C"]["runs"][1]["metrics"]["retdev"] = None  # C fails RetDev
    studies[1]["config"]["seeds"] = [0, 1]
    c = combine_studies(json.loads(json.dumps(studies)))
    assert c["seeds"] == 2
    assert c["settings"][0]["groups"]["retdev"] == {"A": "G1", "B": "G2", "C": "F",
                                                    "D": "F"}


def test_different_seed_counts_use_the_most_runs_per_setting(studies):
    studies[2]["config"]["seeds"] = 3
    c = combine_studies(studies)
    assert c["seeds"] is None and [s["seeds"] for s in c["settings"]] == [2, 2, 3]
    assert c["ranking"] == {"retdev": _table(RETDEV), "indisc": _table(INDISC)}


@pytest.mark.parametrize("mutate, match", [
    (lambda s: s.append(synthetic_study("mnist", "resnet18")),
     r"^duplicate setting \(dataset 'mnist', model 'resnet18'\): studies\[1\] and "
     r"studies\[3\]$"),
    (lambda s: s[1].pop("methods"), r"^studies\[1\]: study: missing key 'methods'$"),
    (lambda s: s.__setitem__(0, [1, 2]), r"^studies\[0\]: study: expected a mapping"),
    (lambda s: s.clear(), r"^studies: need at least one study"),
])
def test_bad_studies_raise_one_line(studies, mutate, match):
    mutate(studies)
    with pytest.raises(ValueError, match=match) as e:
        combine_studies(studies)
    assert "\n" not in str(e.value)


def test_write_report_rejects_a_combined_study(studies, tmp_path):
    with pytest.raises(ValueError, match="missing key 'dataset'"):
        write_report(combine_studies(studies), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_write_combined_report_validates_and_handles_no_ranking(studies, tmp_path):
    with pytest.raises(ValueError, match=r"^combined\['kind'\]: expected 'combined'"):
        write_combined_report(studies[0], tmp_path / "r")
    for s in studies:  # only references: nothing to rank, no figure
        s["methods"] = {k: v for k, v in s["methods"].items() if k in ("original", "retrain")}
    c = combine_studies(studies)
    assert c["ranking"] == {} and c["settings"][0]["groups"] == {}
    path = write_combined_report(c, tmp_path / "r")
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.md", "results.json"]
    assert "_No ranking in this study._" in path.read_text(encoding="utf-8")


def _write_studies(tmp_path, studies):
    """digits as a study directory with a report, mnist as a directory, cifar10 as a file."""
    paths = []
    for i, s in enumerate(studies):
        d = tmp_path / f"study{i}"
        d.mkdir()
        (d / "study.json").write_text(json.dumps(s), encoding="utf-8")
        paths.append(str(d) if i < 2 else str(d / "study.json"))
    (tmp_path / "study0" / "report").mkdir()
    (tmp_path / "study0" / "report" / "report.md").write_text("# digits\n", encoding="utf-8")
    return paths


def test_cli_combine_writes_table1(studies, tmp_path, capsys):
    paths = _write_studies(tmp_path, studies)
    out = tmp_path / "tables" / "table1"
    assert main(["combine", str(out), *paths]) == 0
    assert capsys.readouterr().out == f"wrote {out / 'report.md'}\n"
    assert sorted(p.name for p in out.iterdir()) == ["ranking.png", "report.md",
                                                     "results.json"]
    assert [p.name for p in out.parent.iterdir()] == ["table1"]  # no temp dir left
    assert (out / "ranking.png").read_bytes()[:8] == PNG_MAGIC
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# jaxmu benchmark report: Table 1 over 3 settings\n")
    for line in ("| 1 | A | 3 | 0 | 0 | 0 |  | 1 | A | 3 | 0 | 0 | 0 |",
                 "| 2 | D | 1 | 0 | 0 | 2 |  | 2 | B | 1 | 2 | 0 | 0 |",
                 "| 3 | B | 0 | 2 | 1 | 0 |  | 3 | C | 0 | 1 | 2 | 0 |",
                 "| 4 | C | 0 | 1 | 2 | 0 |  | 4 | D | 0 | 0 | 1 | 2 |",
                 "| digits-mlp | digits | mlp | 4 | original, retrain | 2 | [0] | 20 | "
                 "[report.md](../../study0/report/report.md) |",
                 "| cifar10-resnet18 | cifar10 | resnet18 | 4 | original, retrain | 2 | [0] | 20 "
                 "| [study.json](../../study2/study.json) |",
                 "| Method | digits-mlp | mnist-resnet18 | cifar10-resnet18 |",
                 "| D | F / F | G1 / G3 | F / F |"):
        assert "\n" + line + "\n" in md, line
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["ranking"] == {"retdev": _table(RETDEV), "indisc": _table(INDISC)}
    assert saved["settings"][2]["source"] == paths[2]
    # rewriting into the existing directory replaces the files, leaves nothing behind
    assert main(["combine", str(out), *paths[:2]]) == 0
    assert "Table 1 over 2 settings" in (out / "report.md").read_text(encoding="utf-8")
    assert [p.name for p in out.parent.iterdir()] == ["table1"]


@pytest.mark.parametrize("case", ["missing", "not_json", "not_a_study", "duplicate",
                                  "out_is_file", "no_study_arg"])
def test_cli_bad_input_one_line_exit_2_nothing_written(studies, tmp_path, capsys, case):
    paths = _write_studies(tmp_path, studies)
    out = tmp_path / "out"
    if case == "missing":
        paths.append(str(tmp_path / "nowhere"))
    elif case == "not_json":
        (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
        paths.append(str(tmp_path / "bad.json"))
    elif case == "not_a_study":
        (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
        paths.append(str(tmp_path / "list.json"))
    elif case == "duplicate":
        paths.append(paths[0])
    elif case == "out_is_file":
        out.write_text("x", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["combine", str(out)] + ([] if case == "no_study_arg" else paths)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m jaxmu.report combine: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    if case != "out_is_file":
        assert not out.exists()


def test_python_m_entry_point(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["jaxmu.report", "combine", str(tmp_path / "o"),
                                      str(tmp_path / "missing")])
    with warnings.catch_warnings():  # runpy: __main__ already imported by this module
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(SystemExit) as e:
            runpy.run_module("jaxmu.report", run_name="__main__", alter_sys=True)
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "o").exists()
