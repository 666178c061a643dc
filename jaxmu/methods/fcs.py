"""FCS: uniform-KL warm-up on forget, then E x [contrastive forget round + retain CE round],
with three SGD optimisers whose momentum buffers persist across the rounds.

A NeurIPS-2023 Kaggle challenge solution benchmarked by Deep Unlearn (docs/methods.md#kaggle).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jaxmu import losses
from jaxmu.losses import Loss
from jaxmu.methods._checks import (
    batch,
    clip_temperature,
    non_negative,
    positive,
    positive_integer,
)
from jaxmu.methods._config import (
    BATCH,
    EPOCHS,
    ETA_MIN,
    LR,
    MOMENTUM,
    TEMPERATURE,
    WD,
    MethodConfig,
)
from jaxmu.methods._core import register
from jaxmu.stages import finetune, sequence
from jaxmu.train import (
    StepKeys,
    batch_loader,
    epoch_indices,
    steps_per_epoch,
    torch_sgd,
    train_pass,
    train_step,
)
from jaxmu.types import Splits, UnlearnState


def _round(loss: Loss, tx: optax.GradientTransformation, split: str, batch_size: int,
           second: str | None = None):
    """One train-mode pass over ``split`` (optionally zipped with a cycled ``second`` split)
    with :func:`~jaxmu.train.train_step` and :func:`~jaxmu.train.train_pass`, threading an
    existing optimiser state, so momentum (and the optimiser's schedule count) carries over
    between rounds.

    Returns ``f(state, opt_state, splits, key) -> (state, opt_state)``.
    """
    def run(state: UnlearnState, opt_state, splits: Splits, key):
        n = splits.size(split)
        idx = epoch_indices(jax.random.fold_in(key, 0), splits.mask(split), n, batch_size)
        spe = idx.shape[0]
        idx2 = None
        if second:
            n2 = splits.size(second)
            idx2 = epoch_indices(jax.random.fold_in(key, 1), splits.mask(second), n2,
                                 batch_size)
            idx2 = idx2[jnp.arange(spe) % idx2.shape[0]]
        ks = jax.vmap(lambda k: jax.random.split(k, 3))(
            jax.random.split(jax.random.fold_in(key, 2), spe))
        step = train_step(loss, tx, model=state.model)
        carry = (state.params, state.model_state, opt_state)
        (params, ms, opt_state), _ = train_pass(
            step, carry, batch_loader(splits.pool, splits.forget), idx,
            StepKeys(dropout=ks[:, 0], dropout2=ks[:, 1], loss=ks[:, 2]), idx2=idx2,
            aux=state.aux)
        return state.replace(params=params, model_state=ms), opt_state

    return run


def forget_lr_schedule(forget_lr: float, eta_min: float, total: int) -> optax.Schedule:
    """``CosineAnnealingLR(T_max=total, eta_min)`` stepped once per forget step: the optax
    schedule of the forget optimiser, whose update count is the global forget step across
    all E rounds."""
    return optax.cosine_decay_schedule(forget_lr, total, alpha=eta_min / forget_lr)


def _stage2(epochs, batch_size, temperature, retain_lr, retain_momentum, retain_weight_decay,
            forget_lr, forget_momentum, forget_weight_decay, eta_min):
    tx_r = torch_sgd(retain_lr * batch_size / 64, retain_momentum, retain_weight_decay)
    retain_round = _round(losses.ce(), tx_r, "retain", batch_size)  # the reference: lr x B/64
    forget_loss = losses.contrastive_forget(temperature)

    def run(state: UnlearnState, splits: Splits, key):
        spe_f = steps_per_epoch(splits.n_forget, batch_size)
        tx_f = torch_sgd(forget_lr_schedule(forget_lr, eta_min, spe_f * epochs),
                         forget_momentum, forget_weight_decay)
        forget_round = _round(forget_loss, tx_f, "forget", batch_size, second="retain")

        def epoch(carry, e):
            st, of, orr = carry
            ke = jax.random.fold_in(key, e)
            st, of = forget_round(st, of, splits, jax.random.fold_in(ke, 0))
            st, orr = retain_round(st, orr, splits, jax.random.fold_in(ke, 1))
            return (st, of, orr), None

        carry = (state, tx_f.init(state.params), tx_r.init(state.params))
        (state, _, _), _ = jax.lax.scan(epoch, carry, jnp.arange(epochs))
        return state

    return run


@dataclasses.dataclass(frozen=True, kw_only=True)
class FcsConfig(MethodConfig):
    """FCS's hyperparameters: the common search space (stage 1; ``epochs`` counts the
    forget/retain rounds), the retain and forget optimisers', ``temperature``, ``eta_min``."""

    lr: float = LR(0.005, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(0.0, check=non_negative)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = EPOCHS(8, check=positive_integer)
    retain_lr: float = LR(1e-3, check=positive)
    retain_momentum: float = MOMENTUM(0.9, check=non_negative)
    retain_weight_decay: float = WD(1e-2, check=non_negative)
    forget_lr: float = LR(3e-4, check=positive)
    forget_momentum: float = MOMENTUM(0.9, check=non_negative)
    forget_weight_decay: float = WD(0.0, check=non_negative)
    temperature: float = TEMPERATURE(1.15, check=non_negative)
    eta_min: float = ETA_MIN(1e-6, check=positive)
    touches = "all"


@register("fcs", config=FcsConfig,
          summary="KL(U || f) pass on forget; then E x [contrastive forget round (logit "
                  "similarity to retain, cosine per step), retain CE round (lr x B/64)]",
          paper="Deep Unlearn (004), Kaggle NeurIPS-2023 1st place",
          section="docs/methods.md#fcs")
def fcs(c: FcsConfig):
    """Forget with a uniform-KL warm-up and contrastive forget/retain rounds (FCS).

    Everything runs in train mode (BatchNorm statistics update, as the reference).

    1. **Stage 1**: one pass over D_f (batch ``batch_size``) with ``KL(U || softmax f(x))``
       (batchmean), SGD(``lr``, ``momentum``, ``weight_decay``) -- the reference's ``opt0``.
    2. **Stage 2**, ``epochs`` times:

       a. *Forget round*: |D_f|/B steps over D_f zipped with a freshly shuffled retain
          stream; ``S = z_f z_r^T / tau`` on the logits (retain logits gradient-stopped, their
          BN statistics still update), loss ``-mean log_softmax(S)``. SGD(``forget_lr``,
          ``forget_momentum``, ``forget_weight_decay``) with cosine annealing per step to
          ``eta_min`` over all ``epochs * |D_f|/B`` forget steps.
       b. *Retain round*: one pass over D_r with CE, SGD(``retain_lr * batch_size / 64``,
          ``retain_momentum``, ``retain_weight_decay``), constant lr.

    The forget and retain optimisers keep their own momentum buffers across all E rounds, as
    the three PyTorch optimisers of the reference do (the rounds thread the two optax
    states through :func:`~jaxmu.train.train_pass`; the forget optimiser's cosine is an optax
    schedule of its own update count).

    Differences from the reference:
        * When |D_r|/B < |D_f|/B the reference's ``zip`` stops early; jaxmu cycles the retain
          stream so every forget round makes |D_f|/B steps.
        * The last partial batch of every loader is filled by wrapping around (jaxmu's static
          shapes), so a few examples are seen twice per pass.
        * ``temperature`` is clipped to >= 1e-3 (the reference's search space includes 0).

    References:
        Cadet et al., Deep Unlearn (2024); Comparative Analysis of Machine Unlearning
        Approaches for Data Protection, §IV-B7 ("Divergence"); the reference code:
        docs/methods.md#fcs.
    """
    return sequence(
        finetune(losses.uniform_kl(), torch_sgd(c.lr, c.momentum, c.weight_decay),
                 split="forget", epochs=1, batch_size=c.batch_size),
        _stage2(c.epochs, c.batch_size, clip_temperature(c.temperature), c.retain_lr,
                c.retain_momentum, c.retain_weight_decay, c.forget_lr, c.forget_momentum,
                c.forget_weight_decay, c.eta_min),
    )
