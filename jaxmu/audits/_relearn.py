"""The relearning attack: how fast does an unlearned model get its forget accuracy back?

An unlearning method may only hide what the model knows about the forget set: the
knowledge is still in the weights and comes back after a few steps of fine-tuning. The
audit fine-tunes every unlearned run of a population for a fixed budget of plain SGD steps
and records its forget accuracy every ``eval_every`` steps. Two variants:

* ``"retain"``: fine-tune on the run's retain set (the data the model is allowed to keep);
  forget accuracy is measured on the whole forget set.
* ``"forget"``: fine-tune on a small random part (``forget_fraction``) of the run's forget
  set and measure forget accuracy on the *rest* of it, which the relearning never touches:
  a model that truly forgot learns the held-out examples only as well as a model that never
  saw them.

The same audit on retrained models (trained from scratch on the retain set: they never saw
the forget set) is the reference. :func:`relearn_summary` compares the two populations:
mean curves with bootstrap bands and the number of steps each run needs to reach the
original model's forget accuracy.

Everything per run is derived from the run's key, so a run gives the same curve alone or in
a population, whatever the execution strategy (up to float32 rounding of batched kernels).
Give the unlearned and the retrained population the same keys (and the same per-run splits)
and run ``r`` of both relearns on the same batches, in the ``"forget"`` variant on the same
relearned examples, and is measured on the same held-out examples.

References:
    Hu et al., "Jogging the Memory of Unlearned LLMs Through Targeted Relearning Attacks"
    (ICLR 2025); Lynch et al., "Eight Methods to Evaluate Robust Unlearning in LLMs" (2024);
    Golatkar et al., "Eternal Sunshine of the Spotless Net" (CVPR 2020, relearn time).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmu.population import map_models, predict_population, resolve_strategy
from jaxmu.train import TrainConfig, make_train_step, predict_mask
from jaxmu.types import Model, Pool, Splits

VARIANTS = ("retain", "forget")
TRACKABLE = ("retain", "val", "test")
_TOL = 1e-6
"""Slack of the recovery test ``acc >= threshold - _TOL``: absorbs float32 rounding of a
threshold computed elsewhere; far below one example's share ``1 / n`` for n < 10^5."""


def _int(name: str, v: Any, low: int) -> int:
    try:
        i = operator.index(v)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {v!r}") from None
    if isinstance(v, bool) or i < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return i


def _real(name: str, v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return f


@dataclasses.dataclass(frozen=True)
class RelearnConfig:
    """The relearning attack's recipe.

    Attributes:
        variant: ``"retain"`` (fine-tune on the retain set, measure on the whole forget
            set) or ``"forget"`` (fine-tune on ``forget_fraction`` of the forget set,
            measure on the rest of it).
        steps: total budget of SGD steps.
        eval_every: forget accuracy is measured before relearning and after every
            ``eval_every`` steps; must divide ``steps``.
        lr: constant learning rate (0 leaves the parameters unchanged; BatchNorm running
            statistics still move, since training runs in train mode).
        momentum: heavy-ball momentum (PyTorch semantics), in [0, 1).
        weight_decay: coupled L2 weight decay (PyTorch SGD), >= 0.
        batch_size: minibatch size, capped at the size of the relearning set; minibatches
            are drawn by reshuffling that set every epoch (every batch is full: the last
            one of an epoch wraps around to the start of the shuffled order).
        forget_fraction: share of each run's forget set used for relearning in the
            ``"forget"`` variant: ``max(1, round(forget_fraction * n_forget))`` examples,
            which must leave at least one held out. Ignored by ``"retain"``.
        seed: folded into every run's key, so one population of keys gives independent
            relearning randomness for different seeds.
        augment: random crop/flip of the relearning batches (the pool's augmentation).
        track: other splits whose accuracy is recorded along the curve (``retain``,
            ``val``, ``test``); empty splits are left out.
        eval_limit: the tracked splits are measured on a fixed random subset of at most
            this many of their members per run (None: all), to keep the audit cheap on
            large retain sets. The forget measurement always uses every example.
        eval_batch_size: batch size of the evaluation forward passes.
    """

    variant: str = "retain"
    steps: int = 100
    eval_every: int = 10
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 32
    forget_fraction: float = 0.1
    seed: int = 0
    augment: bool = False
    track: tuple[str, ...] = ("retain",)
    eval_limit: int | None = 1024
    eval_batch_size: int = 512

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        steps = _int("steps", self.steps, 1)
        every = _int("eval_every", self.eval_every, 1)
        if steps % every:
            raise ValueError(f"eval_every ({every}) must divide steps ({steps})")
        if _real("lr", self.lr) < 0:
            raise ValueError(f"lr must be >= 0, got {self.lr}")
        if not 0 <= _real("momentum", self.momentum) < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if _real("weight_decay", self.weight_decay) < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        _int("batch_size", self.batch_size, 1)
        if not 0 < _real("forget_fraction", self.forget_fraction) < 1:
            raise ValueError(f"forget_fraction must lie in (0, 1), got {self.forget_fraction}")
        if not 0 <= _int("seed", self.seed, 0) < 2**32:
            raise ValueError(f"seed must lie in [0, 2**32), got {self.seed}")
        if not isinstance(self.augment, bool):
            raise ValueError(f"augment must be a bool, got {self.augment!r}")
        track = (self.track,) if isinstance(self.track, str) else tuple(self.track)
        bad = [t for t in track if t not in TRACKABLE]
        if bad or len(set(track)) != len(track):
            raise ValueError(f"track must be distinct names among {TRACKABLE}, got {self.track!r}")
        object.__setattr__(self, "track", track)
        if self.eval_limit is not None:
            _int("eval_limit", self.eval_limit, 1)
        _int("eval_batch_size", self.eval_batch_size, 1)

    @property
    def eval_steps(self) -> np.ndarray:
        """The evaluated steps ``0, eval_every, ..., steps`` (int64 ``[P]``)."""
        return np.arange(0, self.steps + 1, self.eval_every, dtype=np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class RelearnCurves:
    """Accuracy curves of a population under the relearning attack.

    Attributes:
        variant: ``"retain"`` or ``"forget"`` (see :class:`RelearnConfig`).
        steps: int ``[P]``: the evaluated steps, ``0`` (before relearning), ``eval_every``,
            ..., ``steps``.
        forget_acc: float64 ``[R, P]``: each run's accuracy on its forget set (``"forget"``
            variant: on the held-out part of it, ``eval_mask``), exact ``k / n`` fractions.
        split_acc: ``{split: [R, P]}`` accuracies on the tracked splits (on the subsets
            ``track_masks``).
        train_loss: float32 ``[R, P - 1]``: mean minibatch cross-entropy over each
            segment of ``eval_every`` steps (before the updates of each step).
        train_mask: bool ``[R, N]``: the examples each run relearned on.
        eval_mask: bool ``[R, N]``: the examples of each run's forget accuracy; never
            overlaps ``train_mask``.
        track_masks: ``{split: [R, N]}`` the examples of each tracked accuracy.
        seconds: wall time of the relearning (including compilation on the first call
            for a shape).
        strategy: the resolved population strategy.
    """

    variant: str
    steps: np.ndarray
    forget_acc: np.ndarray
    split_acc: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    train_loss: np.ndarray | None = None
    train_mask: np.ndarray | None = None
    eval_mask: np.ndarray | None = None
    track_masks: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    strategy: str = ""

    @property
    def num_runs(self) -> int:
        """R, the number of runs."""
        return int(np.shape(self.forget_acc)[0])

    @property
    def retain_acc(self) -> np.ndarray | None:
        """``[R, P]`` retain accuracy if tracked, else None."""
        return self.split_acc.get("retain")


@functools.lru_cache(maxsize=32)
def _masks_fn(variant: str, n_forget: int, n_relearn: int, sizes: tuple[tuple[int, int], ...]):
    """Jitted ``(run keys, forget, retain, tracked) -> (train_mask, eval_mask, tracked
    subset masks)``, every mask ``[R, N]``, each run's from its own key."""

    def one(k, f, r, tr):
        if variant == "retain":
            train, held = r, f
        else:
            fidx = jnp.nonzero(f, size=n_forget, fill_value=0)[0]
            pick = fidx[jax.random.permutation(jax.random.fold_in(k, 0), n_forget)[:n_relearn]]
            train = jnp.zeros_like(f).at[pick].set(True)
            held = f & ~train
        out = []
        for i, (m, (n_s, n_use)) in enumerate(zip(tr, sizes, strict=True)):
            if n_use == n_s:
                out.append(m)
                continue
            idx = jnp.nonzero(m, size=n_s, fill_value=0)[0]
            idx = idx[jax.random.permutation(jax.random.fold_in(k, 10 + i), n_s)[:n_use]]
            out.append(jnp.zeros_like(m).at[idx].set(True))
        return train, held, tuple(out)

    return jax.jit(jax.vmap(one))


@functools.lru_cache(maxsize=32)
def _relearn_fn(model: Model, cfg: RelearnConfig, n_train: int, eval_sizes: tuple[int, ...],
                strategy: str, chunk: int | None):
    """The jitted population function ``(params, state, train_mask, eval_masks, run keys,
    pool, lr) -> (correct counts per eval mask [R, P], segment losses [R, P - 1])``.

    ``cfg`` is the config with ``lr``, ``seed``, ``variant``, ``forget_fraction``,
    ``track`` and ``eval_limit`` reset to their defaults (the learning rate is an argument,
    the others act through the masks, keys and ``eval_sizes``), so configs differing only
    there share one compilation."""
    b = min(cfg.batch_size, n_train)
    spe = math.ceil(n_train / b)
    n_epochs = math.ceil(cfg.steps / spe)
    n_seg = cfg.steps // cfg.eval_every
    # TrainConfig supplies the SGD direction (coupled weight decay, then momentum); the
    # learning rate goes to make_train_step separately, so its lr field is a placeholder.
    tc = TrainConfig(epochs=1, batch_size=b, lr=1.0, momentum=cfg.momentum,
                     weight_decay=cfg.weight_decay, schedule="constant", augment=cfg.augment)

    def one(params, model_state, train_mask, eval_masks, k, pool: Pool, lr):
        k_data, k_steps = jax.random.fold_in(k, 1), jax.random.fold_in(k, 2)
        members = jnp.nonzero(train_mask, size=n_train, fill_value=0)[0]

        def epoch(e):
            order = members[jax.random.permutation(jax.random.fold_in(k_data, e), n_train)]
            return order[jnp.arange(spe * b) % n_train].reshape(spe, b)

        idx = jax.vmap(epoch)(jnp.arange(n_epochs)).reshape(-1, b)[: cfg.steps]
        idx = idx.reshape(n_seg, cfg.eval_every, b)
        skeys = jax.vmap(lambda s: jax.random.fold_in(k_steps, s))(jnp.arange(cfg.steps))
        skeys = skeys.reshape((n_seg, cfg.eval_every) + skeys.shape[1:])
        step = make_train_step(model, tc, pool, lr)

        def correct(p, s):
            out = []
            for m, n in zip(eval_masks, eval_sizes, strict=True):
                logits = predict_mask(model, p, s, pool, m, n, cfg.eval_batch_size)
                y = pool.y[jnp.nonzero(m, size=n, fill_value=0)[0]]
                out.append(jnp.sum(jnp.argmax(logits, -1) == y, dtype=jnp.int32))
            return jnp.stack(out)

        def segment(carry, inp):
            carry, (loss, _) = jax.lax.scan(step, carry, inp)
            return carry, (correct(carry[0], carry[1]), jnp.mean(loss))

        c0 = correct(params, model_state)
        opt_state = tc.direction().init(params)
        _, (cs, losses) = jax.lax.scan(segment, (params, model_state, opt_state), (idx, skeys))
        return jnp.concatenate([c0[None], cs]).T, losses

    return jax.jit(map_models(one, strategy, chunk, in_axes=(0, 0, 0, 0, 0, None, None)))


def _check_keys(keys: Any) -> jax.Array:
    keys = jnp.asarray(keys)
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    if (typed and keys.ndim != 1) or (not typed and (keys.ndim != 2 or keys.dtype != jnp.uint32)):
        raise ValueError(f"keys must be [R] typed PRNG keys or [R, 2] uint32 raw keys, got "
                         f"{keys.dtype}{tuple(keys.shape)}")
    if keys.shape[0] < 1:
        raise ValueError("keys: need at least one run")
    return keys


def _per_run(name: str, mask: Any, r: int, n: int) -> np.ndarray:
    m = np.asarray(mask, bool)
    if m.shape == (n,):
        m = np.broadcast_to(m, (r, n))
    if m.shape != (r, n):
        raise ValueError(f"splits.{name} must be [{r}, {n}] (or [{n}] shared), got {m.shape}")
    return m


def relearn_curves(
    model: Model,
    params: Any,
    model_state: Any,
    splits: Splits,
    keys: Any,
    config: RelearnConfig = RelearnConfig(),
    *,
    strategy: str = "auto",
    chunk: int | None = None,
) -> RelearnCurves:
    """Fine-tunes every run of a population and records its forget accuracy against steps.

    Run ``r`` starts from ``(params[r], model_state[r])`` and takes ``config.steps`` SGD
    steps of cross-entropy in train mode (BatchNorm on batch statistics, running
    statistics updated) on its relearning set: its retain set (``"retain"`` variant) or a
    random ``forget_fraction`` of its forget set (``"forget"``). Before the first step and
    after every ``eval_every`` steps it is evaluated in eval mode on its forget set (on the
    held-out rest of it in the ``"forget"`` variant) and on the tracked splits. All of the
    run's randomness (relearned subset, batch order, augmentation, dropout) comes from
    ``fold_in(keys[r], config.seed)``, so the result depends neither on the other runs nor
    on ``strategy`` / ``chunk`` (up to float32 rounding of batched kernels).

    Args:
        model: the network.
        params, model_state: stacked ``[R, ...]`` populations (e.g. the output of
            :func:`jaxmu.population.unlearn_population`, or retrained models).
        splits: per-run splits from :func:`jaxmu.population.stack_splits` (masks
            ``[R, N]``; shared ``[N]`` masks are used for every run).
        keys: ``[R]`` keys, one per run (e.g. :func:`jaxmu.population.model_keys`).
        config: the recipe.
        strategy, chunk: how runs are mapped (see :func:`jaxmu.population.map_models`).

    Returns:
        :class:`RelearnCurves`.

    Raises:
        ValueError: on mismatched run counts or mask shapes, an empty relearning set, a
            forget set too small to hold out examples in the ``"forget"`` variant, or a bad
            strategy.
    """
    if not isinstance(config, RelearnConfig):
        raise ValueError(f"config must be a RelearnConfig, got {type(config).__name__}")
    if not isinstance(splits, Splits):
        raise ValueError(f"splits must be a Splits, got {type(splits).__name__}")
    keys = _check_keys(keys)
    r = int(keys.shape[0])
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None
             for x in jax.tree.leaves((params, model_state))}
    if sizes != {r}:
        raise ValueError(f"params and model_state must be stacked on a leading axis of {r} "
                         f"runs (one per key), got leading sizes {sorted(map(str, sizes))}")
    pool = splits.pool
    n = pool.size
    forget = _per_run("forget", splits.forget, r, n)
    retain = _per_run("retain", splits.retain, r, n)
    n_forget = int(forget[0].sum())
    if np.any(forget.sum(1) != n_forget) or np.any(retain.sum(1) != retain[0].sum()):
        raise ValueError("every run needs the same forget and retain sizes")
    if config.variant == "retain":
        n_train, n_relearn = int(retain[0].sum()), 0
        if n_train == 0 or n_forget == 0:
            raise ValueError("the 'retain' variant needs non-empty retain and forget sets")
    else:
        n_relearn = max(1, int(round(config.forget_fraction * n_forget)))
        if n_relearn >= n_forget:
            raise ValueError(f"forget_fraction {config.forget_fraction} of {n_forget} forget "
                             f"examples leaves none held out; need a larger forget set")
        n_train = n_relearn
    tracked, track_sizes, names = [], [], []
    for name in config.track:
        m = _per_run(name, getattr(splits, name), r, n)
        n_s = int(m[0].sum())
        if n_s == 0:
            continue
        if np.any(m.sum(1) != n_s):
            raise ValueError(f"every run needs the same {name} size")
        names.append(name)
        tracked.append(jnp.asarray(m))
        track_sizes.append((n_s, n_s if config.eval_limit is None
                            else min(n_s, config.eval_limit)))
    strategy = resolve_strategy(strategy, params, r)
    if strategy == "chunked" and (not chunk or chunk < 1):
        raise ValueError(f"chunked needs chunk >= 1, got {chunk}")

    t0 = time.perf_counter()
    run_keys = jax.vmap(lambda k: jax.random.fold_in(k, config.seed))(keys)
    train_mask, eval_mask, track_masks = _masks_fn(
        config.variant, n_forget, n_relearn, tuple(track_sizes))(
        run_keys, jnp.asarray(forget), jnp.asarray(retain), tuple(tracked))
    n_eval = n_forget - n_relearn
    eval_sizes = (n_eval,) + tuple(u for _, u in track_sizes)
    static = dataclasses.replace(config, lr=RelearnConfig.lr, seed=0, variant="retain",
                                 forget_fraction=RelearnConfig.forget_fraction, track=(),
                                 eval_limit=RelearnConfig.eval_limit)
    fn = _relearn_fn(model, static, n_train, eval_sizes, strategy, chunk)
    counts, losses = jax.block_until_ready(
        fn(params, model_state, train_mask, (eval_mask, *track_masks), run_keys, pool,
           jnp.float32(config.lr)))
    seconds = time.perf_counter() - t0
    acc = np.asarray(counts, np.float64) / np.asarray(eval_sizes, np.float64)[None, :, None]
    return RelearnCurves(
        variant=config.variant, steps=config.eval_steps, forget_acc=acc[:, 0],
        split_acc={nm: acc[:, 1 + i] for i, nm in enumerate(names)},
        train_loss=np.asarray(losses, np.float32), train_mask=np.asarray(train_mask),
        eval_mask=np.asarray(eval_mask),
        track_masks={nm: np.asarray(m) for nm, m in zip(names, track_masks, strict=True)},
        seconds=seconds, strategy=strategy)


def accuracy_on_masks(
    model: Model,
    params: Any,
    model_state: Any,
    pool: Pool,
    masks: Any,
    *,
    model_index: Any = None,
    strategy: str = "auto",
    chunk: int | None = None,
    batch_size: int = 512,
) -> np.ndarray:
    """Accuracy of model ``model_index[r]`` on the members of ``masks[r]``, for every row.

    The threshold of the relearning attack: the original model's accuracy on exactly the
    examples a run's forget accuracy is measured on (``RelearnCurves.eval_mask``), e.g.
    ``accuracy_on_masks(model, orig_params, orig_state, pool, curves.eval_mask,
    model_index=groups)`` when run ``r`` was unlearned from original ``groups[r]``. Each
    model is evaluated once (eval mode) on the union of the rows' members.

    Args:
        model: the network.
        params, model_state: stacked ``[M, ...]`` models.
        pool: the dataset.
        masks: bool ``[R, N]``; every row needs a member.
        model_index: ``[R]`` integers in ``[0, M)`` (default ``r``, which needs R = M).
        strategy, chunk, batch_size: as for :func:`jaxmu.population.predict_population`.

    Returns:
        float64 ``[R]`` accuracies (exact ``k / n`` fractions).

    Raises:
        ValueError: on bad shapes, an empty row or indices out of range.
    """
    masks = np.asarray(masks)
    if masks.dtype != bool or masks.ndim != 2 or masks.shape[1] != pool.size:
        raise ValueError(f"masks must be bool [R, {pool.size}], got {masks.dtype}{masks.shape}")
    if not masks.any(1).all():
        raise ValueError("every row of masks needs at least one member")
    m = {jnp.shape(x)[0] if jnp.ndim(x) else None
         for x in jax.tree.leaves((params, model_state))}
    if len(m) != 1 or None in m:
        raise ValueError(f"params and model_state must share a leading model axis, got "
                         f"{sorted(map(str, m))}")
    (m,) = m
    idx = (np.arange(masks.shape[0]) if model_index is None
           else np.asarray(model_index))
    if (idx.shape != (masks.shape[0],) or not np.issubdtype(idx.dtype, np.integer)
            or idx.min() < 0 or idx.max() >= m):
        raise ValueError(f"model_index must be {masks.shape[0]} integers in [0, {m}), got "
                         f"{idx.dtype}{idx.shape}")
    union = masks.any(0)
    logits = predict_population(model, params, model_state, pool, union, strategy=strategy,
                                chunk=chunk, batch_size=batch_size)
    y = np.asarray(pool.y)[union]
    ok = np.asarray(jnp.argmax(logits, -1)) == y[None]
    rows = masks[:, union]
    return (ok[idx] & rows).sum(1) / rows.sum(1)


def _units(name: str, groups: Any, r: int) -> tuple[np.ndarray, int]:
    if groups is None:
        inv, g = np.arange(r), r
    else:
        a = np.asarray(groups)
        if a.shape != (r,):
            raise ValueError(f"{name} must hold one label per run ({r}), got shape {a.shape}")
        _, inv = np.unique(a, return_inverse=True)
        inv, g = inv.reshape(-1), int(inv.max()) + 1
    if g < 2:
        raise ValueError(f"{name}: a bootstrap needs at least 2 independent units, got {g}")
    return inv, g


def _thresholds(name: str, v: Any, r: int) -> np.ndarray:
    try:
        a = np.asarray(v, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or [{r}] numbers, got {v!r}") from None
    if a.ndim == 0:
        a = np.full(r, float(a))
    if a.shape != (r,):
        raise ValueError(f"{name} must be a scalar or [{r}] (one per run), got shape {a.shape}")
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
        raise ValueError(f"{name} must hold accuracies in [0, 1]")
    return a


def _check_curves(name: str, c: Any) -> None:
    if not isinstance(c, RelearnCurves):
        raise ValueError(f"{name} must be RelearnCurves, got {type(c).__name__}")
    s, a = np.asarray(c.steps), np.asarray(c.forget_acc, np.float64)
    if s.ndim != 1 or s.size < 1 or np.any(np.diff(s) <= 0):
        raise ValueError(f"{name}.steps must be 1-D and increasing, got {s.tolist()}")
    if a.ndim != 2 or a.shape[1] != s.size or a.shape[0] < 1:
        raise ValueError(f"{name}.forget_acc must be [R, {s.size}], got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}.forget_acc contains NaN or infinite values")


def steps_to_recover(curves: RelearnCurves, threshold: Any) -> np.ndarray:
    """First evaluated step at which each run's forget accuracy reaches its threshold.

    Args:
        curves: the population's curves.
        threshold: a scalar or ``[R]``: e.g. the original model's forget accuracy per run.

    Returns:
        float64 ``[R]``: a step of ``curves.steps`` (0 when already reached before any
        relearning), or ``inf`` for a run that does not reach it within the budget
        (right-censored at ``curves.steps[-1]``). Reached means ``acc >= threshold -
        1e-6`` (the slack absorbs float32 rounding of the threshold).

    Raises:
        ValueError: on malformed curves or thresholds.
    """
    _check_curves("curves", curves)
    acc = np.asarray(curves.forget_acc, np.float64)
    thr = _thresholds("threshold", threshold, acc.shape[0])
    reached = acc >= thr[:, None] - _TOL
    first = np.argmax(reached, axis=1)
    return np.where(reached.any(1), np.asarray(curves.steps, np.float64)[first], np.inf)


def _fin(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _band(point: np.ndarray, boot: np.ndarray, alpha: float) -> tuple[list, list]:
    lo, hi = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    return (np.minimum(lo, point).astype(float).tolist(),
            np.maximum(hi, point).astype(float).tolist())


def _population(c: RelearnCurves, thr: np.ndarray, inv: np.ndarray, g: int,
                rng: np.random.Generator, n_bootstrap: int, alpha: float) -> dict:
    acc = np.asarray(c.forget_acc, np.float64)
    r = acc.shape[0]
    t = steps_to_recover(c, thr)
    rec = np.isfinite(t).astype(np.float64)
    draws = rng.integers(0, g, size=(n_bootstrap, g))
    counts = np.zeros((n_bootstrap, g))
    np.add.at(counts, (np.arange(n_bootstrap)[:, None], draws), 1.0)
    w = counts[:, inv]  # [B, R]: how often each run is drawn (its whole unit is)
    w_sum = w.sum(1, keepdims=True)

    def curve(a):
        point = a.mean(0)
        lo, hi = _band(point, (w @ a) / w_sum, alpha)
        return {"mean": point.astype(float).tolist(), "ci_low": lo, "ci_high": hi}

    frac = float(rec.mean())
    f_lo, f_hi = _band(np.asarray(frac), (w @ rec) / w_sum[:, 0], alpha)
    med = float(np.median(t))
    wi = w.astype(np.int64)
    meds = np.array([np.median(np.repeat(t, wi[b])) for b in range(n_bootstrap)])
    m_lo = min(float(np.quantile(meds, alpha, method="lower")), med)
    m_hi = max(float(np.quantile(meds, 1 - alpha, method="higher")), med)
    return {
        "num_runs": r,
        "num_units": g,
        "forget_acc": curve(acc),
        "split_acc": {k: curve(np.asarray(v, np.float64)) for k, v in c.split_acc.items()},
        "threshold": thr.astype(float).tolist(),
        "steps_to_recover": [_fin(v) for v in t],
        "num_recovered": int(rec.sum()),
        "num_not_recovered": int(r - rec.sum()),
        "recovered_fraction": {"value": frac, "ci": [f_lo, f_hi]},
        "median_steps_to_recover": {"value": _fin(med), "ci": [_fin(m_lo), _fin(m_hi)]},
    }


def relearn_summary(
    unlearned: RelearnCurves,
    retrained: RelearnCurves,
    original_forget_acc: Any,
    *,
    groups: Any = None,
    retrained_groups: Any = None,
    retrained_original_forget_acc: Any = None,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Relearning curves of unlearned vs retrained runs, with bootstrap intervals.

    For each population: the mean forget-accuracy curve with a pointwise percentile
    bootstrap band (and the same for every tracked split), and each run's steps to recover:
    the first evaluated step at which its forget accuracy reaches the original model's
    forget accuracy for that run (see :func:`steps_to_recover`). Runs that do not recover
    within the budget are right-censored: they count as "more than ``budget`` steps", are
    ``None`` in ``steps_to_recover`` and are counted in ``num_not_recovered``. The median
    of steps to recover treats them as infinite, so it is exact as long as fewer than half
    the runs are censored and ``None`` ("beyond the budget") otherwise; the same holds for
    each bound of its interval. The retrained population (it never saw the forget set) is
    the reference: an unlearned population that recovers much faster still holds the
    forgotten knowledge.

    Bootstrap: runs are resampled by whole units (``groups``, e.g. the original model
    every run was unlearned from: runs of one original are not independent); the two
    populations are resampled independently. Intervals are percentile intervals (order
    statistics for the median, whose values are discrete), widened if needed to contain
    their point value (which only matters in degenerate, near-constant cases). Measured
    coverage of 95% intervals over 150 simulated studies of 20 units x 2 correlated runs
    (tests/audits/test_relearn.py): 0.91 for the curve points, 0.91 for the recovered
    fraction (percentile intervals run slightly short with few units; use more originals
    for nominal coverage), 0.99 for the median (discrete, hence conservative).

    Args:
        unlearned, retrained: curves of both populations, same variant and steps.
        original_forget_acc: scalar or ``[R]`` (one per unlearned run): the original
            model's forget accuracy, in the ``"forget"`` variant on the held-out examples
            (see :func:`accuracy_on_masks`).
        groups, retrained_groups: ``[R]`` unit labels of the runs (default: every run its
            own unit).
        retrained_original_forget_acc: thresholds of the retrained runs (default
            ``original_forget_acc``, which then needs the same number of runs when it is
            per run).
        n_bootstrap, confidence, seed: resamples, interval level and seed (reproducible).

    Returns:
        A JSON-ready dict (plain lists, floats, ints, None; no NaN or infinity):
        ``variant``, ``steps``, ``budget``, ``confidence``, ``n_bootstrap`` and, under
        ``"unlearned"`` and ``"retrained"``: ``num_runs``, ``num_units``, ``forget_acc``
        (``{"mean", "ci_low", "ci_high"}``, lists over steps), ``split_acc`` (the same per
        tracked split), ``threshold``, ``steps_to_recover`` (per run, None = not within the
        budget), ``num_recovered``, ``num_not_recovered``, ``recovered_fraction``
        (``{"value", "ci": [low, high]}``) and ``median_steps_to_recover`` (same form, None
        = beyond the budget).

    Raises:
        ValueError: on malformed curves, curves of different variants or steps, bad
            thresholds or groups, fewer than 2 units, ``n_bootstrap < 1`` or a confidence
            outside (0, 1).
    """
    _check_curves("unlearned", unlearned)
    _check_curves("retrained", retrained)
    if unlearned.variant != retrained.variant:
        raise ValueError(f"variants differ: unlearned {unlearned.variant!r}, retrained "
                         f"{retrained.variant!r}")
    steps = np.asarray(unlearned.steps)
    if not np.array_equal(steps, np.asarray(retrained.steps)):
        raise ValueError("unlearned and retrained curves must be evaluated at the same steps")
    n_bootstrap = _int("n_bootstrap", n_bootstrap, 1)
    if not 0 < _real("confidence", confidence) < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    seed = _int("seed", seed, 0)
    ru, rr = unlearned.num_runs, retrained.num_runs
    thr_u = _thresholds("original_forget_acc", original_forget_acc, ru)
    if retrained_original_forget_acc is None:
        if np.ndim(original_forget_acc) and rr != ru:
            raise ValueError(f"per-run original_forget_acc has {ru} values for {rr} retrained "
                             f"runs; pass retrained_original_forget_acc")
        retrained_original_forget_acc = original_forget_acc
    thr_r = _thresholds("retrained_original_forget_acc", retrained_original_forget_acc, rr)
    inv_u, g_u = _units("groups", groups, ru)
    inv_r, g_r = _units("retrained_groups", retrained_groups, rr)
    alpha = (1 - float(confidence)) / 2
    return {
        "variant": unlearned.variant,
        "steps": [int(s) for s in steps],
        "budget": int(steps[-1]),
        "confidence": float(confidence),
        "n_bootstrap": n_bootstrap,
        "unlearned": _population(unlearned, thr_u, inv_u, g_u,
                                 np.random.default_rng([seed, 0]), n_bootstrap, alpha),
        "retrained": _population(retrained, thr_r, inv_r, g_r,
                                 np.random.default_rng([seed, 1]), n_bootstrap, alpha),
    }
