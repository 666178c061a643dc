"""ScenarioRecord: a deletion scenario's typed result, one JSON round trip, the file layout of
``run_scenario`` unchanged."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import pytest

from jaxmu.experiment import MISSING, Scenario, Task, format_scenario, run_scenario
from jaxmu.io import dumps, loads, read_json, to_json
from jaxmu.records import ScenarioRecord

NAN = float("nan")


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (at any depth; dict key order aside)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _fields(rec: ScenarioRecord) -> dict[str, Any]:
    return {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec) if f.name != "path"}


def _entry(cost: float, **metrics: float) -> dict[str, Any]:
    return {"exact": False, "cost_s": cost, "compile_s": 0.1, "speedup": 2.0,
            "metrics": metrics}


def _sweep_dict() -> dict[str, Any]:
    """A hand-made sweep file dict (what ``ScenarioRecord.to_dict`` gives), one NaN metric."""
    table = [{"ratio": 0.1, "method": m, "ra": 0.9, "fa": 0.8, "ta": 0.85, "retdev": 0.0,
              "indisc_test": ind, "cost_s": 1.0, "speedup": 1.0}
             for m, ind in (("retrain", 0.5), ("ft", NAN), ("sisa", 0.4))]
    return {
        "experiment": "digits", "scenario": "deletion_ratio_sweep", "cli": {"seed": 0},
        "dataset": "digits", "model": "mlp", "seed": 0, "split_seed": 123,
        "val_fraction": 0.15, "config": {"epochs": 1, "lr": 0.05},
        "sisa_config": {"num_shards": 5}, "methods": ["retrain", "ft", "sisa"],
        "hparams": {"retrain": None, "ft": {"epochs": 1}, "sisa": None}, "ratios": [0.1],
        "repeats": 1, "original": {"cost_s": 1.5, "compile_s": 0.2, "cache_hit": False,
                                   "va": 0.9, "ta": NAN},
        "sisa_setup": {"setup_s": 2.0, "num_shards": 5, "num_slices": 1},
        "rows": [{"ratio": 0.1, "n_forget": 10, "n_retain": 90, "retrain_s": 1.0,
                  "methods": {"retrain": _entry(1.0, ra=0.9), "ft": _entry(0.5, ra=NAN),
                              "sisa": {**_entry(0.3, ra=0.8), "affected_shards": 2}}}],
        "table": table, "crossover": {"ft": None, "sisa": 0.1},
        "provenance": {"backend": "cpu"},
    }


def _sequential_dict() -> dict[str, Any]:
    d = {k: v for k, v in _sweep_dict().items()
         if k not in ("ratios", "rows", "crossover", "sisa_config")}
    d["scenario"] = "sequential_deletion"
    d["table"] = [{"request": 1, "n_deleted": 5, "method": "ft", "ra": NAN, "cost_s": 0.5,
                   "cumulative_cost_s": 0.5, "speedup": 2.0}]
    d["requests"] = [{"request": 1, "indices": [1, 2, 3, 4, 5], "n_request": 5,
                      "n_deleted": 5, "n_retain": 95, "retrain_s": 1.0,
                      "methods": {"ft": {**_entry(0.5, ra=NAN), "cumulative_cost_s": 0.5,
                                         "cumulative_speedup": 2.0}}}]
    d.update(forget_set="cumulative", num_requests=1, request_size=5)
    return d


@pytest.mark.parametrize("make, kind", [(_sweep_dict, "sweep"),
                                        (_sequential_dict, "sequential")])
def test_round_trip_through_json_text(make, kind):
    d = make()
    rec = ScenarioRecord.from_dict(d)
    assert rec.kind == kind and _same(rec.to_dict(), d)  # exactly the file's layout
    text = dumps(rec.to_dict())
    assert "NaN" not in text and "null" in text  # NaN written as null
    back = ScenarioRecord.from_dict(loads(text))
    assert _same(_fields(back), _fields(rec)) and _same(back.to_dict(), d)
    assert back.to_json() == rec.to_json()
    nan_row = next(r for r in back.table if r["method"] == "ft")
    metric = "indisc_test" if kind == "sweep" else "ra"
    assert isinstance(nan_row[metric], float) and math.isnan(nan_row[metric])
    steps = back.rows if kind == "sweep" else back.requests
    assert math.isnan(steps[0]["methods"]["ft"]["metrics"]["ra"])
    assert math.isnan(back.original["ta"]) and back.original["cache_hit"] is False
    if kind == "sweep":
        assert back.crossover == {"ft": None, "sisa": 0.1}  # None: no crossover, not NaN
        assert back.requests is None and back.forget_set is None
    else:
        assert back.rows is None and back.crossover is None and back.request_size == 5


def test_write_and_read(tmp_path):
    rec = ScenarioRecord.from_dict(_sweep_dict())
    path = tmp_path / "deletion_sweep_seed0.json"
    assert rec.write(path) is rec and rec.path == str(path)
    assert read_json(path) == to_json(rec.to_dict())
    back = ScenarioRecord.read(path)
    assert back.path == str(path) and _same(_fields(back), _fields(rec))


def _bad(edit):
    d = copy.deepcopy(_sweep_dict())
    edit(d)
    return d


@pytest.mark.parametrize("d, message", [
    (_bad(lambda d: d.pop("table")), "record: missing key 'table'"),
    (_bad(lambda d: d["table"][2].update(method=3)),
     "record['table'][2]['method']: expected a string, got int"),
    (_bad(lambda d: d["table"][0].update(ra="high")),
     "record['table'][0]['ra']: expected a number or null, got str"),
    (_bad(lambda d: d.update(scenario="bogus")), "record['scenario']: unknown scenario kind "
                                                 "'bogus'"),
    (_bad(lambda d: d.update(seed="0")), "record['seed']: expected an integer, got str"),
    (_bad(lambda d: d.update(methods="ft")), "record['methods']: expected a list, got str"),
    (_bad(lambda d: d.pop("rows")), "record: missing key 'rows'"),
    (_bad(lambda d: d["rows"][0]["methods"]["ft"]["metrics"].update(ra=[1])),
     "record['rows'][0]['methods']['ft']['metrics']['ra']: expected a number or null"),
    (_bad(lambda d: d["hparams"].update(ft=1)),
     "record['hparams']['ft']: expected a mapping, got int"),
    (_bad(lambda d: d.update(scenario="sequential_deletion")),
     "record: missing key 'requests'"),
    ([], "record: expected a mapping, got list"),
])
def test_bad_inputs_raise_one_line(d, message):
    with pytest.raises(ValueError) as e:
        ScenarioRecord.from_dict(d)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_unknown_kind_in_constructor():
    with pytest.raises(ValueError, match="unknown scenario kind"):
        ScenarioRecord(experiment="digits", kind="ratio", dataset="digits", model="mlp",
                       seed=0, split_seed=1, val_fraction=0.1, config={}, methods=[],
                       hparams={}, table=[])


def _old_format_scenario(res):
    """format_scenario as it was before ScenarioRecord (on run_scenario's dict)."""
    def fmt(v, spec="6.3f"):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return f"{MISSING:>{len(format(0.0, spec))}}"
        return format(v, spec)

    rows = res["table"]
    keys = [k for k in rows[0] if k != "method"] if rows else []
    lines = [f"{res['experiment']}: deletion {res['scenario']} ({', '.join(res['methods'])})"
             if "methods" in res else f"{res['experiment']}: deletion {res['scenario']}",
             " ".join(f"{k:>10}" for k in ["method", *keys])]
    for r in rows:
        lines.append(" ".join(f"{fmt(r[k]) if isinstance(r[k], float) else str(r[k]):>10}"
                              for k in ["method", *keys]))
    if "crossover" in res:
        lines.append("crossover (smallest ratio where retraining is cheaper): "
                     + ", ".join(f"{k}: {v}" for k, v in res["crossover"].items()))
    if "_path" in res:
        lines.append(f"wrote {res['_path']}")
    return "\n".join(lines)


# The tiniest settings of tests/test_scenarios.py (1-epoch MLP on digits), one approximate
# method, through run_scenario.
TASK = Task("digits", model="mlp", epochs=1, batch_size=64, lr=0.05, augment=False,
            cache_dir=None, classifier_mias=False)


@pytest.mark.parametrize("scenario, kind", [
    (Scenario(("ft",), ratios=(0.05,)), "sweep"),
    (Scenario(("ft",), requests=1, request_size=25), "sequential"),
])
def test_run_scenario_returns_the_written_record(tmp_path, scenario, kind):
    rec = run_scenario(TASK, scenario, out=tmp_path, config={"argv": "test"})
    assert isinstance(rec, ScenarioRecord) and rec.kind == kind
    path = tmp_path / "digits" / f"deletion_{kind}_seed0.json"
    assert rec.path == str(path)
    file = read_json(path)
    assert to_json(rec.to_dict()) == file  # the record is the file (NaN as null)
    assert set(file) == set(rec.to_dict()) and file["cli"] == {"argv": "test"}
    assert file["scenario"] == {"sweep": "deletion_ratio_sweep",
                                "sequential": "sequential_deletion"}[kind]
    assert [r["method"] for r in rec.table] == ["retrain", "ft"]
    assert _same(_fields(ScenarioRecord.read(path)), _fields(rec))
    # The dict run_scenario returned before: the JSON-safe result plus "_path".
    old = {**to_json(rec.to_dict()), "_path": str(path)}
    text = format_scenario(rec)
    assert text == _old_format_scenario(old) and text.endswith(f"wrote {path}")
    assert format_scenario(old) == text  # a file's dict prints the same
    assert ("crossover" in text) == (kind == "sweep")
    assert "wrote" not in format_scenario(dataclasses.replace(rec, path=None))
