"""FCS: uniform-KL warm-up on forget, then E x [contrastive forget round + retain CE round],
with three SGD optimisers whose momentum buffers persist across the rounds.

A NeurIPS-2023 Kaggle challenge solution benchmarked by Deep Unlearn (docs/methods.md#kaggle).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmu import losses
from jaxmu.losses import Loss, LossInputs
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, ETA_MIN, LR, MOMENTUM, TEMPERATURE, WD, register
from jaxmu.stages import finetune, sequence, sgd
from jaxmu.train import cosine, epoch_indices, load_batch, steps_per_epoch
from jaxmu.types import Splits, UnlearnState


def _round(loss: Loss, tx: optax.GradientTransformation, split: str, batch_size: int,
           second: str | None = None):
    """One train-mode pass over ``split`` (optionally zipped with a cycled ``second`` split)
    that threads an existing optimiser state, so momentum carries over between rounds.

    Returns ``f(state, opt_state, splits, key, lr_at, step0) -> (state, opt_state)`` where
    ``lr_at(global_step)`` gives the learning rate of a step.
    """
    def run(state: UnlearnState, opt_state, splits: Splits, key, lr_at, step0):
        model = state.model
        n = splits.size(split)
        idx = epoch_indices(jax.random.fold_in(key, 0), splits.mask(split), n, batch_size)
        spe = idx.shape[0]
        if second:
            n2 = splits.size(second)
            idx2 = epoch_indices(jax.random.fold_in(key, 1), splits.mask(second), n2,
                                 batch_size)
            idx2 = idx2[jnp.arange(spe) % idx2.shape[0]]
        else:
            idx2 = jnp.zeros((spe, 1), jnp.int32)
        keys = jax.random.split(jax.random.fold_in(key, 2), spe)

        def step(carry, inp):
            params, ms, opt, s = carry
            bidx, bidx2, k = inp
            k1, k2, k3 = jax.random.split(k, 3)
            x, y = load_batch(splits.pool, bidx)
            x2 = y2 = None
            if second:
                x2, y2 = load_batch(splits.pool, bidx2)

            def loss_fn(p):
                logits, ms2 = model.apply(p, ms, x, train=True, key=k1)
                logits2 = None
                if second:
                    logits2, ms2 = model.apply(p, ms2, x2, train=True, key=k2)
                inp_ = LossInputs(logits=logits, y=y, x=x,
                                  is_forget=splits.forget[bidx].astype(jnp.float32), params=p,
                                  aux=state.aux, model=model, model_state=ms2, key=k3,
                                  logits2=logits2, y2=y2, x2=x2)
                return loss(inp_), ms2

            (val, ms2), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
            d, opt = tx.update(g, opt, params)
            lr = lr_at(step0 + s)
            params = jax.tree.map(lambda p, u: p - lr * u, params, d)
            return (params, ms2, opt, s + 1), val

        carry = (state.params, state.model_state, opt_state, jnp.int32(0))
        (params, ms, opt_state, _), _ = jax.lax.scan(step, carry, (idx, idx2, keys))
        return state.replace(params=params, model_state=ms), opt_state

    return run


def forget_lr_schedule(forget_lr: float, eta_min: float, total: int):
    """``CosineAnnealingLR(T_max=total, eta_min)`` stepped once per forget step: the lr of
    global forget step ``s`` (0-indexed) across all E rounds."""
    def lr_at(s):
        return forget_lr * cosine(s, total, eta_min / forget_lr)

    return lr_at


def _stage2(epochs, batch_size, temperature, retain_lr, retain_momentum, retain_weight_decay,
            forget_lr, forget_momentum, forget_weight_decay, eta_min):
    tx_f = sgd(forget_momentum, forget_weight_decay)
    tx_r = sgd(retain_momentum, retain_weight_decay)
    forget_round = _round(losses.contrastive_forget(temperature), tx_f, "forget", batch_size,
                          second="retain")
    retain_round = _round(losses.ce(), tx_r, "retain", batch_size)
    r_lr = retain_lr * batch_size / 64  # the reference scales the retain lr by B / 64

    def run(state: UnlearnState, splits: Splits, key):
        spe_f = steps_per_epoch(splits.n_forget, batch_size)
        f_lr = forget_lr_schedule(forget_lr, eta_min, spe_f * epochs)

        def r_lr_at(s):
            return r_lr

        def epoch(carry, e):
            st, of, orr = carry
            ke = jax.random.fold_in(key, e)
            st, of = forget_round(st, of, splits, jax.random.fold_in(ke, 0), f_lr, e * spe_f)
            st, orr = retain_round(st, orr, splits, jax.random.fold_in(ke, 1), r_lr_at, 0)
            return (st, of, orr), None

        carry = (state, tx_f.init(state.params), tx_r.init(state.params))
        (state, _, _), _ = jax.lax.scan(epoch, carry, jnp.arange(epochs))
        return state

    return run


@register(
    "fcs",
    defaults=dict(epochs=8, batch_size=256, lr=0.005, momentum=0.9, weight_decay=0.0,
                  retain_lr=1e-3, retain_momentum=0.9, retain_weight_decay=1e-2,
                  forget_lr=3e-4, forget_momentum=0.9, forget_weight_decay=0.0,
                  temperature=1.15, eta_min=1e-6),
    space={**COMMON, "retain_lr": LR, "retain_momentum": MOMENTUM, "retain_weight_decay": WD,
           "forget_lr": LR, "forget_momentum": MOMENTUM, "forget_weight_decay": WD,
           "temperature": TEMPERATURE, "eta_min": ETA_MIN},
    summary="KL(U || f) pass on forget; then E x [contrastive forget round (logit similarity "
            "to retain, cosine per step), retain CE round (lr x B/64)]",
    paper="Deep Unlearn (004), Kaggle NeurIPS-2023 1st place", section="docs/methods.md#fcs",
    touches="all",
)
def fcs(epochs, batch_size, lr, momentum, weight_decay, retain_lr, retain_momentum,
        retain_weight_decay, forget_lr, forget_momentum, forget_weight_decay, temperature,
        eta_min):
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
    the three PyTorch optimisers of the reference do (a private loop threads the optax
    states; ``finetune`` would restart them every call).

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
    b = _checks.batch("batch_size", batch_size)
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    for name, v in (("lr", lr), ("retain_lr", retain_lr), ("forget_lr", forget_lr),
                    ("eta_min", eta_min)):
        _checks.positive(name, v)
    for name, v in (("momentum", momentum), ("retain_momentum", retain_momentum),
                    ("forget_momentum", forget_momentum), ("weight_decay", weight_decay),
                    ("retain_weight_decay", retain_weight_decay),
                    ("forget_weight_decay", forget_weight_decay)):
        _checks.non_negative(name, v)
    tau = _checks.temperature("temperature", temperature)
    return sequence(
        finetune(losses.uniform_kl(), sgd(momentum, weight_decay), lr=lr, split="forget",
                 epochs=1, batch_size=b),
        _stage2(int(epochs), b, tau, retain_lr, retain_momentum, retain_weight_decay,
                forget_lr, forget_momentum, forget_weight_decay, eta_min),
    )
