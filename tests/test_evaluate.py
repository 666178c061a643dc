"""``jaxmu.evaluate`` on splits too small for the loss MIA: keys left out, one warning each."""

from __future__ import annotations

import jax
import pytest
from _helpers import digits_subset_splits

import jaxmu
from jaxmu.metrics import MIASkippedWarning
from jaxmu.models import mlp


def test_evaluate_tiny_splits_warns_instead_of_raising():
    splits = digits_subset_splits(n=40, n_forget=4, n_val=4, n_test=8)
    model = mlp((8, 8, 1), 10, hidden=(16,))
    o = model.init(jax.random.key(0))
    u = model.init(jax.random.key(1))
    with pytest.warns(MIASkippedWarning, match="forget has 4 examples") as caught:
        rec = jaxmu.evaluate(model, u, splits, original=o, retrained=o,
                             timings={"run_seconds": 1.0, "reference_seconds": 2.0})
    skipped = sorted(str(w.message).split(" skipped")[0] for w in caught
                     if w.category is MIASkippedWarning)
    assert skipped == ["loss MIA vs test", "loss MIA vs val"]
    assert not [k for k in rec if "mia_test" in k or "mia_val" in k or "indisc" in k]
    assert {"ra", "fa", "va", "ta", "original_fa", "retrained_ta", "classifier_mia",
            "feature_mia_prob", "rte", "l2_to_original"} <= set(rec)
    assert rec["l2_to_retrained"] == rec["l2_to_original"] > 0
