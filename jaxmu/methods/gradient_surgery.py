"""Gradient surgery (Akbari et al.): projected forget ascent, then elastic-net retain descent."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from jaxmu import losses
from jaxmu.losses import Loss, LossInputs, cross_entropy
from jaxmu.methods._checks import BN, batch, integer, non_negative, one_of, positive
from jaxmu.methods._config import BATCH, EPOCHS, HP, LR, MOMENTUM, WD, MethodConfig, hparam
from jaxmu.methods._core import register
from jaxmu.stages import finetune, sequence, snapshot
from jaxmu.train import (
    StepKeys,
    batch_loader,
    epoch_indices,
    per_epoch,
    steps_per_epoch,
    torch_sgd,
    train_pass,
)
from jaxmu.transforms import project_out_vector
from jaxmu.types import Splits, Stage, UnlearnState

ANCHOR = "gs_anchor"


def _stream(key, mask, n: int, batch_size: int, steps: int):
    """Indices ``[steps, b]`` of ``steps`` batches: consecutive shuffled epochs of a split."""
    spe = steps_per_epoch(n, batch_size)
    n_ep = math.ceil(steps / spe)
    idx = jax.vmap(lambda e: epoch_indices(jax.random.fold_in(key, e), mask, n, batch_size))(
        jnp.arange(n_ep))
    return idx.reshape(n_ep * spe, -1)[:steps]


def elastic_net(anchor: str, l1: float, l2: float) -> Loss:
    """``l1 |theta - theta0|_1 + l2 |theta - theta0|_2^2`` to ``aux[anchor]["params"]``.

    The L1 term is written ``sign(d) * d`` so its gradient is ``sign(d)``, i.e. the
    subgradient 0 where ``theta == theta0`` (``jnp.abs`` differentiates to 1 at 0, which
    would shift every untouched weight by ``-lr * l1`` per step)."""
    def fn(i: LossInputs):
        terms = jax.tree.map(
            lambda p, q: l1 * jnp.sum(jax.lax.stop_gradient(jnp.sign(p - q)) * (p - q))
            + l2 * jnp.sum((p - q) ** 2), i.params, i.aux[anchor]["params"])
        return sum(jax.tree.leaves(terms))

    return Loss(fn, "elastic_net")


def projected_ascent(steps: int, lr: float, batch_size: int, bn: str = "train") -> Stage:
    """``steps`` steps of gradient ascent on the forget CE along the forget gradient with its
    retain-gradient component removed (one Gram-Schmidt step over the whole flattened
    parameter vector, :func:`~jaxmu.transforms.project_out_vector`):
    ``theta += lr * (g_F - (g_F.g_R / g_R.g_R) g_R)``, with ``g_F``, ``g_R`` the mean-CE
    gradients of a forget batch and a retain batch drawn afresh each step.

    The step needs two gradients, so it is not a :func:`~jaxmu.train.train_step`; it runs
    in :func:`~jaxmu.train.train_pass` (forget batches, retain batches as the second
    stream) and applies ``optax.sgd(lr)`` to ``-g_perp``."""
    train_mode = bn == "train"
    tx = optax.sgd(lr)

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model = state.model
        idx_f = _stream(jax.random.fold_in(key, 0), splits.forget, splits.n_forget,
                        batch_size, steps)
        idx_r = _stream(jax.random.fold_in(key, 1), splits.retain, splits.n_retain,
                        batch_size, steps)
        ks = jax.random.split(jax.random.fold_in(key, 2), steps)
        keys = StepKeys(dropout=jax.vmap(lambda k: jax.random.fold_in(k, 0))(ks),
                        dropout2=jax.vmap(lambda k: jax.random.fold_in(k, 1))(ks))

        def grad_on(params, ms, x, y, k):
            def f(p):
                logits, ms2 = model.apply(p, ms, x, train=train_mode, key=k)
                return cross_entropy(logits, y), ms2

            g, ms2 = jax.grad(f, has_aux=True)(params)
            return g, (ms2 if train_mode else ms)

        def step(carry, batch, k, aux):
            params, ms, opt = carry
            g_f, ms = grad_on(params, ms, batch.x, batch.y, k.dropout)
            g_r, ms = grad_on(params, ms, batch.x2, batch.y2, k.dropout2)
            ascent = jax.tree.map(jnp.negative, project_out_vector(g_f, g_r))
            updates, opt = tx.update(ascent, opt, params)
            return (optax.apply_updates(params, updates), ms, opt), None

        carry = (state.params, state.model_state, tx.init(state.params))
        (params, ms, _), _ = train_pass(step, carry, batch_loader(splits.pool), idx_f, keys,
                                        idx2=idx_r)
        return state.replace(params=params, model_state=ms)

    return run


@dataclasses.dataclass(frozen=True, kw_only=True)
class GradientSurgeryConfig(MethodConfig):
    """Gradient surgery's hyperparameters: the common search space (the retain phase),
    ``ascent_lr``, ``ascent_steps`` and the penalty weights ``l1``, ``l2``."""

    lr: float = LR(0.05, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(0.0, check=non_negative)
    batch_size: int = BATCH(64, check=batch)
    epochs: int = EPOCHS(3, check=positive)
    ascent_lr: float = LR(0.01, check=positive)
    ascent_steps: int = HP("int", 1, 200)(20, check=integer)
    l1: float = HP("log", 1e-7, 1e-3, traced=True)(1e-5, check=non_negative)
    l2: float = HP("log", 1e-6, 1e-1, traced=True)(1e-3, check=non_negative)
    anchor: str = hparam("original", check=one_of(("original", "ascent"),
                                                  "'original' or 'ascent'"))
    bn: str = hparam("train", check=BN)
    touches = "all"


@register("gradient_surgery", config=GradientSurgeryConfig,
          summary="ascent on forget CE along g_F minus its projection on g_R (per step); then "
                  "CE on retain + l1|theta-theta0|_1 + l2|theta-theta0|^2, SGD + cosine",
          paper="Machine Unlearning: soft relabeling, gradient surgery, forget pruning (001)",
          section="docs/methods.md#gradient_surgery")
def gradient_surgery(c: GradientSurgeryConfig):
    """Gradient surgery.

    1. Ascent phase (:func:`projected_ascent`): ``ascent_steps`` steps; each draws a forget
       batch and a retain batch (batch ``batch_size``, shuffled epochs), computes the mean-CE
       gradients ``g_F`` and ``g_R`` and moves ``theta += ascent_lr * g_perp`` with
       ``g_perp = g_F - (g_F.g_R / g_R.g_R) g_R`` (paper eq. 3, whole flattened vector):
       forgetting that is orthogonal, to first order, to the retain loss.
    2. Descent phase: ``epochs`` epochs on D_r of
       ``CE + l1 |theta - theta0|_1 + l2 |theta - theta0|_2^2`` with SGD(``lr``,
       ``momentum``, ``weight_decay``) and cosine annealing per epoch ("a rather large
       initial learning rate"); ``theta0`` is the original model (``anchor="original"``) or
       the model after the ascent (``anchor="ascent"``). The penalty is
       :func:`elastic_net` (subgradient 0 at ``theta == theta0``).

    BatchNorm runs in train mode in both phases (``bn``).

    The paper leaves the optimiser, the batch sizes, the step counts and the penalty
    weights open; the choices above are jaxmu's (plain SGD ascent, one batch pair per step,
    an elastic net anchored at the original weights, which reads "restricts training to a
    portion of the model" as sparse, small moves away from the starting point).

    References:
        Akbari, Gaudi, Morshed, Machine Unlearning, §3.2; Yu et al., Gradient Surgery for
        Multi-Task Learning (2020); docs/methods.md#gradient_surgery.
    """
    ascent = (projected_ascent(int(c.ascent_steps), c.ascent_lr, c.batch_size, c.bn)
              if c.ascent_steps > 0 else (lambda s, sp, k: s))
    first = (snapshot(ANCHOR), ascent) if c.anchor == "original" else (ascent,
                                                                        snapshot(ANCHOR))
    return sequence(
        *first,
        finetune(losses.ce() + elastic_net(ANCHOR, c.l1, c.l2),
                 lambda spe: torch_sgd(
                     per_epoch(optax.cosine_decay_schedule(c.lr, math.ceil(c.epochs)), spe),
                     c.momentum, c.weight_decay),
                 split="retain", epochs=c.epochs, batch_size=c.batch_size, bn=c.bn),
    )
