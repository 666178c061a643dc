"""The :class:`FlaxModel` adapter: a Linen module behind the jaxmu ``Model`` protocol.

Params and model state are plain nested dicts: ``params`` is Linen's ``"params"``
collection, ``model_state`` holds ``"batch_stats"`` (BatchNorm) and, optionally,
``"act_masks"`` (fixed activation masks used by activation pruning).

Modules mark every activation with :func:`activation`, which (a) records the activation in
the ``"intermediates"`` collection when asked (activation statistics) and (b) multiplies it
by a mask from ``"act_masks"`` when the model state carries one for that site.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmu.types import ModelState, Params


def activation(module: nn.Module, x: jax.Array, name: str) -> jax.Array:
    """Marks an activation site: sows it and applies an activation mask if present."""
    module.sow("intermediates", name, x)
    if module.has_variable("act_masks", name):
        x = x * module.get_variable("act_masks", name).astype(x.dtype)
    return x


def _check_shape(shape: Any) -> None:
    if not all(isinstance(d, numbers.Integral) and d >= 0 for d in shape):
        raise ValueError(f"shape: expected non-negative integer sizes, got {shape!r}")


def flat_normal(key, shape, dtype=jnp.float32):
    """Standard normal draws of ``shape``, the same values as ``jax.random.normal``, faster
    to compile on CPU.

    The draws are made as a flat vector and reshaped: bitwise the values of
    ``jax.random.normal(key, shape, dtype)``, but XLA:CPU compiles the random-bit generator
    over a rank-4 shape about 20x slower than over a vector (measured: 10 s vs 0.4 s for a
    3x3x4x8 kernel). Usable as a Flax initializer.

    Args:
        key: a JAX PRNG key.
        shape: the output shape (non-negative integers).
        dtype: a floating dtype.

    Raises:
        ValueError: if ``shape`` has a negative or non-integer size.
    """
    _check_shape(shape)
    return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def flat_uniform(key, shape, dtype=jnp.float32, minval=0.0, maxval=1.0):
    """Uniform draws on ``[minval, maxval)`` of ``shape``, the same values as
    ``jax.random.uniform(key, shape, dtype, minval, maxval)``, drawn as a flat vector and
    reshaped because XLA:CPU compiles that much faster (see :func:`flat_normal`).

    Raises:
        ValueError: if ``shape`` has a negative or non-integer size.
    """
    _check_shape(shape)
    return jax.random.uniform(key, (math.prod(shape),), dtype, minval, maxval).reshape(shape)


def variance_scaling(scale: float, mode: str, distribution: str):
    """``jax.nn.initializers.variance_scaling`` (in axis -2, out axis -1; ``normal`` or
    ``uniform``) with flat draws: bitwise the same values, compiled much faster on CPU."""
    if mode not in ("fan_in", "fan_out") or distribution not in ("normal", "uniform"):
        raise ValueError(f"unsupported variance scaling {mode}/{distribution}")

    def init(key, shape, dtype=jnp.float32):
        receptive = math.prod(shape[:-2])
        fan = (shape[-2] if mode == "fan_in" else shape[-1]) * receptive
        variance = jnp.array(scale / fan, dtype=dtype)
        if distribution == "normal":
            return flat_normal(key, shape, dtype) * jnp.sqrt(variance)
        return flat_uniform(key, shape, dtype, -1) * jnp.sqrt(3 * variance)

    return init


def torch_linear_bias_init(fan_in: int):
    """PyTorch's default Linear/Conv bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(max(fan_in, 1))

    def init(key, shape, dtype=jnp.float32):
        return flat_uniform(key, shape, dtype, -bound, bound)

    return init


# PyTorch kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)) == variance_scaling(1/3, uniform).
_torch_default_kernel = variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_kernel_init(key, shape, dtype=jnp.float32):
    """PyTorch's default Linear/Conv kernel initialisation as a Flax initializer.

    ``kaiming_uniform_(a=sqrt(5))`` of ``torch.nn.Linear``/``Conv2d``: U(-b, b) with
    ``b = 1 / sqrt(fan_in)``, where ``fan_in`` is the product of all axes but the last
    (Flax's ``[..., in, out]`` kernel layout). Drawn flat (:func:`flat_uniform`).

    Args:
        key: a JAX PRNG key.
        shape: the kernel shape ``[..., in, out]`` (at least 2 axes).
        dtype: a floating dtype.

    Raises:
        ValueError: if ``shape`` has fewer than 2 axes or a negative or non-integer size.
    """
    if len(shape) < 2:
        raise ValueError(f"shape: a kernel needs at least 2 axes [..., in, out], got {shape!r}")
    _check_shape(shape)
    return _torch_default_kernel(key, shape, dtype)
# torchvision ResNet convs: kaiming_normal(mode="fan_out", nonlinearity="relu").
kaiming_normal_fan_out = variance_scaling(2.0, "fan_out", "normal")


class TorchDense(nn.Module):
    """Dense layer with PyTorch's default initialisation (kernel and bias)."""

    features: int

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        kernel = self.param("kernel", torch_default_kernel_init, (fan_in, self.features))
        bias = self.param("bias", torch_linear_bias_init(fan_in), (self.features,))
        return x @ kernel + bias


@dataclasses.dataclass(frozen=True)
class FlaxModel:
    """Adapts a Linen module to the jaxmu ``Model`` protocol.

    Attributes:
        module: the Linen module; called as ``module(x, train=...)``.
        input_shape: shape of one input ``(H, W, C)``.
        num_classes: number of output classes.
        name: model name used in cache keys and results.
        stem: regex (on ``/``-joined param paths) selecting the stem conv.
        classifier: regex selecting the classifier head.
        blocks: ordered regexes, one per block, for ``last_k_blocks``.
    """

    module: nn.Module
    input_shape: tuple[int, ...]
    num_classes: int
    name: str
    stem: str = r"^$"
    classifier: str = r"^$"
    blocks: tuple[str, ...] = ()

    def init(self, key: jax.Array) -> tuple[Params, ModelState]:
        """Initialises ``(params, model_state)`` from a PRNG key."""
        x = jnp.zeros((1, *self.input_shape), jnp.float32)
        variables = self.module.init({"params": key, "dropout": key}, x, train=False)
        variables = dict(variables)
        params = variables.pop("params")
        return params, variables

    def apply(
        self,
        params: Params,
        model_state: ModelState,
        x: jax.Array,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[jax.Array, ModelState]:
        """Forward pass; in train mode BatchNorm uses batch statistics and updates them."""
        variables = {"params": params, **model_state}
        rngs = {"dropout": key} if key is not None else {}
        if train:
            logits, updates = self.module.apply(
                variables, x, train=True, rngs=rngs, mutable=["batch_stats"]
            )
            return logits, {**model_state, **updates}
        logits = self.module.apply(variables, x, train=False, rngs=rngs)
        return logits, model_state

    def activations(
        self, params: Params, model_state: ModelState, x: jax.Array, *, train: bool = False
    ) -> dict[str, Any]:
        """Returns the activations at every marked site, as a nested dict of arrays."""
        variables = {"params": params, **model_state}
        mutable = ["intermediates", "batch_stats"] if train else ["intermediates"]
        _, upd = self.module.apply(variables, x, train=train, mutable=mutable)
        return jax.tree.map(lambda t: t[0], upd["intermediates"],
                            is_leaf=lambda t: isinstance(t, tuple))

    def num_params(self, params: Params) -> int:
        return int(sum(p.size for p in jax.tree.leaves(params)))
