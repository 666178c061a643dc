"""RNI: Reset the head, then per epoch train a random subset of tensors with Noise added to
newly picked ones (Iterative), and finish with full fine-tuning epochs.

A NeurIPS-2023 Kaggle challenge solution benchmarked by Deep Unlearn (docs/methods.md#kaggle).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxmu import losses
from jaxmu.methods._checks import batch, non_negative, non_negative_integer, positive, unit
from jaxmu.methods._config import (
    BATCH,
    EPOCHS,
    LR,
    MOMENTUM,
    UNIT,
    WD,
    MethodConfig,
    Need,
    hparam,
)
from jaxmu.methods._core import register
from jaxmu.methods._resets import torch_reset
from jaxmu.models import classifier, path_str, regex
from jaxmu.stages import finetune, sequence
from jaxmu.train import torch_sgd
from jaxmu.transforms import scale_by_mask
from jaxmu.types import Splits, UnlearnState

BN_PATTERN = r"(^|/)bn\d*/"
"""A leaf is a "BN key" when a module on its path is named ``bn``/``bn<i>`` (ResNet ``bn1``,
TinyViT ``Conv2dBN/bn``, small CNN ``bn0``). ResNet's ``downsample_bn`` does not match, like the
reference, where torchvision names it ``downsample.1`` (no "bn" in the key)."""

_FLAGS = "rni_trainable"


def bn_leaf_mask(params: Any) -> list[bool]:
    """Per-leaf (``jax.tree.leaves`` order) flags: is this leaf a BatchNorm parameter."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return [re.search(BN_PATTERN, path_str(p)) is not None for p, _ in flat]


def pick_tensors(key: jax.Array, n: int, already: jax.Array, layer_select: int,
                 n_noise: int, noisy: bool) -> tuple[jax.Array, jax.Array]:
    """One epoch's random choice over ``n`` non-BN tensors (jittable, static shapes).

    Returns float ``[n]`` vectors ``(selected, noise)``: ``min(layer_select, n)`` tensors
    drawn without replacement are trainable; when ``noisy``, ``min(n_noise, #selected)`` of
    them are drawn again and those never selected before (``already == 0``) get noise.
    """
    k = min(layer_select, n)
    k_sel, k_noise = jax.random.split(key)
    perm = jax.random.permutation(k_sel, n)
    selected = jnp.zeros(n, jnp.float32).at[perm[:k]].set(1.0)
    m = min(n_noise, k) if noisy else 0
    sub = perm[:k][jax.random.permutation(k_noise, k)[:m]]
    noise = jnp.zeros(n, jnp.float32).at[sub].set(1.0) * (1.0 - already)
    return selected, noise


def _fine_lr(fine_lr, i: int) -> float:
    return float(fine_lr[i]) if isinstance(fine_lr, tuple) else float(fine_lr)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RniConfig(MethodConfig):
    """RNI's hyperparameters: the common search space, ``fine_epochs``, ``reset_epochs``,
    the fine epochs' optimiser (a searched scalar ``fine_lr`` replaces the default list),
    ``noise_ratio`` and ``origin_noise``; ``layer_select`` is not searched."""

    lr: float = LR(2e-4, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(5e-4, check=non_negative)
    batch_size: int = BATCH(64, check=batch)
    epochs: int = EPOCHS(9, check=non_negative_integer)
    fine_epochs: int = EPOCHS(4, check=non_negative_integer)
    reset_epochs: int = EPOCHS(1, check=non_negative_integer)
    fine_lr: float | tuple[float, ...] = LR((2e-4, 2e-4, 2e-4, 1e-3, 1e-3, 1e-4), traced=False)
    fine_momentum: float = MOMENTUM(0.9, check=non_negative)
    fine_weight_decay: float = WD(5e-4, check=non_negative)
    noise_ratio: float = UNIT(0.7, check=unit, traced=False)  # sets a count: floor(r * 9)
    origin_noise: float = UNIT(0.04, check=non_negative)
    layer_select: int = hparam(9, check=non_negative_integer)
    touches = "all"

    def check(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if isinstance(self.fine_lr, tuple):
            if len(self.fine_lr) < self.fine_epochs:
                raise ValueError(f"fine_lr lists {len(self.fine_lr)} learning rates but "
                                 f"fine_epochs is {self.fine_epochs}; give a longer list or "
                                 "a scalar")
            for v in self.fine_lr:
                positive("fine_lr", v)
        else:
            positive("fine_lr", self.fine_lr)

    def needs(self) -> tuple[Need, ...]:
        """RNI only injects noise into tensors it has not picked before; with at most
        ``layer_select`` non-BN tensors, the noise-free first epoch(s) pick them all."""
        k = int(self.layer_select)
        if int(self.reset_epochs) < 1:
            return ()
        return (Need(f"more than layer_select={k} non-BatchNorm tensors", "head reset + "
                     "fine-tuning (FT), without noise", select=~regex(BN_PATTERN),
                     at_least=k + 1),)


@register("rni", config=RniConfig,
          summary="reset head; per epoch train 9 random non-BN tensors + all BN (noise on "
                  "newly picked ones), fresh SGD each epoch; last fine_epochs epochs full "
                  "fine-tune",
          paper="Deep Unlearn (004), Kaggle NeurIPS-2023 solution",
          section="docs/methods.md#rni")
def rni(c: RniConfig):
    """Reset, Noise, Iterate.

    1. Reset the classifier as PyTorch's ``Linear.reset_parameters()`` does: kernel and
       bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (on TinyViT too, whose own head init
       is a truncated normal; :func:`~jaxmu.methods._resets.torch_reset`).
    2. For epoch ``e = 0 .. E-1`` (one pass over D_r with CE, train mode, a fresh SGD each
       epoch so momentum restarts, no schedule):

       * *fine epochs* (``e >= E - fine_epochs``): every parameter trains with
         SGD(``fine_lr[e - (E - fine_epochs)]`` (or a scalar ``fine_lr``), ``fine_momentum``,
         ``fine_weight_decay``), no noise;
       * otherwise ``layer_select`` (9) of the non-BN tensors, drawn without replacement, plus
         every BN tensor are trainable (the others stay bit-identical: their update is
         multiplied by a per-leaf 0/1 flag, so neither weight decay nor momentum moves them),
         SGD(``lr``, ``momentum``, ``weight_decay``). From epoch ``reset_epochs`` on,
         ``floor(noise_ratio * layer_select)`` of the picked tensors are drawn and those never
         picked in an earlier epoch get ``origin_noise * N(0, 1)`` added. The reset head only
         trains in the epochs that pick it.

    The random choice is a key-driven permutation of the non-BN leaf indices per epoch, so the
    whole method stays jittable and vmappable (each model of a population draws its own).
    A "BN tensor" is a leaf under a module named ``bn``/``bn<i>`` (:data:`BN_PATTERN`).

    Differences from the reference:
        * The reference draws with numpy's global RNG (seed 123); jaxmu draws from the key.
        * When fewer non-BN tensors than ``floor(noise_ratio * 9)`` are picked (small models),
          the reference's ``np.random.choice`` raises; jaxmu draws ``min`` of the two.
        * The per-epoch validation-accuracy evaluation (printed only, but timed) is omitted.
        * A ``fine_lr`` list shorter than ``fine_epochs`` raises a ValueError here instead of
          an IndexError mid-run.

    References:
        Cadet et al., Deep Unlearn (2024); the reference code: docs/methods.md#rni.
    """
    b, epochs, fine_epochs, reset_epochs = c.batch_size, c.epochs, c.fine_epochs, c.reset_epochs
    lr, momentum, weight_decay, layer_select = c.lr, c.momentum, c.weight_decay, c.layer_select
    first_fine = max(epochs - fine_epochs, 0)
    n_noise = math.floor(c.noise_ratio * layer_select)

    def fine(e):
        i = e - (epochs - fine_epochs)
        return finetune(losses.ce(), torch_sgd(_fine_lr(c.fine_lr, i), c.fine_momentum,
                                               c.fine_weight_decay),
                        split="retain", epochs=1, batch_size=b)

    # SGD with the update (after momentum) of the flagged tensors zeroed
    partial = finetune(losses.ce(), optax.chain(optax.add_decayed_weights(weight_decay),
                                                optax.trace(momentum),
                                                scale_by_mask(_FLAGS, 1.0, 0.0),
                                                optax.scale_by_learning_rate(lr)),
                       split="retain", epochs=1, batch_size=b)

    def iterate(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        leaves, treedef = jax.tree.flatten(state.params)
        is_bn = bn_leaf_mask(state.params)
        non_bn = [i for i, f in enumerate(is_bn) if not f]
        already = jnp.zeros(len(non_bn), jnp.float32)
        for e in range(epochs):
            ke = jax.random.fold_in(key, e)
            if e >= first_fine:
                state = fine(e)(state, splits, jax.random.fold_in(ke, 1))
                continue
            selected, noise = pick_tensors(jax.random.fold_in(ke, 0), len(non_bn), already,
                                           layer_select, n_noise, noisy=e >= reset_epochs)
            already = jnp.maximum(already, selected)
            leaves = jax.tree.leaves(state.params)
            flags = [jnp.float32(1.0)] * len(leaves)
            for j, i in enumerate(non_bn):
                flags[i] = selected[j]
                kn = jax.random.fold_in(jax.random.fold_in(ke, 2), i)
                # Drawn flat and reshaped: same values, but XLA:CPU compiles 4-D draws slowly.
                z = jax.random.normal(kn, (leaves[i].size,), leaves[i].dtype)
                noisy = leaves[i] + c.origin_noise * z.reshape(leaves[i].shape)
                leaves[i] = jnp.where(noise[j] > 0, noisy, leaves[i])
            state = state.replace(params=jax.tree.unflatten(treedef, leaves)).with_aux(
                **{_FLAGS: jax.tree.unflatten(treedef, flags)})
            state = partial(state, splits, jax.random.fold_in(ke, 1))
        return state

    return sequence(torch_reset(classifier), iterate)
