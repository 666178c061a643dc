"""Activation (forget) pruning (Akbari et al.): fixed masks on the forget set's top activations."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from jaxmu import losses
from jaxmu.methods._checks import BN, batch, non_negative, positive, unit
from jaxmu.methods._config import BATCH, EPOCHS, HP, LR, MOMENTUM, WD, MethodConfig, hparam
from jaxmu.methods._core import register
from jaxmu.models import path_str
from jaxmu.stages import activation_means, finetune, sequence
from jaxmu.train import per_epoch, torch_sgd
from jaxmu.types import Splits, Stage, UnlearnState

MEANS = "act_means"


def site_order(model, params, model_state) -> list[str]:
    """``/``-joined paths of the model's activation sites in forward (call) order.

    Flax records sown intermediates in call order; pytree flattening would sort the keys
    (``layer1_0`` before the stem's ``relu``), so the order is read from the raw dicts."""
    module = getattr(model, "module", None)
    order: list[str] = []

    def walk(d, pre):
        for k, v in d.items():
            if isinstance(v, tuple):
                order.append(pre + k)
            else:
                walk(v, pre + k + "/")

    x = jnp.zeros((1, *model.input_shape), jnp.float32)
    if module is None:  # not a FlaxModel: fall back to the (sorted) pytree order
        acts = jax.eval_shape(lambda p, s: model.activations(p, s, x), params, model_state)
        return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(acts)[0]]

    def trace(p, s):
        _, upd = module.apply({"params": p, **s}, x, train=False, mutable=["intermediates"])
        walk(upd.get("intermediates", {}), "")
        return jnp.zeros(())

    jax.eval_shape(trace, params, model_state)
    return order


def n_pruned(size: int, q: float) -> int:
    """How many of ``size`` distinct values lie strictly above their ``q``-quantile (linear
    interpolation, numpy's default): ``size - 1 - floor(q * (size - 1))``."""
    if isinstance(q, jax.core.Tracer):
        return size - 1 - jnp.floor(q * (size - 1) + 1e-9)
    return size - 1 - math.floor(q * (size - 1) + 1e-9)


def prune_mask(mean: jax.Array, q: float) -> jax.Array:
    """{0, 1} mask over a site's units zeroing the :func:`n_pruned` units with the largest
    mean activation (ties broken by position), i.e. those above the ``q``-th percentile."""
    k = n_pruned(mean.size, q)
    flat = mean.reshape(-1)
    order = jnp.argsort(-flat, stable=True)
    rank = jnp.zeros(flat.shape, jnp.int32).at[order].set(
        jnp.arange(flat.size, dtype=jnp.int32))
    return (rank >= k).astype(jnp.float32).reshape(mean.shape)


def site_quantiles(order: list[str], q_early: float, q_deep: float, deep_from: float):
    """``{path: q}``: site i of S (forward order) gets ``q_deep`` if ``i / S >= deep_from``."""
    s = len(order)
    return {p: (q_deep if i / s >= deep_from else q_early) for i, p in enumerate(order)}


def make_masks(q_early: float, q_deep: float, deep_from: float) -> Stage:
    """Writes ``model_state["act_masks"]`` from the activation means at ``aux[MEANS]``
    (combined multiplicatively with masks already there)."""
    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        qs = site_quantiles(site_order(state.model, state.params, state.model_state),
                            q_early, q_deep, deep_from)
        masks = jax.tree_util.tree_map_with_path(
            lambda p, m: prune_mask(m, qs.get(path_str(p), q_deep)), state.aux[MEANS])
        ms = dict(state.model_state)
        if "act_masks" in ms:
            masks = jax.tree.map(lambda a, b: a * b, ms["act_masks"], masks)
        ms["act_masks"] = masks
        return state.replace(model_state=ms)

    return run


@dataclasses.dataclass(frozen=True, kw_only=True)
class ActivationPruningConfig(MethodConfig):
    """Activation pruning's hyperparameters: the common search space and the quantiles
    ``q_early`` in [0.9, 1], ``q_deep`` in [0.5, 1]."""

    lr: float = LR(0.01, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(5e-4, check=non_negative)
    batch_size: int = BATCH(64, check=batch)
    epochs: int = EPOCHS(3, check=positive)
    q_early: float = HP("float", 0.9, 1.0, traced=True)(0.99, check=unit)
    q_deep: float = HP("float", 0.5, 1.0, traced=True)(0.90, check=unit)
    deep_from: float = hparam(0.5, check=unit)
    probe_batch_size: int = hparam(256, check=batch)
    bn: str = hparam("train", check=BN)
    touches = "all"


@register("activation_pruning", config=ActivationPruningConfig,
          summary="mean activation over forget per site; zero (fixed mask in model_state) the "
                  "units above the q-th percentile (q_early / q_deep); CE on retain with masks, "
                  "SGD+cosine",
          paper="Machine Unlearning: soft relabeling, gradient surgery, forget pruning (001)",
          section="docs/methods.md#activation_pruning")
def activation_pruning(c: ActivationPruningConfig):
    """Activation (forget) pruning.

    1. Mean activation over the forget set at every activation site of the model (eval
       mode; per unit = channel and position), :func:`~jaxmu.stages.activation_means`.
    2. Per site, a fixed {0, 1} mask zeroing the units whose mean lies above the ``q``-th
       percentile of that site's means (:func:`prune_mask`); ``q = q_early`` for the first
       ``deep_from`` fraction of the sites in forward order, ``q_deep`` for the rest
       (paper: about 0.99 early, 0.90 deep). The masks go to ``model_state["act_masks"]``,
       nested like the activation sites; the models' ``activation()`` helper multiplies
       every site by its mask, so fine-tuning and every later ``model.apply`` (evaluation
       included) use them.
    3. Fine-tune on D_r with the masks in place: ``epochs`` epochs of CE, SGD(``lr``,
       ``momentum``, ``weight_decay``), cosine per epoch, BatchNorm in ``bn`` mode.

    Note: the returned ``model_state`` gains an ``"act_masks"`` entry that the input did
    not have (intended: the masks are part of the unlearned model). Masks already present
    are combined multiplicatively.

    The paper averages over one forget batch and zeroes "activations higher than the q-th
    percentile"; jaxmu averages over the whole forget set (batches of
    ``probe_batch_size``) and zeroes exactly the ``n - 1 - floor(q (n - 1))`` units of
    highest mean (the count above the percentile for distinct values), so ties (e.g. many
    dead ReLU units at 0) cannot prune a whole layer. The fine-tune recipe, ``deep_from``
    and the search ranges of ``q_early``/``q_deep`` are jaxmu's choices.

    References:
        Akbari, Gaudi, Morshed, Machine Unlearning, §3.3; docs/methods.md#activation_pruning.
    """
    return sequence(
        activation_means(MEANS, "forget", c.probe_batch_size),
        make_masks(c.q_early, c.q_deep, c.deep_from),
        finetune(losses.ce(), lambda spe: torch_sgd(
                     per_epoch(optax.cosine_decay_schedule(c.lr, math.ceil(c.epochs)), spe),
                     c.momentum, c.weight_decay),
                 split="retain", epochs=c.epochs, batch_size=c.batch_size, bn=c.bn),
    )
