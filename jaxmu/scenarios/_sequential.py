"""A sequence of deletion requests, each unlearned on top of the previous one.

References:
    Qu et al., "Learn to Unlearn" survey (§VII-B "continuous re-evaluation" of models under
    repeated unlearning, §III SISA); Deep Unlearn §6 (it did not consider repeated deletion
    and names sequences of smaller forget sets as a limitation).
"""

from __future__ import annotations

import math
import numbers
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
from jaxmu.types import Model, Splits

FORGET_SETS = ("cumulative", "request")


def _train_val_test(dataset: Dataset, split_seed: int, val_fraction: float):
    s = random_splits(dataset, 0.5, val_fraction, split_seed)  # forget part unused
    return np.asarray(s.mask("train")), np.asarray(s.val), np.asarray(s.test)


def deletion_requests(
    dataset: Dataset,
    num_requests: int,
    request_size: int | float,
    *,
    split_seed: int = DEFAULT_SPLIT_SEED,
    val_fraction: float = 0.15,
) -> list[np.ndarray]:
    """The pool indices of each deletion request: disjoint, from the training set.

    The training set is the non-val part of ``dataset``'s official train set (as
    :func:`jaxmu.data.random_splits` with the same ``split_seed`` and ``val_fraction``).
    Its rows are permuted with ``np.random.default_rng(split_seed)``; request ``k``
    (0-based) is slice ``[k * size, (k + 1) * size)`` of that permutation, sorted.

    Args:
        dataset: the dataset.
        num_requests: number of requests, >= 1.
        request_size: rows per request (int >= 1), or a fraction in (0, 1) of the training
            set (rounded, at least 1 row).
        split_seed, val_fraction: as :func:`jaxmu.data.random_splits`.

    Raises:
        ValueError: ``num_requests < 1``, a bad ``request_size``, or requests that would
            delete the whole training set (at least one row must stay in the retain set).
    """
    if isinstance(num_requests, bool) or not isinstance(num_requests, numbers.Integral) \
            or num_requests < 1:
        raise ValueError(f"num_requests must be an integer >= 1, got {num_requests!r}")
    train, _, _ = _train_val_test(dataset, split_seed, val_fraction)
    rows = np.flatnonzero(train)
    size = _request_rows(request_size, rows.size)
    total = int(num_requests) * size
    if total >= rows.size:
        raise ValueError(f"{num_requests} requests x {size} rows = {total} rows exceed the "
                         f"training set of {rows.size} rows (the retain set must stay non-empty)")
    perm = np.random.default_rng(split_seed).permutation(rows)
    return [np.sort(perm[k * size:(k + 1) * size]) for k in range(int(num_requests))]


def _request_rows(request_size: int | float, n_train: int) -> int:
    if isinstance(request_size, bool) or not isinstance(request_size, numbers.Real):
        raise ValueError(f"request_size must be a row count or a fraction, got {request_size!r}")
    if isinstance(request_size, numbers.Integral):
        if request_size < 1:
            raise ValueError(f"request_size must be >= 1 row, got {request_size}")
        return int(request_size)
    if not 0.0 < float(request_size) < 1.0:
        raise ValueError(f"a fractional request_size must lie in (0, 1), got {request_size}")
    return max(1, round(float(request_size) * n_train))


def sequential_deletion(
    dataset: Dataset,
    model: Model | str,
    methods: Sequence[str | Method],
    num_requests: int,
    request_size: int | float,
    *,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    forget_set: str = "cumulative",
    split_seed: int = DEFAULT_SPLIT_SEED,
    val_fraction: float = 0.15,
    sisa_config: SisaConfig | None = None,
    cache_dir: str | None = None,
    repeats: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Applies ``num_requests`` deletion requests one after another.

    The requests ``D_1 .. D_K`` are :func:`deletion_requests` (disjoint). After request
    ``k`` the deleted set is ``F_k = D_1 ∪ .. ∪ D_k`` and the retain set
    ``R_k = train \\ F_k``; val and test never change. Per request:

    * approximate methods (any registered method) start from *their own* output of
      request ``k - 1`` (the original O for ``k = 1``), key ``fold_in(key(seed), 2)``
      folded with ``k``, and see the splits ``forget = F_k, retain = R_k`` (``forget_set=
      "cumulative"``, default: every request forgets all points deleted so far), or
      ``forget = D_k, retain = R_k`` (``"request"``: only the new request; rows deleted
      earlier are in no split);
    * ``"retrain"`` (always present; also the reference of the metrics): trained from
      scratch on ``R_k`` with O's seed (same init) and ``config``;
    * ``"sisa"``: the S-shard ensemble trained once on the training set, then each request
      deletes ``D_k`` by retraining only the shards that hold its rows, from the ensemble
      left by request ``k - 1``.

    Metrics (as :func:`deletion_ratio_sweep`) are always taken on the cumulative splits
    (forget = ``F_k``), against the retrain of request ``k`` and O (SISA: its initial
    ensemble).

    Args:
        dataset, model, methods, seed, config, split_seed, val_fraction, sisa_config,
            cache_dir, repeats, progress: as :func:`deletion_ratio_sweep`.
        num_requests, request_size: as :func:`deletion_requests`.
        forget_set: ``"cumulative"`` or ``"request"`` (the forget set approximate methods
            see).

    Returns:
        A JSON-safe dict: ``scenario``, ``dataset``, ``model``, ``seed``, ``config``,
        ``methods``, ``hparams``, ``forget_set``, ``num_requests``, ``request_size``
        (rows), ``original``, ``sisa_setup``, ``requests`` (per request: ``request`` (1-based),
        ``indices`` (``D_k``), ``n_request n_deleted n_retain retrain_s`` and ``methods`` ->
        name -> ``exact cost_s compile_s cumulative_cost_s speedup cumulative_speedup
        metrics``) and ``table`` (one flat row per request and method).

    Raises:
        ValueError: ``num_requests < 1``, a bad ``request_size``, requests exceeding the
            training set, an unknown method, a bad ``forget_set`` or ``repeats < 1``
            (checked before anything is trained).

    References:
        Qu et al., "Learn to Unlearn" survey §VII-B, §III (SISA); Deep Unlearn §6.
    """
    if forget_set not in FORGET_SETS:
        raise ValueError(f"forget_set must be one of {FORGET_SETS}, got {forget_set!r}")
    resolved = C.check_methods(methods)
    repeats = C.check_repeats(repeats)
    requests = deletion_requests(dataset, num_requests, request_size, split_seed=split_seed,
                                 val_fraction=val_fraction)
    pool = dataset.pool
    model = C.maybe_model(model, pool)
    names = [n for n, _ in resolved]
    train, val, test = _train_val_test(dataset, split_seed, val_fraction)
    orig, o_info = C.timed_fit(cache_dir, model, pool, train, seed, config, 1, progress)
    ensemble = ens0 = sisa_setup = None
    if "sisa" in names:
        sisa_cfg = sisa_config or C.default_sisa_config(config)
        t0 = time.perf_counter()
        ensemble = ens0 = train_shards(model, pool, train, C.key_for(seed, 3), sisa_cfg,
                                       seed=seed)
        jax.block_until_ready(ensemble.ckpt_params)
        sisa_setup = {"setup_s": time.perf_counter() - t0, "num_shards": sisa_cfg.num_shards,
                      "num_slices": sisa_cfg.num_slices}
    labels = np.asarray(pool.y)
    o_full = C.pool_logits(model, orig, pool)
    s_full = None if ens0 is None else C.sisa_pool_logits(model, ens0, pool)
    current = {n: orig for n, m in resolved if m is not None}
    cum = dict.fromkeys(names, 0.0)
    deleted = np.zeros(pool.size, bool)
    out_rows = []
    for k, req in enumerate(requests, start=1):
        deleted[req] = True
        retain = train & ~deleted
        splits = Splits.build(pool, forget=deleted.copy(), retain=retain, val=val, test=test)
        if forget_set == "request":
            m_splits = Splits.build(pool, forget=req, retain=retain, val=val, test=test)
        else:
            m_splits = splits
        lab, ret, r_info, o_ref, r_ref = C.retrain_step(cache_dir, model, pool, splits, labels,
                                                       o_full, seed, config, repeats, progress)
        t_r = r_info["cost_s"]
        entries: dict[str, Any] = {}
        for name, method in resolved:
            if name == "retrain":
                u_lg, info, ref, u_params = r_ref[0], dict(r_info), o_ref, ret[0]
            elif method is None:  # sisa
                ensemble, info = C.run_sisa(model, ensemble, pool, _mask(pool.size, req),
                                            repeats)
                u_lg = C.by_split(C.sisa_pool_logits(model, ensemble, pool), splits)
                u_params = None
                ref = C.reference(C.by_split(s_full, splits), lab)
            else:
                out, info = C.run_method(method, model, current[name], m_splits,
                                         C.key_for(seed, 2, k), repeats)
                current[name] = out
                u_full, ref, u_params = C.pool_logits(model, out, pool), o_ref, out[0]
                u_lg = C.by_split(u_full, splits)
            met = C.unlearned_metrics(u_lg, u_params, lab, ref, r_ref, orig, ret)
            cum[name] += info["cost_s"]
            entries[name] = {"exact": method is None, **info,
                             "cumulative_cost_s": cum[name],
                             "speedup": C.speedup(t_r, info["cost_s"]),
                             "cumulative_speedup": C.speedup(cum["retrain"], cum[name]),
                             "metrics": met}
        out_rows.append({"request": k, "indices": req.tolist(), "n_request": int(req.size),
                         "n_deleted": int(deleted.sum()), "n_retain": int(retain.sum()),
                         "retrain_s": t_r, "methods": entries})
    result = {
        "scenario": "sequential_deletion",
        "dataset": dataset.name, "model": model.name, "seed": seed, "split_seed": split_seed,
        "val_fraction": val_fraction, "config": config.to_dict(), "methods": names,
        "hparams": {n: (m.hp if m is not None else None) for n, m in resolved},
        "forget_set": forget_set, "num_requests": len(requests),
        "request_size": int(requests[0].size), "repeats": repeats,
        "original": o_info, "sisa_setup": sisa_setup,
        "requests": out_rows, "table": table(out_rows),
    }
    return json_safe(result, "result")


def _mask(n: int, idx: np.ndarray) -> np.ndarray:
    m = np.zeros(n, bool)
    m[idx] = True
    return m


def table(requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat record per (request, method): ``request n_deleted method ra fa ta retdev
    indisc_test cost_s cumulative_cost_s speedup``."""
    out = []
    for row in requests:
        for name, m in row["methods"].items():
            met = m["metrics"]
            out.append({"request": row["request"], "n_deleted": row["n_deleted"],
                        "method": name,
                        **{k: met.get(k, math.nan) for k in ("ra", "fa", "ta", "retdev",
                                                             "indisc_test")},
                        "cost_s": m["cost_s"], "cumulative_cost_s": m["cumulative_cost_s"],
                        "speedup": m["speedup"]})
    return out
