"""IU: influence unlearning with the WoodFisher inverse-Hessian-vector product."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from jaxmu.methods._checks import batch, non_negative, positive
from jaxmu.methods._config import BATCH, EPOCHS, UNIT, MethodConfig, hparam
from jaxmu.methods._core import register
from jaxmu.train import load_batch, ordered_indices
from jaxmu.types import Splits, UnlearnState


def _ce_sum(model, params, model_state, x, y, w):
    logits, _ = model.apply(params, model_state, x, train=False)
    per = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)
    return jnp.sum(w * per)


def gradient_sum(model, params, model_state, pool, mask, n: int, batch_size: int):
    """Sum over the ``n`` members of ``mask`` of the per-example CE gradients (eval mode),
    i.e. the reference's ``sum_b B_b * grad CE_mean(batch b)``, flattened ``[P]``.

    In eval mode an example's gradient does not depend on its batch, so the sum is the
    gradient of the batch's summed loss (no per-example gradients need to be stored)."""
    idx = ordered_indices(mask, n, batch_size)
    valid = (jnp.arange(idx.size) < n).reshape(idx.shape).astype(jnp.float32)
    flat0, unravel = ravel_pytree(params)

    def step(acc, inp):
        bidx, w = inp
        x, y = load_batch(pool, bidx)
        g = jax.grad(lambda p: _ce_sum(model, p, model_state, x, y, w))(params)
        return acc + ravel_pytree(g)[0], None

    return jax.lax.scan(step, jnp.zeros_like(flat0), (idx, valid))[0]


def per_example_gradients(model, params, model_state, x, y):
    """Flattened per-example CE gradients ``[B, P]`` (eval mode), ``vmap(grad)``."""
    def one(xi, yi):
        g = jax.grad(lambda p: _ce_sum(model, p, model_state, xi[None], yi[None],
                                       jnp.ones((1,))))(params)
        return ravel_pytree(g)[0]

    return jax.vmap(one)(x, y)


def woodfisher_step(carry, g, valid, n_damp: float, faithful: bool):
    """One step of the WoodFisher recursion for a later sample's gradient ``g``.

    Faithful (upstream): ``t = o.g; k -= (k.g / (N + t)) o; o -= (t / (N + t)) o``.
    Otherwise a per-sample Sherman-Morrison step with ``g`` in place of ``o``:
    ``k -= (k.g / (N + g.g)) g`` (``o`` unused).
    """
    k, o = carry
    if faithful:
        t = jnp.vdot(o, g)
        k_new = k - (jnp.vdot(k, g) / (n_damp + t)) * o
        o_new = o - (t / (n_damp + t)) * o
    else:
        k_new = k - (jnp.vdot(k, g) / (n_damp + jnp.vdot(g, g))) * g
        o_new = o
    return (jnp.where(valid, k_new, k), jnp.where(valid, o_new, o))


def woodfisher(v, grad_fn, indices, n_damp: float, chunk: int, faithful: bool = True):
    """The upstream WoodFisher inverse-Hessian-vector product ``k`` of ``v``.

    Args:
        v: flattened vector ``[P]``.
        grad_fn: ``grad_fn(idx [c]) -> [c, P]`` per-example gradients of those pool rows.
        indices: pool indices of the samples, in order (static length m); the first gives
            ``o``, the other ``m - 1`` update ``k`` and ``o``.
        n_damp: N (1000 in the reference).
        chunk: per-example gradients are computed ``chunk`` at a time (``vmap``), and the
            recursion runs as a ``lax.scan`` over each chunk inside a scan over chunks.
        faithful: see :func:`woodfisher_step`.
    """
    m = indices.shape[0]
    o = grad_fn(indices[:1])[0]
    rest = m - 1
    if rest == 0:
        return v
    c = max(1, min(chunk, rest))
    n_chunks = -(-rest // c)
    pos = jnp.arange(n_chunks * c).reshape(n_chunks, c)
    valid = pos < rest
    idx = indices[1:][jnp.minimum(pos, rest - 1)]

    def outer(carry, inp):
        bidx, ok = inp
        gs = grad_fn(bidx)
        carry, _ = jax.lax.scan(
            lambda cr, gv: (woodfisher_step(cr, gv[0], gv[1], n_damp, faithful), None),
            carry, (gs, ok))
        return carry, None

    (k, _), _ = jax.lax.scan(outer, (v, o), (idx, valid))
    return k


@dataclasses.dataclass(frozen=True, kw_only=True)
class InfluenceConfig(MethodConfig):
    """IU's hyperparameters: the dead ``epochs``, ``batch_size`` and ``alpha`` are
    searched; ``n_woodfisher`` is N, ``chunk_size`` only sets memory use."""

    epochs: int = EPOCHS(10, dead=True, check=batch)
    batch_size: int = BATCH(256, check=batch)
    alpha: float = UNIT(0.2, check=non_negative)
    n_woodfisher: int = hparam(1000, check=positive)
    chunk_size: int = hparam(64, check=batch)
    faithful: bool = True
    touches = "all"


@register("influence", config=InfluenceConfig,
          summary="v = g_f/(n_f+n_r) - g_r n_f/((n_f+n_r) n_r); k = WoodFisher(v) over the "
                  "first N+2 retain samples; theta += alpha k (eval mode)",
          paper="Deep Unlearn (004), after Jia et al. Unlearn-Saliency (WoodFisher IU)",
          section="docs/methods.md#influence", random=False)
def influence(c: InfluenceConfig):
    """Influence unlearning (IU) with the WoodFisher recursion.

    All in eval mode (BatchNorm running statistics, no dropout):

    1. ``g_f`` = sum of per-example CE gradients over D_f, ``g_r`` the same over D_r
       (:func:`gradient_sum`); ``v = g_f / (n_f + n_r) - g_r n_f / ((n_f + n_r) n_r)``.
    2. ``k = WoodFisher(v)`` (:func:`woodfisher`) over the retain samples in pool order,
       one at a time: the first gives ``o = grad l_1``; each later sample with gradient
       ``g``: ``t = o.g; k -= (k.g / (N + t)) o; o -= (t / (N + t)) o``; the upstream stops
       after ``N + 2`` samples (N = 1000), i.e. ``min(n_r, N + 2)`` samples are used.
       Per-example gradients come from ``vmap(grad)``, ``chunk_size`` at a time, and the
       recursion is a ``lax.scan`` (no Python loop over samples).
    3. ``theta += alpha * k``. Model state is unchanged. No randomness.

    The recursion uses ``o`` rather than ``g`` in the ``k`` update (upstream behaviour,
    kept by default); since ``o`` is only ever rescaled, every correction is along the
    first sample's gradient. ``faithful=False`` instead applies a per-sample
    Sherman-Morrison step ``k -= (k.g / (N + g.g)) g`` for each sample.

    Differences from the reference:
        * ``g_f`` and ``g_r`` are gradients of summed batch losses, which in eval mode equal
          the reference's sums of ``B_b * grad CE_mean`` exactly (the batch size only sets
          memory use, as in the reference).
        * ``epochs`` is searched by the reference but unused; it is kept, marked dead.

    Hyperparameters:
        alpha: step size. batch_size: gradient-sum batch. n_woodfisher: N. chunk_size:
        per-example gradients per ``vmap`` (memory only). faithful: see above.

    References:
        Koh & Liang (2017); Singh & Alistarh, WoodFisher (NeurIPS 2020); Jia et al., Model
        Sparsity Can Simplify Machine Unlearning (2023); Cadet et al., Deep Unlearn (2024);
        the reference code: docs/methods.md#influence.
    """
    alpha, batch_size, chunk_size, n_woodfisher = (c.alpha, c.batch_size, c.chunk_size,
                                                   c.n_woodfisher)

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model, params, ms, pool = state.model, state.params, state.model_state, splits.pool
        n_f, n_r = splits.n_forget, splits.n_retain
        g_f = gradient_sum(model, params, ms, pool, splits.forget, n_f, batch_size)
        g_r = gradient_sum(model, params, ms, pool, splits.retain, n_r, batch_size)
        v = g_f / (n_f + n_r) - g_r * (n_f / ((n_f + n_r) * n_r))

        def grad_fn(bidx):
            x, y = load_batch(pool, bidx)
            return per_example_gradients(model, params, ms, x, y)

        m = min(n_r, int(n_woodfisher) + 2)
        indices = splits.indices("retain")[:m]
        k = woodfisher(v, grad_fn, indices, float(n_woodfisher), chunk_size, c.faithful)
        flat, unravel = ravel_pytree(params)
        return state.replace(params=unravel(flat + alpha * k.astype(flat.dtype)))

    return run
