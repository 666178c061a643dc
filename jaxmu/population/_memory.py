"""Memory budgets for populations: bytes per model and the chunk that fits a device.

A population trained with :func:`jaxmu.population.fit_population` (or unlearned with
:func:`jaxmu.population.unlearn_population`) holds, on one device:

* **shared** bytes: the data pool (``pool.x.nbytes + pool.y.nbytes``) and the ``[M, N]``
  membership masks;
* the **stacked population**: ``params + model_state + optimizer`` of every one of the M
  models, twice while an epoch runs (the jitted epoch's arguments and its outputs; the
  population programs do not donate their inputs);
* the **working set** of the models in flight: with ``strategy="chunked", chunk=K`` XLA
  runs K models at a time, each needing its carried params, model state and optimizer
  state, its gradients and the activations of one training step.

:func:`model_bytes` estimates these per-model terms; :func:`max_models` and
:func:`chunk_for_budget` turn them into a model count for a memory budget.

How the activation estimate is computed: the loss of one training step (train-mode forward
pass, cross-entropy) is traced with ``jax.make_jaxpr(jax.vjp(...))`` on abstract values
only (nothing is compiled or allocated); the vjp's residuals are exactly the values the
backward pass keeps from the forward pass. Their bytes are summed, leaving out the
residuals that are the step's own arguments (parameters, model state, labels), and the
float32 input batch is added once. This is what JAX's autodiff saves (no
rematerialisation). XLA adds workspace on top (cotangent buffers during the backward
pass, layout transposes, index buffers of the max-pool gradient on CPU) and may fuse some
residuals away (an MLP's ReLU masks). Measured with ``measure=True`` on XLA:CPU (jax
0.10.2), the compiled one-model step's peak was 0.79x to 0.86x the estimated ``total``
for MLPs, 1.6x for the small CNN (int32 index buffers of the max-pool gradient), 0.76x
for ResNet18 with the CIFAR stem and 1.12x with the ImageNet stem (batch 128). GPU
backends have not been measured. Calibrate on the target backend: ``measure=True`` and
pass ``measured["peak"]`` as ``total`` (``per_model=`` of :func:`chunk_for_budget`, or
directly to :func:`max_models`).

References:
    docs/design.md#memory-sizing (the budget formula); the ResNet18 tables and the measured
    accuracy of the estimate: docs/benchmarks.md#fitting-a-resnet18-population-in-memory.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmu.losses import cross_entropy
from jaxmu.train import Batch, StepKeys, train_step

_FIELDS = ("params", "model_state", "grads", "optimizer", "activations")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _leaf_bytes(leaf: Any, dtype_bytes: int) -> int:
    """Bytes of one array leaf; floating-point leaves count ``dtype_bytes`` per element."""
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # threefry keys: two uint32 words
        return 8 * math.prod(leaf.shape)
    dtype = np.dtype(leaf.dtype)
    size = dtype_bytes if jnp.issubdtype(dtype, jnp.floating) else dtype.itemsize
    return int(math.prod(leaf.shape)) * size


def _tree_bytes(tree: Any, dtype_bytes: int) -> int:
    return sum(_leaf_bytes(x, dtype_bytes) for x in jax.tree.leaves(tree))


def _loss_fn(model: Any):
    from jaxmu.losses import cross_entropy

    def loss(params, model_state, x, y):
        logits, new_state = model.apply(params, model_state, x, train=True,
                                        key=jax.random.key(0))
        return cross_entropy(logits, y), new_state

    return loss


def _residual_bytes(model: Any, params: Any, state: Any, x: Any, y: Any,
                    dtype_bytes: int) -> int:
    """Bytes of the values the backward pass of one training step keeps (vjp residuals),
    excluding those that are the step's arguments; traced abstractly, never compiled."""
    from jax.extend.core import Literal

    loss = _loss_fn(model)

    def vjp(p, s, xb, yb):
        return jax.vjp(lambda q: loss(q, s, xb, yb), p, has_aux=True)

    closed, shapes = jax.make_jaxpr(vjp, return_shape=True)(params, state, x, y)
    jaxpr = closed.jaxpr
    # outvars = [primal out leaves..., vjp-function leaves (= the residuals)..., aux leaves...]
    n_out = len(jax.tree.leaves(shapes[0]))
    num_res = len(jax.tree.leaves(shapes[1]))
    skip = set(jaxpr.invars)
    seen: set = set()
    total = 0
    for v in jaxpr.outvars[n_out:n_out + num_res]:
        if isinstance(v, Literal) or v in skip or v in seen:
            continue
        seen.add(v)
        total += _leaf_bytes(v.aval, dtype_bytes)
    return total


def _optimizer(slots: int):
    from jaxmu.train import TrainConfig

    if slots == 0:
        return optax.add_decayed_weights(5e-4)
    if slots == 1:
        return TrainConfig().direction()
    if slots == 2:
        return optax.adam(1.0)
    raise ValueError(f"measure=True supports optimizer_slots 0, 1 or 2, got {slots}")


def _measure(model: Any, params: Any, state: Any, x: Any, y: Any,
             slots: int) -> dict[str, int] | None:
    """XLA's memory analysis of one compiled, donated training step of one model (the
    :func:`jaxmu.train.train_step` of cross-entropy with the optimizer of ``slots``)."""
    tx = optax.chain(_optimizer(slots), optax.scale_by_learning_rate(0.1))
    train = train_step(lambda i: cross_entropy(i.logits, i.y), tx, model=model)

    def step(p, s, o, xb, yb):
        batch = Batch(xb, yb, jnp.zeros(yb.shape, jnp.float32))
        (p, new_s, o), value = train((p, s, o), batch, StepKeys(dropout=jax.random.key(0)))
        return p, new_s, o, value

    opt = jax.eval_shape(tx.init, params)
    compiled = jax.jit(step, donate_argnums=(0, 1, 2)).lower(params, state, opt, x, y).compile()
    return compiled_memory(compiled)


def compiled_memory(compiled: Any) -> dict[str, int] | None:
    """XLA's memory analysis of a compiled program: ``{"argument", "output", "alias",
    "temp", "peak"}`` bytes with ``peak = argument + output - alias + temp``, or None where
    the backend has no analysis."""
    try:
        ma = compiled.memory_analysis()
    except (NotImplementedError, RuntimeError, AttributeError):  # backend without analysis
        return None
    if ma is None:
        return None
    out = {
        "argument": int(ma.argument_size_in_bytes),
        "output": int(ma.output_size_in_bytes),
        "alias": int(ma.alias_size_in_bytes),
        "temp": int(ma.temp_size_in_bytes),
    }
    out["peak"] = out["argument"] + out["output"] - out["alias"] + out["temp"]
    return out


def device_memory_limit(device: Any = None) -> int | None:
    """The allocator's byte limit of ``device`` (default: the first device), or None where
    the backend reports none (XLA:CPU reports no ``memory_stats``)."""
    device = jax.devices()[0] if device is None else device
    try:
        stats = device.memory_stats()
    except (NotImplementedError, RuntimeError, AttributeError):
        return None
    limit = (stats or {}).get("bytes_limit")
    return int(limit) if limit else None


def model_bytes(
    model: Any,
    batch_size: int,
    *,
    optimizer_slots: int = 1,
    dtype_bytes: int = 4,
    measure: bool = False,
) -> dict[str, Any]:
    """Bytes one model needs for one training step at ``batch_size``.

    Parameters and model state are exact (``jax.eval_shape(model.init)``, nothing is
    allocated); gradients are the size of the parameters; the optimizer holds
    ``optimizer_slots`` copies of them (0 = plain SGD, 1 = SGD momentum as in
    :class:`jaxmu.train.TrainConfig`, 2 = Adam). Activations are the float32 input batch plus
    the residuals the backward pass keeps from the forward pass, summed over the jaxpr of
    ``jax.vjp`` of the train-mode loss (see the module docstring for the method and its
    accuracy).

    Args:
        model: a model with ``init``, ``apply`` and ``input_shape`` (a
            :class:`jaxmu.models.FlaxModel`).
        batch_size: examples per training step.
        optimizer_slots: parameter-sized optimizer buffers.
        dtype_bytes: bytes per floating-point element (4 = float32, 2 = bfloat16); integer
            and boolean values keep their own size.
        measure: also compile one donated training step of one model (float32, the
            optimizer of ``optimizer_slots``: 0, 1 or 2) and report XLA's
            ``compiled.memory_analysis()``.

    Returns:
        A dict of ints: ``num_params``, ``params``, ``model_state``, ``grads``,
        ``optimizer``, ``activations``, ``total`` (the sum of the five byte counts: one
        model in flight), ``resident`` (``params + model_state + optimizer``: what every
        model of a population keeps between epochs), and, with ``measure``, ``measured``:
        ``{"argument", "output", "alias", "temp", "peak"}`` bytes with ``peak = argument +
        output - alias + temp`` (``None`` where the backend has no memory analysis).

    Raises:
        ValueError: a non-positive ``batch_size`` or ``dtype_bytes``, a negative
            ``optimizer_slots``, or a model without ``input_shape``.

    References:
        docs/design.md#memory-sizing.
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    optimizer_slots = _check_int("optimizer_slots", optimizer_slots, 0)
    dtype_bytes = _check_int("dtype_bytes", dtype_bytes, 1)
    input_shape = getattr(model, "input_shape", None)
    if input_shape is None:
        raise ValueError(f"model {getattr(model, 'name', model)!r} has no input_shape")
    params, state = jax.eval_shape(model.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((batch_size, *input_shape), jnp.float32)
    y = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    p_bytes = _tree_bytes(params, dtype_bytes)
    out: dict[str, Any] = {
        "num_params": int(sum(math.prod(p.shape) for p in jax.tree.leaves(params))),
        "params": p_bytes,
        "model_state": _tree_bytes(state, dtype_bytes),
        "grads": p_bytes,
        "optimizer": optimizer_slots * p_bytes,
        "activations": _leaf_bytes(x, dtype_bytes)
        + _residual_bytes(model, params, state, x, y, dtype_bytes),
    }
    out["total"] = sum(out[k] for k in _FIELDS)
    out["resident"] = out["params"] + out["model_state"] + out["optimizer"]
    if measure:
        out["measured"] = _measure(model, params, state, x, y, optimizer_slots)
    return out


def _per_model_total(per_model: dict | int) -> int:
    if isinstance(per_model, dict):
        if "total" not in per_model:
            raise ValueError("per_model dict needs a 'total' entry (see model_bytes)")
        per_model = per_model["total"]
    return _check_int("per_model bytes", per_model, 1)


def _check_budget(memory_bytes: Any, shared_bytes: Any, headroom: Any) -> float:
    memory_bytes = _check_int("memory_bytes", memory_bytes, 1)
    _check_int("shared_bytes", shared_bytes, 0)
    if isinstance(headroom, bool) or not isinstance(headroom, numbers.Real) or not (
        0 < headroom <= 1
    ):
        raise ValueError(f"headroom must lie in (0, 1], got {headroom!r}")
    return float(headroom) * memory_bytes


def max_models(
    memory_bytes: int,
    per_model: dict | int,
    *,
    shared_bytes: int = 0,
    headroom: float = 0.9,
) -> int:
    """How many models fit at once: ``floor((headroom * memory_bytes - shared_bytes) /
    per_model)``, at least 0.

    Args:
        memory_bytes: device memory (e.g. ``80 * 2**30``).
        per_model: bytes per model, or a :func:`model_bytes` dict (its ``total``).
        shared_bytes: bytes held once for all models (the data pool, the masks, the stacked
            population; see :func:`chunk_for_budget`).
        headroom: fraction of ``memory_bytes`` that may be used, in (0, 1]; the rest is left
            for the runtime, fragmentation and XLA workspace.

    Raises:
        ValueError: non-positive ``memory_bytes`` or ``per_model``, negative
            ``shared_bytes``, or ``headroom`` outside (0, 1].

    References:
        docs/design.md#memory-sizing.
    """
    usable = _check_budget(memory_bytes, shared_bytes, headroom)
    per = _per_model_total(per_model)
    return max(0, math.floor((usable - shared_bytes) / per))


def chunk_for_budget(
    model: Any,
    batch_size: int,
    memory_bytes: int,
    *,
    num_models: int,
    optimizer_slots: int = 1,
    shared_bytes: int = 0,
    headroom: float = 0.9,
    population_copies: int = 2,
    per_model: dict | None = None,
) -> int:
    """The ``chunk`` to pass with ``strategy="chunked"`` so that ``num_models`` models train
    within ``memory_bytes``.

    The stacked population (``population_copies x num_models x resident`` bytes: the
    epoch's arguments and outputs) is added to ``shared_bytes``, and the chunk is
    ``min(num_models, max_models(memory_bytes, model_bytes(...)["total"], ...))``.

    Args:
        model, batch_size, optimizer_slots: as for :func:`model_bytes`.
        memory_bytes: device memory.
        num_models: M, the population size (or the size of one block of ids).
        shared_bytes: the data pool and masks on device.
        headroom: usable fraction of ``memory_bytes``, in (0, 1].
        population_copies: copies of the stacked population alive during an epoch (2: the
            population programs do not donate their inputs; 0 ignores the population).
        per_model: a :func:`model_bytes` dict to use instead of computing one (e.g. with
            ``total`` replaced by a measured peak); needs ``total`` and ``resident``.

    Raises:
        ValueError: bad inputs, or not even one model in flight fits (one line: reduce the
            batch, split the population into blocks of ids, or use a larger device).

    References:
        docs/design.md#memory-sizing.
    """
    _check_int("batch_size", batch_size, 1)
    num_models = _check_int("num_models", num_models, 1)
    copies = _check_int("population_copies", population_copies, 0)
    _check_budget(memory_bytes, shared_bytes, headroom)
    if per_model is None:
        per = model_bytes(model, batch_size, optimizer_slots=optimizer_slots)
    elif not isinstance(per_model, dict) or not {"total", "resident"} <= per_model.keys():
        raise ValueError("per_model must be a model_bytes dict with 'total' and 'resident'")
    else:
        per = per_model
        _check_int("per_model['resident']", per["resident"], 0)
    population = copies * num_models * per["resident"]
    k = max_models(memory_bytes, per, shared_bytes=shared_bytes + population, headroom=headroom)
    if k < 1:
        raise ValueError(
            f"{num_models} x {getattr(model, 'name', 'model')} do not fit in "
            f"{memory_bytes / 2**30:.2f} GiB: {population / 2**30:.2f} GiB population + "
            f"{shared_bytes / 2**30:.2f} GiB shared + {per['total'] / 2**30:.2f} GiB per model "
            f"in flight > {headroom:g} x budget; use a smaller batch, fewer models per block "
            f"(fit_population ids=...), or a larger device")
    return min(num_models, k)
