"""Evaluation pipelines over populations: the NeurIPS-2023 competition F-score and U-LiRA.

References:
    docs/evaluation.md#the-competition-f-score (one original, N unlearning runs from it,
    N retrains on the same forget set), docs/evaluation.md#u-lira (the shadow design),
    docs/evaluation.md#cost-levers.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmu.metrics import bootstrap_ci, competition_score, forget_quality, membership_statistic
from jaxmu.metrics import ulira as ulira_metric
from jaxmu.population import (
    PopulationStore,
    array_digest,
    balanced_masks,
    cached_fit_population,
    init_population,
    method_identity,
    model_keys,
    pool_digest,
    predict_population,
    stack_splits,
    unlearn_population,
)
from jaxmu.train import TrainConfig
from jaxmu.types import Model, Splits, as_key


def _accuracy(logits: jax.Array, y: jax.Array) -> np.ndarray:
    return np.asarray(jnp.mean(jnp.argmax(logits, -1) == y[None], axis=-1))


def fscore_bootstrap_ci(
    unlearned_confs: Any,
    retrained_confs: Any,
    ra_u: Any,
    ra_r: Any,
    ta_u: Any,
    ta_r: Any,
    *,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "union",
) -> dict[str, tuple[float, float]]:
    """Bootstrap CIs of the forget quality F and the competition score over models.

    Each resample draws the unlearned models and, independently, the retrained models with
    replacement (the two populations are independent samples; the unlearning runs all
    start from the one original, which is fixed, and differ only by their own randomness);
    a model's confidences on all forget examples and its accuracies stay together. F is
    recomputed with the vectorised :func:`jaxmu.metrics.forget_quality` on the resampled
    ``[N, S]`` confidences and the score as ``F * (mean RA_U / mean RA_R) * (mean TA_U /
    mean TA_R)`` on the same resample.

    Resampling with replacement duplicates models, and F (a maximum of epsilon estimates
    over many thresholds) reads duplicates as extra separability: the resampled F is
    biased low, and its spread is somewhat too small. On Gaussian populations of 64 or 128
    + 64 or 128 models x 10 forget examples, with a per-model random effect, the bootstrap
    median sat 0.02-0.05 below the point value and the bootstrap spread was 78-90% of the
    spread of F over fresh populations. Coverage of the expected F of such a study by 95%
    intervals from 100 resamples (100 simulated studies each):

    ============================  ============  =========  =======
    populations                   "percentile"  "centred"  "union"
    ============================  ============  =========  =======
    identical, 64 models          0.94          0.92       0.99
    identical, 128 models         0.88          0.93       0.97
    unlearned shifted 0.5 SD, 64  0.91          0.83       0.96
    ============================  ============  =========  =======

    The percentile interval ``[q_lo, q_hi]`` lies too low (it misses above; it can exclude
    the point value), the centred one ``[v - (q50 - q_lo), v + (q_hi - q50)]`` (the
    bootstrap spread moved onto the point value v) too high under a shift. The default
    ``"union"`` is the smallest interval containing both, ``[min(q_lo, v - (q50 - q_lo)),
    max(q_hi, v + (q_hi - q50))]``: the percentile interval widened by the bootstrap's
    median bias on the side of the point value. It covered in every setting above, at the
    price of 25-45% more width than the other two.

    Cost: ``n_bootstrap + 1`` calls of :func:`forget_quality`, about 0.07-0.08 s each for
    512 + 512 models x 40 forget examples on 2 shared CPU cores (200 resamples: 16-22 s;
    500: ~45 s), hence the default 200 rather than the 1000 of
    :func:`jaxmu.metrics.bootstrap_ci`; the interval changes by under 0.005 from 200 to
    500 resamples there.

    Args:
        unlearned_confs, retrained_confs: ``[N, S]`` logit-scaled forget confidences of the
            N unlearned and N retrained models (:func:`jaxmu.metrics.membership_statistic`).
        ra_u, ra_r, ta_u, ta_r: ``[N]`` per-model retain / test accuracies of the unlearned
            (``_u``) and retrained (``_r``) models.
        n_bootstrap: resamples (at least 1).
        confidence, seed: interval level and resampling seed (reproducible).
        method: "union" (default), "centred" or "percentile", see above.

    Returns:
        ``{"forget_quality_ci": (low, high), "score_ci": (low, high)}``. With "union" or
        "centred" each interval contains its point value; F intervals are clipped to
        [0, 1] and score intervals below at 0; if every resample gives the same value (e.g.
        all models of each population identical) the interval is that value.

    Raises:
        ValueError: on mismatched shapes, fewer than 2 models, ``n_bootstrap < 1``, a
            confidence outside (0, 1) or an unknown method.

    References:
        Efron & Tibshirani 1993 (percentile bootstrap, two independent samples; §10 on
        bootstrap bias); Triantafillou et al. 2023.
    """
    u = np.asarray(unlearned_confs, np.float64)
    r = np.asarray(retrained_confs, np.float64)
    acc = [np.asarray(a, np.float64).reshape(-1) for a in (ra_u, ra_r, ta_u, ta_r)]
    if u.ndim != 2 or u.shape != r.shape:
        raise ValueError(f"confidences must share one [N, S] shape, got {u.shape} and "
                         f"{r.shape}")
    n = u.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 models per population, got {n}")
    if any(a.shape != (n,) for a in acc):
        raise ValueError(f"accuracies must be [{n}] per-model arrays, got "
                         f"{[a.shape for a in acc]}")
    if int(n_bootstrap) < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if method not in ("union", "centred", "percentile"):
        raise ValueError(f"method: expected 'union', 'centred' or 'percentile', got "
                         f"{method!r}")
    rng = np.random.default_rng(seed)
    idx_u = rng.integers(0, n, size=(int(n_bootstrap), n))
    idx_r = rng.integers(0, n, size=(int(n_bootstrap), n))
    ra_u_, ra_r_, ta_u_, ta_r_ = acc
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero resampled R accuracy
        ratio = (ra_u_[idx_u].mean(1) / ra_r_[idx_r].mean(1)
                 * ta_u_[idx_u].mean(1) / ta_r_[idx_r].mean(1))
    f = np.array([forget_quality(u[iu], r[ir])[0] for iu, ir in zip(idx_u, idx_r,
                                                                    strict=True)])
    f0 = forget_quality(u, r)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        s0 = f0 * (ra_u_.mean() / ra_r_.mean()) * (ta_u_.mean() / ta_r_.mean())
    alpha = (1 - confidence) / 2
    out = {}
    for key, point, vals in (("forget_quality_ci", f0, f), ("score_ci", s0, f * ratio)):
        fin = vals[np.isfinite(vals)]
        if fin.size == 0:
            out[key] = (np.nan, np.nan)
            continue
        lo, mid, hi = np.quantile(fin, [alpha, 0.5, 1 - alpha])
        c_lo, c_hi = point - (mid - lo), point + (hi - mid)
        if method == "centred":
            lo, hi = c_lo, c_hi
        elif method == "union":
            lo, hi = min(lo, c_lo), max(hi, c_hi)
        top = 1.0 if key == "forget_quality_ci" else np.inf
        out[key] = (float(np.clip(lo, 0.0, top)), float(np.clip(hi, 0.0, top)))
    return out



_FSCORE_SPLITS = ("forget", "retain", "test")


def _fscore_identity(model: Model, splits: Splits, config: TrainConfig, seed: int,
                     num_models: int) -> dict[str, Any]:
    """The store identity shared by the F-score's retrained and unlearned populations."""
    return {"pool": pool_digest(splits.pool), "pool_name": splits.pool.name,
            "splits": array_digest(*(np.asarray(splits.mask(sp)) for sp in _FSCORE_SPLITS)),
            "model": model.name, "module": repr(getattr(model, "module", model)),
            "recipe": config.to_dict(), "seed": int(seed), "num_models": int(num_models)}


def _predict_splits(model: Model, params: Any, model_state: Any, splits: Splits,
                    strategy: str, chunk: int | None) -> dict[str, np.ndarray]:
    """float32 logits ``[M, n_split, C]`` of a population on forget, retain and test."""
    return {sp: np.asarray(predict_population(model, params, model_state, splits.pool,
                                              splits.mask(sp), strategy=strategy, chunk=chunk),
                           np.float32)
            for sp in _FSCORE_SPLITS}


def retrained_population_logits(
    model: Model,
    splits: Splits,
    *,
    num_models: int,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    strategy: str = "auto",
    chunk: int | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Logits of the F-score's retrained population on the forget, retain and test rows.

    ``num_models`` models are trained from scratch on ``splits.retain`` with ``config``
    (model i from key ``fold_in(seed + 1000, i)``; the trained parameters are cached by
    :func:`cached_fit_population` under the tag "retrain"), and their eval-mode logits on
    the members of ``splits.forget``, ``splits.retain`` and ``splits.test`` (each in pool
    order) are kept in the population store (:class:`jaxmu.population.PopulationStore`,
    kind "fscore_retrained") under the identity of the pool content,
    those three masks, the model, the recipe, ``seed`` and ``num_models``. This is the
    retrained population of :func:`fscore_pipeline`; anything else that needs it (e.g.
    :mod:`jaxmu.score`, scoring outside models) calls this function and so reads the very
    same entry instead of training the population again.

    Args:
        model: the model of the population.
        splits: the dataset's splits (retain trains the models; forget, retain and test
            are predicted).
        num_models: models in the population (at least 2).
        seed: the population seed (the F-score's ``seed``).
        config: the training recipe.
        strategy, chunk: population strategy (results do not depend on it).
        cache_dir: the cache directory (None: nothing is stored or reused).
        progress: progress lines on stderr.

    Returns:
        ``(logits, info)``: logits ``{"forget", "retain", "test"}`` -> float32
        ``[num_models, n_split, C]``; info has ``retrain_s`` (training and prediction time
        of the run that built the entry), ``from_store`` and ``wall_s`` (this call).

    Raises:
        ValueError: ``num_models < 2``.
    """
    if isinstance(num_models, bool) or int(num_models) != num_models or num_models < 2:
        raise ValueError(f"num_models must be an integer >= 2, got {num_models!r}")
    n = int(num_models)

    def build():
        t0 = time.perf_counter()
        retain = np.broadcast_to(np.asarray(splits.retain), (n, splits.pool.size))
        rpop = cached_fit_population(cache_dir, model, splits.pool, retain, seed + 1000,
                                     config, tag="retrain", strategy=strategy, chunk=chunk,
                                     progress=progress)
        return (_predict_splits(model, rpop.params, rpop.model_state, splits, strategy, chunk),
                {"retrain_s": time.perf_counter() - t0})

    return PopulationStore(cache_dir).get_or_build(
        "fscore_retrained", _fscore_identity(model, splits, config, seed, n), build,
        progress=progress)


def fscore_pipeline(
    model: Model,
    splits: Splits,
    original: tuple[Any, Any],
    method: Any,
    *,
    num_models: int = 512,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    strategy: str = "auto",
    chunk: int | None = None,
    cache_dir: str | None = None,
    n_bootstrap: int = 200,
    progress: bool = True,
) -> dict[str, Any]:
    """The competition F-score of ``method``: ``num_models`` unlearning runs from the one
    ``original`` (keys ``fold_in(root, i)``) and ``num_models`` retrains on retain (the
    retrain population is cached and reused across methods).

    Args:
        n_bootstrap: resamples of the F and score CIs (:func:`fscore_bootstrap_ci`; 0
            skips them). The accuracy CIs always use :func:`jaxmu.metrics.bootstrap_ci`.

    Returns:
        dict with ``forget_quality`` (F) and ``score`` (F x RA_U/RA_R x TA_U/TA_R), with
        ``forget_quality_ci`` and ``score_ci`` (``[low, high]``, bootstrap over models,
        both populations resampled independently, :func:`fscore_bootstrap_ci`'s default
        "union" interval), per-example ``eps``, mean
        accuracies of both populations with bootstrap CIs over models, and timings
        (``bootstrap_s``: the F / score CIs).

    References:
        Triantafillou et al. 2023; docs/evaluation.md#the-competition-f-score and
        docs/statistics.md (the CIs).
    """
    n = num_models
    store = PopulationStore(cache_dir)
    base = _fscore_identity(model, splits, config, seed, n)

    def build_unlearned():
        keys = model_keys(jax.random.fold_in(as_key(seed), 99), range(n))
        pu, su, tu = unlearn_population(method, original[0], original[1], splits, keys,
                                        strategy=strategy, chunk=chunk, shared_model=True)
        return (_predict_splits(model, pu, su, splits, strategy, chunk),
                {k: tu[k] for k in ("compile_s", "run_s", "strategy")})

    rlog, rinfo = retrained_population_logits(model, splits, num_models=n, seed=seed,
                                              config=config, strategy=strategy, chunk=chunk,
                                              cache_dir=cache_dir, progress=progress)
    t_retrain = rinfo["retrain_s"]
    ulog, uinfo = store.get_or_build(
        "fscore_unlearned", {**base, "method": method_identity(method),
                             "original": array_digest(*jax.tree.leaves(original))},
        build_unlearned, progress=progress)
    tu = uinfo
    y = {s: splits.pool.y[splits.indices(s)] for s in _FSCORE_SPLITS}
    res: dict[str, Any] = {}
    logits = {"unlearned": ulog, "retrained": rlog}
    confs = {who: membership_statistic(np.asarray(lg["forget"]), np.asarray(y["forget"]))
             for who, lg in logits.items()}
    acc = {who: {sp: _accuracy(lg[sp], y[sp]) for sp in ("retain", "test")}
           for who, lg in logits.items()}
    f, eps = forget_quality(confs["unlearned"], confs["retrained"])
    score = competition_score(confs["unlearned"], confs["retrained"],
                              acc["unlearned"]["retain"], acc["retrained"]["retain"],
                              acc["unlearned"]["test"], acc["retrained"]["test"])
    for who in acc:
        for sp in ("retain", "test"):
            v, lo, hi = bootstrap_ci(acc[who][sp])
            res[f"{who}_{'ra' if sp == 'retain' else 'ta'}"] = {"value": v, "ci": [lo, hi]}
    t0 = time.perf_counter()
    if n_bootstrap:
        cis = fscore_bootstrap_ci(confs["unlearned"], confs["retrained"],
                                  acc["unlearned"]["retain"], acc["retrained"]["retain"],
                                  acc["unlearned"]["test"], acc["retrained"]["test"],
                                  n_bootstrap=n_bootstrap, seed=seed)
        res.update({k: list(v) for k, v in cis.items()})
    t_boot = time.perf_counter() - t0
    res.update({
        "forget_quality": float(f), "score": float(score), "eps": eps.tolist(),
        "num_models": n, "forget_size": splits.n_forget,
        "timings": {"retrain_population_s": t_retrain,
                    "unlearn_compile_s": tu["compile_s"], "unlearn_run_s": tu["run_s"],
                    "bootstrap_s": t_boot, "strategy": tu["strategy"],
                    "retrained_from_store": rinfo["from_store"],
                    "unlearned_from_store": uinfo["from_store"],
                    "retrained_wall_s": rinfo["wall_s"], "unlearned_wall_s": uinfo["wall_s"]},
    })
    return res


@dataclasses.dataclass
class ULiRADesign:
    """The U-LiRA shadow design: IN masks ``[M, N]``, forget masks ``[M, K, N]``."""

    in_masks: np.ndarray
    forget: np.ndarray
    candidates: np.ndarray

    @property
    def num_shadows(self) -> int:
        return self.in_masks.shape[0]

    @property
    def num_forget_sets(self) -> int:
        return self.forget.shape[1]


def ulira_design(splits: Splits, num_shadows: int, num_forget_sets: int,
                 forget_fraction: float, seed: int = 0) -> ULiRADesign:
    """Balanced IN halves of the train candidates (forget ∪ retain of ``splits``) and K
    forget sets per shadow, each ``forget_fraction`` of IN_m, seeded by ``(m, k)``."""
    if not 0 < forget_fraction < 1:
        raise ValueError(f"forget_fraction must lie in (0, 1), got {forget_fraction}")
    if num_forget_sets < 1:
        raise ValueError(f"num_forget_sets must be >= 1, got {num_forget_sets}")
    cand = np.asarray(splits.mask("train"))
    key = jax.random.fold_in(as_key(seed), 17)
    ins = balanced_masks(key, num_shadows, cand)
    size = max(1, int(round(forget_fraction * ins[0].sum())))
    forget = np.zeros((num_shadows, num_forget_sets, cand.size), bool)
    for m in range(num_shadows):
        members = np.flatnonzero(ins[m])
        for k in range(num_forget_sets):
            kk = jax.random.fold_in(jax.random.fold_in(key, 1000 + m), k)
            pick = np.asarray(jax.random.choice(kk, members.size, (size,), replace=False))
            forget[m, k, members[pick]] = True
    return ULiRADesign(ins, forget, cand)


@dataclasses.dataclass(frozen=True)
class DesignRuns:
    """Logits of a population on the train candidates of a :class:`ULiRADesign`.

    Attributes:
        logits: ``[R, Nc, C]`` float32 eval-mode logits of the R runs on the Nc candidates
            (``[R, Nc, 2, C]`` with ``flip``: identity and horizontally mirrored images).
        y: ``[Nc]`` labels of the candidates.
        forget: ``[R, Nc]`` bool, run r forgot candidate x (all False for originals).
        member: ``[R, Nc]`` bool, x was in the training set of run r's original.
        groups: ``[R]`` the original (0..M-1) each run started from.
        timings: how the population was obtained: ``from_store``, ``wall_s`` (this call),
            ``params_from_store`` (with ``keep_params``) and, from the run that built it,
            ``originals_s``, ``unlearn_compile_s``, ``unlearn_run_s``, ``predict_s``,
            ``strategy``.
        params, model_state: stacked ``[len(kept), ...]`` parameters of the runs
            ``kept`` (``keep_params`` of :func:`design_logits`), else None.
        kept: the run indices whose parameters are held.
    """

    logits: np.ndarray
    y: np.ndarray
    forget: np.ndarray
    member: np.ndarray
    groups: np.ndarray
    timings: dict[str, Any]
    params: Any = None
    model_state: Any = None
    kept: tuple[int, ...] = ()

    @property
    def retain(self) -> np.ndarray:
        """``[R, Nc]`` bool: x was trained on by the run's original and not forgotten."""
        return self.member & ~self.forget

    @property
    def unseen(self) -> np.ndarray:
        """``[R, Nc]`` bool: the run's original never saw x."""
        return ~self.member

    @property
    def num_runs(self) -> int:
        return int(self.logits.shape[0])


def _flat(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}{i}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(tree))}


def _unflat(arrays: dict[str, np.ndarray], prefix: str, like: Any) -> Any:
    leaves, treedef = jax.tree.flatten(like)
    return jax.tree.unflatten(treedef, [jnp.asarray(arrays[f"{prefix}{i}"])
                                        for i in range(len(leaves))])


def design_logits(
    model: Model,
    splits: Splits,
    design: ULiRADesign,
    method: Any,
    *,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    flip: bool = False,
    stream: int = 0,
    strategy: str = "auto",
    chunk: int | None = None,
    cache_dir: str | None = None,
    keep_params: Any = (),
    progress: bool = True,
) -> DesignRuns:
    """Logits of the M shadow originals of ``design`` (``method=None``) or of the M*K
    unlearning runs of ``method`` from them, through the population store.

    The originals are trained once per (pool, design, model, recipe, seed) and cached
    (:func:`cached_fit_population`); run ``(m, k)`` (index ``m*K + k``) unlearns forget
    set ``k`` from original ``m`` with key ``fold_in(fold_in(seed, 3 + 1000*stream),
    m*K + k)``. The logits are stored in ``<cache_dir>/populations/`` under a hash of
    everything that produced them (pool content, design masks, val split, model, recipe,
    method and hyperparameters, seed, stream, flip, jaxmu version,
    :class:`~jaxmu.population.PopulationStore`) and reused by every later request
    (any audit, any run); ``cache_dir=None`` stores nothing.

    Args:
        method: a bound method, or None for the originals themselves (``R = M``, no
            forgetting).
        flip: also predict the horizontally mirrored images (logits ``[R, Nc, 2, C]``).
        stream: selects an independent stream of unlearning keys (0 is U-LiRA's; e.g. a
            second "retrain" population with ``stream=1`` is independent of the first).
        keep_params: run indices whose unlearned parameters are also stored and returned
            (for audits that need the weights, e.g. relearning).

    Returns:
        a :class:`DesignRuns`.
    """
    pool = splits.pool
    m_sh, k_f = design.in_masks.shape[0], design.forget.shape[1]
    keep = tuple(int(i) for i in keep_params)
    originals_only = method is None
    r = m_sh if originals_only else m_sh * k_f
    if any(not 0 <= i < r for i in keep):
        raise ValueError(f"keep_params: run indices must lie in [0, {r}), got {list(keep)}")
    cand = design.candidates
    forget_full = (np.zeros((m_sh, cand.size), bool) if originals_only
                   else design.forget.reshape(m_sh * k_f, -1))
    ins = design.in_masks if originals_only else np.repeat(design.in_masks, k_f, axis=0)
    identity = {
        "pool": pool_digest(pool), "pool_name": pool.name,
        "design": array_digest(design.in_masks, design.forget, design.candidates),
        "val": array_digest(np.asarray(splits.val)),
        "model": model.name, "module": repr(getattr(model, "module", model)),
        "recipe": config.to_dict(), "seed": int(seed), "stream": int(stream),
        "method": method_identity(method), "flip": bool(flip),
    }
    holder: dict[str, Any] = {}

    def build():
        t0 = time.perf_counter()
        orig = cached_fit_population(cache_dir, model, pool, design.in_masks, seed + 2000,
                                     config, tag="ulira_original", strategy=strategy,
                                     chunk=chunk, progress=progress)
        t_orig = time.perf_counter() - t0
        if originals_only:
            p, s = orig.params, orig.model_state
            tu = {"compile_s": 0.0, "run_s": 0.0, "strategy": strategy}
        else:
            rep = lambda x: jnp.repeat(x, k_f, axis=0)  # noqa: E731  [M] -> [M*K], (m, k)
            params, state = jax.tree.map(rep, orig.params), jax.tree.map(rep, orig.model_state)
            out = cand[None] & ~ins
            val = np.broadcast_to(np.asarray(splits.val), forget_full.shape)
            psplits = stack_splits(pool, forget_full, ins & ~forget_full, val=val, test=out)
            keys = model_keys(jax.random.fold_in(as_key(seed), 3 + 1000 * int(stream)),
                              range(r))
            p, s, tu = unlearn_population(method, params, state, psplits, keys,
                                          strategy=strategy, chunk=chunk)
        t0 = time.perf_counter()
        cj = jnp.asarray(cand)
        logits = predict_population(model, p, s, pool, cj, strategy=strategy, chunk=chunk)
        if flip:  # NHWC: mirror the width axis; per-channel normalisation commutes with it
            mirrored = dataclasses.replace(pool, x=jnp.flip(pool.x, axis=2))
            flipped = predict_population(model, p, s, mirrored, cj, strategy=strategy,
                                         chunk=chunk)
            logits = jnp.stack([logits, flipped], axis=2)  # [R, Nc, 2, C]
        arrays = {"logits": np.asarray(logits, np.float32)}
        if keep:
            sel = jnp.asarray(keep)
            holder["kept"] = (jax.tree.map(lambda x: x[sel], p),
                              jax.tree.map(lambda x: x[sel], s))
        extra = {"originals_s": t_orig, "unlearn_compile_s": tu["compile_s"],
                 "unlearn_run_s": tu["run_s"], "predict_s": time.perf_counter() - t0,
                 "strategy": tu["strategy"]}
        return arrays, extra

    def build_params():
        if "kept" not in holder:  # logits came from the store: run the population again
            build()
        kp, ks = holder["kept"]
        return {**_flat(kp, "p"), **_flat(ks, "s")}, {}

    store = PopulationStore(cache_dir)
    arrays, info = store.get_or_build("originals" if originals_only else "runs", identity,
                                      build, progress=progress)
    params = state = None
    if keep:
        kept, pinfo = store.get_or_build("params", {**identity, "keep": list(keep)},
                                         build_params, progress=progress)
        info = {**info, "params_from_store": pinfo["from_store"],
                "wall_s": info["wall_s"] + pinfo["wall_s"]}
        if "kept" in holder:
            params, state = holder["kept"]
        else:  # loaded: the tree structure comes from the model's initialiser
            p0, s0 = init_population(model, 0, range(len(keep)))
            params, state = _unflat(kept, "p", p0), _unflat(kept, "s", s0)
    return DesignRuns(
        logits=arrays["logits"], y=np.asarray(pool.y)[cand],
        forget=forget_full[:, cand], member=ins[:, cand],
        groups=np.arange(r) // (1 if originals_only else k_f), timings=info,
        params=params, model_state=state, kept=keep)


def target_pairs(runs: DesignRuns, first_target: int, seed: int = 0) -> np.ndarray:
    """``[T, Nc]`` bool: the pairs each target run (rows ``first_target:``) scores: its
    forget set (positives) and an equal-size random sample of its never-seen candidates
    (negatives), drawn with ``numpy.random.default_rng(seed)`` in run order."""
    h1, h0 = runs.forget, runs.unseen
    rng = np.random.default_rng(seed)
    tmask = h1[first_target:].copy()
    for i in range(tmask.shape[0]):
        neg = np.flatnonzero(h0[first_target + i])
        size = min(neg.size, int(h1[first_target + i].sum()))
        tmask[i, rng.choice(neg, size, replace=False)] = True
    return tmask


def ulira_from_runs(runs: DesignRuns, *, num_targets: int, statistic: str = "confidence",
                    online: bool = True, n_bootstrap: int = 200, seed: int = 0,
                    bootstrap_fits: bool = True, shadow_rows: Any = None,
                    stats: Any = None, target_mask: Any = None) -> dict[str, Any]:
    """U-LiRA on the runs of a design population: the runs of the last ``num_targets``
    originals are the targets (scoring :func:`target_pairs`), the others (or the rows
    ``shadow_rows`` of them) fit the per-example Gaussians; H1 = runs that forgot x,
    H0 = runs whose original never saw x. See :func:`ulira_pipeline`.

    ``stats`` and ``target_mask`` take the membership statistics and target pairs of an
    earlier call (its ``"stats"`` / ``"target_mask"``), so callers that re-evaluate the
    attack on many subsets of shadows compute them once."""
    if stats is None:
        y = runs.y if runs.logits.ndim == 3 else runs.y[:, None]
        stats = membership_statistic(np.asarray(runs.logits), y, kind=statistic)
    h1, h0 = runs.forget, runs.unseen
    k_f = int(np.sum(runs.groups == runs.groups[0]))
    n_sh = runs.num_runs - num_targets * k_f
    tmask = target_pairs(runs, n_sh, seed) if target_mask is None else target_mask
    rows = np.arange(n_sh) if shadow_rows is None else np.asarray(shadow_rows)
    rep_ = ulira_metric(stats[rows], stats[rows], stats[n_sh:], h1[n_sh:],
                        shadow_unlearned_mask=h1[rows], shadow_retrained_mask=h0[rows],
                        target_mask=tmask, online=online, n_bootstrap=n_bootstrap, seed=seed,
                        target_groups=runs.groups[n_sh:],
                        shadow_groups=runs.groups[rows] if bootstrap_fits else None)
    rep_["stats"] = stats
    rep_["target_mask"] = tmask
    return rep_


def ulira_pipeline(
    model: Model,
    splits: Splits,
    method: Any,
    *,
    num_shadows: int = 64,
    num_forget_sets: int = 10,
    forget_fraction: float = 0.1,
    num_targets: int | None = None,
    statistic: str = "confidence",
    flip: bool = False,
    variant: str = "online",
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    strategy: str = "auto",
    chunk: int | None = None,
    cache_dir: str | None = None,
    n_bootstrap: int = 200,
    bootstrap_fits: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """U-LiRA for ``method`` (Hayes et al.; the protocol: docs/evaluation.md#u-lira).

    M shadow originals on balanced halves of the train set (cached and reused across
    methods), K forget sets each, unlearning over all (m, k) as one population; the
    statistic on every candidate example; H1(x) = runs that forgot x, H0(x) = runs of the
    same method whose original never saw x (Deep Unlearn's design). The last
    ``num_targets`` shadows (default M/8, at least 2) are held out: never used in the
    Gaussian fits; each target run scores its forget set (positives) against an equal-size
    random sample of its never-seen examples (negatives).

    Args:
        statistic: "confidence" (logit-scaled confidence) or "correctness"
            (:func:`jaxmu.metrics.membership_statistic`).
        flip: also score the horizontally flipped candidate images (the pool's uint8 images
            mirrored along their width, then normalised as usual): the statistic gets an
            augmentation axis ``[runs, N, 2]`` (original, flipped) and the metric averages
            the per-augmentation log-ratios. False (default) scores the images as they are.
        variant: "online" (default; likelihood ratio of the H1 and H0 fits) or "offline"
            (one-sided test against the H0 fit only; its threshold-0 accuracy saturates near
            0.75, read ``auc`` / ``ulira_best_acc``), see :func:`jaxmu.metrics.ulira`.
        n_bootstrap: resamples of the CIs (0 skips them). The unit of resampling is the
            original model: the K unlearning runs of one original share its weights and
            data split, so each resample draws whole target originals (all K runs) with
            replacement.
        bootstrap_fits: also draw the shadow originals (all their runs) with replacement
            in every resample and refit the per-example Gaussians on them (default), so the
            intervals include the noise of the fits; False holds the fits fixed. On
            synthetic studies of this design with 8 target and 24 shadow originals, 95%
            intervals of the null (unlearned drawn like retrained) covered 0.5 in 59 of 60
            studies with the fits resampled, in 50 (83%) with target originals only and
            in 39 (65%) when runs were resampled as independent rows; with imperfect
            unlearning they covered the expected accuracy in 57 of 60 studies
            (``tests/metrics/test_metrics_ulira_coverage.py``, ``docs/statistics.md``).
            With refits the intervals are centred on the point value (refits on
            resampled shadows attack worse than the real fit). Cost: one refit and
            rescoring of the targets per resample.

    Per-example accuracy: an example is a positive pair in a target run that forgot it
    and a negative pair where it was drawn among the run's never-seen examples, so it gets
    about ``T K q / 2`` pairs of each kind (T target originals, K forget sets, forget
    fraction q): 4 + 4 with the defaults (64 shadows, T = 8, K = 10, q = 0.1). Its
    per-example accuracy then has SD ~0.18 from pair sampling alone even for perfect
    unlearning; the report gives that floor (``per_example_accuracy_null_sd``) next to the
    observed SD, and counts the examples with pairs of one class only (left out of the
    distribution) in ``per_example_single_class``. More target originals (``num_targets``)
    add pairs per example.

    Returns:
        The :func:`jaxmu.metrics.ulira` report (``ulira_accuracy``, ``ulira_best_acc``,
        ``auc``, TPR at 1% / 0.1% FPR, each with a ``*_ci`` percentile cluster-bootstrap CI
        when ``n_bootstrap > 0``; per-example accuracy distribution with its noise floor)
        plus timings, the design sizes, ``statistic``, ``flip``, ``variant`` and
        ``bootstrap_fits``.

    Raises:
        ValueError: an unknown ``variant``, or ``num_targets`` out of range.
    """
    if variant not in ("online", "offline"):
        raise ValueError(f"variant: expected 'online' or 'offline', got {variant!r}")
    m_sh, k_f = num_shadows, num_forget_sets
    t_ = num_targets if num_targets is not None else max(2, m_sh // 8)
    if not 1 <= t_ < m_sh - 1:
        raise ValueError(f"num_targets must lie in [1, {m_sh - 2}], got {t_}")
    design = ulira_design(splits, m_sh, k_f, forget_fraction, seed)
    runs = design_logits(model, splits, design, method, seed=seed, config=config,
                         flip=flip, strategy=strategy, chunk=chunk, cache_dir=cache_dir,
                         progress=progress)
    rep_ = ulira_from_runs(runs, num_targets=t_, statistic=statistic,
                           online=variant == "online", n_bootstrap=n_bootstrap, seed=seed,
                           bootstrap_fits=bootstrap_fits)
    rep_ = {k: v for k, v in rep_.items() if k not in ("scores", "stats", "target_mask")}
    rep_.update({
        "num_shadows": m_sh, "num_forget_sets": k_f, "num_targets": t_,
        "forget_size": int(runs.forget[0].sum()), "statistic": statistic, "flip": bool(flip),
        "variant": variant, "bootstrap_fits": bool(bootstrap_fits),
        "timings": runs.timings,
    })
    return rep_


__all__ = ["DesignRuns", "ULiRADesign", "design_logits",
           "fscore_bootstrap_ci", "fscore_pipeline", "retrained_population_logits",
           "target_pairs", "ulira_design", "ulira_from_runs", "ulira_pipeline"]
