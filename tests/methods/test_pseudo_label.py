"""Tests for ``pseudo_label`` (paper 000 §IV-B3, methods-spec §12.5)."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.methods import get_method
from jaxmu.methods.pseudo_label import pseudo_labels
from jaxmu.train import split_accuracies


def test_behaviour_class_task(class_task):
    """Default HPs on the class-3 MLP task (no convs: the Rotate step is a no-op).

    Measured (jax 0.10.2, CPU): RA 1.00 -> 0.928, FA 1.00 -> 0.00, TA 0.975 -> 0.797
    (retrain 1.00 / 0.00 / 0.869). Asserted: FA <= 0.2, RA >= 0.85, TA >= 0.7.
    """
    t = class_task
    p, s = get_method("pseudo_label").bind(t.model)(t.params, t.model_state, t.splits, 0)
    acc = split_accuracies(t.model, p, s, t.splits)
    assert acc["forget"] <= 0.2
    assert acc["retain"] >= 0.85 and acc["test"] >= 0.7


def _peaked(k, strength=8.0):
    return jnp.zeros(10).at[k].set(strength)


def test_pseudo_label_rule_by_hand():
    """Label = fine-tuned prediction, except (fine-tuned right) & (scratch wrong) & (scratch
    entropy < 0.5 log 10): then the scratch prediction."""
    y = jnp.array([3, 3, 3, 3, 3])
    ft = jnp.stack([_peaked(3), _peaked(3), _peaked(7), _peaked(3), _peaked(3)])
    scratch = jnp.stack([
        _peaked(5),            # confident and wrong -> take 5
        _peaked(5, 0.1),       # wrong but nearly uniform (high entropy) -> keep 3
        _peaked(5),            # fine-tuned already wrong -> keep its 7
        _peaked(3),            # scratch right -> keep 3
        _peaked(6, 2.0),       # wrong, entropy 1.89 > 0.5 log 10 = 1.15 -> keep 3
    ])
    np.testing.assert_array_equal(pseudo_labels(ft, scratch, y, 0.5), [5, 3, 7, 3, 3])
    # A looser threshold (entropy < log 10) also accepts the last row's scratch label.
    np.testing.assert_array_equal(pseudo_labels(ft, scratch, y, 0.99)[4], 6)


@pytest.mark.parametrize("hp", [dict(entropy_threshold=1.5), dict(ft_epochs=0),
                                dict(scratch_lr=0.0), dict(head_epochs=-1),
                                dict(batch_size=0), dict(momentum=-0.5)])
def test_bad_hyperparameters(hp):
    with pytest.raises(ValueError):
        get_method("pseudo_label", **hp)
