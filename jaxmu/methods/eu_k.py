"""EU-k: exact unlearning of the last k blocks (re-initialise them, then CF-k's fine-tune)."""

from __future__ import annotations

import dataclasses

import jax

from jaxmu.methods._checks import BN
from jaxmu.methods._config import HP, hparam
from jaxmu.methods._core import register
from jaxmu.methods.cf_k import CfKConfig, last_k_finetune
from jaxmu.models import Selector, last_k_blocks, path_str
from jaxmu.stages import sequence
from jaxmu.transforms import reinit
from jaxmu.types import Splits, Stage, UnlearnState


def keep_frozen_batch_stats(select: Selector, stage: Stage) -> Stage:
    """Runs ``stage`` and then restores the BatchNorm running statistics of every module
    outside ``select`` (a module is selected when one of its parameters is), so that a
    train-mode fine-tune of the selected blocks leaves the frozen blocks' statistics
    bit-identical while they still normalise with batch statistics during training."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        flags = select(state.model, state.params)
        prefixes = {path_str(p).rsplit("/", 1)[0]
                    for p, f in jax.tree_util.tree_flatten_with_path(flags)[0] if f}
        old = state.model_state
        out = stage(state, splits, key)
        if "batch_stats" not in old:
            return out
        bs = jax.tree_util.tree_map_with_path(
            lambda p, a, b: b if path_str(p).rsplit("/", 1)[0] in prefixes else a,
            old["batch_stats"], out.model_state["batch_stats"])
        return out.replace(model_state={**out.model_state, "batch_stats": bs})

    return run


@dataclasses.dataclass(frozen=True, kw_only=True)
class EuKConfig(CfKConfig):
    """EU-k's hyperparameters: CF-k's (train-mode BN by default) and the dead
    ``training_epoch_factor``; ``augment`` and ``reset_bn_stats`` are not searched."""

    bn: str = hparam("train", check=BN)
    training_epoch_factor: int = HP("int", 1, 10, dead=True)(10)
    augment: bool = True
    reset_bn_stats: bool = True


@register("eu_k", config=EuKConfig,
          summary="re-initialise the last k blocks + head (BN statistics reset); then CF-k's "
                  "proximal SGD on augmented retain, anchored at the fresh weights, "
                  "train-mode BN",
          paper="Deep Unlearn (004), after Goel et al.", section="docs/methods.md#eu_k")
def eu_k(c: EuKConfig):
    """Exact unlearning of the last k blocks (EU-k).

    1. Re-initialise the last ``num_blocks`` blocks and the classifier with a fresh draw of
       the model's own initialiser (from the method key); with ``reset_bn_stats`` (default)
       the BatchNorm running statistics of those blocks are reset to mean 0 / var 1.
    2. CF-k's fine-tune (see ``cf_k``): only those blocks + classifier train, SGD(``lr``,
       momentum 0, wd 0) + ``(sgda_weight_decay / 2) |theta - theta_reinit|^2`` (anchored at
       the re-initialised weights), 0-indexed step decay, on the **augmented** retain set
       (random crop + flip, ``augment=True``), with train-mode BatchNorm by default
       (``bn="train"``). The running statistics of the frozen blocks are restored afterwards
       (:func:`keep_frozen_batch_stats`), so everything outside the last k blocks and the
       classifier, statistics included, comes back bit-identical.

    Why train-mode BatchNorm: in eval mode BatchNorm uses its running statistics and never
    updates them, so after the reset (mean 0, var 1) the re-initialised blocks' BN layers
    compute ``gamma * x / sqrt(1 + eps) + beta``: an affine map that normalises nothing, and
    the fresh convolutions feed un-normalised activations forward for the whole fine-tune
    and at evaluation. Measured on the small CNN (channels 8, 16) on digits, class-3
    forgetting, k = 1, retain / forget / test accuracy (seeds 0 and 1; retrained model
    1.00 / 0.00 / 0.88):

    ========================  ===========================  ===========================
    setting                   eval-mode BN                 train-mode BN
    ========================  ===========================  ===========================
    defaults (10 ep, B 256)   .15/0/.13, .10/0/.10         .12/0/.12, .22/0/.18
    lr 0.1, B 64, 10 ep       .37/0/.30, .20/0/.16         .51/0/.45, .41/0/.37
    lr 0.1, B 64, 30 ep       .46/0/.37, .31/0/.27         .76/0/.66, .58/0/.50
    ========================  ===========================  ===========================

    Train mode is better wherever the fine-tune learns anything (the defaults are too short
    for this CNN either way), hence the default. ``bn="eval"`` with ``reset_bn_stats=False``
    (the reference's combination: eval mode with the *old* blocks' statistics) measured
    .59/0/.49, .43/0/.37 (10 ep) and .78/0/.66, .71/0/.61 (30 ep): stale statistics happen
    to normalise the fresh activations to a usable scale, reset ones do not.

    Differences from the reference:
        * The reference re-initialises with its own ``init_weights`` (Conv2d kaiming-uniform
          fan_out, Linear xavier-uniform, BN gamma=1/beta=0) and skips LayerNorm and
          attention biases (TinyViT); jaxmu re-draws every selected leaf from the model's
          own initialiser, so TinyViT blocks are fully re-initialised.
        * The reference keeps the old BN running statistics of the re-initialised blocks
          and fine-tunes in eval mode, so it never updates them (stale statistics of the
          old weights); jaxmu resets them and trains in train mode
          (``bn="eval", reset_bn_stats=False`` restores the reference).
        * ``sgda_learning_rate``, ``momentum`` and ``training_epoch_factor`` are searched
          by the reference but unused; kept in the space, marked dead, ignored.

    References:
        Goel et al., Towards Adversarial Evaluation of Machine Unlearning (2022); Cadet et
        al., Deep Unlearn (2024); the reference code: docs/methods.md#eu_k.
    """
    select = last_k_blocks(int(c.num_blocks))
    return sequence(
        reinit(select, init="model", reset_batch_stats=c.reset_bn_stats),
        keep_frozen_batch_stats(select, last_k_finetune(c, augment=c.augment)),
    )
