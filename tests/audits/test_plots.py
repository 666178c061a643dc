"""Tests of jaxmu.audits._plots: valid PNGs, JSON round trips, validation, and roc_band's
point curve (hand-computed), bands, cluster resampling and coverage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from jaxmu.audits._plots import (
    _shared_bins,
    _tpr_at,
    _weighted_roc_grid,
    plot_margin_histograms,
    plot_relearn,
    plot_roc,
    plot_shadow_curve,
    roc_band,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _jsonable(x):
    """The JSON round trip of a result dict (arrays -> lists, tuples -> lists)."""
    return json.loads(json.dumps(x, default=lambda v: v.tolist()))


def _check_png(path):
    """A real, non-blank PNG image: signature, RGBA pixels, several colours drawn."""
    from matplotlib.image import imread

    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] == 4
    assert img.shape[0] > 200 and img.shape[1] > 300
    rgb = img[..., :3].reshape(-1, 3)
    assert np.mean(np.any(rgb < 0.9, axis=1)) > 0.01  # ink on the page
    q = (rgb * 255).round().astype(np.uint32)
    assert np.unique(q[:, 0] << 16 | q[:, 1] << 8 | q[:, 2]).size > 20  # distinct colours
    # no temporary file left next to it
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def _one_line_error(excinfo):
    msg = str(excinfo.value)
    assert msg and "\n" not in msg


def _data(seed=0, t=12, n=60, mu=1.0):
    rng = np.random.default_rng(seed)
    pos = rng.random((t, n)) < 0.5
    return rng.normal(size=(t, n)) + mu * pos, pos


@pytest.fixture(scope="module")
def band():
    scores, pos = _data()
    return roc_band(scores, pos, True, groups=np.arange(12) // 2, n_bootstrap=100)


RELEARN = {
    "ga": {"steps": [0, 10, 20, 40], "mean": [0.3, 0.6, 0.8, 0.9],
           "lo": [0.2, 0.5, 0.75, 0.85], "hi": [0.4, 0.7, 0.85, 0.95]},
    "retrain": {"steps": [0, 10, 20, 40], "mean": [0.2, 0.4, 0.7, 0.85],
                "lo": None, "hi": None},
}
SHADOW = {
    "ulira": {"shadows": [1, 2, 4, 8], "value": [0.55, 0.6, 0.62, 0.63],
              "lo": [0.5, 0.56, 0.6, 0.61], "hi": [0.6, 0.64, 0.65, 0.66]},
    "rmia": {"shadows": [1, 2, 4, 8, 16], "value": [0.6, 0.61, 0.62, 0.63, 0.64],
             "lo": [0.58, 0.6, None, 0.62, 0.63], "hi": [0.62, 0.63, None, 0.64, 0.65]},
}


# ----------------------------------------------------------------------------- roc_band


def test_roc_band_point_curve_by_hand():
    # Pairs (score, class): 0.9 P, 0.8 N, 0.6 P, 0.6 N (tie), 0.3 P, 0.1 N; the NaN score and
    # the invalid pair (5.0, P) are not scored. ROC points: (0,0) (0,1/3) (1/3,1/3)
    # (2/3,2/3) [tie: diagonal] (2/3,1) (1,1).
    scores = np.array([[0.9, 0.8, 0.6, np.nan], [0.6, 0.3, 0.1, 5.0]])
    pos = np.array([[1, 0, 1, 1], [0, 1, 0, 1]], bool)
    valid = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
    grid = [0.0, 1 / 6, 1 / 3, 0.5, 0.6, 2 / 3, 0.9, 1.0]
    out = roc_band(scores, pos, valid, fpr_grid=grid, n_bootstrap=0)
    # at FPR 0 and 1/3 the curve is vertical: the top of the segment; 0.5 and 0.6 on the
    # tie's diagonal from (1/3, 1/3) to (2/3, 2/3)
    want = [1 / 3, 1 / 3, 1 / 3, 0.5, 0.6, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(out["tpr"], want, atol=1e-12)
    np.testing.assert_array_equal(out["tpr_lo"], out["tpr"])
    np.testing.assert_array_equal(out["tpr_hi"], out["tpr"])
    assert out["auc"] == pytest.approx(11 / 18)  # Mann-Whitney: 5.5 of 9 pairs
    assert out["auc_ci"] is None
    assert (out["n_positive"], out["n_negative"]) == (3, 3)
    # independent route: sklearn's ROC read with np.interp (which returns the top of a
    # vertical segment at its FPR too)
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.array([1, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.6, 0.6, 0.3, 0.1])
    fpr, tpr, _ = roc_curve(y, s)
    np.testing.assert_allclose(out["tpr"], np.interp(grid, fpr, tpr), atol=1e-12)
    assert out["auc"] == pytest.approx(roc_auc_score(y, s))


def test_tpr_at_reads_the_polyline():
    fpr = np.array([0.0, 0.0, 0.5, 0.5, 1.0])
    tpr = np.array([0.0, 0.4, 0.6, 0.9, 1.0])
    got = _tpr_at(fpr, tpr, np.array([0.0, 0.25, 0.5, 0.75, 1.0]))
    np.testing.assert_allclose(got, [0.4, 0.5, 0.9, 0.95, 1.0])


def test_weighted_roc_with_unit_weights_is_the_point_curve():
    # ties (rounded scores) and masked pairs: the vectorised resample path with weight 1 for
    # every row reproduces the sklearn point curve and AUC
    scores, pos = _data(seed=3, t=6, n=40)
    scores = np.round(scores, 1)
    valid = np.random.default_rng(4).random(scores.shape) < 0.8
    out = roc_band(scores, pos, valid, n_bootstrap=0, fpr_grid=np.linspace(0, 1, 41))
    tpr, auc = _weighted_roc_grid(scores, pos, valid, np.ones((2, 6)), out["fpr_grid"],
                                  max_elems=10)  # one resample per chunk
    np.testing.assert_allclose(tpr, np.tile(out["tpr"], (2, 1)), atol=1e-12)
    np.testing.assert_allclose(auc, out["auc"], atol=1e-12)


def test_roc_band_contains_point_and_is_a_band(band):
    g = band["fpr_grid"]
    assert g.shape == (81,) and g[0] == pytest.approx(1e-4) and g[-1] == 1.0
    assert np.all(band["tpr_lo"] <= band["tpr"]) and np.all(band["tpr"] <= band["tpr_hi"])
    assert np.all(band["tpr_lo"] >= 0) and np.all(band["tpr_hi"] <= 1)
    assert np.all(np.diff(band["tpr"]) >= 0)
    mid = (g > 0.05) & (g < 0.5)
    assert np.all(band["tpr_hi"][mid] - band["tpr_lo"][mid] > 0.01)
    lo, hi = band["auc_ci"]
    assert lo < band["auc"] < hi
    assert band["n_units"] == 6 and band["n_bootstrap"] == 100
    # seeded: the same call gives the same band
    scores, pos = _data()
    again = roc_band(scores, pos, True, groups=np.arange(12) // 2, n_bootstrap=100)
    np.testing.assert_array_equal(again["tpr_lo"], band["tpr_lo"])


def test_roc_band_resamples_whole_groups():
    # 8 groups of 3 identical rows. Drawing whole groups gives every copy of a row the
    # group's multiplicity, i.e. the bootstrap of the 8 distinct rows with weights scaled by
    # 3, which leaves the ROC unchanged: the same band as resampling the distinct rows with
    # the same seed, to the last bit. Resampling the 24 rows as if independent gives a
    # narrower band.
    scores, pos = _data(seed=1, t=8, n=30)
    dup_s, dup_p = np.repeat(scores, 3, axis=0), np.repeat(pos, 3, axis=0)
    groups = np.repeat(np.array([5, 2, 7, 0, 1, 3, 4, 6]), 3)  # any labels, sorted order
    order = np.argsort([5, 2, 7, 0, 1, 3, 4, 6], kind="stable")
    grouped = roc_band(dup_s, dup_p, True, groups=groups, n_bootstrap=50, seed=7)
    distinct = roc_band(scores[order], pos[order], True, n_bootstrap=50, seed=7)
    for key in ("tpr", "tpr_lo", "tpr_hi"):
        np.testing.assert_allclose(grouped[key], distinct[key], atol=1e-12)
    assert grouped["auc_ci"] == pytest.approx(distinct["auc_ci"])
    rows = roc_band(dup_s, dup_p, True, n_bootstrap=50, seed=7)
    width = {k: np.mean(v["tpr_hi"] - v["tpr_lo"]) for k, v in
             (("grouped", grouped), ("rows", rows))}
    assert width["rows"] < 0.8 * width["grouped"]


def test_roc_band_coverage_of_the_true_tpr():
    # Scores = (1.2 + e_g) * positive + N(0, 1) noise, where e_g ~ N(0, 0.6^2) is the attack's
    # strength on group g (e.g. how well one original's runs unlearned), shared by its 3
    # rows; 24 groups. Pooled over groups the positives are N(1.2, 1 + 0.6^2) and the
    # negatives N(0, 1), so the true TPR(f) = Phi((1.2 - Phi^-1(1 - f)) / sqrt(1 + 0.6^2)).
    # The 90% cluster band covers it near the nominal rate (0.915 / 0.88 at FPR 0.1 / 0.3
    # over 200 data sets); resampling the rows as if independent ignores the shared e_g and
    # covers it clearly less often (0.765 / 0.75).
    mu, sd_g, n_groups, rows, n = 1.2, 0.6, 24, 3, 20
    grid = np.array([0.1, 0.3])
    truth = stats.norm.cdf((mu - stats.norm.ppf(1 - grid)) / np.hypot(1, sd_g))
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(n_groups), rows)
    hits = {"grouped": np.zeros(2), "rows": np.zeros(2)}
    reps = 80
    for r in range(reps):
        pos = rng.random((n_groups * rows, n)) < 0.5
        effect = np.repeat(rng.normal(0, sd_g, n_groups), rows)[:, None]
        scores = (mu + effect) * pos + rng.normal(size=pos.shape)
        for key, g in (("grouped", groups), ("rows", None)):
            out = roc_band(scores, pos, True, groups=g, n_bootstrap=100, confidence=0.9,
                           seed=r, fpr_grid=grid)
            hits[key] += (out["tpr_lo"] <= truth) & (truth <= out["tpr_hi"])
    cover = {k: v / reps for k, v in hits.items()}
    # binomial SD of an estimated coverage of 0.9 over 80 data sets: 0.034
    assert np.all(cover["grouped"] >= 0.8), cover
    assert np.all(cover["rows"] <= cover["grouped"] - 0.07), cover


@pytest.mark.parametrize("kwargs, match", [
    ({"positive": np.zeros((3, 4), bool)}, "both classes"),
    ({"positive": np.ones((2, 4), bool)}, "broadcast"),
    ({"groups": [0, 1]}, "groups"),
    ({"groups": [0, 0, 0]}, "at least 2 units"),
    ({"n_bootstrap": -1}, "n_bootstrap"),
    ({"confidence": 1.0}, "confidence"),
    ({"fpr_grid": [0.5, 0.1]}, "increasing"),
    ({"fpr_grid": [0.1, 2.0]}, r"\[0, 1\]"),
    ({"fpr_grid": []}, "empty"),
    ({"scores": np.zeros(4)}, "2-D"),
])
def test_roc_band_rejects_bad_inputs(kwargs, match):
    scores, pos = _data(t=3, n=4)
    args = {"scores": scores, "positive": pos, "valid": True, **kwargs}
    with pytest.raises(ValueError, match=match) as e:
        roc_band(args.pop("scores"), args.pop("positive"), args.pop("valid"), **args)
    _one_line_error(e)


# ----------------------------------------------------------------------------- plot_roc


def test_plot_roc_writes_png_from_arrays_and_json(tmp_path, band):
    scores, pos = _data(seed=2, mu=2.0)
    strong = roc_band(scores, pos, True, n_bootstrap=0)
    out = plot_roc({"ulira": band, "lira": _jsonable(strong)}, tmp_path / "sub" / "roc.png",
                   title="ROC of two attacks")
    assert out == tmp_path / "sub" / "roc.png"
    _check_png(out)
    # a JSON round trip of roc_band's output draws too (lists, None for a missing CI, NaN
    # TPRs at a few grid points as null)
    js = _jsonable(band)
    js["tpr"][3] = None
    js["auc_ci"] = None
    _check_png(plot_roc({"a": js}, tmp_path / "json.png"))


def test_plot_roc_replaces_an_existing_file_atomically(tmp_path, band):
    target = tmp_path / "roc.png"
    target.write_bytes(b"old")
    plot_roc({"a": band}, str(target))
    _check_png(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roc.png"]


def _roc(**over):
    base = {"fpr_grid": [0.001, 0.01, 0.1, 1.0], "tpr": [0.01, 0.05, 0.3, 1.0],
            "tpr_lo": [0.0, 0.03, 0.25, 1.0], "tpr_hi": [0.02, 0.08, 0.35, 1.0],
            "auc": 0.7, "auc_ci": [0.65, 0.75]}
    base.update(over)
    return base


@pytest.mark.parametrize("curves, match", [
    ({}, "non-empty dict"),
    ([], "non-empty dict"),
    ({"a": [1, 2]}, "expected a dict"),
    ({"a": _roc(tpr=[0.1, 0.2, 0.3])}, "length 4"),
    ({"a": _roc(tpr_lo=[0.0, 0.03])}, "length 4"),
    ({"a": _roc(tpr=[np.nan] * 4)}, "no finite TPR"),
    ({"a": _roc(tpr=[None] * 4)}, "no finite TPR"),
    ({"a": _roc(tpr=[0.01, 0.05, 0.3, 1.5])}, r"\[0, 1\]"),
    ({"a": _roc(tpr_lo=[0.05, 0.03, 0.25, 1.0])}, "lower band above"),
    ({"a": _roc(fpr_grid=[0.01, 0.001, 0.1, 1.0])}, "increasing"),
    ({"a": _roc(auc_ci=[0.8, 0.6])}, "above high"),
    ({"a": {"fpr_grid": [0.1, 1.0], "tpr": [0.2, 1.0]}}, "missing key 'tpr_lo'"),
])
def test_plot_roc_rejects_bad_inputs_and_writes_nothing(tmp_path, curves, match):
    with pytest.raises(ValueError, match=match) as e:
        plot_roc(curves, tmp_path / "out" / "roc.png")
    _one_line_error(e)
    assert list(tmp_path.iterdir()) == []


def test_plot_requires_a_png_name(tmp_path):
    with pytest.raises(ValueError, match=".png") as e:
        plot_roc({"a": _roc()}, tmp_path / "roc.pdf")
    _one_line_error(e)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_roc({"a": _roc()}, tmp_path / "roc.png")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- margins


def _margins(seed=0, mu=30, mo=20, n=40):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(mu, n)), rng.normal(0.5, 1.2, size=(mo, n))


def test_plot_margin_histograms_default_and_chosen_examples(tmp_path):
    u, o = _margins()
    _check_png(plot_margin_histograms(u, o, tmp_path / "default.png"))
    # masked observations (NaN outside the masks), examples by label, JSON lists
    rng = np.random.default_rng(1)
    um, om = rng.random(u.shape) < 0.5, rng.random(o.shape) < 0.5
    um[:, 3] = om[:, 3] = True
    u_nan, o_nan = np.where(um, u, np.nan), np.where(om, o, np.nan)
    out = plot_margin_histograms(
        _jsonable(u_nan), _jsonable(o_nan), tmp_path / "chosen.png",
        unlearned_mask=_jsonable(um), oracle_mask=_jsonable(om),
        examples={"median KLoM": 3, "95th pct KLoM": 17}, labels=("GA", "retrain"), bins=20,
        clip=(-2.0, 2.0), title="KLoM forget")
    _check_png(out)
    _check_png(plot_margin_histograms(u, o, tmp_path / "list.png", examples=[0, 39]))


def test_shared_bins_span_the_combined_range():
    edges = _shared_bins(np.array([-1.0, 3.0, 0.5, 2.0]), 20)
    np.testing.assert_allclose(edges, np.linspace(-1.0, 3.0, 21))
    np.testing.assert_allclose(_shared_bins(np.array([2.0, 2.0]), 4),
                               [2.0, 2.25, 2.5, 2.75, 3.0])  # all equal: [min, min + 1]


@pytest.mark.parametrize("change, match", [
    ({"o": np.zeros((5, 39))}, "39 examples, expected 40"),
    ({"u": np.zeros(40)}, "2-D"),
    ({"u": np.full((30, 40), np.nan)}, "NaN"),
    ({"unlearned_mask": np.zeros((30, 41), bool)}, "broadcast"),
    ({"examples": [40]}, r"\[0, 40\)"),
    ({"examples": [1.5]}, "indices"),
    ({"examples": []}, "empty"),
    ({"oracle_mask": np.zeros((20, 40), bool)}, "no observed margins"),
    ({"examples": [2], "oracle_mask": np.arange(40) != 2}, "no retrained observation"),
    ({"bins": 0}, "bins"),
    ({"labels": ("a",)}, "two strings"),
    ({"clip": (1.0, -1.0)}, "low < high"),
    ({"clip": 5.0}, "pair"),
])
def test_plot_margin_histograms_rejects_bad_inputs(tmp_path, change, match):
    u, o = _margins()
    u, o = change.pop("u", u), change.pop("o", o)
    with pytest.raises(ValueError, match=match) as e:
        plot_margin_histograms(u, o, tmp_path / "m.png", **change)
    _one_line_error(e)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- relearning


def test_plot_relearn_writes_png(tmp_path):
    _check_png(plot_relearn(RELEARN, tmp_path / "relearn.png", original_acc=0.98))
    _check_png(plot_relearn(_jsonable(RELEARN), tmp_path / "json.png", title="CIFAR-10"))


@pytest.mark.parametrize("curves, kwargs, match", [
    ({}, {}, "non-empty dict"),
    ({"a": {"steps": [0, 1], "mean": [0.1]}}, {}, "length 2"),
    ({"a": {"steps": [0, 1], "mean": [0.1, 0.2], "lo": [0.0, 0.1, 0.2]}}, {}, "length 2"),
    ({"a": {"steps": [0, 1], "mean": [None, np.nan]}}, {}, "no finite value"),
    ({"a": {"steps": [1, 0], "mean": [0.1, 0.2]}}, {}, "non-decreasing"),
    ({"a": {"steps": [0, None], "mean": [0.1, 0.2]}}, {}, "non-finite"),
    ({"a": {"steps": [0, 1], "mean": [0.1, 1.2]}}, {}, r"\[0, 1\]"),
    ({"a": {"steps": [0, 1], "mean": [0.1, 0.2], "lo": [0.2, 0.1], "hi": [0.1, 0.3]}}, {},
     "lower band above"),
    ({"a": {"mean": [0.1]}}, {}, "missing key 'steps'"),
    ({"a": {"steps": [0, 1], "mean": [0.1, 0.2]}}, {"original_acc": 1.5}, r"\[0, 1\]"),
])
def test_plot_relearn_rejects_bad_inputs(tmp_path, curves, kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        plot_relearn(curves, tmp_path / "r.png", **kwargs)
    _one_line_error(e)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- shadow curve


def test_plot_shadow_curve_writes_png(tmp_path):
    _check_png(plot_shadow_curve(SHADOW, tmp_path / "shadow.png"))
    only_values = {"lira": {"shadows": [1, 2, 4], "value": [0.01, 0.03, 0.04]}}
    _check_png(plot_shadow_curve(_jsonable(only_values), tmp_path / "tpr.png",
                                 metric="tpr_at_1fpr", title="TPR at 1% FPR"))


@pytest.mark.parametrize("table, kwargs, match", [
    ({}, {}, "non-empty dict"),
    ({"a": {"shadows": [1, 2], "value": [0.5]}}, {}, "length 2"),
    ({"a": {"shadows": [1, 2], "value": [0.5, 0.6], "hi": [0.6]}}, {}, "length 2"),
    ({"a": {"shadows": [1, 2], "value": [np.nan, None]}}, {}, "no finite value"),
    ({"a": {"shadows": [2, 1], "value": [0.5, 0.6]}}, {}, "increasing"),
    ({"a": {"shadows": [0, 1], "value": [0.5, 0.6]}}, {}, "positive integer"),
    ({"a": {"shadows": [1, 2.5], "value": [0.5, 0.6]}}, {}, "positive integer"),
    ({"a": {"value": [0.5]}}, {}, "missing key 'shadows'"),
    ({"a": {"shadows": [1], "value": [0.5]}}, {"metric": ""}, "metric"),
])
def test_plot_shadow_curve_rejects_bad_inputs(tmp_path, table, kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        plot_shadow_curve(table, tmp_path / "s.png", **kwargs)
    _one_line_error(e)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- import cost


def test_module_is_light_and_uses_no_pyplot(tmp_path):
    code = (
        "import sys, jaxmu.audits._plots as p\n"
        "heavy = [m for m in ('matplotlib', 'sklearn') if m in sys.modules]\n"
        f"p.plot_relearn({RELEARN!r}, {str(tmp_path / 'r.png')!r})\n"
        "print(heavy, 'matplotlib.pyplot' in sys.modules)\n"
    )
    env = {**os.environ, "MPLBACKEND": "module://nonexistent_backend"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert res.stdout.strip() == "[] False"
    assert (tmp_path / "r.png").read_bytes()[:8] == PNG_MAGIC
