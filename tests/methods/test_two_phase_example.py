"""The two-phase example method (examples/two_phase.py): public pieces only, one optax
optimizer shared by the forget and retain phases through ``opt_state=``, registered as a
method with its own config class (and unregistered after, so the built-in registry that
the conformance suite and ``--list-methods`` read stays as it is)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmu import losses
from jaxmu.methods import get_method, list_methods, unregister
from jaxmu.stages import finetune, sequence
from jaxmu.train import split_accuracies, steps_per_epoch
from jaxmu.types import UnlearnState

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two_phase.py"


@pytest.fixture(scope="module")
def example():
    # Importing the file registers "two_phase"; the teardown takes it out again.
    assert "two_phase" not in list_methods()
    spec = importlib.util.spec_from_file_location("two_phase_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve the config's annotations through it
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)
        if "two_phase" in list_methods():
            unregister("two_phase")
    assert "two_phase" not in list_methods()


def test_example_imports_only_public_jaxmu_names():
    src = EXAMPLE.read_text()
    imports = [ln for ln in src.splitlines() if ln.startswith(("from jaxmu", "import jaxmu"))]
    assert imports and not any("._" in ln or "import _" in ln for ln in imports)


def test_two_phase_forgets_keeps_retain_and_shares_one_optimizer(example, class_task):
    t, rounds, b = class_task, 3, 32
    stage = example.two_phase(rounds=rounds, batch_size=b)
    out = jax.jit(stage)(UnlearnState(t.params, t.model_state, {}, t.model), t.splits,
                         jax.random.key(0))
    acc = split_accuracies(t.model, out.params, out.model_state, t.splits)
    # Measured: FA 1.00 -> 0.00, RA 1.00 -> 0.98, TA 0.97 -> 0.86 (retrain: 0.00 / 1.00 / 0.87)
    assert t.acc_original["forget"] - acc["forget"] >= 0.5
    assert acc["retain"] >= 0.9
    assert acc["test"] >= 0.75
    # One optimizer state in aux, whose schedule counted the steps of both phases.
    opt = out.aux[example.OPT]
    steps = rounds * (steps_per_epoch(t.splits.n_forget, b)
                      + steps_per_epoch(t.splits.n_retain, b))
    assert int(optax.tree_utils.tree_get(opt, "count")) == steps
    assert set(out.aux) == {example.OPT}


def test_registered_two_phase_is_the_stage_run_as_a_method(example, class_task):
    # get_method builds the stage from the config; Method jits it. Same numbers as the
    # stage with the same values (one compiled program each, same key).
    t, key = class_task, jax.random.key(0)
    two = get_method("two_phase", rounds=2)
    assert isinstance(two.config, example.TwoPhaseConfig) and two.config.rounds == 2
    assert get_method(example.TwoPhaseConfig(rounds=2)).config == two.config
    m = get_method("two_phase")  # the defaults: those of two_phase()
    assert m.definition.config.traced_names() == ("ascent_weight", "lr", "momentum")
    params, model_state = m.bind(t.model)(t.params, t.model_state, t.splits, key)
    out = jax.jit(example.two_phase())(
        UnlearnState(t.params, t.model_state, {}, t.model), t.splits, key)
    for a, b in zip(jax.tree.leaves((params, model_state)),
                    jax.tree.leaves((out.params, out.model_state)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    acc = split_accuracies(t.model, params, model_state, t.splits)
    assert t.acc_original["forget"] - acc["forget"] >= 0.5 and acc["retain"] >= 0.9
    with pytest.raises(ValueError, match="rounds must be an integer >= 1"):
        get_method("two_phase", rounds=0)


def _bias_counter():
    # d loss / d head.bias[0] = 1: with optax.sgd(1, momentum m), step t moves the bias by
    # -sum_{j<t} m^j, so momentum carried across stages is visible in the total.
    return losses.Loss(lambda i: i.params["head"]["bias"][0], "count")


def test_finetune_opt_state_name_continues_momentum(class_task):
    t, m = class_task, 0.5
    st = UnlearnState(t.params, t.model_state, {}, t.model)
    tx = optax.sgd(1.0, momentum=m)
    n = steps_per_epoch(t.splits.n_forget, 64)

    def two(name_a, name_b):
        stage = sequence(finetune(_bias_counter(), tx, split="forget", batch_size=64,
                                  opt_state=name_a),
                         finetune(_bias_counter(), tx, split="forget", batch_size=64,
                                  opt_state=name_b))
        out = jax.jit(stage)(st, t.splits, jax.random.key(0))
        return float(t.params["head"]["bias"][0] - out.params["head"]["bias"][0])

    shared = sum(sum(m ** j for j in range(s)) for s in range(1, 2 * n + 1))
    restarted = 2 * sum(sum(m ** j for j in range(s)) for s in range(1, n + 1))
    np.testing.assert_allclose(two("o", "o"), shared, rtol=1e-5)
    np.testing.assert_allclose(two("a", "b"), restarted, rtol=1e-5)
    assert abs(shared - restarted) > 0.1


def test_stock_optax_sgd_steps_with_its_lr_once(class_task):
    # finetune(loss, optax.sgd(0.1)) moves by 0.1 per unit gradient (not 0.1 x 0.1).
    t = class_task
    st = UnlearnState(t.params, t.model_state, {}, t.model)
    out = jax.jit(finetune(_bias_counter(), optax.sgd(0.1), split="forget", batch_size=64,
                           steps=3))(st, t.splits, jax.random.key(0))
    np.testing.assert_allclose(
        float(t.params["head"]["bias"][0] - out.params["head"]["bias"][0]), 0.3, rtol=1e-5)
    assert jnp.all(jnp.isfinite(out.params["head"]["kernel"]))
