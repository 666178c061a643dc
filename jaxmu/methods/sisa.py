"""SISA exact unlearning: sharded, isolated, sliced, aggregated training (Bourtoule et al.).

SISA's deployed model is an *ensemble* of S shard models, so it does not fit the method
contract ``(params, model_state) -> (params, model_state)`` of one model. jaxmu therefore
offers two things:

* the real SISA as functions over a stacked population of shard models:
  :func:`train_shards` (S shard models from scratch, one ``vmap`` over shards of a
  ``lax.scan`` training loop, membership masks per shard, R slices with a checkpoint after
  each), :func:`unlearn_shards` (retrains only the shards holding deleted points, from the
  checkpoint before the first affected slice) and :func:`predict_ensemble` /
  :func:`ensemble_accuracies` (mean of softmax or majority vote);
* the registered method ``sisa``: SISA with S = 1 shard and R = 1 slice, the only SISA
  that is one model. Unlearning then retrains the single shard from scratch on D_r: exact
  unlearning, computed by the same shard trainer, and equal to
  ``unlearn_shards(train_shards(..., num_shards=1), forget)`` for the same key. It does
  not reuse the original model (SISA never does: it needs its own shard checkpoints, which
  a single-model method does not receive). Use the functions above to measure an S-shard
  ensemble's accuracy and its retraining cost.

References:
    Bourtoule et al., Machine Unlearning (IEEE S&P 2021); Qu et al., Learn to Unlearn:
    Insights into Machine Unlearning (survey), §III; docs/methods.md#sisa.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmu.losses import cross_entropy
from jaxmu.methods import _checks
from jaxmu.methods._checks import batch, non_negative, positive, positive_integer
from jaxmu.methods._config import BATCH, LR, WD, MethodConfig, hparam
from jaxmu.methods._core import register
from jaxmu.train import (
    StepKeys,
    batch_loader,
    cosine,
    member_order,
    predict,
    torch_sgd,
    train_pass,
    train_step,
)
from jaxmu.types import Model, Pool, Splits, UnlearnState, as_key


@dataclasses.dataclass(frozen=True)
class SisaConfig:
    """The shard-training recipe (static).

    Attributes:
        num_shards: S disjoint shards of the training set.
        num_slices: R slices per shard; stage r trains on slices 0..r for ``epochs``
            epochs starting from the checkpoint of stage r - 1 (R = 1: plain training).
        epochs: epochs per slice stage.
        batch_size, lr, momentum, weight_decay: SGD (PyTorch coupled weight decay), cosine
            annealing per epoch within each stage (the momentum buffer restarts per stage).
        augment: random crop/flip.
    """

    num_shards: int = 5
    num_slices: int = 1
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True

    def __post_init__(self):
        for name in ("num_shards", "num_slices", "epochs", "batch_size"):
            _checks.batch(name, getattr(self, name))
        _checks.positive("lr", self.lr)
        _checks.non_negative("momentum", self.momentum)
        _checks.non_negative("weight_decay", self.weight_decay)


@dataclasses.dataclass(frozen=True)
class SisaEnsemble:
    """S shard models with their slice checkpoints and the data bookkeeping.

    Attributes:
        ckpt_params, ckpt_state: params / model state stacked ``[S, R, ...]``; entry
            ``[s, r]`` is shard s after slice stage r; the deployed models are ``[:, -1]``.
        shard: int32 ``[N]`` shard of every pool row (-1 outside the training set).
        slice: int32 ``[N]`` slice of every pool row within its shard (-1 outside).
        alive: bool ``[N]`` rows currently trained on (training set minus deletions).
        key: the training key; shard s uses ``fold_in(key, s)`` (init: ``fold_in(., 0)``,
            stage r data: ``fold_in(fold_in(., 1), r)``), so retraining replays exactly.
        config: the recipe (static).
    """

    ckpt_params: Any
    ckpt_state: Any
    shard: jax.Array
    slice: jax.Array
    alive: jax.Array
    key: jax.Array
    config: SisaConfig = dataclasses.field(metadata=dict(static=True), default=SisaConfig())

    @property
    def params(self):
        """Deployed shard params, stacked ``[S, ...]``."""
        return jax.tree.map(lambda a: a[:, -1], self.ckpt_params)

    @property
    def model_state(self):
        """Deployed shard model states, stacked ``[S, ...]``."""
        return jax.tree.map(lambda a: a[:, -1], self.ckpt_state)


jax.tree_util.register_dataclass(SisaEnsemble)


def assign_shards(train_mask: Any, num_shards: int, num_slices: int, seed: int = 0):
    """Host-side assignment: a random permutation of the training rows cut into S nearly
    equal contiguous shards, each cut into R nearly equal slices.

    Returns:
        ``(shard, slice)``: int32 ``[N]`` arrays, -1 outside the training set.
    """
    train_mask = np.asarray(train_mask, bool)
    rows = np.flatnonzero(train_mask)
    if rows.size < num_shards * num_slices:
        raise ValueError(f"{rows.size} training rows cannot fill {num_shards} shards x "
                         f"{num_slices} slices")
    perm = np.random.default_rng(seed).permutation(rows)
    shard = np.full(train_mask.shape, -1, np.int32)
    slc = np.full(train_mask.shape, -1, np.int32)
    for s, part in enumerate(np.array_split(perm, num_shards)):
        shard[part] = s
        for r, sub in enumerate(np.array_split(part, num_slices)):
            slc[sub] = r
    return shard, slc


def _stage_sizes(shard: np.ndarray, slc: np.ndarray, num_shards: int, num_slices: int):
    """Static upper bounds: the largest shard's member count up to each slice stage."""
    return tuple(
        max(int(np.sum((shard == s) & (slc <= r))) for s in range(num_shards)) or 1
        for r in range(num_slices))


def _train_stage(model: Model, cfg: SisaConfig, pool: Pool, mask, n_max: int, key, params,
                 model_state):
    """``cfg.epochs`` epochs of SGD + cosine on the members of ``mask`` (at most ``n_max``),
    train-mode BN. An epoch of ``count`` members is ``ceil(count / b)`` full batches of a
    fresh permutation (the last wraps around), as :func:`~jaxmu.train.epoch_indices`;
    steps beyond that (``count < n_max``) are no-ops, so every shard trains on exactly its
    own members however many it has. One optax SGD per stage; its lr (an
    ``inject_hyperparams`` hyperparameter) is set to the epoch's cosine value."""
    b = min(cfg.batch_size, n_max)
    spe = math.ceil(n_max / b)
    count = jnp.sum(mask).astype(jnp.int32)
    n_valid = (count + b - 1) // b
    safe = jnp.maximum(count, 1)
    tx = optax.inject_hyperparams(torch_sgd, static_args=("momentum", "weight_decay"))(
        learning_rate=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    step = train_step(_ce, tx, model=model)
    load = batch_loader(pool, augment=cfg.augment)

    def epoch(carry, e):
        ke = jax.random.fold_in(key, e)
        order = member_order(jax.random.fold_in(ke, 0), mask, n_max)
        idx = order[(jnp.arange(spe)[:, None] * b + jnp.arange(b)) % safe]
        ks = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(ke, i + 1)))(
            jnp.arange(spe))
        params, ms, opt = carry
        opt = optax.tree_utils.tree_set(opt, learning_rate=cfg.lr * cosine(e, cfg.epochs))
        carry, _ = train_pass(step, (params, ms, opt), load, idx,
                              StepKeys(batch=ks[:, 0], dropout=ks[:, 1]),
                              valid=jnp.arange(spe) < n_valid)
        return carry, None

    carry = (params, model_state, tx.init(params))
    (params, model_state, _), _ = jax.lax.scan(epoch, carry, jnp.arange(cfg.epochs))
    return params, model_state


def _ce(inp):
    return cross_entropy(inp.logits, inp.y)


def _pick(skip, r: int, ckpts, trained):
    return jax.tree.map(lambda c, t: jnp.where(skip, c[r], t), ckpts, trained)


def _one_shard(model, cfg, n_max, pool, mask, slc, start, ck_p, ck_s, key):
    """Slice stages 0..R-1 of one shard; stages before ``start`` are taken from the
    checkpoints ``ck_*[r]``; training starts from a fresh init (``fold_in(key, 0)``) or
    from the checkpoint of stage ``start - 1``."""
    params, state = model.init(jax.random.fold_in(key, 0))
    outs_p, outs_s = [], []
    for r in range(cfg.num_slices):
        tp, ts = _train_stage(model, cfg, pool, mask & (slc <= r) & (slc >= 0), n_max[r],
                              jax.random.fold_in(jax.random.fold_in(key, 1), r), params, state)
        params = _pick(r < start, r, ck_p, tp)
        state = _pick(r < start, r, ck_s, ts)
        outs_p.append(params)
        outs_s.append(state)
    stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)  # noqa: E731
    return stack(outs_p), stack(outs_s)


@functools.partial(jax.jit, static_argnames=("model", "cfg", "n_max"))
def _run_shards(model, cfg, n_max, pool, masks, slc, start, ck_p, ck_s, keys):
    """vmap of :func:`_one_shard` over the shards given (leading axis of every argument
    but ``pool``)."""
    f = functools.partial(_one_shard, model, cfg, n_max, pool)
    return jax.vmap(f)(masks, slc, start, ck_p, ck_s, keys)


def _blank_ckpts(model, cfg, num):
    p, s = jax.eval_shape(model.init, jax.random.key(0))
    z = lambda t: jnp.zeros((num, cfg.num_slices, *t.shape), t.dtype)  # noqa: E731
    return jax.tree.map(z, p), jax.tree.map(z, s)


def _shard_keys(key, shards):
    return jnp.stack([jax.random.key_data(jax.random.fold_in(key, int(s))) for s in shards])


def train_shards(model: Model, pool: Pool, train_mask: Any, key: Any,
                 config: SisaConfig = SisaConfig(), *, exclude: Any = None,
                 seed: int = 0) -> SisaEnsemble:
    """Trains the S shard models from scratch (one ``vmap`` over shards).

    Args:
        model: the network (each shard model has its architecture).
        pool: the dataset.
        train_mask: bool ``[N]``: the training set to shard (e.g. ``splits.mask("train")``).
        key: training key (see :class:`SisaEnsemble`).
        config: the recipe.
        exclude: optional bool ``[N]`` of training rows that keep their shard/slice
            assignment but are not trained on (as if already deleted); used to check that
            :func:`unlearn_shards` is exact.
        seed: seed of the shard assignment.
    """
    key = as_key(key)
    shard, slc = assign_shards(train_mask, config.num_shards, config.num_slices, seed)
    alive = np.asarray(train_mask, bool)
    if exclude is not None:
        alive = alive & ~np.asarray(exclude, bool)
    n_max = _stage_sizes(shard, slc, config.num_shards, config.num_slices)
    ids = np.arange(config.num_shards)
    masks = jnp.asarray(alive[None] & (shard[None] == ids[:, None]))
    slcs = jnp.broadcast_to(jnp.asarray(slc), masks.shape)
    ck_p, ck_s = _blank_ckpts(model, config, config.num_shards)
    keys = jax.random.wrap_key_data(_shard_keys(key, ids))
    ck_p, ck_s = _run_shards(model, config, n_max, pool, masks, slcs,
                             jnp.zeros(config.num_shards, jnp.int32), ck_p, ck_s, keys)
    return SisaEnsemble(ck_p, ck_s, jnp.asarray(shard), jnp.asarray(slc), jnp.asarray(alive),
                        key, config)


def unlearn_shards(model: Model, ensemble: SisaEnsemble, pool: Pool, forget_mask: Any
                   ) -> tuple[SisaEnsemble, dict]:
    """Deletes the rows of ``forget_mask``: retrains only the shards that hold one of them,
    each from the checkpoint taken before its first affected slice, with the same keys as
    the original training. Unaffected shards stay bit-identical. The result equals
    ``train_shards(..., exclude=deleted)`` (up to floating-point reassociation).

    Returns:
        ``(ensemble, info)``; ``info`` has ``affected`` (shard ids), ``first_slice`` (per
        affected shard) and ``cost`` = retrained slice stages / (S * R), the fraction of
        SISA's full training work spent on this deletion.
    """
    cfg = ensemble.config
    shard, slc = np.asarray(ensemble.shard), np.asarray(ensemble.slice)
    alive = np.asarray(ensemble.alive)
    deleted = np.asarray(forget_mask, bool) & alive
    new_alive = alive & ~deleted
    affected = np.unique(shard[deleted])
    affected = affected[affected >= 0]
    first = np.array([slc[deleted & (shard == s)].min() for s in affected], np.int32)
    info = {"affected": affected.tolist(), "first_slice": first.tolist(),
            "cost": float(np.sum(cfg.num_slices - first)) / (cfg.num_shards * cfg.num_slices)}
    if affected.size == 0:
        return dataclasses.replace(ensemble, alive=jnp.asarray(new_alive)), info
    n_max = _stage_sizes(shard, slc, cfg.num_shards, cfg.num_slices)
    masks = jnp.asarray(new_alive[None] & (shard[None] == affected[:, None]))
    slcs = jnp.broadcast_to(jnp.asarray(slc), masks.shape)
    take = lambda t: t[jnp.asarray(affected)]  # noqa: E731
    keys = jax.random.wrap_key_data(_shard_keys(ensemble.key, affected))
    new_p, new_s = _run_shards(model, cfg, n_max, pool, masks, slcs, jnp.asarray(first),
                               jax.tree.map(take, ensemble.ckpt_params),
                               jax.tree.map(take, ensemble.ckpt_state), keys)
    put = lambda old, new: old.at[jnp.asarray(affected)].set(new)  # noqa: E731
    return dataclasses.replace(
        ensemble, ckpt_params=jax.tree.map(put, ensemble.ckpt_params, new_p),
        ckpt_state=jax.tree.map(put, ensemble.ckpt_state, new_s),
        alive=jnp.asarray(new_alive)), info


def predict_ensemble(model: Model, ensemble: SisaEnsemble, splits: Splits, split: str,
                     aggregate: str = "mean") -> jax.Array:
    """Aggregated scores ``[n, K]`` on a split: ``"mean"`` of the shard models' softmax,
    or ``"vote"`` counts of their top-1 predictions (argmax breaks ties toward the lowest
    class)."""
    if aggregate not in ("mean", "vote"):
        raise ValueError(f"aggregate must be 'mean' or 'vote', got {aggregate!r}")
    logits = jax.vmap(lambda p, s: predict(model, p, s, splits, split))(
        ensemble.params, ensemble.model_state)
    if aggregate == "mean":
        return jax.nn.softmax(logits, -1).mean(0)
    return jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1]).sum(0)


def ensemble_accuracies(model: Model, ensemble: SisaEnsemble, splits: Splits,
                        aggregate: str = "mean") -> dict[str, float]:
    """Top-1 accuracy of the aggregated ensemble on forget, retain, val and test."""
    out = {}
    for s in ("retain", "forget", "val", "test"):
        if splits.size(s) == 0:
            out[s] = float("nan")
            continue
        scores = predict_ensemble(model, ensemble, splits, s, aggregate)
        y = splits.pool.y[splits.indices(s)]
        out[s] = float(jnp.mean(jnp.argmax(scores, -1) == y))
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class SisaMethodConfig(MethodConfig):
    """The registered ``sisa``'s hyperparameters (one shard, one slice; the shard recipe
    of an ensemble is :class:`SisaConfig`): ``lr``, ``weight_decay`` and ``batch_size`` are
    searched."""

    lr: float = LR(0.1, check=positive)
    weight_decay: float = WD(5e-4, check=non_negative)
    batch_size: int = BATCH(256, check=batch)
    epochs: int = hparam(30, check=positive_integer)
    momentum: float = hparam(0.9, check=non_negative)
    augment: bool = True
    touches = "all"


@register("sisa", config=SisaMethodConfig,
          summary="SISA with one shard and one slice (the single-model case): retrain the "
                  "shard from a fresh init on retain with the shard trainer; ensembles: "
                  "train_shards / unlearn_shards / predict_ensemble",
          paper="Bourtoule et al. SISA, via the Learn to Unlearn survey (003)",
          section="docs/methods.md#sisa")
def sisa(c: SisaMethodConfig):
    """SISA exact unlearning, single-model case (S = 1 shard, R = 1 slice).

    The single shard holds every training row, so deleting D_f retrains it from scratch on
    D_r: a fresh init from ``fold_in(fold_in(key, 0), 0)``, then ``epochs`` epochs of SGD
    (``lr``, ``momentum``, coupled ``weight_decay``) with cosine annealing, train-mode BN,
    optional augmentation, via the same shard trainer as :func:`train_shards`. The input
    model is ignored (SISA never edits the deployed model; it replays training). The
    result equals the shard model of
    ``unlearn_shards(train_shards(..., SisaConfig(num_shards=1, ...)), forget)`` for the
    same key.

    For S > 1 shards (the ensemble SISA deploys, with the retraining cost it saves), use
    :func:`train_shards`, :func:`unlearn_shards` and :func:`predict_ensemble`; the ensemble
    is not one model, so it is not a registered method.

    References:
        Bourtoule et al., Machine Unlearning (IEEE S&P 2021); docs/methods.md#sisa.
    """
    cfg = SisaConfig(num_shards=1, num_slices=1, epochs=c.epochs, batch_size=c.batch_size,
                     lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay,
                     augment=bool(c.augment))

    def run(state: UnlearnState, splits: Splits, key: jax.Array) -> UnlearnState:
        model = state.model
        shard_key = jax.random.fold_in(key, 0)
        params, ms = model.init(jax.random.fold_in(shard_key, 0))
        params, ms = _train_stage(model, cfg, splits.pool, splits.retain, splits.n_retain,
                                  jax.random.fold_in(jax.random.fold_in(shard_key, 1), 0),
                                  params, ms)
        return state.replace(params=params, model_state=ms)

    return run
