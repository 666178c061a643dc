"""Composable loss terms for unlearning loops.

A :class:`Loss` maps a :class:`LossInputs` (the student's logits on the batch, the labels,
which rows are forget rows, an optional second batch, params, the aux dict) to a scalar.
Terms add (``a + b``), scale (``0.5 * a``) and negate (``-a``). The loop runs the student's
forward pass once per batch and shares it among the terms; teacher terms run the teacher
from ``aux`` in eval mode.

The KL reductions differ by method, as in the PyTorch reference: SCRUB's KL is summed,
divided by B and multiplied by tau^2; Bad Teacher's is the mean over B*C; FCS's and KDE's are
batchmean without tau^2 (docs/methods.md#kl).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class LossInputs:
    """What a loss term sees for one step.

    Attributes:
        logits: student logits on the primary batch ``[B, K]``.
        y: labels of the primary batch ``[B]``.
        x: normalised inputs of the primary batch.
        is_forget: float ``[B]``, 1 for forget rows (mixed streams), else 0.
        logits2, y2, x2: the secondary batch (e.g. forget batch zipped with retain), or None.
        params: current student params; ``aux``: the method's named intermediates.
        model: the model (static); ``model_state``: current student model state.
        key: a per-step PRNG key for random targets.
    """

    logits: jax.Array
    y: jax.Array
    x: jax.Array
    is_forget: jax.Array
    params: Any
    aux: dict
    model: Any
    model_state: Any
    key: jax.Array
    logits2: jax.Array | None = None
    y2: jax.Array | None = None
    x2: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class Loss:
    """A scalar loss term; ``needs_second`` says whether it reads the secondary batch."""

    fn: Callable[[LossInputs], jax.Array]
    name: str = "loss"
    needs_second: bool = False

    def __call__(self, inp: LossInputs) -> jax.Array:
        return self.fn(inp)

    def __add__(self, other: Loss) -> Loss:
        return Loss(lambda i: self.fn(i) + other.fn(i), f"({self.name} + {other.name})",
                    self.needs_second or other.needs_second)

    def __sub__(self, other: Loss) -> Loss:
        return self + (-other)

    def __neg__(self) -> Loss:
        return Loss(lambda i: -self.fn(i), f"-{self.name}", self.needs_second)

    def __mul__(self, w: float) -> Loss:
        return Loss(lambda i: w * self.fn(i), f"{w}*{self.name}", self.needs_second)

    __rmul__ = __mul__


def _ce(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)


def _rows(inp: LossInputs, rows: str):
    """Row weights: all rows, only forget rows, or only retain rows of a mixed batch."""
    if rows == "all":
        return jnp.ones_like(inp.is_forget)
    if rows == "forget":
        return inp.is_forget
    if rows == "retain":
        return 1.0 - inp.is_forget
    raise ValueError(f"rows must be 'all', 'forget' or 'retain', got {rows!r}")


def _masked_mean(v, w):
    return jnp.sum(v * w) / jnp.maximum(jnp.sum(w), 1.0)


def ce(rows: str = "all", *, second: bool = False) -> Loss:
    """Mean cross-entropy on the batch (or on its forget/retain rows, or the 2nd batch)."""
    if second:
        return Loss(lambda i: _ce(i.logits2, i.y2).mean(), "ce2", True)
    return Loss(lambda i: _masked_mean(_ce(i.logits, i.y), _rows(i, rows)), f"ce[{rows}]")


def neg(loss: Loss) -> Loss:
    """Gradient ascent on ``loss``: ``-loss``."""
    return -loss


def class_weighted_ce(weights_key: str, mode: str = "batch_mean") -> Loss:
    """Class-weighted CE with per-class weights ``aux[weights_key]`` ``[K]``.

    ``mode="weighted"``: PyTorch ``CrossEntropyLoss(weight=w)``, i.e. sum(w_y l)/sum(w_y)
    (PRMQ). ``mode="batch_mean"``: CE_mean x mean(w_y) (CFW's reference behaviour, which
    rescales the batch loss instead of weighting samples).
    """
    def fn(i: LossInputs):
        w = i.aux[weights_key][i.y]
        per = _ce(i.logits, i.y)
        if mode == "weighted":
            return jnp.sum(w * per) / jnp.sum(w)
        if mode == "batch_mean":
            return per.mean() * w.mean()
        raise ValueError(f"unknown mode {mode!r}")

    return Loss(fn, f"wce[{mode}]")


def soft_ce(targets_fn: Callable[[LossInputs], jax.Array], rows: str = "all") -> Loss:
    """Soft-label CE ``-sum p log q`` with targets ``p = targets_fn(inputs)`` ``[B, K]``."""
    def fn(i: LossInputs):
        p = targets_fn(i)
        per = -jnp.sum(p * jax.nn.log_softmax(i.logits.astype(jnp.float32)), -1)
        return _masked_mean(per, _rows(i, rows))

    return Loss(fn, "soft_ce")


def teacher_logits(i: LossInputs, teacher: str) -> jax.Array:
    """Eval-mode logits of the frozen model stored at ``aux[teacher]`` on the batch."""
    t = i.aux[teacher]
    out, _ = i.model.apply(t["params"], t["model_state"], i.x, train=False)
    return jax.lax.stop_gradient(out.astype(jnp.float32))


def kl_div(p_logits, q_logits, temperature: float, reduction: str):
    """KL(softmax(p/T) || softmax(q/T)) per row, reduced.

    Reductions: ``"batchmean"`` (sum / B), ``"mean"`` (sum / (B*K), PyTorch's default, BT),
    ``"scrub"`` (sum / B * T^2, RepDistiller's DistillKL), ``"none"`` (per row).
    """
    t = temperature
    lp = jax.nn.log_softmax(p_logits / t)
    lq = jax.nn.log_softmax(q_logits.astype(jnp.float32) / t)
    per = jnp.sum(jnp.exp(lp) * (lp - lq), -1)
    if reduction == "none":
        return per
    if reduction == "batchmean":
        return per.mean()
    if reduction == "mean":
        return per.mean() / p_logits.shape[-1]
    if reduction == "scrub":
        return per.mean() * t * t
    raise ValueError(f"unknown KL reduction {reduction!r}")


def kl_to(teacher: str, temperature: float = 1.0, reduction: str = "batchmean",
          rows: str = "all") -> Loss:
    """KL from the teacher at ``aux[teacher]`` to the student (distillation)."""
    if not isinstance(temperature, jax.core.Tracer) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")

    def fn(i: LossInputs):
        per = kl_div(teacher_logits(i, teacher), i.logits, temperature, "none")
        scale = {"batchmean": 1.0, "mean": 1.0 / i.logits.shape[-1],
                 "scrub": temperature**2}[reduction]
        return _masked_mean(per, _rows(i, rows)) * scale

    return Loss(fn, f"kl_to({teacher})")


def entropy(logits):
    """Per-row entropy of softmax(logits)."""
    lp = jax.nn.log_softmax(logits.astype(jnp.float32))
    return -jnp.sum(jnp.exp(lp) * lp, -1)


def entropy_match(teacher: str) -> Loss:
    """MSE between per-row output entropies of the student and the teacher (PRMQ)."""
    return Loss(lambda i: jnp.mean((entropy(i.logits) - entropy(teacher_logits(i, teacher))) ** 2),
                "entropy_match")


def uniform_kl() -> Loss:
    """KL(U || softmax(logits)), batchmean: pushes predictions to uniform (FCS stage 1)."""
    def fn(i: LossInputs):
        k = i.logits.shape[-1]
        lq = jax.nn.log_softmax(i.logits.astype(jnp.float32))
        return jnp.mean(jnp.sum((1.0 / k) * (jnp.log(1.0 / k) - lq), -1))

    return Loss(fn, "uniform_kl")


def contrastive_forget(temperature: float) -> Loss:
    """FCS's forget round: ``S = z_f z_r^T / tau`` with the retain logits gradient-stopped,
    loss = ``-mean log_softmax(S)`` (primary = forget batch, secondary = retain batch)."""
    def fn(i: LossInputs):
        zr = jax.lax.stop_gradient(i.logits2.astype(jnp.float32))
        s = i.logits.astype(jnp.float32) @ zr.T / temperature
        return -jnp.mean(jax.nn.log_softmax(s, axis=-1))

    return Loss(fn, "contrastive_forget", needs_second=True)


def _l1(d):
    """sum |d| with subgradient 0 at d == 0 (``jnp.abs`` differentiates to 1 there, which
    would drift weights sitting exactly at the anchor)."""
    return jnp.sum(jnp.where(d == 0, 0.0, jnp.abs(d)))


def proximal(anchor: str, l2: float = 0.0, l1: float = 0.0, select: Any = None) -> Loss:
    """Elastic-net penalty ``l1 * |theta - theta0|_1 + (l2 / 2) * |theta - theta0|^2`` to the
    params stored at ``aux[anchor]["params"]`` (NG+, CF-k/EU-k, gradient surgery).
    ``select``: optional static pytree of bools restricting the sum."""
    def fn(i: LossInputs):
        a = i.aux[anchor]["params"]
        flags = select if select is not None else jax.tree.map(lambda _: True, i.params)
        terms = jax.tree.map(
            lambda f, p, q: (l2 / 2 * jnp.sum((p - q) ** 2) + l1 * _l1(p - q))
            if f else jnp.float32(0.0),
            flags, i.params, a,
        )
        return sum(jax.tree.leaves(terms))

    return Loss(fn, "proximal")
