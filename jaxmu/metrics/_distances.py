"""Distances between models: output-space JS divergence and parameter-space L2 distances.

References:
    SFTC (paper 002) eq. 8; Deep Unlearn ``model_distances.py`` (after Golatkar et al. 2020,
    "Eternal Sunshine of the Spotless Net"); methods-spec.md §6.7; evaluation-spec.md §7.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxmu.metrics import _checks
from jaxmu.metrics._accuracy import log_softmax
from jaxmu.metrics._typing import Logits2D

PyTree = Any


def js_divergence(
    logits_p: Logits2D,
    logits_q: Logits2D,
    *,
    base: float = 2.0,
) -> float:
    """Mean over examples of the Jensen-Shannon divergence between two models' softmaxes.

    ``JS(P||Q) = KL(P||M)/2 + KL(Q||M)/2`` with ``M = (P + Q)/2``, per example, computed
    from log-softmaxes (stable), then averaged. With ``base=2`` it lies in [0, 1].

    Where jaxmu differs: SFTC (eq. 8) does not say how it aggregates over the forget set or
    which log base it uses (its tables show values above ln 2 and infinities); jaxmu
    reports the per-example mean in bits by default.

    Args:
        logits_p: ``[N, K]`` logits of the first model (e.g. unlearned) on the forget set.
        logits_q: ``[N, K]`` logits of the second model (e.g. original).
        base: logarithm base (2 for bits, ``np.e`` for nats).

    Raises:
        ValueError: on shape mismatch or NaN logits.

    References:
        SFTC (paper 002) eq. 8; evaluation-spec.md §7.
    """
    lp = log_softmax(_checks.as_logits("logits_p", logits_p))
    lq = log_softmax(_checks.as_logits("logits_q", logits_q))
    if lp.shape != lq.shape:
        raise ValueError(f"logits_p {lp.shape} and logits_q {lq.shape} must have equal shapes")
    lm = np.logaddexp(lp, lq) - np.log(2.0)
    kl_p = np.sum(np.exp(lp) * (lp - lm), axis=-1)
    kl_q = np.sum(np.exp(lq) * (lq - lm), axis=-1)
    js = np.maximum(0.5 * (kl_p + kl_q), 0.0) / np.log(_checks.positive_scalar("base", base))
    return float(js.mean())


def _leaves(name: str, tree: PyTree) -> tuple[list[np.ndarray], Any]:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    if not leaves:
        raise ValueError(f"{name}: the pytree has no array leaves")
    out = []
    for i, leaf in enumerate(leaves):
        arr = np.asarray(leaf, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: leaf {i} contains NaN or infinite values")
        out.append(arr)
    return out, treedef


def _pair(a: PyTree, b: PyTree) -> tuple[list[np.ndarray], list[np.ndarray]]:
    la, ta = _leaves("a", a)
    lb, tb = _leaves("b", b)
    if ta != tb:
        raise ValueError(f"pytrees differ in structure: {ta} vs {tb}")
    for i, (x, y) in enumerate(zip(la, lb, strict=True)):
        if x.shape != y.shape:
            raise ValueError(f"leaf {i} shapes differ: {x.shape} vs {y.shape}")
    return la, lb


def _sq_norm(leaves: list[np.ndarray]) -> float:
    return float(sum(np.sum(x * x) for x in leaves))


def l2_distance(a: PyTree, b: PyTree) -> float:
    """Euclidean distance ``sqrt(sum ||a - b||^2)`` over all leaves of two parameter pytrees.

    Pass parameters only (no BatchNorm statistics) to match Deep Unlearn.

    References:
        Deep Unlearn ``models_l2_distance``; methods-spec.md §6.7.
    """
    la, lb = _pair(a, b)
    return float(np.sqrt(sum(np.sum((x - y) ** 2) for x, y in zip(la, lb, strict=True))))


def golatkar_distance(params: PyTree, reference: PyTree) -> float:
    """Golatkar's normalised distance ``sqrt(sum ||p - r||^2 / sum ||p||^2)``.

    Normalised by the norm of the *first* argument, as in Deep Unlearn.

    Raises:
        ValueError: on structure mismatch or an all-zero ``params``.

    References:
        Golatkar et al. 2020 (``Forgetting.ipynb::distance``); Deep Unlearn
        ``compute_model_distance``; methods-spec.md §6.7.
    """
    la, lb = _pair(params, reference)
    norm = _sq_norm(la)
    if norm <= 0:
        raise ValueError("params: all-zero parameters, the normalised distance is undefined")
    return float(np.sqrt(sum(np.sum((x - y) ** 2) for x, y in zip(la, lb, strict=True)) / norm))


def normalized_l2_distance(a: PyTree, b: PyTree) -> float:
    """L2 distance after dividing each model's parameters by that model's global L2 norm.

    Lies in [0, 2].

    References:
        Deep Unlearn ``models_normalized_l2_distance``; SFTC/Deep Unlearn (paper 004 §6);
        methods-spec.md §6.7.
    """
    la, lb = _pair(a, b)
    na, nb = np.sqrt(_sq_norm(la)), np.sqrt(_sq_norm(lb))
    if na <= 0 or nb <= 0:
        raise ValueError("all-zero parameters: the normalised L2 distance is undefined")
    return float(np.sqrt(sum(np.sum((x / na - y / nb) ** 2) for x, y in zip(la, lb, strict=True))))
