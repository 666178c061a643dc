"""SalUn: gradient-saliency mask on the forget loss, then SRL with masked gradients."""

import dataclasses

import jax
import jax.numpy as jnp

from jaxmu import losses
from jaxmu.losses import LossInputs
from jaxmu.methods._checks import batch, non_negative, positive, unit
from jaxmu.methods._config import BATCH, EPOCHS, LR, MOMENTUM, UNIT, WD, MethodConfig
from jaxmu.methods._core import register
from jaxmu.models import ALL
from jaxmu.stages import accumulate_gradients, finetune, sequence
from jaxmu.train import epoch_indices, load_batch, relabel_forget, torch_sgd
from jaxmu.transforms import mask_by_gradient_saliency, scale_by_mask
from jaxmu.types import Splits, Stage, UnlearnState

GRAD = "salun_grad"


def forget_gradient_sum(name: str, batch_size: int, faithful: bool = False) -> Stage:
    """Writes the saliency gradient of SalUn to ``aux[name]`` (eval-mode BatchNorm).

    With ``g_b`` the gradient of ``-CE_f`` (batch mean) on forget batch ``b = 1..n_b``
    (shuffled, batch ``batch_size``; a smaller last batch when it does not divide |D_f|):

    * ``faithful=False``: ``sum_b g_b``.
    * ``faithful=True``: ``sum_b G_b`` with the running sum ``G_b = g_1 + ... + g_b``, i.e.
      ``sum_b (n_b - b + 1) g_b``: earlier batches weigh more. This is what the reference
      computes: it zeroes the gradients of the original model instead of the copy it
      back-propagates through, so the copy's ``.grad`` keeps accumulating and each batch
      adds the running total to the saliency.

    The batch order is ``epoch_indices(fold_in(key, 2), ...)`` in both cases, the one
    :func:`~jaxmu.stages.accumulate_gradients` uses, so with a single forget batch the two
    agree exactly.
    """
    loss = losses.neg(losses.ce())
    if not faithful:
        return accumulate_gradients(name, loss, "forget", batch_size=batch_size, bn="eval")

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model, n = state.model, splits.n_forget
        if n == 0:
            raise ValueError("salun: the forget split is empty")
        idx = epoch_indices(jax.random.fold_in(key, 2), splits.forget, n, batch_size)
        steps, b = idx.shape
        r = n - (steps - 1) * b  # size of the last batch (no wrap-around repeats)

        def grad(bidx):
            x, y = load_batch(splits.pool, bidx)

            def f(p):
                logits, _ = model.apply(p, state.model_state, x, train=False)
                return loss(LossInputs(logits=logits, y=y, x=x,
                                       is_forget=jnp.ones(y.shape, jnp.float32), params=p,
                                       aux=state.aux, model=model,
                                       model_state=state.model_state,
                                       key=jax.random.fold_in(key, 3)))

            return jax.grad(f)(state.params)

        def step(carry, bidx):
            running, total = carry
            running = jax.tree.map(jnp.add, running, grad(bidx))
            return (running, jax.tree.map(jnp.add, total, running)), None

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        full = idx if r == b else idx[:-1]
        carry, _ = jax.lax.scan(step, (zeros, zeros), full)
        if r < b:
            carry, _ = step(carry, idx[-1, :r])
        return state.with_aux(**{name: carry[1]})

    return run


@dataclasses.dataclass(frozen=True, kw_only=True)
class SalunConfig(MethodConfig):
    """SalUn's hyperparameters: the common search space, ``threshold`` and the dead
    ``mask_*`` (a mask optimiser the reference configures and never uses)."""

    lr: float = LR(0.01, check=positive)
    momentum: float = MOMENTUM(0.0, check=non_negative)
    weight_decay: float = WD(0.0, check=non_negative)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = EPOCHS(10, check=positive)
    threshold: float = UNIT(0.5, check=unit)
    mask_lr: float = LR(0.01, dead=True)
    mask_momentum: float = MOMENTUM(0.9, dead=True)
    mask_weight_decay: float = WD(5e-4, dead=True)
    faithful: bool = False
    touches = "all"


@register("salun", config=SalunConfig,
          summary="mask = global top-threshold fraction of |sum grad(-CE_f)| (eval mode); SRL "
                  "with gradients x mask, then coupled wd and momentum; SGD",
          paper="Deep Unlearn (004), after Fan et al. SalUn (Unlearn-Saliency)",
          section="docs/methods.md#salun")
def salun(c: SalunConfig):
    """Saliency unlearning.

    1. Mask (eval-mode BatchNorm): with ``g_b`` the gradient of ``-CE_f`` (batch mean) on
       forget batch ``b = 1..n_b`` (``batch_size``), the saliency is ``|sum_b g_b|``
       (default) or, with ``faithful=True``, the reference's ``|sum_b (n_b - b + 1) g_b|``
       (see :func:`forget_gradient_sum`). Mark trainable the ``floor(threshold * N)``
       entries with the largest saliency among *all* N parameter entries (global ranking;
       BatchNorm/LayerNorm scales and biases included, model state excluded).
       ``threshold`` is the fraction of entries kept trainable.
    2. E epochs of SRL (``srl``: CE on a mixed D_r/D_f stream with uniformly random forget
       labels, train-mode BatchNorm), with SGD whose direction is
       ``chain(scale_by_mask, add_decayed_weights, trace)``: the gradient is multiplied by
       the mask *before* coupled weight decay and momentum.

    Weight decay is therefore not masked: with ``weight_decay > 0`` a masked entry still
    shrinks by ``lr * wd * theta`` per step (and, with momentum, through the decay terms
    accumulated in its momentum buffer); with ``weight_decay = 0`` its buffer stays 0 and
    the entry is bit-identical. This is the reference's (PyTorch) behaviour and jaxmu keeps
    it on purpose, by the order of the chain; the defaults (momentum 0, wd 0) freeze masked
    entries exactly.

    Differences from the reference:
        * The reference zeroes the gradients of the original model, not of the copy it
          back-propagates through, so its saliency sums the *running* gradient sum after
          every batch: ``|sum_b (n_b - b + 1) g_b|``, which weighs the first forget batch
          ``n_b`` times and the last once (an accident of the code, not SalUn's definition;
          with a single forget batch both agree). jaxmu uses the unweighted sum by default;
          ``faithful=True`` reproduces the reference.
        * ``mask_lr``, ``mask_momentum``, ``mask_weight_decay`` configure an optimiser the
          reference builds but never uses. They are accepted,
          ignored, and marked dead in the search space.
        * Random labels come from the method key; training batches are full (the last batch
          of an epoch wraps around). The mask probe visits each forget example once (a
          smaller last batch, as a PyTorch loader without ``drop_last``).

    References:
        Fan et al., SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency
        (2024); Cadet et al., Deep Unlearn (2024); the reference code:
        docs/methods.md#salun.
    """
    # c.mask_lr, c.mask_momentum, c.mask_weight_decay: dead in the reference
    tx = torch_sgd(c.lr, c.momentum, c.weight_decay, pre=(scale_by_mask("salun", 1.0, 0.0),))
    return sequence(
        forget_gradient_sum(GRAD, c.batch_size, c.faithful),
        mask_by_gradient_saliency(GRAD, "salun", c.threshold, largest=True, select=ALL,
                                  scope="global"),
        finetune(losses.ce(), tx, split="train", epochs=c.epochs, batch_size=c.batch_size,
                 transform=relabel_forget),
    )
