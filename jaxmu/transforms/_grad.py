"""Optax gradient transformations reading per-model data from ``aux``.

They are ``optax.GradientTransformationExtraArgs``: the loop calls
``tx.update(grads, opt_state, params, aux=state.aux)``, so they compose with any optax
transform in a ``chain`` and stay vmappable (masks are arrays, not closure constants).

Used by SalUn and MSG (:func:`scale_by_mask`, placed before the coupled weight decay as
PyTorch applies it, docs/methods.md#weight-decay) and gradient surgery (:func:`project_out`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def scale_by_mask(name: str, on: float = 1.0, off: float = 0.0
                  ) -> optax.GradientTransformationExtraArgs:
    """Multiplies gradients by ``on`` where ``aux[name]`` is 1 and by ``off`` where it is 0.

    SalUn: ``scale_by_mask("salun", 1, 0)``; MSG: ``scale_by_mask("reinit", 1, 0.1)``.
    """
    def init_fn(params):
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, aux=None, **extra):
        if aux is None or name not in aux:
            raise ValueError(f"scale_by_mask needs aux[{name!r}]")
        m = aux[name]
        out = jax.tree.map(lambda g, w: g * (off + (on - off) * w).astype(g.dtype), updates, m)
        return out, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                               strict=True))


def project_out_vector(g, basis, eps: float = 1e-12):
    """``g - (g.b / b.b) b`` over the whole flattened pytree (one Gram-Schmidt step)."""
    coef = _dot(g, basis) / jnp.maximum(_dot(basis, basis), eps)
    return jax.tree.map(lambda x, b: x - coef * b, g, basis)


def project_out(name: str, only_conflicting: bool = False
                ) -> optax.GradientTransformationExtraArgs:
    """Removes from the gradient its component along ``aux[name]`` (a params-shaped basis).

    ``only_conflicting=True`` projects only when the two point in opposite directions (PCGrad
    style); the default always projects (Akbari et al.'s gradient surgery).
    """
    def init_fn(params):
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, aux=None, **extra):
        if aux is None or name not in aux:
            raise ValueError(f"project_out needs aux[{name!r}]")
        b = aux[name]
        proj = project_out_vector(updates, b)
        if only_conflicting:
            conflict = _dot(updates, b) < 0
            proj = jax.tree.map(lambda p, u: jnp.where(conflict, p, u), proj, updates)
        return proj, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
