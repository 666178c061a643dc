"""Tests of jaxmu.report: files, exact table rows, CSV/JSON round trips, validation."""

from __future__ import annotations

import copy
import csv
import json
import math
import re
import shutil
import stat

import pytest

from jaxmu.report import (
    agg_figure,
    csv_rows,
    json_safe,
    ranking_table_markdown,
    rte_table_markdown,
    validate_study,
    write_report,
)

NAN = float("nan")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUN_KEYS = ("ra", "fa", "va", "ta", "retdev", "indisc_test", "indisc_val", "mia_test",
            "mia_val", "rte", "run_seconds")


def _run(seed, usable=True, forget_losses=None, **metrics):
    base = dict.fromkeys(RUN_KEYS, 0.5)
    base.update(metrics)
    run = {"seed": seed, "usable": usable, "metrics": base}
    if forget_losses is not None:
        run["forget_losses"] = forget_losses
    return run


def _s(value, lo=None, hi=None, n=2):
    return {"value": value, "ci": None if lo is None else [lo, hi], "n": n}


def make_study():
    """3 methods x 2 seeds; ga has no usable run; msg has a NaN, a missing CI and a summary
    without run_seconds (the report falls back to the mean over usable runs)."""
    return {
        "dataset": "digits",
        "model": "mlp",
        "config": {"trials": 20, "search_seeds": [0], "seeds": [0, 1], "e_max": 30,
                   "split_seed": 0},
        "provenance": {"versions": {"jax": "0.10.2", "numpy": "2.0"}, "device": "cpu",
                       "host": "h"},
        "methods": {
            "retrain": {
                "hparams": {"epochs": 30, "lr": 0.1},
                "search": None,
                "runs": [_run(0, ra=0.99, run_seconds=10.0, rte=1.0),
                         _run(1, ra=0.98, run_seconds=12.0, rte=1.0)],
                "summary": {"ra": _s(0.99, 0.98, 1.0), "fa": _s(0.85, 0.8, 0.9),
                            "va": _s(0.86, 0.84, 0.88), "ta": _s(0.87, 0.86, 0.88),
                            "retdev": _s(0.0, 0.0, 0.0), "indisc_test": _s(0.98, 0.96, 1.0),
                            "mia_val": _s(0.51, 0.5, 0.52), "rte": _s(1.0, 1.0, 1.0),
                            "run_seconds": _s(11.0, 10.0, 12.0)},
            },
            "msg": {
                "hparams": {"init_rate": 0.3, "lr": 0.0031622776601683794},
                "search": {"n_trials": 20, "score": 0.12, "seed": 0, "trial": 7,
                           "values": [0.1, 0.2, 0.3, 0.4]},
                "runs": [_run(0, run_seconds=2.0, fa=0.123456789,
                              forget_losses=[0.1, 0.5, 2.0, 3.5]),
                         _run(1, run_seconds=3.0, ta=NAN, forget_losses=[0.2, 1.0])],
                "summary": {"ra": _s(0.9876, 0.98, 0.99512), "fa": _s(0.12345, 0.1, 0.15),
                            "va": _s(0.5, 0.4, 0.6), "ta": _s(NAN, NAN, NAN),
                            "retdev": _s(0.25, 0.2, 0.3), "indisc_test": _s(0.9, 0.85, 0.95),
                            "mia_val": _s(None), "rte": _s(5.0)},
            },
            "ga": {
                "hparams": {"lr": 0.01},
                "search": {"n_trials": 5, "score": None, "seed": 1, "trial": 3, "failed": True},
                "runs": [{"seed": 0, "usable": False,
                          "metrics": {"ra": NAN, "fa": None, "run_seconds": 3.0}},
                         {"seed": 1, "usable": False,
                          "metrics": {"ra": NAN, "fa": NAN, "run_seconds": 4.0}}],
                "summary": {},
            },
        },
        "ranking": {
            "retdev": [{"method": "msg", "rank": 2, "G1": 1, "G2": 1, "G3": 0, "F": 0},
                       {"method": "ga", "rank": 3, "G1": 0, "G2": 0, "G3": 0, "F": 2},
                       {"method": "retrain", "rank": 1, "G1": 2, "G2": 0, "G3": 0, "F": 0}],
            "indisc": [{"method": "ga", "rank": 3, "G1": 0, "G2": 0, "G3": 0, "F": 2},
                       {"method": "retrain", "rank": 1.5, "G1": 1, "G2": 1, "G3": 0, "F": 0},
                       {"method": "msg", "rank": 1.5, "G1": 1, "G2": 1, "G3": 0, "F": 0}],
        },
        "timings": {"total_s": 12.5},
        "ulira": {"msg": {"ulira_accuracy": 0.53, "ulira_accuracy_ci": [0.5, 0.56], "auc": 0.6,
                          "auc_ci": [0.55, 0.65], "ulira_best_acc": 0.58,
                          "per_example_accuracy": [0.4, 0.5, 0.6, 0.62]},
                  "retrain": {"ulira_accuracy": 0.5, "per_example_accuracy": [0.5, 0.45]}},
    }


def _nan_to_none(x):
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_nan_to_none(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "digits_mlp"
    path = write_report(make_study(), out)
    return out, path, path.read_text(encoding="utf-8")


def test_files_exist_and_pngs_are_valid(report):
    out, path, _ = report
    assert path == out / "report.md"
    pngs = {"accuracy.png", "rte.png", "ranking.png", "mia_hist.png", "ulira_hist.png"}
    assert {p.name for p in out.iterdir()} == {"report.md", "results.csv", "results.json",
                                               "RECIPES.md"} | pngs
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp dir left behind
    probe = out.parent / "probe"
    probe.mkdir()
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(probe.stat().st_mode)
    probe.rmdir()
    for name in pngs:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert len(data) > 5000, name


def test_markdown_header_budget_and_links(report):
    _, _, md = report
    assert md.startswith("# jaxmu benchmark report: digits / mlp\n")
    assert "3 methods (1 failed: no usable run)" in md
    for line in ("| Trials per method (HP search) | 20 |", "| Search seeds | [0] |",
                 "| Final-run seeds | [0, 1] |", "| E_max (epoch budget) | 30 |",
                 "| config.split_seed | 0 |", "| Device | cpu |",
                 "| Versions | jax 0.10.2, numpy 2.0 |", "| provenance.host | h |",
                 "| timings.total_s | 12.5 |"):
        assert line + "\n" in md, line
    for name in ("ranking", "rte", "accuracy", "mia_hist", "ulira_hist"):
        assert f"]({name}.png)" in md, name
    assert "[results.csv](results.csv)" in md and "[results.json](results.json)" in md


def test_markdown_ranking_table(report):
    rows = [
        "| 1 | retrain | 2 | 0 | 0 | 0 |  | 1.5 | msg | 1 | 1 | 0 | 0 |",
        "| 2 | msg | 1 | 1 | 0 | 0 |  | 1.5 | retrain | 1 | 1 | 0 | 0 |",
        "| 3 | ga | 0 | 0 | 0 | 2 |  | 3 | ga | 0 | 0 | 0 | 2 |",
    ]
    header = "| Rank | Method | G1 | G2 | G3 | F |  | Rank | Method | G1 | G2 | G3 | F |"
    table = ranking_table_markdown(make_study()["ranking"])
    lines = table.splitlines()
    assert lines[2] == header and lines[4:] == rows  # sorted by rank, ties by name
    assert table in report[2]


def test_ranking_table_uneven_and_missing():
    ranking = {"retdev": [{"method": "b", "rank": 2, "G1": 0, "G2": 1, "G3": 0, "F": 0},
                          {"method": "a", "rank": 1, "G1": 1, "G2": 0, "G3": 0}]}
    lines = ranking_table_markdown(ranking).splitlines()
    assert lines[4] == "| 1 | a | 1 | 0 | 0 | \u2013 |  |  |  |  |  |  |  |"
    assert lines[5] == "| 2 | b | 0 | 1 | 0 | 0 |  |  |  |  |  |  |  |"
    assert ranking_table_markdown(None) == "_No ranking in this study._"
    assert ranking_table_markdown({"retdev": [], "indisc": []}) == "_No ranking in this study._"


def test_markdown_rte_table(report):
    expected = "\n".join([
        "| Method | RTE | Run seconds | Runs |",
        "| --- | ---: | ---: | ---: |",
        "| msg | 5.00 | 2.50 | 2/2 |",  # no CI in summary; run seconds = mean of 2.0 and 3.0
        "| retrain | 1.00 [1.00, 1.00] | 11.00 [10.00, 12.00] | 2/2 |",
        "| ga | Failed | Failed | 0/2 |",
    ])
    assert rte_table_markdown(make_study()) == expected
    assert expected in report[2]


def test_markdown_metrics_and_hparams_rows(report):
    _, _, md = report
    rows = [
        "| Method | Runs | RA | FA | VA | TA | RetDev | Indisc (test) | MIA (val) | RTE |",
        "| retrain | 2/2 | 0.990 [0.980, 1.000] | 0.850 [0.800, 0.900] | 0.860 [0.840, 0.880] "
        "| 0.870 [0.860, 0.880] | 0.000 [0.000, 0.000] | 0.980 [0.960, 1.000] "
        "| 0.510 [0.500, 0.520] | 1.00 [1.00, 1.00] |",
        "| msg | 2/2 | 0.988 [0.980, 0.995] | 0.123 [0.100, 0.150] | 0.500 [0.400, 0.600] "
        "| \u2013 | 0.250 [0.200, 0.300] | 0.900 [0.850, 0.950] | \u2013 | 5.00 |",
        "| ga | 0/2 | Failed | Failed | Failed | Failed | Failed | Failed | Failed | Failed |",
        "| retrain | epochs=30, lr=0.1 | no search | \u2013 | \u2013 | \u2013 | \u2013 |",
        "| msg | init_rate=0.3, lr=0.003162 | 20 | 0 | 7 | 0.1200 "
        "| [0.100, 0.200, 0.300, 0.400] |",
        "| ga (Failed) | lr=0.01 | 5 | 1 | 3 | search failed | \u2013 |",
        "| msg | 0.530 [0.500, 0.560] | 0.580 | 0.600 [0.550, 0.650] | \u2013 | 4 |",
        "| retrain | 0.500 | \u2013 | \u2013 | \u2013 | 2 |",
    ]
    lines = md.splitlines()
    for row in rows:
        assert row in lines, row
    assert not re.search(r"\bnan\b", md, flags=re.IGNORECASE)


def test_csv_rows_exact_and_round_trip(report):
    out, _, _ = report
    study = make_study()
    with open(out / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # runs: 2 x 11 (retrain) + 2 x 11 (msg) + 2 x 3 (ga); summaries: 9 + 8 + 0
    assert len(rows) == 22 + 22 + 6 + 9 + 8 == 67
    assert rows == csv_rows(study)
    assert list(rows[0]) == ["method", "seed", "usable", "metric", "value", "ci_low",
                             "ci_high", "n"]

    def num(s):
        return float(s) if s else NAN

    def same(a, b):
        a, b = (NAN if v is None else float(v) for v in (a, b))
        return a == b or (math.isnan(a) and math.isnan(b))

    n_runs = n_summary = 0
    for row in rows:
        m = study["methods"][row["method"]]
        if row["seed"] == "summary":
            s = m["summary"][row["metric"]]
            ci = s["ci"] or [None, None]
            assert same(num(row["value"]), s["value"])
            assert same(num(row["ci_low"]), ci[0]) and same(num(row["ci_high"]), ci[1])
            assert int(row["n"]) == s["n"] and row["usable"] == ""
            n_summary += 1
        else:
            run = next(r for r in m["runs"] if r["seed"] == int(row["seed"]))
            assert same(num(row["value"]), run["metrics"][row["metric"]])
            assert row["usable"] == str(run["usable"]).lower()
            assert row["ci_low"] == row["ci_high"] == row["n"] == ""
            n_runs += 1
    assert (n_runs, n_summary) == (50, 17)
    fa = next(r for r in rows if r["method"] == "msg" and r["seed"] == "0"
              and r["metric"] == "fa")
    assert fa["value"] == "0.123456789"  # exact repr, not the 3-decimal display


def test_json_round_trip_nan_to_null(report):
    out, _, _ = report
    text = (out / "results.json").read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text)
    # The study, NaN as null, plus the index of degenerate methods (none here).
    assert loaded == {**_nan_to_none(make_study()), "degenerate_methods": {}}
    assert loaded["methods"]["msg"]["summary"]["ta"]["value"] is None
    assert loaded["methods"]["ga"]["runs"][0]["metrics"]["ra"] is None
    assert list(loaded["methods"]) == ["retrain", "msg", "ga"]


def _set(study, path, value):
    node = study
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()
BAD = [
    (("methods",), _DELETE, r"^study: missing key 'methods'$"),
    (("dataset",), "", r"study\['dataset'\]"),
    (("config",), [1], r"study\['config'\]: expected a mapping"),
    (("methods",), {}, r"study\['methods'\]: expected at least one method"),
    (("methods", "msg", "runs", 1, "usable"), "yes", r"\['runs'\]\[1\]\['usable'\]"),
    (("methods", "msg", "runs", 0, "seed"), _DELETE, r"\['runs'\]\[0\]: missing key 'seed'"),
    (("methods", "msg", "runs", 0, "metrics", "ra"), "0.9", r"\['metrics'\]\['ra'\]"),
    (("methods", "msg", "summary", "ra", "ci"), [0.1, 0.2, 0.3], r"\['ra'\]\['ci'\]"),
    (("methods", "msg", "search", "trial"), 1.5, r"\['search'\]\['trial'\]"),
    (("methods", "ga", "hparams"), _DELETE, r"\['ga'\]: missing key 'hparams'"),
    (("ranking", "retdev", 0, "rank"), _DELETE, r"\['retdev'\]\[0\]: missing key 'rank'"),
    (("ulira", "msg", "per_example_accuracy"), "x", r"\['per_example_accuracy'\]"),
    (("provenance", "device"), object(), r"study\['provenance'\]\['device'\]"),
]


@pytest.mark.parametrize(("path", "value", "match"), BAD, ids=[".".join(map(str, b[0]))
                                                             for b in BAD])
def test_bad_input_raises_and_writes_nothing(tmp_path, path, value, match):
    study = make_study()
    _set(study, path, value)
    with pytest.raises(ValueError, match=match) as err:
        write_report(study, tmp_path / "sub" / "out")
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=match):
        validate_study(study)


def test_out_dir_is_a_file(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        write_report(make_study(), tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_existing_dir_minimal_study(tmp_path, report):
    """Rewriting into an existing directory: stale figures go, unrelated files stay; a
    study without ranking, U-LiRA or forget losses gets no such figures."""
    out = tmp_path / "out"
    shutil.copytree(report[0], out)  # a full earlier report
    (out / "notes.txt").write_text("keep me")
    study = make_study()
    del study["ranking"], study["ulira"]
    study["provenance"] = {"backend": "gpu", "devices": ["H100", "H100"]}
    for m in study["methods"].values():
        for r in m["runs"]:
            r.pop("forget_losses", None)
    before = copy.deepcopy(study)
    md = write_report(study, out).read_text(encoding="utf-8")
    assert _nan_to_none(study) == _nan_to_none(before)  # input not mutated
    assert {p.name for p in out.iterdir()} == {"report.md", "results.csv", "results.json",
                                                "RECIPES.md", "accuracy.png", "rte.png",
                                                "notes.txt"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert "_No ranking in this study._" in md
    assert "| Device | gpu: 2 x H100 |\n" in md and "| Versions | \u2013 |\n" in md
    assert "ranking.png" not in md and "U-LiRA" not in md and "mia_hist" not in md


def test_numpy_values_are_accepted():
    """The sweep may hand over NumPy scalars and arrays: same tables and CSV rows."""
    np = pytest.importorskip("numpy")
    study = make_study()
    msg = study["methods"]["msg"]
    for s in msg["summary"].values():
        s["value"] = np.float64(np.nan if s["value"] is None else s["value"])
        s["ci"] = None if s["ci"] is None else np.asarray(s["ci"])
        s["n"] = np.int64(s["n"])
    for r in msg["runs"]:
        r["seed"] = np.int64(r["seed"])
        r["usable"] = np.bool_(r["usable"])
        r["forget_losses"] = np.asarray(r["forget_losses"], dtype=np.float32)
    validate_study(study)
    assert rte_table_markdown(study) == rte_table_markdown(make_study())
    assert csv_rows(study) == csv_rows(make_study())


def test_recipes_commands_round_trip_through_parse_hp():
    import shlex

    from jaxmu.methods import parse_hp
    from jaxmu.report import recipes_markdown

    study = {"dataset": "digits", "model": "mlp",
             "config": {"command": "python -m experiments.digits --benchmark",
                        "run_command": "python -m experiments.digits --model mlp",
                        "trials": 2, "search_seeds": [0], "seeds": 2, "e_max": 6,
                        "population_size": 50},
             "methods": {
                 "retrain": {"hparams": {}, "search": None, "reference": True,
                             "runs": [{"seed": 0}, {"seed": 1}]},
                 "scrub": {"hparams": {"lr": 0.0015681234567, "selection": "replay",
                                       "faithful": False, "epochs": 3},
                           "search": {"n_trials": 2, "seed": 0, "trial": 1, "score": 0.25},
                           "runs": [{"seed": 1}]}}}
    md = recipes_markdown(study)
    assert "```bash\npython -m experiments.digits --benchmark\n```" in md
    assert "python -m experiments.digits --model mlp --method retrain --seed 0\n" in md
    (line,) = [x for x in md.splitlines() if "--method scrub" in x]
    toks = shlex.split(line)
    assert toks[-2:] == ["--seed", "1"]
    hp = parse_hp([toks[i + 1] for i, t in enumerate(toks) if t == "--hp"])
    assert hp == study["methods"]["scrub"]["hparams"]
    assert "| scrub | epochs=3, faithful=False, lr=0.001568, selection=replay | 2 trials, " \
           "seed 0, trial 1, score 0.25 |" in md


def test_agg_figure_is_off_pyplot_and_validates(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = agg_figure(2.0, 1.5, layout="constrained")
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "f.png", format="png")
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG_MAGIC
    assert tuple(fig.get_size_inches()) == (2.0, 1.5)
    assert plt.get_fignums() == before  # not registered with pyplot
    with pytest.raises(ValueError, match="width: expected a positive number"):
        agg_figure(0, 1.0)
    with pytest.raises(ValueError, match="layout"):
        agg_figure(1.0, 1.0, layout="grid")


def test_json_safe_by_hand():
    import numpy as np

    out = json_safe({"a": np.float32(1.5), "b": [NAN, math.inf], 3: np.arange(2)}, "x")
    assert out == {"a": 1.5, "b": [None, None], "3": [0, 1]}
    with pytest.raises(ValueError, match="x: keys must be strings"):
        json_safe({(1, 2): 0}, "x")
