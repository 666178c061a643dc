"""Populations of models: stacked state, per-model masks, training, unlearning, prediction.

Every per-model pytree has a leading model axis M. Model ``i`` (its *id*, not its position)
gets the key ``fold_in(root, i)``, so any model can be re-run alone — with
:func:`jaxmu.train.fit` and key ``fold_in(root, i)`` — and gives the same result, and a
block of ids trained by another process merges into the same population.

References:
    docs/design.md#population-engine; Carlini et al. 2022, "Membership Inference Attacks From
    First Principles" (shadow models on random halves: every example IN for half of them;
    :func:`balanced_masks`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmu.io import (
    cache_key,
    check_resume,
    entry_lock,
    latest_step,
    read_meta,
    restore_checkpoint,
    run_identity,
    save_checkpoint,
    versions,
)
from jaxmu.population._memory import compiled_memory, device_memory_limit
from jaxmu.population._strategies import map_models, padding, resolve_strategy
from jaxmu.train import TrainConfig, epoch_multiplier, init_keys, predict_mask, train_epoch
from jaxmu.types import Model, Pool, Splits, as_key


def model_keys(root: Any, ids: Sequence[int] | jax.Array) -> jax.Array:
    """Keys ``fold_in(root, i)`` for every model id."""
    root = as_key(root)
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.asarray(ids, jnp.uint32))


def init_population(model: Model, root: Any, ids: Sequence[int]) -> tuple[Any, Any]:
    """Stacked ``(params, model_state)``; model ``i`` equals ``fit``'s init with key
    ``fold_in(root, i)``."""
    keys = model_keys(root, ids)
    return jax.vmap(lambda k: model.init(init_keys(k)[0]))(keys)


def balanced_masks(key: Any, num_models: int, candidates: Any) -> np.ndarray:
    """LiRA's IN/OUT design with static sizes: ``[M, N]`` bool masks where every candidate
    is IN for exactly M/2 models and every model has exactly ``floor(n_c / 2)`` members.

    Models come in complementary pairs ``(2j, 2j+1)``: a random permutation of the
    candidates is cut in halves, one per model. (Carlini et al. draw each example's IN set
    independently, which makes per-model sizes unequal; equal sizes keep shapes static.)
    With an odd candidate count, one candidate per pair (a random one) is OUT for both.

    Args:
        key: PRNG key or seed.
        num_models: M, even.
        candidates: bool ``[N]``; non-candidates are never IN.
    """
    if num_models < 2 or num_models % 2:
        raise ValueError(f"num_models must be an even number >= 2, got {num_models}")
    cand = np.flatnonzero(np.asarray(candidates, bool))
    if cand.size < 2:
        raise ValueError("balanced_masks needs at least 2 candidates")
    h = cand.size // 2
    out = np.zeros((num_models, np.asarray(candidates).size), bool)
    key = as_key(key)
    for j in range(num_models // 2):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, j), cand.size))
        out[2 * j, cand[perm[:h]]] = True
        out[2 * j + 1, cand[perm[h: 2 * h]]] = True
    return out


def stack_splits(pool: Pool, forget: Any, retain: Any, val: Any = None,
                 test: Any = None) -> Splits:
    """Per-model splits: masks ``[M, N]`` with equal sizes across models (validated per
    model with :meth:`Splits.build`)."""
    forget, retain = np.asarray(forget, bool), np.asarray(retain, bool)
    if forget.ndim != 2 or forget.shape != retain.shape:
        raise ValueError(f"forget/retain must be [M, N] of equal shape, got {forget.shape} "
                         f"and {retain.shape}")
    m, n = forget.shape
    val = np.zeros((m, n), bool) if val is None else np.broadcast_to(np.asarray(val, bool), (m, n))
    test = (np.zeros((m, n), bool) if test is None
            else np.broadcast_to(np.asarray(test, bool), (m, n)))
    built = [Splits.build(pool, forget=forget[i], retain=retain[i], val=val[i], test=test[i])
             for i in range(m)]
    sizes = {tuple(s.sizes().values()) for s in built}
    if len(sizes) != 1:
        raise ValueError(f"split sizes must be equal across models, got {sorted(sizes)}")
    s0 = built[0]
    return dataclasses.replace(s0, forget=jnp.asarray(forget), retain=jnp.asarray(retain),
                               val=jnp.asarray(val), test=jnp.asarray(test))


def splits_axes(splits: Splits) -> Splits:
    """``in_axes`` for per-model splits: masks mapped (0), the pool shared (None)."""
    ax = {f: (0 if getattr(splits, f).ndim == 2 else None)
          for f in ("forget", "retain", "val", "test")}
    return dataclasses.replace(splits, pool=None, **ax)


@dataclasses.dataclass
class PopulationFit:
    """Result of :func:`fit_population`."""

    params: Any
    model_state: Any
    ids: list[int]
    history: list[dict[str, Any]]
    timings: dict[str, float]
    strategy: str
    padded_models: int = 0
    """Models added (and dropped) to fill the device mesh (``sharded``; else 0)."""


def _epoch_fn(model, config, n):
    def f(params, state, opt_state, pool, mask, key, lr):
        return train_epoch(model, config, params, state, opt_state, pool, mask, n, key, lr)

    return f


def _compile_within_memory(build: Any, args: tuple, m: int, auto: bool, strategy: str,
                           chunk: int | None, memory_bytes: int | None,
                           headroom: float = 0.9) -> tuple[Any, str, int | None]:
    """Compiles ``build(strategy, chunk)`` (a jitted population program) for ``args``.

    When ``auto`` resolved to ``vmap`` (the accelerator rule) and XLA's memory analysis of
    the compiled program asks for more than ``headroom x memory_bytes`` (default: the
    device allocator's limit; XLA:CPU reports none, so nothing is bounded there), the
    program is rebuilt as ``chunked``, halving the chunk from ``m`` until it fits or is 1.
    Results do not depend on the chunk (see :mod:`jaxmu.population._strategies`).

    Returns:
        ``(compiled, strategy, chunk)`` as finally compiled.
    """
    if memory_bytes is not None and (isinstance(memory_bytes, bool)
                                     or not isinstance(memory_bytes, int) or memory_bytes < 1):
        raise ValueError(f"memory_bytes must be a positive integer or None, got {memory_bytes!r}")
    compiled = build(strategy, chunk).lower(*args).compile()
    if not auto or strategy != "vmap":
        return compiled, strategy, chunk
    limit = device_memory_limit() if memory_bytes is None else memory_bytes
    if limit is None:
        return compiled, strategy, chunk
    c = m
    while c > 1:
        mem = compiled_memory(compiled)
        if mem is None or mem["peak"] <= headroom * limit:
            break
        c = (c + 1) // 2
        strategy, chunk = "chunked", c
        compiled = build(strategy, chunk).lower(*args).compile()
    return compiled, strategy, chunk


def fit_population(
    model: Model,
    pool: Pool,
    masks: Any,
    root: Any,
    config: TrainConfig = TrainConfig(),
    *,
    ids: Sequence[int] | None = None,
    strategy: str = "auto",
    chunk: int | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    memory_bytes: int | None = None,
) -> PopulationFit:
    """Trains M models at once, model ``ids[j]`` on ``masks[j]`` with key ``fold_in(root,
    ids[j])`` — the same as ``fit(model, pool, masks[j], fold_in(root, ids[j]), config)``.

    Args:
        model, pool, config: as for :func:`jaxmu.train.fit`.
        masks: bool ``[M, N]``; every row must have the same number of members.
        root: root key or seed.
        ids: model ids (default ``0..M-1``); a block ``range(a, b)`` lets independent
            processes each train a block and merge with :func:`merge_blocks`.
        strategy, chunk: see :func:`jaxmu.population.map_models` (``auto`` by default).
        checkpoint_dir: checkpoint every epoch and resume from the last complete one.
        progress: tqdm bar over epochs.
        stop_after: stop after this many epochs (simulates a kill, for tests).
        memory_bytes: device memory an ``auto`` strategy must fit in (default: the device
            allocator's limit; none on XLA:CPU). Where ``auto`` picks ``vmap`` and XLA's
            analysis of the compiled epoch needs more than 0.9 of it, the population runs
            ``chunked`` instead (chunk halved from M until it fits); the result is the same.
    """
    from tqdm.auto import tqdm

    masks = np.asarray(masks, bool)
    if masks.ndim != 2 or masks.shape[1] != pool.size:
        raise ValueError(f"masks must be [M, {pool.size}], got {masks.shape}")
    counts = masks.sum(1)
    if counts.min() != counts.max() or counts.min() == 0:
        raise ValueError(f"every model needs the same non-zero member count, got "
                         f"{sorted(set(counts.tolist()))[:5]}")
    m, n = masks.shape[0], int(counts[0])
    ids = list(range(m)) if ids is None else [int(i) for i in ids]
    if len(ids) != m:
        raise ValueError(f"{len(ids)} ids for {m} masks")
    keys = model_keys(root, ids)
    data_keys = jax.vmap(lambda k: init_keys(k)[1])(keys)
    params, state = init_population(model, root, ids)
    opt_state = jax.vmap(config.direction().init)(params)
    auto = strategy == "auto"
    strategy = resolve_strategy(strategy, params, m)
    masks_j = jnp.asarray(masks)
    start, history = 0, []
    timings = {"compile_s": 0.0, "train_s": 0.0, "io_s": 0.0}
    meta = {"config": config.to_dict(), "model": model.name, "ids": ids, "n": n,
            "versions": versions(), **run_identity(root, masks)}
    if checkpoint_dir is not None and latest_step(checkpoint_dir) is not None:
        t0 = time.perf_counter()
        (params, state, opt_state), saved = restore_checkpoint(
            checkpoint_dir, (params, state, opt_state))
        check_resume(saved, meta, checkpoint_dir)
        start, history = int(saved["epoch"]), list(saved["history"])
        timings["io_s"] += time.perf_counter() - t0

    def build(s, c):
        return jax.jit(map_models(_epoch_fn(model, config, n), s, c,
                                  in_axes=(0, 0, 0, None, 0, 0, None)))

    def epoch_inputs(e):
        ek = jax.vmap(lambda k: jax.random.fold_in(k, e))(data_keys)
        return ek, jnp.float32(config.lr * epoch_multiplier(config.schedule, e, config.epochs))

    end = config.epochs if stop_after is None else min(config.epochs, stop_after)
    if start < end:
        t0 = time.perf_counter()
        compiled, strategy, chunk = _compile_within_memory(
            build, (params, state, opt_state, pool, masks_j, *epoch_inputs(start)), m, auto,
            strategy, chunk, memory_bytes)
        timings["compile_s"] += time.perf_counter() - t0
    bar = tqdm(range(start, end), desc=f"fit {m} x {model.name} [{strategy}]",
               disable=not progress, initial=start, total=config.epochs, leave=False)
    for e in bar:
        ek, lr = epoch_inputs(e)
        t0 = time.perf_counter()
        params, state, opt_state, loss, acc = compiled(params, state, opt_state, pool,
                                                       masks_j, ek, lr)
        loss, acc = np.asarray(loss), np.asarray(acc)
        timings["train_s"] += time.perf_counter() - t0
        history.append({"epoch": e + 1, "loss": float(loss.mean()),
                        "train_acc": float(acc.mean())})
        if checkpoint_dir is not None:
            t0 = time.perf_counter()
            save_checkpoint(checkpoint_dir, e + 1, (params, state, opt_state),
                            {**meta, "epoch": e + 1, "history": history})
            timings["io_s"] += time.perf_counter() - t0
    bar.close()
    return PopulationFit(params, state, ids, history, timings, strategy, padding(strategy, m))


def save_population(result: PopulationFit, directory: str | Any, model: Model) -> None:
    """Writes a trained population (or one block of model ids) to ``directory`` (atomic:
    orbax finalises the step only when complete), for :func:`load_population` in another
    process, e.g. to merge blocks trained on several hosts without coordination."""
    save_checkpoint(directory, 0, (result.params, result.model_state),
                    {"ids": result.ids, "history": result.history, "timings": result.timings,
                     "strategy": result.strategy, "padded_models": result.padded_models,
                     "model": model.name})


def load_population(directory: str | Any, model: Model) -> PopulationFit:
    """Reads what :func:`save_population` wrote.

    Raises:
        FileNotFoundError: nothing saved in ``directory``.
        ValueError: it holds a population of another model.
    """
    meta = read_meta(directory)
    if meta.get("model", model.name) != model.name:
        raise ValueError(f"{directory} holds a population of {meta['model']!r}, "
                         f"not {model.name!r}")
    like = jax.eval_shape(lambda: init_population(model, 0, meta["ids"]))
    (params, state), meta = restore_checkpoint(directory, like)
    return PopulationFit(params, state, list(meta["ids"]), meta["history"], meta["timings"],
                         meta["strategy"], int(meta.get("padded_models", 0)))


def merge_blocks(results: Sequence[PopulationFit]) -> PopulationFit:
    """Concatenates blocks of a population trained separately (ordered by model id)."""
    if not results:
        raise ValueError("no blocks to merge")
    order = sorted(range(len(results)), key=lambda i: results[i].ids[0])
    rs = [results[i] for i in order]
    ids = sum((r.ids for r in rs), [])
    if len(set(ids)) != len(ids):
        raise ValueError("blocks overlap in model ids")
    cat = functools.partial(jax.tree.map, lambda *xs: jnp.concatenate(xs))
    timings = {k: sum(r.timings.get(k, 0.0) for r in rs) for k in rs[0].timings}
    return PopulationFit(cat(*[r.params for r in rs]), cat(*[r.model_state for r in rs]), ids,
                         [], timings, rs[0].strategy, sum(r.padded_models for r in rs))


def unlearn_population(
    method: Any,
    params: Any,
    model_state: Any,
    splits: Splits,
    keys: jax.Array,
    *,
    strategy: str = "auto",
    chunk: int | None = None,
    shared_model: bool = False,
    memory_bytes: int | None = None,
) -> tuple[Any, Any, dict[str, float]]:
    """Runs a bound method over M models (or M runs from one shared model).

    Args:
        method: a bound :class:`~jaxmu.methods.Method`.
        params, model_state: stacked ``[M, ...]`` or, with ``shared_model``, one model
            unlearned M times (competition F-score: N runs from one original).
        splits: shared splits or per-model splits (``[M, N]`` masks).
        keys: ``[M]`` keys.
        strategy, chunk: see :func:`jaxmu.population.map_models`.
        memory_bytes: as for :func:`fit_population` (an ``auto`` that picks ``vmap`` falls
            back to ``chunked`` when the program would not fit).

    Returns:
        ``(params, model_state, timings)`` with ``compile_s``, ``run_s``, the resolved
        ``strategy`` and ``chunk``, and ``padded_models`` (mesh filler models of
        ``sharded``, else 0).
    """
    keys = jnp.asarray(keys)
    m = keys.shape[0]
    p_ax = None if shared_model else 0
    probe = params if not shared_model else jax.tree.map(lambda x: x[None], params)
    auto = strategy == "auto"
    strategy = resolve_strategy(strategy, probe, m)
    in_axes = (p_ax, p_ax, splits_axes(splits), 0)

    def build(s, c):
        return jax.jit(map_models(method.fn, s, c, in_axes=in_axes))

    t0 = time.perf_counter()
    compiled, strategy, chunk = _compile_within_memory(
        build, (params, model_state, splits, keys), m, auto, strategy, chunk, memory_bytes)
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(params, model_state, splits, keys))
    t2 = time.perf_counter()
    return out[0], out[1], {"compile_s": t1 - t0, "run_s": t2 - t1, "strategy": strategy,
                            "chunk": chunk, "padded_models": padding(strategy, m)}


def predict_population(
    model: Model,
    params: Any,
    model_state: Any,
    pool: Pool,
    mask: Any,
    *,
    strategy: str = "auto",
    chunk: int | None = None,
    batch_size: int = 512,
) -> jax.Array:
    """Eval-mode logits ``[M, n, K]`` of every model on the members of one shared ``mask``
    (pool order)."""
    mask = jnp.asarray(mask)
    n = int(np.asarray(mask).sum())
    m = jax.tree.leaves(params)[0].shape[0]
    strategy = resolve_strategy(strategy, params, m)

    def one(p, s):
        return predict_mask(model, p, s, pool, mask, n, batch_size)

    return jax.jit(map_models(one, strategy, chunk, in_axes=(0, 0)))(params, model_state)


def cached_fit_population(cache_dir: str | None, model: Model, pool: Any, masks: Any, root: int,
                          config: TrainConfig, *, tag: str, strategy: str = "auto",
                          chunk: int | None = None, progress: bool = True) -> PopulationFit:
    """:func:`fit_population` with a cache keyed by (pool, masks, model, recipe, seed, tag);
    a killed run resumes from its last epoch checkpoint. The entry is built under a file lock
    (:func:`jaxmu.io.entry_lock`): a second process asking for the same entry waits and
    then loads it instead of training it again."""
    if cache_dir is None:
        return fit_population(model, pool, masks, root, config, strategy=strategy, chunk=chunk,
                              progress=progress)
    masks = np.asarray(masks, bool)
    key = f"{tag}_{masks.shape[0]}_{cache_key(pool, masks, model, config, root)}"
    final = Path(cache_dir) / key / "final"
    with entry_lock(Path(cache_dir) / key, announce=progress):
        if latest_step(final) is not None:
            return load_population(final, model)
        r = fit_population(model, pool, masks, root, config, strategy=strategy, chunk=chunk,
                           progress=progress,
                           checkpoint_dir=str(Path(cache_dir) / key / "epochs"))
        save_population(r, final, model)
        return r
