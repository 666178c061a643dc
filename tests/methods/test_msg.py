"""MSG: its one-loop probe (``sum_gradients``) gives bit for bit the results of the recipe
written as five stages (two ``accumulate_gradients`` probes, mask, re-init, fine-tune)."""

from __future__ import annotations

import math

import jax
import pytest
from _helpers import assert_tree_bitwise_equal, digits_subset_splits

from jaxmu import losses
from jaxmu.methods import get_method
from jaxmu.models import mlp, small_cnn
from jaxmu.models._select import conv_kernels, weights
from jaxmu.stages import accumulate_gradients, finetune, sequence
from jaxmu.train import per_epoch, torch_sgd, triangular_schedule
from jaxmu.transforms import mask_by_gradient_saliency, reinit, scale_by_mask
from jaxmu.types import UnlearnState

MODELS = {"mlp": (mlp((8, 8, 1), 10, hidden=(16,)), weights),
          "cnn": (small_cnn((8, 8, 1), 10, channels=(4, 8)), conv_kernels)}


def _five_stages(hp, select):
    """MSG as it was written before its probes shared one loop (methods-spec §5.14)."""
    return sequence(
        accumulate_gradients("g", losses.ce(), "retain", batch_size=hp["probe_batch_size"],
                             subset="forget", bn="train"),
        accumulate_gradients("g", losses.ce(), "forget", batch_size=hp["batch_size"],
                             sign=-1.0, bn="train", add_to="g"),
        mask_by_gradient_saliency("g", "reinit", hp["init_rate"], largest=False,
                                  select=select, scope="layer", fill=1.0),
        reinit(select, init="kaiming_normal_fan_out", where="reinit"),
        finetune(losses.ce(),
                 lambda spe: torch_sgd(
                     per_epoch(triangular_schedule(hp["lr"], math.ceil(hp["epochs"])), spe),
                     hp["momentum"], hp["weight_decay"],
                     pre=(scale_by_mask("reinit", 1.0, hp["kept_scale"]),)),
                 split="retain", epochs=hp["epochs"], batch_size=hp["batch_size"]),
    )


@pytest.mark.parametrize("model_name", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
@pytest.mark.parametrize("hp", [
    dict(epochs=1, batch_size=3, probe_batch_size=3),  # one probe loop, last batches of 2
    dict(epochs=1, batch_size=4, probe_batch_size=8),  # shapes differ: probes one by one
])
def test_msg_is_bitwise_the_five_stage_recipe(model_name, hp):
    model, select = MODELS[model_name]
    splits = digits_subset_splits(64)
    params, ms = jax.jit(model.init)(jax.random.key(1))
    method = get_method("msg", **hp).bind(model)
    key = jax.random.key(7)
    got = method(params, ms, splits, key)

    @jax.jit
    def reference(params, ms, splits, key):
        out = _five_stages(method.hp, select)(UnlearnState(params, ms, {}, model), splits, key)
        return out.params, out.model_state

    assert_tree_bitwise_equal(got, reference(params, ms, splits, key), "msg")
