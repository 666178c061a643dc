"""Soft relabeling: forget rows get soft labels from attention over the retain rows of the
same batch (penultimate-feature similarity); CE on retain + soft-label CE on forget."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxmu import losses
from jaxmu.losses import LossInputs
from jaxmu.methods._checks import batch, non_negative, positive
from jaxmu.methods._config import BATCH, EPOCHS, HP, LR, MOMENTUM, WD, MethodConfig
from jaxmu.methods._core import register
from jaxmu.stages import finetune
from jaxmu.train import torch_sgd


def _last_leaf(tree: Any) -> Any:
    """The last leaf of a nested dict in insertion order (= execution order for Flax's
    ``intermediates``; ``jax.tree.leaves`` would sort the keys instead)."""
    last = None
    for v in tree.values():
        cand = _last_leaf(v) if isinstance(v, dict) else v
        if cand is not None:
            last = cand
    return last


def penultimate_features(model: Any, params: Any, model_state: Any, x: jax.Array,
                         logits: jax.Array) -> jax.Array:
    """Eval-mode features ``[B, D]`` at the model's last marked activation site (the one
    closest to the head), averaged over spatial/token axes; ``logits`` when the model has
    no marked site (or is not a Flax adapter).

    For the MLP, small CNN and ResNet18 this is exactly the head's input (the last ReLU, then
    the global average pool the model itself applies); for TinyViT it is the hidden layer of
    the last block's MLP, token-averaged.
    """
    module = getattr(model, "module", None)
    if module is None:
        return logits
    variables = {"params": params, **model_state}
    _, upd = module.apply(variables, x, train=False, mutable=["intermediates"])
    last = _last_leaf(upd.get("intermediates", {}))
    if last is None:
        return logits
    a = last[-1] if isinstance(last, tuple) else last
    a = a.astype(jnp.float32)
    if a.ndim > 2:
        a = a.mean(axis=tuple(range(1, a.ndim - 1)))
    return a.reshape(a.shape[0], -1)


def soft_labels(feats: jax.Array, y: jax.Array, is_forget: jax.Array, num_classes: int,
                temperature: float) -> jax.Array:
    """Per-row targets ``[B, K]``: one-hot labels on retain rows; on forget rows the
    attention-weighted mix of the retain rows' one-hot labels, with weights
    ``softmax_j(cos(f_i, f_j) / T)`` over the retain rows j of the batch (forget rows masked
    out). A batch without retain rows gives forget rows the uniform distribution."""
    f = feats / jnp.maximum(jnp.linalg.norm(feats, axis=-1, keepdims=True), 1e-12)
    sim = f @ f.T / temperature
    is_r = is_forget <= 0
    w = jax.nn.softmax(jnp.where(is_r[None, :], sim, -1e30), axis=-1)
    onehot = jax.nn.one_hot(y, num_classes, dtype=jnp.float32)
    mixed = w @ (onehot * is_r[:, None])
    mixed = jnp.where(jnp.any(is_r), mixed, 1.0 / num_classes)
    return jnp.where(is_r[:, None], onehot, mixed)


def _targets(temperature: float):
    def fn(i: LossInputs):
        feats = penultimate_features(i.model, i.params, i.model_state, i.x, i.logits)
        feats = jax.lax.stop_gradient(feats)
        return soft_labels(feats, i.y, i.is_forget, i.logits.shape[-1], temperature)

    return fn


@dataclasses.dataclass(frozen=True, kw_only=True)
class SoftRelabelConfig(MethodConfig):
    """Soft relabelling's hyperparameters: the common search space and ``temperature``
    (log-uniform in [1e-2, 10])."""

    lr: float = LR(0.01, check=positive)
    momentum: float = MOMENTUM(0.9, check=non_negative)
    weight_decay: float = WD(5e-4, check=non_negative)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = EPOCHS(5, check=positive)
    temperature: float = HP("log", 1e-2, 1e1, traced=True)(0.1, check=positive)
    touches = "all"


@register("soft_relabel", config=SoftRelabelConfig,
          summary="mixed stream; forget rows relabelled by attention (cosine similarity of "
                  "penultimate features / T) over the batch's retain labels; soft CE; SGD",
          paper="Machine Unlearning (001), Akbari et al.",
          section="docs/methods.md#soft_relabel")
def soft_relabel(c: SoftRelabelConfig):
    """Soft relabeling.

    E epochs over one shuffled stream mixing D_r and D_f (train-mode BatchNorm). In every
    batch each forget row gets a soft label: the attention-weighted mix of the one-hot labels
    of the batch's retain rows, with weights ``softmax_j(cos(h_i, h_j) / T)`` over the
    retain rows j, where ``h`` are penultimate features of the current model (eval mode,
    gradient stopped). The loss is the batch mean of the per-row CE against one-hot labels
    (retain rows) or soft labels (forget rows). SGD with momentum and coupled weight decay,
    no schedule.

    Choices (the paper gives no implementation details): penultimate features are the last
    marked activation site of the model (see :func:`penultimate_features`; the logits for a
    model without marked sites), spatial/token-averaged; cosine similarity; features from
    the current (not the original) model, recomputed every step with a second, eval-mode
    forward pass; retain and forget rows weighted equally in one mean; defaults
    (5 epochs, batch 256, SGD 0.01 / 0.9 / 5e-4, T = 0.1) are ours; the search space is the
    common set plus ``temperature`` (log [1e-2, 10]).

    References:
        Akbari, Gaudi, Morshed, Machine Unlearning, §3.1; docs/methods.md#soft_relabel.
    """
    return finetune(losses.soft_ce(_targets(c.temperature)),
                    torch_sgd(c.lr, c.momentum, c.weight_decay), split="train",
                    epochs=c.epochs, batch_size=c.batch_size)
