"""Deletion-ratio sweep: accuracy and cost of unlearning as the forget set grows.

References:
    Qu et al., "Learn to Unlearn" survey (§VI-B/§VI-C: deletion ratios 0.001 to 0.3, plus
    0.4 and 0.5 to show where retraining from scratch becomes cheaper; §III SISA);
    Bourtoule et al. 2021 (SISA).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxmu.data import DEFAULT_SPLIT_SEED, Dataset, random_splits
from jaxmu.methods import Method
from jaxmu.methods.sisa import SisaConfig, train_shards
from jaxmu.report import json_safe
from jaxmu.scenarios import _common as C
from jaxmu.train import TrainConfig
from jaxmu.types import Model


def check_ratios(ratios: Sequence[float]) -> list[float]:
    """Ratios as sorted unique floats in (0, 1); raises ValueError otherwise."""
    if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Sequence) or not ratios:
        raise ValueError("ratios must be a non-empty list of fractions in (0, 1)")
    out = []
    for r in ratios:
        if isinstance(r, bool) or not isinstance(r, (int, float, np.floating)):
            raise ValueError(f"deletion ratio must be a number in (0, 1), got {r!r}")
        if not (0.0 < float(r) < 1.0):
            raise ValueError(f"deletion ratio must lie in (0, 1), got {r}")
        out.append(float(r))
    return sorted(set(out))


def crossover(rows: Sequence[Mapping[str, Any]], name: str) -> float | None:
    """Smallest ratio whose exact retrain is cheaper than ``name`` (speedup < 1), or None.

    Args:
        rows: the ``rows`` of a :func:`deletion_ratio_sweep` result, ascending ratios.
        name: a method of those rows.
    """
    for row in rows:
        m = row["methods"].get(name)
        if m is not None and m["cost_s"] is not None and m["cost_s"] > row["retrain_s"]:
            return row["ratio"]
    return None


def deletion_ratio_sweep(
    dataset: Dataset,
    model: Model | str,
    methods: Sequence[str | Method],
    ratios: Sequence[float] = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
    *,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    split_seed: int = DEFAULT_SPLIT_SEED,
    val_fraction: float = 0.15,
    sisa_config: SisaConfig | None = None,
    cache_dir: str | None = None,
    repeats: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Unlearns random forget sets of growing size and compares every method with retraining.

    For each deletion ratio ``r`` the splits are ``random_splits(dataset, r, val_fraction,
    split_seed)``: the same val/test and the same training set (forget + retain) for every
    ratio, with ``r`` of the non-val training rows forgotten. The original O is trained
    once on the training set (seed ``seed``); per ratio the exact baseline R is trained on
    the retain set with the same seed (same init), both with ``config`` through
    :func:`jaxmu.train.cached_fit` (``cache_dir`` None: always trained). Then each method
    unlearns the ratio's forget set:

    * ``"retrain"`` (always present, first): R itself; cost = R's training time.
    * ``"sisa"``: an S-shard SISA ensemble (``sisa_config``, default 5 shards, 1 slice,
      ``config``'s recipe) trained once on the training set (key ``fold_in(key(seed), 3)``,
      time reported as ``sisa_setup.setup_s``), then per ratio the ratio's forget set is
      deleted from that ensemble by retraining only the affected shards. Its metrics use
      the ensemble's log mean softmax as logits and its pre-deletion ensemble as original.
    * any other registered method (name or :class:`~jaxmu.methods.Method`): run on O with
      key ``fold_in(key(seed), 2)`` (as the experiment CLI).

    Metrics are :func:`jaxmu.metrics.evaluate_logits` vs O and R (what ``jaxmu.evaluate``
    computes with ``classifier_mias=False``), with the loss MIA run against the test split
    only: ``ra fa va ta``, ``rr fr tr retdev``, ``acc_err_retrained acc_dis``, ``mia_test
    indisc_test`` (absent below 6 forget examples), ``js_original``, weight distances (not
    for SISA), and the ``original_``/``retrained_`` references' own values; no timings.
    Logits come from one eval-mode pass over the whole pool per model, sliced per split.
    Costs exclude compilation (see :mod:`jaxmu.scenarios._common`); ``speedup`` =
    retrain cost / method cost, measured side by side in this run.

    Args:
        dataset: the dataset (e.g. :func:`jaxmu.data.load_digits`).
        model: a model, or a name for :func:`jaxmu.models.get_model`.
        methods: method names (``"retrain"``, ``"sisa"`` or registered names) or Methods.
        ratios: deletion ratios in (0, 1); sorted and de-duplicated.
        seed: model seed (init, data order, method keys).
        config: the O/R training recipe.
        split_seed, val_fraction: as :func:`jaxmu.data.random_splits`.
        sisa_config: SISA's recipe (default :func:`default_sisa_config` of ``config``).
        cache_dir: cache of trained O/R models, or None.
        repeats: timed runs per cost (median); R is refitted ``repeats - 1`` more times
            unless it came from the cache.
        progress: show fit progress bars.

    Returns:
        A JSON-safe dict: ``scenario``, ``dataset``, ``model``, ``seed``, ``split_seed``,
        ``config``, ``sisa_config``, ``methods``, ``hparams``, ``ratios``, ``original``
        (``cost_s``, ``acc``), ``sisa_setup``, ``rows`` (per ratio: ``ratio n_forget
        n_retain retrain_s`` and ``methods`` -> name -> ``exact cost_s compile_s speedup
        metrics`` (+ ``affected_shards work_fraction`` for SISA)), ``table`` (one flat row
        per ratio and method) and ``crossover`` (method -> :func:`crossover`, every method
        but ``retrain``).

    Raises:
        ValueError: a ratio outside (0, 1), an unknown or duplicate method, ``repeats < 1``
            (checked before anything is trained).

    References:
        Qu et al., "Learn to Unlearn" survey §VI-B, §VI-C1, §VI-C3 (Fig. 4, the crossover),
        §III (SISA); Bourtoule et al. 2021 (SISA).
    """
    ratios = check_ratios(ratios)
    resolved = C.check_methods(methods)
    repeats = C.check_repeats(repeats)
    pool = dataset.pool
    model = C.maybe_model(model, pool)
    names = [n for n, _ in resolved]
    sisa_cfg = sisa_config or C.default_sisa_config(config)
    base = random_splits(dataset, ratios[0], val_fraction, split_seed)
    train_mask = base.mask("train")

    orig, o_info = C.timed_fit(cache_dir, model, pool, train_mask, seed, config, 1, progress)
    ensemble, sisa_setup = None, None
    if "sisa" in names:
        t0 = time.perf_counter()
        ensemble = train_shards(model, pool, train_mask, C.key_for(seed, 3), sisa_cfg,
                                seed=seed)
        jax.block_until_ready(ensemble.ckpt_params)
        sisa_setup = {"setup_s": time.perf_counter() - t0, "num_shards": sisa_cfg.num_shards,
                      "num_slices": sisa_cfg.num_slices}
    key = C.key_for(seed, 2)
    labels = np.asarray(pool.y)
    o_full = C.pool_logits(model, orig, pool)
    s_full = None if ensemble is None else C.sisa_pool_logits(model, ensemble, pool)

    rows = []
    for r in ratios:
        splits = random_splits(dataset, r, val_fraction, split_seed)
        lab, ret, r_info, o_ref, r_ref = C.retrain_step(cache_dir, model, pool, splits, labels,
                                                       o_full, seed, config, repeats, progress)
        t_r = r_info["cost_s"]
        entries: dict[str, Any] = {}
        for name, method in resolved:
            if name == "retrain":
                u_lg, info, ref, u_params = r_ref[0], dict(r_info), o_ref, ret[0]
            elif method is None:  # sisa: ensemble logits, no single parameter vector
                new, info = C.run_sisa(model, ensemble, pool, splits.forget, repeats)
                u_lg = C.by_split(C.sisa_pool_logits(model, new, pool), splits)
                u_params = None
                ref = C.reference(C.by_split(s_full, splits), lab)
            else:
                out, info = C.run_method(method, model, orig, splits, key, repeats)
                u_full, ref, u_params = C.pool_logits(model, out, pool), o_ref, out[0]
                u_lg = C.by_split(u_full, splits)
            met = C.unlearned_metrics(u_lg, u_params, lab, ref, r_ref, orig, ret)
            entries[name] = {"exact": method is None, **info,
                             "speedup": C.speedup(t_r, info["cost_s"]), "metrics": met}
        rows.append({"ratio": r, "n_forget": splits.n_forget, "n_retain": splits.n_retain,
                     "retrain_s": t_r, "methods": entries})

    result = {
        "scenario": "deletion_ratio_sweep",
        "dataset": dataset.name, "model": model.name, "seed": seed, "split_seed": split_seed,
        "val_fraction": val_fraction, "config": config.to_dict(),
        "sisa_config": None if sisa_setup is None else dataclasses.asdict(sisa_cfg),
        "methods": names,
        "hparams": {n: (m.hp if m is not None else None) for n, m in resolved},
        "ratios": ratios, "repeats": repeats,
        "original": {**o_info, **{k: rows[0]["methods"]["retrain"]["metrics"].get(
            f"original_{k}") for k in ("va", "ta")}},
        "sisa_setup": sisa_setup,
        "rows": rows,
        "table": table(rows),
        "crossover": {n: crossover(rows, n) for n in names if n != "retrain"},
    }
    return json_safe(result, "result")


def table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat record per (ratio, method): ``ratio method ra fa ta retdev indisc_test
    cost_s speedup``."""
    out = []
    for row in rows:
        for name, m in row["methods"].items():
            met = m["metrics"]
            out.append({"ratio": row["ratio"], "method": name,
                        **{k: met.get(k, math.nan) for k in ("ra", "fa", "ta", "retdev",
                                                             "indisc_test")},
                        "cost_s": m["cost_s"], "speedup": m["speedup"]})
    return out

