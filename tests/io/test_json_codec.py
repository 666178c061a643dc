"""The one JSON codec (jaxmu.io): plain keeps NaN, files hold null, old NaN files still read."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from jaxmu.io import (
    JSONValueError,
    dumps,
    loads,
    nan_if_none,
    plain,
    read_json,
    to_json,
    write_json,
)


def test_plain_keeps_nan_and_converts_types():
    v = plain({"a": np.float32("nan"), "b": (1, np.int64(2)), "c": np.array([1.0, np.inf]),
               "d": np.bool_(True), 3: Path("x/y"), "e": {2, 1}})
    assert math.isnan(v["a"]) and v["b"] == [1, 2] and v["c"] == [1.0, math.inf]
    assert v["d"] is True and v["3"] == "x/y" and v["e"] == [1, 2]
    assert type(v["b"][1]) is int


def test_files_hold_null_for_non_finite_and_read_back(tmp_path):
    obj = {"m": {"ra": float("nan"), "fa": 0.5, "x": -math.inf}, "ci": [np.float64(1), None]}
    assert to_json(obj) == {"m": {"ra": None, "fa": 0.5, "x": None}, "ci": [1.0, None]}
    text = dumps(obj)
    assert "NaN" not in text and "Infinity" not in text and json.loads(text) == to_json(obj)
    p = write_json(tmp_path / "r.json", obj)
    assert "NaN" not in p.read_text() and read_json(p) == to_json(obj)
    assert math.isnan(nan_if_none(read_json(p)["m"]["ra"]))


def test_old_files_with_nan_tokens_still_load(tmp_path):
    (tmp_path / "old.json").write_text('{"metrics": {"ra": NaN}}')
    assert math.isnan(read_json(tmp_path / "old.json")["metrics"]["ra"])
    assert math.isnan(loads("[NaN]")[0])


def test_no_json_form_names_the_path():
    with pytest.raises(JSONValueError, match=r"rec\[.a.\]\[1\]: not JSON serialisable: object"):
        to_json({"a": [1, object()]}, "rec")
    with pytest.raises(TypeError):  # what json.dump raised before
        to_json({(1, 2): 3})
