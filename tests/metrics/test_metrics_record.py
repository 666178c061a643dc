"""The full metric record from logits: keys, golden values, JSON-serialisability, errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from jaxmu.metrics import (
    MIASkippedWarning,
    accuracy,
    evaluate_logits,
    js_divergence,
    l2_distance,
    population_mia,
    retdev,
    sape,
)
from jaxmu.metrics._mia import cross_entropy_losses
from jaxmu.metrics._record import _min_loss_mia_size


def _model(rng, labels, strength):
    """Logits whose confidence in the true label scales with ``strength`` per split."""
    return {s: strength[s] * np.eye(4)[y] + rng.normal(0, 1.0, (y.size, 4))
            for s, y in labels.items()}


@pytest.fixture(scope="module")
def record_inputs():
    rng = np.random.default_rng(0)
    labels = {s: rng.integers(0, 4, n) for s, n in
              (("retain", 80), ("forget", 40), ("val", 40), ("test", 60))}
    unlearned = _model(rng, labels, dict(retain=4.0, forget=1.5, val=1.5, test=1.5))
    original = _model(rng, labels, dict(retain=4.0, forget=4.0, val=1.5, test=1.5))
    retrained = _model(rng, labels, dict(retain=4.0, forget=1.4, val=1.4, test=1.4))
    params = {name: {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
              for name in ("unlearned", "original", "retrained")}
    return labels, unlearned, original, retrained, params


def test_full_record(record_inputs):
    labels, u, o, r, params = record_inputs
    rec = evaluate_logits(u, labels, original=o, retrained=r, params=params,
                          timings=dict(run_seconds=2.0, compile_seconds=0.5,
                                       reference_seconds=20.0))
    json.dumps(rec, allow_nan=False)  # flat, finite, JSON-serialisable
    assert all(type(v) is float for v in rec.values())
    for split, key in (("retain", "ra"), ("forget", "fa"), ("val", "va"), ("test", "ta")):
        assert rec[key] == accuracy(u[split], labels[split])
        assert rec[f"retrained_{key}"] == accuracy(r[split], labels[split])
        assert rec[f"original_{key}"] == accuracy(o[split], labels[split])
    assert rec["rr"] == pytest.approx(rec["ra"] / rec["retrained_ra"])
    assert rec["retdev"] == pytest.approx(retdev(rec["rr"], rec["fr"], rec["tr"]))
    assert rec["acc_dis"] == pytest.approx(sape(rec["retrained_fa"], rec["fa"]))
    assert rec["acc_err_original"] == pytest.approx(sape(rec["original_ta"], rec["ta"]))
    assert rec["js_original"] == pytest.approx(js_divergence(u["forget"], o["forget"]))
    f_loss = cross_entropy_losses(u["forget"], labels["forget"])
    t_loss = cross_entropy_losses(u["test"], labels["test"])
    assert rec["mia_test"] == population_mia(f_loss, t_loss)
    assert rec["indisc_test"] == pytest.approx(1 - abs(2 * rec["mia_test"] - 1))
    assert 0 <= rec["classifier_mia"] <= 1
    assert rec["rte"] == 10.0 and rec["compile_seconds"] == 0.5
    assert rec["l2_to_retrained"] == pytest.approx(
        l2_distance(params["unlearned"], params["retrained"]))
    gaps = [rec[f"feature_mia_gap_{f}"] for f in ("correctness", "confidence", "entropy",
                                                  "prob")]
    assert rec["feature_mia_mean_gap"] == pytest.approx(np.mean(gaps))
    # The original model memorised the forget set: its loss MIA beats the unlearned one's.
    assert rec["original_mia_test"] > rec["mia_test"]


def test_minimal_record(record_inputs):
    labels, u, *_ = record_inputs
    rec = evaluate_logits({"forget": u["forget"], "test": u["test"]}, labels,
                          classifier=None, feature_classifier=None)
    assert set(rec) == {"fa", "ta", "mia_test", "indisc_test", "mia_auc_test"}


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(unlearned={"test": np.zeros((20, 4))}), "forget"),
     (dict(unlearned={"forget": np.zeros((20, 4)), "holdout": np.zeros((20, 4))}), "unknown"),
     (dict(labels={"test": np.zeros(20, int)}), "missing"),
     (dict(timings={"wall": 1.0}), "timings"),
     (dict(params={"teacher": {}}), "params")],
)
def test_record_bad_inputs(kwargs, match):
    args = dict(unlearned={"forget": np.zeros((20, 4))}, labels={"forget": np.zeros(20, int)})
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        evaluate_logits(args.pop("unlearned"), args.pop("labels"), **args)


def test_min_loss_mia_size_matches_population_mia():
    n = _min_loss_mia_size()
    assert n == 6
    rng = np.random.default_rng(0)
    assert 0 <= population_mia(rng.normal(size=n), rng.normal(size=n + 3)) <= 1
    with pytest.raises(ValueError, match="examples per set"):
        population_mia(rng.normal(size=n - 1), rng.normal(size=n + 3))


def test_tiny_splits_skip_the_loss_mia_with_a_warning(record_inputs):
    labels, u, o, r, _ = record_inputs
    take = {"retain": 80, "forget": 3, "val": 40, "test": 6}  # forget too small for the MIA
    cut = {s: {k: v[:take[k]] for k, v in m.items()} for s, m in
           (("labels", labels), ("u", u), ("o", o), ("r", r))}
    with pytest.warns(MIASkippedWarning) as caught:
        rec = evaluate_logits(cut["u"], cut["labels"], original=cut["o"], retrained=cut["r"],
                              mia_max_samples=20)
    msgs = [str(w.message) for w in caught if w.category is MIASkippedWarning]
    assert msgs == [  # once per reference split, not once per model
        "loss MIA vs test skipped (no mia_test, indisc_test, mia_auc_test keys): forget has "
        "3 examples and test 6 examples, the attack needs at least 6 in each",
        "loss MIA vs val skipped (no mia_val, indisc_val, mia_auc_val keys): forget has "
        "3 examples and val 40 examples, the attack needs at least 6 in each"]
    assert not [k for k in rec if "mia_test" in k or "mia_val" in k or "indisc" in k]
    json.dumps(rec, allow_nan=False)
    # everything else is still there, the classifier and feature MIAs included
    for prefix in ("", "original_", "retrained_"):
        assert {f"{prefix}{k}" for k in ("ra", "fa", "va", "ta")} <= set(rec)
    assert {"retdev", "js_original", "classifier_mia", "feature_mia_mean_gap"} <= set(rec)


def test_no_warning_when_every_mia_runs(record_inputs):
    labels, u, *_ = record_inputs
    with warnings.catch_warnings():
        warnings.simplefilter("error", MIASkippedWarning)
        rec = evaluate_logits({"forget": u["forget"][:6], "test": u["test"]},
                              {"forget": labels["forget"][:6], "test": labels["test"]},
                              classifier=None, feature_classifier=None)
    assert {"mia_test", "indisc_test", "mia_auc_test"} <= set(rec)
