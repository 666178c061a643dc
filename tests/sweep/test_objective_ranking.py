"""The HP-search objective, best-trial selection and the G1/G2/G3 ranking on fixed inputs."""

from __future__ import annotations

import math

import pytest

from jaxmu.sweep import (
    objective_values,
    performance_groups,
    rank_methods,
    select_best,
    trial_score,
)

U = {"ra": 0.97, "fa": 0.91, "va": 0.88, "mia_val": 0.62}
R = {"ra": 1.00, "fa": 0.85, "va": 0.91}


def test_objective_values_by_hand():
    f = objective_values(U, R)
    assert f == pytest.approx((0.03 / 3, 0.06 / 3, 0.03 / 3, 0.24))
    assert trial_score(f) == pytest.approx(math.sqrt(0.01 ** 2 + 0.02 ** 2 + 0.01 ** 2
                                                     + 0.24 ** 2))


def test_objective_ignores_retrained_mia_and_maps_nan_to_inf():
    assert objective_values(U, {**R, "mia_val": 0.0}) == objective_values(U, R)
    f = objective_values({**U, "ra": math.nan}, R)
    assert f[0] == math.inf and trial_score(f) == math.inf
    assert objective_values({**U, "mia_val": 0.5}, R)[3] == 0.0


def test_objective_missing_key():
    with pytest.raises(ValueError, match="unlearned metrics lack 'mia_val'"):
        objective_values({"ra": 1, "fa": 1, "va": 1}, R)
    with pytest.raises(ValueError, match="retrained metrics lack 'va'"):
        objective_values(U, {"ra": 1, "fa": 1})


def test_trial_score_failed():
    assert trial_score(None) == math.inf
    assert trial_score([1.0, 2.0]) == math.inf
    assert trial_score([3.0, 4.0, 0.0, 0.0]) == 5.0


def _t(study, number, values, **params):
    return {"study": study, "number": number, "values": values, "params": params,
            "seed": int(study[-1])}


def test_select_best_across_seed_studies_first_n():
    trials = [
        _t("s0", 0, [0.3, 0.0, 0.0, 0.4], lr=1),     # 0.5
        _t("s0", 1, [0.0, 0.0, 0.0, 0.2], lr=2),     # 0.2
        _t("s0", 2, [0.0, 0.0, 0.0, 0.01], lr=3),    # beyond first_n=2: ignored
        _t("s1", 0, [0.0, 0.0, 0.0, math.inf], lr=4),
        _t("s1", 1, [0.0, 0.0, 0.1, 0.0], lr=5),     # 0.1: the best
        _t("s1", 3, None, lr=6),                     # failed
    ]
    best = select_best(trials, first_n=2)
    assert best["params"] == {"lr": 5} and best["seed"] == 1
    assert best["score"] == pytest.approx(0.1)
    assert select_best(trials)["params"] == {"lr": 3}  # all trials count


def test_select_best_tie_goes_to_first_study_then_lowest_number():
    trials = [_t("s0", 1, [0.1, 0, 0, 0], lr=1), _t("s0", 0, [0, 0.1, 0, 0], lr=2),
              _t("s1", 0, [0, 0, 0.1, 0], lr=3)]
    assert select_best(trials)["params"] == {"lr": 2}


def test_select_best_nothing_finite():
    with pytest.raises(ValueError, match="no trial with finite"):
        select_best([_t("s0", 0, [math.inf] * 4)])
    with pytest.raises(ValueError, match="no trial with finite"):
        select_best([])


def test_performance_groups_three_clear_clusters():
    # The paper's example: 98%, 99%, 50%, 1% -> {U1, U2} best, U3 average, U4 worst.
    acc = {"u1": 0.98, "u2": 0.99, "u3": 0.50, "u4": 0.01}
    g = performance_groups(acc, lower_is_better=False)
    assert g == {"u1": "G1", "u2": "G1", "u3": "G2", "u4": "G3"}
    # Orientation: the same numbers as errors put u4 first.
    g = performance_groups(acc, lower_is_better=True)
    assert g == {"u1": "G3", "u2": "G3", "u3": "G2", "u4": "G1"}


def test_performance_groups_failed_and_degenerate():
    g = performance_groups({"a": 1.0, "b": math.nan, "c": 2.0}, lower_is_better=True,
                           failed=["c"])
    assert g == {"a": "G1", "b": "F", "c": "F"}
    assert performance_groups({"a": 1.0, "b": 1.0}, lower_is_better=True) == {
        "a": "G1", "b": "G1"}
    assert performance_groups({"a": 1.0, "b": 3.0}, lower_is_better=True) == {
        "a": "G1", "b": "G2"}
    with pytest.raises(ValueError, match="no methods"):
        performance_groups({}, lower_is_better=True)


def _rows(setting, values, seeds=2, unusable=()):
    return [{"setting": setting, "method": m, "seed": s, "usable": (m, s) not in unusable,
             "retdev": v + 0.001 * s} for m, v in values.items() for s in range(seeds)]


def test_rank_methods_table1():
    rows = (_rows("a", {"ft": 0.01, "msg": 0.012, "ga": 0.5, "ff": 0.9})
            + _rows("b", {"ft": 0.02, "msg": 0.3, "ga": 0.31, "ff": 0.9},
                    unusable={("ff", 1)})
            + _rows("c", {"ft": 0.01, "msg": 0.01, "ga": 0.2, "ff": 0.21}))
    table = rank_methods(rows, "retdev")
    got = {t["method"]: (t["G1"], t["G2"], t["G3"], t["F"], t["rank"]) for t in table}
    # Seed means; with 3+ distinct values Ward makes 3 clusters.
    # a: {ft .0105, msg .0125} G1, ga G2, ff G3.
    # b: ff F (one unusable run); ft, msg, ga are 3 distinct values: G1, G2, G3.
    # c: {ft, msg} (equal) G1, ga .2005 G2, ff .2105 G3.
    assert got == {"ft": (3, 0, 0, 0, 1), "msg": (2, 1, 0, 0, 2), "ga": (0, 2, 1, 0, 3),
                   "ff": (0, 0, 2, 1, 4)}
    assert [t["method"] for t in table] == ["ft", "msg", "ga", "ff"]


def test_rank_methods_ties_share_rank_and_indisc_orientation():
    rows = [{"setting": "a", "method": m, "seed": 0, "usable": True, "indisc_test": v}
            for m, v in {"ct": 0.9, "msg": 0.9, "ga": 0.1}.items()]
    table = rank_methods(rows, "indisc_test")
    assert [(t["method"], t["rank"]) for t in table] == [("ct", 1), ("msg", 1), ("ga", 2)]


def test_rank_methods_bad_input():
    with pytest.raises(ValueError, match="nothing to rank"):
        rank_methods([], "retdev")
    with pytest.raises(ValueError, match="orientation"):
        rank_methods([{"setting": "a", "method": "x", "usable": True}], "weird")
    with pytest.raises(ValueError, match="lacks 'usable'"):
        rank_methods([{"setting": "a", "method": "x"}], "retdev")
