"""Training of original and retrained models: ``fit``, with resumable epoch checkpoints.

One jitted epoch = ``lax.scan`` over steps; a Python loop over epochs drives the schedule,
the progress bar and checkpoints. Compilation happens once per shape, ahead of time, and is
timed separately from training.

References:
    Deep Unlearn's recipe for the original and retrained models (SGD 0.1 / 0.9 / 5e-4,
    cosine per epoch, batch 256, random crop + flip);
    docs/evaluation.md#the-deep-unlearn-setting.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxmu.io import (
    check_resume,
    latest_step,
    restore_checkpoint,
    run_identity,
    save_checkpoint,
    versions,
)
from jaxmu.losses import accuracy, cross_entropy
from jaxmu.train._batches import epoch_indices, steps_per_epoch
from jaxmu.train._schedules import epoch_multiplier
from jaxmu.train._step import StepKeys, batch_loader, train_step
from jaxmu.types import Model, Pool, as_key


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training recipe (static). Defaults are Deep Unlearn's, for O and R.

    Deep Unlearn trains its original (O) and retrained (R) models with this recipe
    (docs/evaluation.md#the-deep-unlearn-setting).

    Attributes:
        epochs: number of epochs (182 for CIFAR in the reference, 50 for MNIST).
        batch_size: batch size.
        lr: base learning rate.
        momentum: SGD momentum (heavy ball, no Nesterov, PyTorch semantics).
        weight_decay: coupled L2 (``grad += wd * param``, as PyTorch SGD).
        schedule: ``"cosine"`` (per epoch, eta_min 0) or ``"constant"``.
        augment: random crop + flip during training.
    """

    epochs: int = 50
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: bool = True

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")

    def direction(self) -> optax.GradientTransformation:
        """The optimizer without its learning rate (coupled wd, then momentum): its state is
        what :func:`fit` carries and checkpoints."""
        return optax.chain(optax.add_decayed_weights(self.weight_decay), optax.trace(self.momentum))

    def optimizer(self, lr: float | jax.Array | optax.Schedule | None = None
                  ) -> optax.GradientTransformation:
        """The full optimizer at learning rate ``lr`` (default ``self.lr``; an optax schedule
        allowed): :meth:`direction` then ``-lr``, i.e. PyTorch ``SGD(lr, momentum,
        weight_decay)``."""
        return optax.chain(self.direction(),
                           optax.scale_by_learning_rate(self.lr if lr is None else lr))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns."""

    params: Any
    model_state: Any
    history: list[dict[str, float]]
    timings: dict[str, float]


def init_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Splits a training seed into (init key, data key). The init key only depends on the
    seed, so an original and a retrained model with the same seed share their init
    (as in Deep Unlearn, where both start from one saved initialisation per seed)."""
    key = as_key(key)
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def _ce_and_accuracy(inp):
    return cross_entropy(inp.logits, inp.y), accuracy(inp.logits, inp.y)


def make_train_step(model: Model, config: TrainConfig, pool: Pool, lr: jax.Array):
    """The training step of :func:`train_epoch`, for use inside a loop or jitted alone.

    Returns ``step((params, model_state, opt_state), (batch_indices, key)) ->
    ((params, model_state, opt_state), (loss, accuracy))``: gathers (and, with
    ``config.augment``, augments) the batch from ``pool``, takes cross-entropy in train mode
    (BatchNorm on batch statistics) and applies :meth:`TrainConfig.optimizer` at ``lr``
    through :func:`~jaxmu.train.train_step`. ``opt_state`` is the state of
    :meth:`TrainConfig.direction` (the learning-rate scaling is stateless), so a fit's
    checkpoints keep their layout.
    """
    scale = optax.scale_by_learning_rate(lr)
    step = train_step(_ce_and_accuracy, optax.chain(config.direction(), scale), model=model,
                      has_aux=True)
    load = batch_loader(pool, augment=config.augment)

    def run(carry, inp):
        params, model_state, opt_state = carry
        bidx, k = inp
        k_aug, k_drop = jax.random.split(k)
        batch = load(bidx, k_aug)
        (params, model_state, (opt_state, _)), (loss, acc) = step(
            (params, model_state, (opt_state, scale.init(params))), batch,
            StepKeys(batch=k_aug, dropout=k_drop))
        return (params, model_state, opt_state), (loss, acc)

    return run


@functools.partial(jax.jit, static_argnames=("model", "config", "n"), donate_argnums=(2, 3, 4))
def train_epoch(model, config, params, model_state, opt_state, pool, mask, n, key, lr):
    """One epoch of CE training over the ``n`` members of ``mask``; returns new state and
    ``(loss, accuracy)`` averaged over steps."""
    k_perm, k_steps = jax.random.split(key)
    idx = epoch_indices(k_perm, mask, n, config.batch_size)
    keys = jax.random.split(k_steps, idx.shape[0])
    (params, model_state, opt_state), (loss, acc) = jax.lax.scan(
        make_train_step(model, config, pool, lr), (params, model_state, opt_state), (idx, keys)
    )
    return params, model_state, opt_state, loss.mean(), acc.mean()


def fit(
    model: Model,
    pool: Pool,
    mask: jax.Array,
    key: Any,
    config: TrainConfig = TrainConfig(),
    *,
    init: tuple[Any, Any] | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> FitResult:
    """Trains ``model`` with cross-entropy on the members of ``mask``.

    Args:
        model: the network.
        pool: the dataset.
        mask: bool membership mask ``[N]`` (e.g. ``splits.mask("train")`` for the original,
            ``splits.retain`` for the retrained model).
        key: seed or PRNG key; the init key depends only on it (see :func:`init_keys`);
            epoch ``e`` uses ``fold_in(data_key, e)`` so resuming is exact.
        config: the recipe.
        init: optional ``(params, model_state)`` to start from instead of a fresh init.
        checkpoint_dir: if given, a checkpoint is written after every epoch and training
            resumes from the last complete one; results equal an uninterrupted run.
        progress: show a tqdm bar over epochs.
        stop_after: stop after this many epochs in total (simulates a kill; for tests).

    Returns:
        :class:`FitResult` with params, model state, per-epoch history and timings
        (``compile_s``, ``train_s`` = pure training time, excluding compilation and I/O).
    """
    import numpy as np
    from tqdm.auto import tqdm

    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_ or mask.shape != (pool.size,):
        raise ValueError(f"mask must be bool of shape ({pool.size},), got {mask.dtype}{mask.shape}")
    n = int(np.asarray(mask).sum())
    if n == 0:
        raise ValueError("cannot fit on an empty mask")
    init_key, data_key = init_keys(key)
    params, model_state = init if init is not None else model.init(init_key)
    opt_state = config.direction().init(params)
    start, history = 0, []
    timings = {"compile_s": 0.0, "train_s": 0.0, "io_s": 0.0}
    meta = {"config": config.to_dict(), "model": model.name, "n": n, "versions": versions(),
            **run_identity(key, mask)}
    if checkpoint_dir is not None and latest_step(checkpoint_dir) is not None:
        t0 = time.perf_counter()
        (params, model_state, opt_state), saved = restore_checkpoint(
            checkpoint_dir, (params, model_state, opt_state)
        )
        check_resume(saved, meta, checkpoint_dir)
        start, history = int(saved["epoch"]), list(saved["history"])
        timings.update(saved.get("timings", {}))
        timings["io_s"] += time.perf_counter() - t0

    def lr_at(e: int) -> jax.Array:
        return jnp.float32(config.lr * epoch_multiplier(config.schedule, e, config.epochs))

    end = config.epochs if stop_after is None else min(config.epochs, stop_after)
    if start < end:
        t0 = time.perf_counter()
        compiled = train_epoch.lower(
            model, config, params, model_state, opt_state, pool, mask, n,
            jax.random.fold_in(data_key, 0), lr_at(0),
        ).compile()
        timings["compile_s"] += time.perf_counter() - t0
    bar = tqdm(range(start, end), desc=f"fit {model.name}", disable=not progress,
               initial=start, total=config.epochs, leave=False)
    for e in bar:
        t0 = time.perf_counter()
        params, model_state, opt_state, loss, acc = compiled(
            params, model_state, opt_state, pool, mask, jax.random.fold_in(data_key, e), lr_at(e)
        )
        loss, acc = float(loss), float(acc)  # blocks until ready
        timings["train_s"] += time.perf_counter() - t0
        history.append({"epoch": e + 1, "loss": loss, "train_acc": acc})
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")
        if checkpoint_dir is not None:
            t0 = time.perf_counter()
            save_checkpoint(
                checkpoint_dir, e + 1, (params, model_state, opt_state),
                {**meta, "epoch": e + 1, "history": history, "timings": timings},
            )
            timings["io_s"] += time.perf_counter() - t0
    bar.close()
    return FitResult(params, model_state, history, timings)


__all__ = ["FitResult", "TrainConfig", "fit", "init_keys", "make_train_step", "steps_per_epoch",
           "train_epoch"]
