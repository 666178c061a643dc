"""``sum_gradients`` (several gradient probes in one loop) against the same probes run one
after another, bit for bit, and its smaller program; ``sequence(start=)``."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _helpers import assert_tree_bitwise_equal, digits_subset_splits

from jaxmu import losses as L
from jaxmu.models import mlp, small_cnn
from jaxmu.stages import GradientPart, accumulate_gradients, sequence, sum_gradients
from jaxmu.types import UnlearnState

MODELS = {"mlp": mlp((8, 8, 1), 10, hidden=(16,)),
          "cnn": small_cnn((8, 8, 1), 10, channels=(4, 8))}


@pytest.fixture(scope="module")
def splits():
    return digits_subset_splits(64)  # forget 8, val 8, test 8, retain 40


def _state(name):
    model = MODELS[name]
    p, s = jax.jit(model.init)(jax.random.key(0))
    return UnlearnState(p, s, {}, model)


def _one_by_one(parts, bn):
    """The reference: one accumulate_gradients stage per part, chained with add_to."""
    return sequence(*(accumulate_gradients("g", L.ce(), p.split, batch_size=p.batch_size,
                                           sign=p.sign, subset=p.subset, bn=bn,
                                           add_to="g" if i else None)
                      for i, p in enumerate(parts)))


MSG_LIKE = [GradientPart("retain", 3, subset="forget"), GradientPart("forget", 3, sign=-1.0)]
CASES = {
    # retain subset of |forget| = 8 and forget, batches 3, 3, 2: one loop (with remainder)
    "same shapes, remainder": (MSG_LIKE, "train"),
    "same shapes, divisible": ([GradientPart("retain", 4, subset="forget"),
                                GradientPart("forget", 4, sign=-1.0)], "train"),
    "three parts, three signs": ([GradientPart("forget", 3), GradientPart("forget", 3, -1.0),
                                  GradientPart("retain", 3, 0.5, subset=8)], "train"),
    "different shapes": ([GradientPart("retain", 16), GradientPart("forget", 4, -1.0)],
                         "train"),
    "eval mode": (MSG_LIKE, "eval"),
}


# Each CNN case compiles two BatchNorm CNN programs: only the MSG-like one runs by default.
PAIRS = [pytest.param(m, c, marks=[pytest.mark.slow] if m == "cnn" and c != "same shapes, "
                      "remainder" else []) for m in MODELS for c in CASES]


@pytest.mark.parametrize("model, case", PAIRS)
def test_sum_gradients_is_bitwise_the_probes_one_by_one(model, case, splits):
    parts, bn = CASES[case]
    st = _state(model)
    key = jax.random.key(11)
    got = jax.jit(sum_gradients("g", L.ce(), parts, bn=bn))(st, splits, key)
    want = jax.jit(_one_by_one(parts, bn))(st, splits, key)
    assert_tree_bitwise_equal(got.aux, want.aux, "aux")
    assert_tree_bitwise_equal(got.model_state, want.model_state, "model_state")
    assert_tree_bitwise_equal(got.params, st.params, "params")
    if bn == "train" and model == "cnn":  # the statistics did move
        assert not np.array_equal(got.model_state["batch_stats"]["bn0"]["mean"],
                                  st.model_state["batch_stats"]["bn0"]["mean"])


def test_sum_gradients_traces_one_forward_backward_per_batch_shape(splits):
    """MSG-like probes with equal shapes (batches 3, 3, 2): the loss (and so the forward and
    backward pass) is in the program twice (full batch, last batch), not once per part."""
    st = _state("cnn")
    traces = []
    counted = L.Loss(lambda inp: traces.append(inp.logits.shape[0]) or L.ce()(inp))

    def count(stage):
        traces.clear()
        jax.jit(stage).lower(st, splits, jax.random.key(0))
        return sorted(traces)

    assert count(sum_gradients("g", counted, MSG_LIKE, bn="train")) == [2, 3]
    one_by_one = sequence(*(accumulate_gradients("g", counted, p.split, batch_size=3,
                                                 sign=p.sign, subset=p.subset, bn="train",
                                                 add_to="g" if i else None)
                            for i, p in enumerate(MSG_LIKE)))
    assert count(one_by_one) == [2, 2, 3, 3]


def test_sum_gradients_needs_a_part():
    with pytest.raises(ValueError, match="at least one part"):
        sum_gradients("g", L.ce(), [])


def test_sequence_start_continues_the_key_numbering(splits):
    def rec(i):
        return lambda st, sp, k: st.with_aux(**{f"k{i}": jax.random.key_data(k)})

    out = jax.jit(sequence(rec(0), rec(1), start=2))(_state("mlp"), splits, jax.random.key(5))
    for i in range(2):
        np.testing.assert_array_equal(
            out.aux[f"k{i}"], jax.random.key_data(jax.random.fold_in(jax.random.key(5), 2 + i)))
