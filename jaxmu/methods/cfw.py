"""CFW (kgltop3): Gaussian "vision confuser" on the stem conv, class-weighted CE fine-tune
with cosine annealing, a small second confuser before the last epoch."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmu import losses
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, UNIT, register
from jaxmu.models._select import conv_kernels, stem_conv, weights
from jaxmu.stages import finetune, sequence, sgd
from jaxmu.transforms import gaussian_deviation
from jaxmu.types import Splits, UnlearnState

SCOPES = ("stem", "all_convs")
WEIGHT_MODES = ("batch_mean", "weighted")


def balanced_class_weights(name: str, split: str = "retain"):
    """sklearn ``compute_class_weight("balanced")`` over the classes *present* in a split:
    ``w_c = n / (K_present * n_c)``, written to ``aux[name]`` ``[K]`` (absent classes: 0)."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        k = splits.pool.num_classes
        counts = jnp.zeros(k).at[splits.pool.y].add(splits.mask(split).astype(jnp.float32))
        present = counts > 0
        k_present = jnp.sum(present.astype(jnp.float32))
        w = splits.size(split) / (k_present * jnp.where(present, counts, 1.0))
        return state.with_aux(**{name: jnp.where(present, w, 0.0)})

    return run


def _selector(scope: str, model, params):
    """The confuser's target leaves: the stem conv kernel, or every conv kernel (dense kernels
    on models without convs, e.g. the MLP)."""
    if scope == "stem":
        return stem_conv & weights
    has_conv = any(jax.tree.leaves(conv_kernels(model, params, allow_empty=True)))
    return conv_kernels if has_conv else weights


def _confuser(std: float, scope: str):
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        select = _selector(scope, state.model, state.params)
        return gaussian_deviation(std, select)(state, splits, key)

    return run


@register(
    "cfw",
    defaults=dict(epochs=4, batch_size=64, lr=7e-4, momentum=0.9, weight_decay=5e-4,
                  start_confuser_std=0.6, final_confuser_std=0.005, scope="stem",
                  weight_mode="batch_mean"),
    space={**COMMON, "start_confuser_std": UNIT, "final_confuser_std": UNIT},
    summary="N(w, s^2) on the stem conv; class-balanced CE on retain, SGD + cosine; "
            "N(w, s_final^2) again before the last epoch",
    paper="Deep Unlearn (004), Kaggle NeurIPS-2023 3rd place", section="methods-spec §5.15",
)
def cfw(epochs, batch_size, lr, momentum, weight_decay, start_confuser_std, final_confuser_std,
        scope, weight_mode):
    """Confuse the early convs with Gaussian noise, then fine-tune with class-weighted CE.

    1. *Vision confuser*: ``w <- w + start_confuser_std * N(0, 1)`` on the target kernels.
       ``scope="stem"`` (default): the stem conv kernel only (ResNet ``conv1``, as the
       reference); ``scope="all_convs"``: every conv kernel (paper 000's "Deviation"). Models
       without convs use the first dense kernel (``stem``) or every dense kernel.
    2. Class weights on D_r: sklearn "balanced" ``n / (K_present * n_c)``.
    3. Fine-tune on D_r (train mode) for ``epochs`` epochs with SGD and cosine annealing per
       epoch (T_max = E). Loss: ``weight_mode="batch_mean"`` (reference) is ``CE_mean(batch) x
       mean_i w_{y_i}`` (it rescales the batch loss, it does not weight samples);
       ``"weighted"`` is the per-sample weighted mean ``sum w_y l / sum w_y``.
    4. After epoch E-2 (0-indexed, i.e. before the last epoch) the confuser runs again with
       ``final_confuser_std``; the cosine schedule continues (two ``finetune`` calls with
       ``offset``/``total``). With E = 1 it never fires.

    Differences from the reference:
        * The reference perturbs top-level children whose name contains "conv": the ResNet
          stem ``conv1`` only, and nothing at all on TinyViT. jaxmu's ``stem`` scope uses the
          model's stem selector, so on TinyViT it perturbs the patch-embedding conv kernels
          (the paper's intent: confuse the first layer); ``scope="all_convs"`` is the paper-000
          "Deviation" variant.
        * The reference indexes its class-weight array (one entry per class present) by the
          label value, which shifts (or overflows) when a class is absent from D_r; jaxmu
          looks weights up per class. The unused ``class_weight`` config is not exposed.
        * The optimiser (and its momentum buffer) restarts before the last epoch, because the
          fine-tune is split around the second confuser into two ``finetune`` calls.

    References:
        Cadet et al., Deep Unlearn (2024); methods-spec §5.15 (kgltop3); paper 000 §IV-B5
        ("Deviation").
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if weight_mode not in WEIGHT_MODES:
        raise ValueError(f"weight_mode must be one of {WEIGHT_MODES}, got {weight_mode!r}")
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    _checks.non_negative("start_confuser_std", start_confuser_std)
    _checks.non_negative("final_confuser_std", final_confuser_std)
    _checks.non_negative("momentum", momentum)
    _checks.non_negative("weight_decay", weight_decay)
    epochs = int(epochs)

    def tune(n, offset):
        return finetune(losses.class_weighted_ce("cfw_weights", weight_mode),
                        sgd(momentum, weight_decay), lr=_checks.positive("lr", lr),
                        split="retain", epochs=n,
                        batch_size=_checks.batch("batch_size", batch_size),
                        schedule="cosine", offset=offset, total=epochs)

    stages = [_confuser(start_confuser_std, scope), balanced_class_weights("cfw_weights")]
    if epochs == 1:
        stages.append(tune(1, 0))
    else:
        stages += [tune(epochs - 1, 0), _confuser(final_confuser_std, scope),
                   tune(1, epochs - 1)]
    return sequence(*stages)
