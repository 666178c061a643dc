"""Inference: logits over a split in chunks, and accuracies."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxmu.train._batches import ordered_indices
from jaxmu.types import Model, Splits


@functools.partial(jax.jit, static_argnames=("model", "n", "batch_size"))
def predict_mask(model: Model, params, model_state, pool, mask, n: int, batch_size: int = 512):
    """Eval-mode logits ``[n, K]`` of the members of ``mask`` in pool order, in chunks."""
    idx = ordered_indices(mask, n, batch_size)

    def one(bidx):
        x, _ = _load(pool, bidx)
        logits, _ = model.apply(params, model_state, x, train=False)
        return logits.astype(jnp.float32)

    out = jax.lax.map(one, idx)
    return out.reshape(-1, out.shape[-1])[:n]


def _load(pool, bidx):
    return pool.normalize(pool.x[bidx]), pool.y[bidx]


def predict(
    model: Model, params, model_state, splits: Splits, split: str, batch_size: int = 512
) -> jax.Array:
    """Eval-mode logits ``[n, K]`` of one split (``forget``, ``retain``, ``val``, ``test``,
    ``train``), in pool order."""
    n = splits.size(split)
    if n == 0:
        return jnp.zeros((0, model.num_classes), jnp.float32)
    return predict_mask(model, params, model_state, splits.pool, splits.mask(split), n,
                        batch_size)


def labels(splits: Splits, split: str) -> jax.Array:
    """Labels of a split in pool order (matches :func:`predict`)."""
    return splits.pool.y[splits.indices(split)]


def split_accuracies(model: Model, params, model_state, splits: Splits) -> dict[str, float]:
    """Top-1 accuracy on forget, retain, val and test (NaN for an empty split)."""
    out = {}
    for s in ("retain", "forget", "val", "test"):
        if splits.size(s) == 0:
            out[s] = float("nan")
            continue
        logits = predict(model, params, model_state, splits, s)
        out[s] = float(jnp.mean(jnp.argmax(logits, -1) == labels(splits, s)))
    return out
