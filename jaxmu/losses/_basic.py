"""Basic per-batch losses on logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array | None = None):
    """Mean softmax cross-entropy; with ``weights`` the weighted mean sum(w*l)/sum(w)."""
    per = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    if weights is None:
        return per.mean()
    return jnp.sum(weights * per) / jnp.maximum(jnp.sum(weights), 1e-12)


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Top-1 accuracy as a float in [0, 1]."""
    return jnp.mean(jnp.argmax(logits, -1) == labels)
