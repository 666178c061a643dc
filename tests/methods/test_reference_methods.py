"""The reference methods (original, retrain) are ordinary registered methods that declare
how an experiment answers them (:class:`jaxmu.methods.Reference`), not name special cases."""

import dataclasses
import types

import pytest

from jaxmu import _names
from jaxmu.methods import (
    MethodConfig,
    Reference,
    get_method,
    list_methods,
    reference_methods,
    register,
    unregister,
)
from jaxmu.train import TrainConfig


def _trained():
    return types.SimpleNamespace(original=("O", "o_state"), retrained=("R", "r_state"),
                                 original_seconds=7.0, retrain_seconds=3.5,
                                 retrain_compile_seconds=1.25)


def test_the_registry_declares_original_and_retrain_as_references():
    assert reference_methods() == ("original", "retrain")
    assert reference_methods() == _names.REFERENCES  # the jax-free constant agrees
    refs = [m for m in list_methods() if get_method(m).is_reference]
    assert refs == ["original", "retrain"]


def test_outcomes_read_o_and_r_from_the_trained_task():
    t = _trained()
    assert get_method("original").definition.reference.outcome(t) == (("O", "o_state"), 0.0,
                                                                       0.0)
    assert get_method("retrain").definition.reference.outcome(t) == (("R", "r_state"), 3.5,
                                                                     1.25)


def test_for_recipe_gives_retrain_the_recipe_and_leaves_others_alone():
    recipe = TrainConfig(epochs=3, batch_size=32, lr=0.05, momentum=0.8, weight_decay=1e-4,
                         augment=False)
    r = get_method("retrain").for_recipe(recipe)
    assert r.hp == {"epochs": 3, "batch_size": 32, "lr": 0.05, "momentum": 0.8,
                    "weight_decay": 1e-4, "augment": False}
    kept = get_method("retrain", epochs=9).for_recipe(recipe, keep=("epochs",))
    assert kept.hp["epochs"] == 9 and kept.hp["lr"] == 0.05
    assert get_method("original").for_recipe(recipe).hp == {}
    ft = get_method("ft", lr=0.02)
    assert ft.for_recipe(recipe) is ft


def test_a_user_reference_method_is_found_and_bad_declarations_fail():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class HalfConfig(MethodConfig):
        touches = "none"

    try:
        register("tmp_ref", config=HalfConfig, summary="s", paper="p", section="x",
                 reference=Reference(lambda t: (t.original, 0.0, 0.0)))(
            lambda c: (lambda state, splits, key: state))
        assert reference_methods() == ("original", "retrain", "tmp_ref")
        assert get_method("tmp_ref").is_reference
    finally:
        unregister("tmp_ref")
    assert "tmp_ref" not in reference_methods()

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class BadConfig(MethodConfig):
        touches = "none"

    with pytest.raises(ValueError, match="reference must be a Reference"):
        register("tmp_bad", config=BadConfig, summary="s", paper="p", section="x",
                 reference=lambda t: t)


def test_the_experiment_answers_any_reference_from_the_task_without_running_it():
    from jaxmu.experiment import unlearn

    t = _trained()
    assert unlearn(t, get_method("retrain")) == (("R", "r_state"), 3.5, 1.25)
    assert unlearn(t, get_method("original")) == (("O", "o_state"), 0.0, 0.0)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class ROnlyConfig(MethodConfig):
        touches = "none"

    def boom(c):
        def run(state, splits, key):
            raise AssertionError("a reference method must not run")
        return run

    try:
        register("tmp_r_copy", config=ROnlyConfig, summary="s", paper="p", section="x",
                 reference=Reference(lambda tr: (tr.retrained, tr.retrain_seconds, 0.0)))(boom)
        assert unlearn(t, get_method("tmp_r_copy")) == (("R", "r_state"), 3.5, 0.0)
    finally:
        unregister("tmp_r_copy")
