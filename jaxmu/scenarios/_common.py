"""Shared pieces of the deletion scenarios: validation, method runners, timing, metrics.

A *runner* unlearns one deletion and reports its cost:

* ``"retrain"``: :func:`jaxmu.train.cached_fit` on the retain set, with the same seed (hence
  the same init) as the original; cost = the pure training time of :func:`jaxmu.train.fit`
  (``timings["train_s"]``: compilation excluded, every epoch synchronised). On a cache hit
  the cost is the training time recorded when the entry was made.
* ``"sisa"``: the S-shard SISA ensemble of :mod:`jaxmu.methods.sisa`; deletions retrain
  only the affected shards (:func:`~jaxmu.methods.sisa.unlearn_shards`). The first call of
  a shape compiles, so each deletion runs once untimed (warm-up) and then ``repeats``
  timed times; compile time is estimated as warm-up minus run.
* any other name (or a :class:`~jaxmu.methods.Method`): the registered single-model
  method, AOT-compiled (``jit(...).lower(...).compile()``, timed separately), run once
  untimed (warm-up: first execution), then ``repeats`` timed times, each ended by
  ``jax.block_until_ready``.

Costs are medians over ``repeats`` runs.

References:
    Qu et al., "Learn to Unlearn" survey (§III SISA, §VI-C3 time consumption); Bourtoule et
    al. 2021 (SISA: shards trained separately, a deletion retrains only the shards that
    hold it).
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmu.methods import Method, get_method
from jaxmu.methods.sisa import SisaConfig, SisaEnsemble, unlearn_shards
from jaxmu.metrics import (
    MIASkippedWarning,
    accuracy,
    accuracy_errors,
    evaluate_logits,
    js_divergence,
    retdev,
    retention,
)
from jaxmu.train import TrainConfig, fit, predict_mask
from jaxmu.types import SPLIT_NAMES, Model, Splits

EXACT = ("retrain", "sisa")
"""Method names that select the exact baselines instead of a registered method."""

TIMING_KEYS = frozenset({"cost_s", "compile_s", "speedup", "cumulative_cost_s", "retrain_s",
                         "cumulative_speedup", "setup_s", "crossover"})
"""Keys of a result that hold (or derive from) wall-clock measurements."""


def check_methods(methods: Sequence[str | Method]) -> list[tuple[str, Method | None]]:
    """Resolves the methods; ``"retrain"`` (the reference) comes first, added if absent.

    Returns ``(name, method)`` pairs, ``method`` None for the exact baselines of
    :data:`EXACT`. Raises ValueError on an unknown or a duplicate name.
    """
    if isinstance(methods, (str, Method)) or not isinstance(methods, Sequence):
        raise ValueError("methods must be a list of method names")
    out: list[tuple[str, Method | None]] = []
    for m in methods:
        if isinstance(m, Method):
            if m.name in EXACT:
                raise ValueError(f"methods: {m.name!r} names an exact baseline here; pass "
                                 f"the string {m.name!r} instead of a Method")
            out.append((m.name, m))
        elif not isinstance(m, str):
            raise ValueError(f"methods: expected names or Methods, got {type(m).__name__}")
        elif m in EXACT:
            out.append((m, None))
        else:
            out.append((m, get_method(m)))  # raises ValueError for unknown names
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"methods: duplicate name(s) {dup}")
    return [("retrain", None)] + [o for o in out if o[0] != "retrain"]


def check_repeats(repeats: int) -> int:
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    return repeats


def default_sisa_config(config: TrainConfig, num_shards: int = 5) -> SisaConfig:
    """SISA's recipe matching the original's: ``num_shards`` shards, one slice, the same
    epochs, batch size, learning rate, momentum, weight decay and augmentation."""
    return SisaConfig(num_shards=num_shards, num_slices=1, epochs=config.epochs,
                      batch_size=config.batch_size, lr=config.lr, momentum=config.momentum,
                      weight_decay=config.weight_decay, augment=config.augment)


# ----------------------------------------------------------------------------- runners


def timed_fit(cache_dir, model: Model, pool, mask, seed: int, config: TrainConfig,
              repeats: int, progress: bool) -> tuple[tuple[Any, Any], dict[str, Any]]:
    """``cached_fit`` plus, without a cache, ``repeats - 1`` further timed fits (median)."""
    from jaxmu.train import cached_fit

    params, state, meta = cached_fit(cache_dir, model, pool, mask, seed, config,
                                     progress=progress)
    times = [float(meta["timings"]["train_s"])]
    if not meta.get("cache_hit"):
        for _ in range(repeats - 1):
            times.append(float(fit(model, pool, mask, seed, config,
                                   progress=progress).timings["train_s"]))
    info = {"cost_s": statistics.median(times),
            "compile_s": float(meta["timings"].get("compile_s", 0.0)),
            "cache_hit": bool(meta.get("cache_hit"))}
    return (params, state), info


def retrain_step(cache_dir, model: Model, pool, splits: Splits, labels, o_full, seed: int,
                 config: TrainConfig, repeats: int, progress: bool):
    """Per split setting: labels by split, the timed retrain R on retain, and the
    references of O and R. Returns ``(lab, R, R's cost info, O reference, R reference)``."""
    lab = by_split(labels, splits)
    ret, r_info = timed_fit(cache_dir, model, pool, splits.retain, seed, config, repeats,
                            progress)
    o_ref = reference(by_split(o_full, splits), lab)
    r_ref = reference(by_split(pool_logits(model, ret, pool), splits), lab)
    return lab, ret, r_info, o_ref, r_ref


def unlearned_metrics(u_lg, u_params, lab, ref, r_ref, orig, ret) -> dict[str, float]:
    """:func:`metrics` of an unlearned model, with weight distances when it has params."""
    params = None if u_params is None else {
        "unlearned": u_params, "original": orig[0], "retrained": ret[0]}
    return metrics(u_lg, lab, original=ref, retrained=r_ref, params=params)


def run_method(method: Method, model: Model, pair, splits: Splits, key,
               repeats: int) -> tuple[tuple[Any, Any], dict[str, float]]:
    """AOT-compiles and runs a registered method; returns its output and cost."""
    bound = method.bind(model)
    t0 = time.perf_counter()
    compiled = bound.jitted.lower(pair[0], pair[1], splits, key).compile()
    compile_s = time.perf_counter() - t0
    out = jax.block_until_ready(compiled(pair[0], pair[1], splits, key))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(pair[0], pair[1], splits, key))
        times.append(time.perf_counter() - t0)
    return out, {"cost_s": statistics.median(times), "compile_s": compile_s}


def run_sisa(model: Model, ensemble: SisaEnsemble, pool, forget_mask,
             repeats: int) -> tuple[SisaEnsemble, dict[str, Any]]:
    """Deletes ``forget_mask`` from a SISA ensemble: one warm-up call, then timed calls."""
    t0 = time.perf_counter()
    new, info = unlearn_shards(model, ensemble, pool, forget_mask)
    jax.block_until_ready(new.ckpt_params)
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        again, _ = unlearn_shards(model, ensemble, pool, forget_mask)
        jax.block_until_ready(again.ckpt_params)
        times.append(time.perf_counter() - t0)
    cost = statistics.median(times)
    return new, {"cost_s": cost, "compile_s": max(warm - cost, 0.0),
                 "affected_shards": len(info["affected"]), "work_fraction": info["cost"]}


def pool_logits(model: Model, pair, pool) -> np.ndarray:
    """Eval-mode logits ``[N, K]`` of every pool row: one compiled shape for every model
    and split, sliced per split on the host by :func:`by_split`."""
    every = jnp.ones(pool.size, bool)
    return np.asarray(predict_mask(model, pair[0], pair[1], pool, every, pool.size))


def sisa_pool_logits(model: Model, ensemble: SisaEnsemble, pool) -> np.ndarray:
    """Log of the ensemble's mean softmax over every pool row: valid logits whose softmax is
    SISA's mean-of-softmax prediction (:func:`~jaxmu.methods.sisa.predict_ensemble`)."""
    probs = []
    for s in range(ensemble.config.num_shards):
        pair = jax.tree.map(lambda a, s=s: a[s], (ensemble.params, ensemble.model_state))
        z = pool_logits(model, pair, pool).astype(np.float64)
        z = np.exp(z - z.max(-1, keepdims=True))
        probs.append(z / z.sum(-1, keepdims=True))
    return np.log(np.clip(np.mean(probs, 0), 1e-30, None))


def by_split(full: np.ndarray, splits: Splits) -> dict[str, np.ndarray]:
    """Rows of a per-pool array for each non-empty split, in pool order."""
    return {s: full[np.flatnonzero(np.asarray(splits.mask(s)))] for s in SPLIT_NAMES
            if splits.size(s) > 0}


# ----------------------------------------------------------------------------- metrics


def own_metrics(logits: Mapping, lab: Mapping, params: Mapping | None = None
                ) -> dict[str, float]:
    """One model's own metrics: accuracies, the loss MIA of forget vs test (``mia_test
    indisc_test mia_auc_test``; absent below 6 forget examples), and weight distances
    when ``params`` is given. The val split gives ``va`` only (no second MIA)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MIASkippedWarning)
        rec = evaluate_logits({k: v for k, v in logits.items() if k != "val"}, lab,
                              params=params, classifier=None, feature_classifier=None)
    if "val" in logits:
        rec["va"] = float(accuracy(logits["val"], lab["val"]))
    return rec


def metrics(u: Mapping, lab: Mapping, *, original: tuple[Mapping, Mapping],
            retrained: tuple[Mapping, Mapping], params: Mapping | None) -> dict[str, float]:
    """``evaluate_logits(u, lab, original=..., retrained=..., params=..., classifier=None,
    feature_classifier=None)`` with the references' own metrics computed once, and the
    loss MIA against test only (see :func:`own_metrics`).

    Args:
        u: the unlearned model's logits per split.
        lab: labels per split.
        original, retrained: ``(logits, own_metrics(logits, lab))`` of O and R.
        params: parameter pytrees for weight distances, or None.
    """
    rec = own_metrics(u, lab, params)
    for prefix, (_, own) in (("original_", original), ("retrained_", retrained)):
        rec.update({prefix + k: v for k, v in own.items()})
    for k in ("ra", "fa", "ta"):
        if k in rec and rec.get(f"retrained_{k}", 0) > 0:
            rec[k[0] + "r"] = retention(rec[k], rec[f"retrained_{k}"])
    if all(k in rec for k in ("rr", "fr", "tr")):
        rec["retdev"] = retdev(rec["rr"], rec["fr"], rec["tr"])
    rec.update(accuracy_errors(rec.get("ta", 0.0), rec["fa"],
                               ta_r=rec.get("retrained_ta") if "ta" in rec else None,
                               fa_r=rec.get("retrained_fa"),
                               ta_o=rec.get("original_ta") if "ta" in rec else None))
    rec["js_original"] = js_divergence(u["forget"], original[0]["forget"])
    return rec


def reference(logits: Mapping, lab: Mapping) -> tuple[Mapping, dict[str, float]]:
    """``(logits, own metrics)`` of a reference model, for :func:`metrics`."""
    return logits, own_metrics(logits, lab)


# ----------------------------------------------------------------------------- output


def speedup(reference_s: float, cost_s: float) -> float:
    return reference_s / cost_s if cost_s > 0 else math.inf


def key_for(seed: int, *path: int) -> jax.Array:
    """``fold_in`` chain from ``key(seed)`` (method keys: ``path = (2, ...)``, as the
    experiment CLI)."""
    k = jax.random.key(seed)
    for p in path:
        k = jax.random.fold_in(k, p)
    return k


def maybe_model(model: Model | str, pool) -> Model:
    if isinstance(model, str):
        from jaxmu.models import get_model

        return get_model(model, pool.num_classes, pool.image_shape)
    return model
