"""Paper-000 presets (methods-spec §12.6): each resolves to its base method, differs from it
only in the stated overrides, and runs."""

import jax
import numpy as np
import pytest

from jaxmu.methods import get_method, list_methods, register_preset
from jaxmu.methods.presets import PRESETS

EXPECTED = {
    "rotate": ("ct", dict(epochs=9)),
    "pruning": ("prmq", dict(epochs=9)),
    "deviation": ("cfw", dict(epochs=9, scope="all_convs", start_confuser_std=0.6,
                              final_confuser_std=0.005)),
    "gradient": ("msg", dict(epochs=9, init_rate=0.3, kept_scale=0.0)),
    "divergence": ("fcs", dict(epochs=9)),
}


def test_preset_table():
    assert PRESETS == EXPECTED
    assert set(EXPECTED) <= set(list_methods())
    assert not set(EXPECTED) & set(list_methods(include_presets=False))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_resolves_to_base_with_overrides(name):
    base, over = EXPECTED[name]
    m, b = get_method(name), get_method(base)
    assert m.name == name and m.definition is b.definition
    assert m.hp == {**b.hp, **over}
    # Only the stated overrides may differ (some restate the base default explicitly).
    assert {k for k in m.hp if m.hp[k] != b.hp[k]} <= set(over)
    # Overrides on top of a preset still work and are validated like the base's.
    assert get_method(name, epochs=1).hp["epochs"] == 1
    with pytest.raises(ValueError):
        get_method(name, not_a_hyperparameter=1)


def test_duplicate_preset_rejected():
    with pytest.raises(ValueError):
        register_preset("rotate", "ct")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_runs(name, class_task):
    # One epoch (two for deviation, so its final confuser fires), to keep the test fast.
    t = class_task
    epochs = 2 if name == "deviation" else 1
    m = get_method(name, epochs=epochs).bind(t.model)
    p, s = m(t.params, t.model_state, t.splits, jax.random.key(0))
    assert jax.tree.structure(p) == jax.tree.structure(t.params)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(p))
    assert any(np.any(a != b) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(t.params),
                                               strict=True))
