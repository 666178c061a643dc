"""Distances between models: output-space JS divergence and parameter-space L2 distances.

References:
    SFTC (Perifanis et al. 2024) eq. 8 and its public code; Deep Unlearn
    ``model_distances.py`` (after Golatkar et al. 2020, "Eternal Sunshine of the Spotless
    Net"; defined there, not called by its pipeline);
    docs/evaluation.md#distances-between-models.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxmu import _checks
from jaxmu.metrics._accuracy import log_softmax
from jaxmu.metrics._typing import Logits2D

PyTree = Any


def js_divergence(
    logits_p: Logits2D,
    logits_q: Logits2D,
    *,
    base: float | None = None,
    faithful: bool = False,
) -> float:
    """Mean over examples of the Jensen-Shannon divergence between two models' softmaxes.

    Default (SFTC eq. 8): ``JS(P||Q) = KL(P||M)/2 + KL(Q||M)/2`` with ``M = (P + Q)/2``, per
    example, computed from log-softmaxes (stable), then averaged; in bits (``base=2``) it
    lies in [0, 1].

    ``faithful=True`` reproduces what SFTC's code reports as "JS" (``js_ind`` in the
    authors' ``unlearning_metrics.py``): ``0.5 * kl_div(log P, M) + 0.5 * kl_div(log Q, M)``
    with PyTorch's ``kl_div(input, target, reduction="batchmean")``, i.e. the reversed
    divergences ``KL(M||P)/2 + KL(M||Q)/2`` averaged over examples, in nats. It is
    unbounded, and infinite as soon as one float32 softmax entry underflows to 0 where the
    other model's is positive (a logit gap above about 104), which is where the paper's
    tables show values above ln 2 and infinities. The softmaxes, their logs and ``M`` are
    computed in float32 as in the reference (so the same entries underflow); the sums in
    float64. A class where both softmaxes are 0 contributes 0.

    Args:
        logits_p: ``[N, K]`` logits of the first model (e.g. unlearned) on the forget set.
        logits_q: ``[N, K]`` logits of the second model (e.g. original).
        base: logarithm base of the result; default 2 (bits), or e (nats) with
            ``faithful=True``.
        faithful: report SFTC's code quantity instead of eq. 8.

    Raises:
        ValueError: on shape mismatch, NaN logits, or a non-positive base.

    References:
        SFTC (Perifanis et al. 2024) eq. 8 and its public code
        (``utils/unlearning_metrics.py::js_ind``).
    """
    zp = _checks.as_logits("logits_p", logits_p)
    zq = _checks.as_logits("logits_q", logits_q)
    if zp.shape != zq.shape:
        raise ValueError(f"logits_p {zp.shape} and logits_q {zq.shape} must have equal shapes")
    log_base = np.log(_checks.positive_scalar(
        "base", base if base is not None else (np.e if faithful else 2.0)))
    if faithful:
        p, q = _softmax_f32(zp), _softmax_f32(zq)
        m = (p + q) / np.float32(2)
        with np.errstate(divide="ignore"):
            lp, lq, lm = np.log(p), np.log(q), np.log(m)
        pos = m > 0
        m64, lm64 = m.astype(np.float64), lm.astype(np.float64)
        with np.errstate(invalid="ignore"):
            kl_mp = np.sum(np.where(pos, m64 * (lm64 - lp), 0.0), axis=-1)
            kl_mq = np.sum(np.where(pos, m64 * (lm64 - lq), 0.0), axis=-1)
        return float((0.5 * kl_mp.mean() + 0.5 * kl_mq.mean()) / log_base)
    lp, lq = log_softmax(zp), log_softmax(zq)
    lm = np.logaddexp(lp, lq) - np.log(2.0)
    kl_p = np.sum(np.exp(lp) * (lp - lm), axis=-1)
    kl_q = np.sum(np.exp(lq) * (lq - lm), axis=-1)
    js = np.maximum(0.5 * (kl_p + kl_q), 0.0) / log_base
    return float(js.mean())


def _softmax_f32(z: np.ndarray) -> np.ndarray:
    """``torch.softmax`` on float32 logits: max-subtracted, exponentiated and normalised in
    float32, so entries more than about 104 below the row maximum are exactly 0."""
    z = np.asarray(z, np.float32)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


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
        Deep Unlearn ``models_l2_distance`` (parameters only, no BatchNorm buffers).
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
        ``compute_model_distance``.
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
        Deep Unlearn ``models_normalized_l2_distance``; Deep Unlearn §6 and Appendix G (no
        method came consistently close to the retrained model's weights).
    """
    la, lb = _pair(a, b)
    na, nb = np.sqrt(_sq_norm(la)), np.sqrt(_sq_norm(lb))
    if na <= 0 or nb <= 0:
        raise ValueError("all-zero parameters: the normalised L2 distance is undefined")
    return float(np.sqrt(sum(np.sum((x / na - y / nb) ** 2) for x, y in zip(la, lb, strict=True))))
