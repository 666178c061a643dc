"""CFW: Gaussian "vision confuser" on the stem conv, class-weighted CE fine-tune with cosine
annealing, a small second confuser before the last epoch.

A NeurIPS-2023 Kaggle challenge solution benchmarked by Deep Unlearn (docs/methods.md#kaggle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jaxmu import losses
from jaxmu.losses import Loss
from jaxmu.methods._checks import batch, non_negative, one_of, positive, positive_integer
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, UNIT, WD, MethodConfig, hparam
from jaxmu.methods._core import register
from jaxmu.models import conv_kernels, stem_conv, weights
from jaxmu.stages import sequence
from jaxmu.train import (
    StepKeys,
    batch_loader,
    epoch_indices,
    per_epoch,
    steps_per_epoch,
    torch_sgd,
    train_pass,
    train_step,
)
from jaxmu.transforms import gaussian_deviation
from jaxmu.types import Splits, Stage, UnlearnState

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


def finetune_with_confuser(
    loss: Loss,
    tx: optax.GradientTransformation | Callable[[int], optax.GradientTransformation], *,
    epochs: int, batch_size: int, confuser: Stage,
) -> Stage:
    """Fine-tunes on D_r with one optimiser state for all epochs, ``confuser`` before the last.

    Train-mode BatchNorm, shuffled D_r (batch ``batch_size``, full batches: the last one of
    an epoch wraps around), no augmentation. ``tx`` is a stock optax optimizer that owns its
    learning rate and schedule, or, as for :func:`~jaxmu.stages.finetune`, a function
    ``fn(steps_per_epoch) -> optimizer`` for schedules counted in epochs; CFW passes
    ``lambda spe: torch_sgd(per_epoch(optax.cosine_decay_schedule(lr, epochs), spe),
    momentum, weight_decay)`` (cosine annealing per epoch, T_max = ``epochs``). The
    ``confuser`` stage edits the params at the start of epoch ``epochs - 1`` (never when
    ``epochs == 1``); the optimiser state (momentum buffer and the schedule's step count)
    carries across it. Batches, dropout and loss keys are drawn exactly as
    :func:`~jaxmu.stages.finetune` draws them, so with a confuser that changes nothing the
    result equals ``finetune(loss, tx, epochs=epochs, batch_size=batch_size)``.
    """
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        n = splits.n_retain
        if n == 0:
            raise ValueError("cfw: the retain split is empty")
        spe = steps_per_epoch(n, batch_size)
        opt = tx(spe) if callable(tx) else tx
        step = train_step(loss, opt, model=state.model)
        load = batch_loader(splits.pool, splits.forget)

        def epoch(carry, e):
            params, model_state, opt_state = carry
            if epochs > 1:
                confused = confuser(state.replace(params=params), splits,
                                    jax.random.fold_in(key, epochs)).params
                params = jax.tree.map(lambda a, b: jnp.where(e == epochs - 1, a, b),
                                      confused, params)
            ke = jax.random.fold_in(key, e)
            idx = epoch_indices(jax.random.fold_in(ke, 0), splits.retain, n, batch_size)
            keys = StepKeys.split_many(jax.random.fold_in(ke, 2), spe)
            carry, _ = train_pass(step, (params, model_state, opt_state), load, idx, keys,
                                  aux=state.aux)
            return carry, None

        carry = (state.params, state.model_state, opt.init(state.params))
        (params, model_state, _), _ = jax.lax.scan(epoch, carry, jnp.arange(epochs))
        return state.replace(params=params, model_state=model_state)

    return run


@dataclasses.dataclass(frozen=True, kw_only=True)
class CfwConfig(MethodConfig):
    """CFW's hyperparameters: the common search space and the two confuser scales."""

    lr: float = LR(7e-4, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(5e-4, check=non_negative)
    batch_size: int = BATCH(64, check=batch)
    epochs: int = EPOCHS(4, check=positive_integer)
    start_confuser_std: float = UNIT(0.6, check=non_negative)
    final_confuser_std: float = UNIT(0.005, check=non_negative)
    scope: str = hparam("stem", check=one_of(SCOPES))
    weight_mode: str = hparam("batch_mean", check=one_of(WEIGHT_MODES))
    touches = "all"


@register("cfw", config=CfwConfig,
          summary="N(w, s^2) on the stem conv; class-balanced CE on retain, SGD + cosine; "
                  "N(w, s_final^2) again before the last epoch",
          paper="Deep Unlearn (004), Kaggle NeurIPS-2023 3rd place",
          section="docs/methods.md#cfw")
def cfw(c: CfwConfig):
    """Confuse the early convs with Gaussian noise, then fine-tune with class-weighted CE.

    1. *Vision confuser*: ``w <- w + start_confuser_std * N(0, 1)`` on the target kernels.
       ``scope="stem"`` (default): the stem conv kernel only (ResNet ``conv1``, as the
       reference); ``scope="all_convs"``: every conv kernel (the "Deviation" variant of the
       Comparative Analysis paper, preset ``deviation``). Models without convs use the first
       dense kernel (``stem``) or every dense kernel.
    2. Class weights on D_r: sklearn "balanced" ``n / (K_present * n_c)``.
    3. Fine-tune on D_r (train mode) for ``epochs`` epochs with SGD and cosine annealing per
       epoch (T_max = E). Loss: ``weight_mode="batch_mean"`` (reference) is ``CE_mean(batch) x
       mean_i w_{y_i}`` (it rescales the batch loss, it does not weight samples);
       ``"weighted"`` is the per-sample weighted mean ``sum w_y l / sum w_y``.
    4. After epoch E-2 (0-indexed, i.e. before the last epoch) the confuser runs again with
       ``final_confuser_std``; the cosine schedule and the optimiser state (the momentum
       buffer) continue across it, as with the reference's single SGD
       (:func:`finetune_with_confuser`). With E = 1 it never fires.

    Differences from the reference:
        * The reference perturbs top-level children whose name contains "conv": the ResNet
          stem ``conv1`` only, and nothing at all on TinyViT. jaxmu's ``stem`` scope uses the
          model's stem selector, so on TinyViT it perturbs the patch-embedding conv kernels
          (the paper's intent: confuse the first layer); ``scope="all_convs"`` is the
          "Deviation" variant.
        * The reference indexes its class-weight array (one entry per class present) by the
          label value, which shifts (or overflows) when a class is absent from D_r; jaxmu
          looks weights up per class. The unused ``class_weight`` config is not exposed.

    References:
        Cadet et al., Deep Unlearn (2024); Comparative Analysis of Machine Unlearning
        Approaches for Data Protection, §IV-B5 ("Deviation"); the reference code:
        docs/methods.md#cfw.
    """
    return sequence(
        _confuser(c.start_confuser_std, c.scope),
        balanced_class_weights("cfw_weights"),
        finetune_with_confuser(
            losses.class_weighted_ce("cfw_weights", c.weight_mode),
            lambda spe: torch_sgd(per_epoch(optax.cosine_decay_schedule(c.lr, c.epochs), spe),
                                  c.momentum, c.weight_decay),
            epochs=c.epochs, batch_size=c.batch_size,
            confuser=_confuser(c.final_confuser_std, c.scope)),
    )
