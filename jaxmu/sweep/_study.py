"""Optuna studies over a method's search space: one trial = unlearn O, evaluate, 4 objectives.

References:
    Cadet et al., Deep Unlearn (2024) §4; docs/methods.md#hyperparameters (search spaces)
    and docs/methods.md#search (NSGA-III, the four objectives, storage, selection).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxmu.io import IOFault
from jaxmu.methods import MethodDef, get_method, method_key
from jaxmu.metrics import retdev, retention
from jaxmu.sweep._objective import OBJECTIVE_NAMES, objective_values, select_best
from jaxmu.types import Model, Splits

Pair = tuple[Any, Any]

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
"""XLA options for trial programs: 2-10x faster compiles on XLA:CPU, same results to rounding."""

HEARTBEAT_S = 10
GRACE_S = 30
STORAGE_RETRIES = 6
STORAGE_BACKOFF_S = 1.0


class StorageError(IOFault):
    """The study database cannot be opened, or was lost mid-study and did not come back:
    one line naming the storage and what to do (completed trials are kept in it)."""


@dataclasses.dataclass
class SweepTask:
    """Everything a trial needs for one model seed: O, R and R's metrics.

    Attributes:
        model, splits: the bound architecture and the (fixed) splits.
        seed: the model seed (init of O and R, data order, the method's key).
        original, retrained: ``(params, model_state)`` of O and R.
        retrained_metrics: R's metrics (``ra fa va ta ...``) from :func:`jaxmu.evaluate`.
        e_max: the epoch budget, ceil(0.2 x original training epochs).
        reference_seconds: R's training time (for RTE).
        name: a label for study names, e.g. ``"digits-mlp"``.
    """

    model: Model
    splits: Splits
    seed: int
    original: Pair
    retrained: Pair
    retrained_metrics: Mapping[str, float]
    e_max: int
    reference_seconds: float = math.nan
    name: str = "task"


def suggest_hparams(definition: MethodDef, trial: Any, e_max: int, *,
                    clean: bool = False) -> dict[str, Any]:
    """Draws one point of ``definition.space`` with an ``optuna.Trial``.

    Args:
        definition: the method's registered definition (its ``space``).
        trial: an ``optuna.Trial``.
        e_max: the epoch budget substituted for ``E_max`` bounds.
        clean: drop dimensions marked ``dead`` (no effect in the reference). The default
            (faithful) keeps them, so the NSGA-III trajectory matches the reference's.

    Returns:
        The sampled hyperparameters (the rest stay at the method's defaults).
    """
    return {name: hp.suggest(trial, name, e_max) for name, hp in definition.space.items()
            if not (clean and hp.dead)}


_COMPILED: dict[Any, Any] = {}


def dynamic_names(definition: MethodDef) -> tuple[str, ...]:
    """Searched hyperparameters passed to the trial program as arguments: the fields the
    method's config declares traced (continuous ones: learning rates, decays,
    temperatures, ...; not epoch counts, batch sizes or switches), sorted.

    A traced fraction that sets a count (MSG/SalUn/PRMQ mask sizes, activation-pruning
    quantiles) is multiplied in float32 inside the program, while the static program (final
    runs) uses Python floats: when ``fraction x n`` lies within float32 rounding of an
    integer boundary the two counts differ by one entry. Trial scores are therefore equal
    to the final run's up to rounding, as with :data:`FAST_COMPILE`.
    """
    return definition.traced


def traceable_names(method, args: Any = None) -> tuple[str, ...]:
    """The hyperparameters of ``method`` (a :class:`jaxmu.Method`) a trial program takes as
    traced arguments: :func:`dynamic_names` of its definition (``args`` is unused)."""
    return dynamic_names(method.definition)


_TRACE_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                 jax.errors.TracerIntegerConversionError, TypeError)


def _compiled(method, args, fast_compile: bool):
    """The compiled trial program and its compile seconds (0 on a cache hit).

    One program per (method, structural hyperparameters, input shapes): continuous
    hyperparameters are arguments (:meth:`jaxmu.Method.dynamic_fn`), so trials that differ
    only in them, in any seed study, reuse it. Should a structural setting need a concrete
    value of a traced field after all, that setting falls back to one program per trial.
    """
    name = method.definition.name
    dyn = traceable_names(method, args)
    opts = FAST_COMPILE if fast_compile else None
    hp = method.hp
    values = {k: np.float32(hp[k]) for k in dyn}
    shapes = tuple((np.shape(x), str(x.dtype)) for x in jax.tree.leaves(args))
    key = (name, method.model, tuple((k, v) for k, v in sorted(hp.items()) if k not in dyn),
           dyn, fast_compile, jax.tree.structure(args), shapes)
    if key in _COMPILED:
        return _COMPILED[key], values, 0.0
    t0 = time.perf_counter()
    if dyn:
        try:
            compiled = jax.jit(method.dynamic_fn(dyn), compiler_options=opts).lower(
                *args, values).compile()
        except _TRACE_ERRORS:  # this structural setting needs a concrete value: static
            dyn, values = (), {}
            fn = jax.jit(method.fn, compiler_options=opts).lower(*args).compile()
            compiled = lambda *a, _fn=fn: _fn(*a[:4])  # noqa: E731
    else:
        fn = jax.jit(method.fn, compiler_options=opts).lower(*args).compile()
        compiled = lambda *a, _fn=fn: _fn(*a[:4])  # noqa: E731
    if len(_COMPILED) > 64:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = compiled
    return compiled, values, time.perf_counter() - t0


def run_trial(task: SweepTask, method_name: str, hparams: Mapping[str, Any], *,
              fast_compile: bool = True, classifier_mias: bool = False) -> dict[str, Any]:
    """Unlearns ``task.original`` with ``method_name(**hparams)`` and scores it.

    The hyperparameters are validated on their concrete values first; the program is
    compiled once per structural setting (see :func:`dynamic_names`).

    Returns:
        ``values`` (the 4 objectives), ``metrics`` (U's :func:`jaxmu.evaluate` record),
        ``run_seconds`` and ``compile_seconds`` (0 when the program was reused), and
        ``unlearned`` (the ``(params, model_state)`` pair).

    Raises:
        ValueError: on bad hyperparameters (from :func:`jaxmu.methods.get_method`).
    """
    method = get_method(method_name, **hparams).bind(task.model)
    _ = method.stage  # range checks on concrete values
    args = (*task.original, task.splits, method_key(task.seed))
    compiled, values, t_compile = _compiled(method, args, fast_compile)
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args, values))
    t_run = time.perf_counter() - t0
    return _score(task, out, t_run, t_compile, classifier_mias)


def _score(task: SweepTask, out, t_run: float, t_compile: float,
           classifier_mias: bool = False) -> dict[str, Any]:
    from jaxmu import evaluate

    timings = {"run_seconds": t_run, "compile_seconds": t_compile}
    if math.isfinite(task.reference_seconds):
        timings["reference_seconds"] = task.reference_seconds
    metrics = evaluate(task.model, out, task.splits, timings=timings,
                       classifier_mias=classifier_mias, seed=task.seed)
    r = task.retrained_metrics
    if all(r.get(k, 0) > 0 for k in ("ra", "fa", "ta")):
        metrics["retdev"] = retdev(*(retention(metrics[k], r[k]) for k in ("ra", "fa", "ta")))
    return {"values": objective_values(metrics, r), "metrics": metrics,
            "run_seconds": t_run, "compile_seconds": t_compile, "unlearned": out}


def run_trials(task: SweepTask, method_name: str, hparams: Sequence[Mapping[str, Any]], *,
               width: int | None = None, fast_compile: bool = True
               ) -> list[dict[str, Any] | Exception]:
    """Several trials at once: those sharing a structural setting run as one population.

    Trials whose hyperparameters differ only in traced ones (:func:`traceable_names`) are
    one ``jax.vmap`` of :meth:`jaxmu.Method.dynamic_fn` over the stacked values, padded to
    ``width`` models (default ``len(hparams)``) so every batch reuses one program per
    structural setting; the others run one by one (:func:`run_trial`). Each trial is scored
    as in :func:`run_trial`; a vmapped group's run time is split evenly over its trials.

    Returns:
        One entry per trial, in order: :func:`run_trial`'s dict, or the exception a bad
        combination raised (other trials are unaffected).
    """
    width = int(width or len(hparams))
    if width < len(hparams):
        raise ValueError(f"width {width} < number of trials {len(hparams)}")
    results: list[dict[str, Any] | Exception | None] = [None] * len(hparams)
    groups: dict[Any, list[tuple[int, Any]]] = {}
    args = (*task.original, task.splits, method_key(task.seed))
    for i, hp in enumerate(hparams):
        try:
            m = get_method(method_name, **hp).bind(task.model)
            _ = m.stage  # range checks on concrete values
        except Exception as e:  # noqa: BLE001 - reported per trial
            results[i] = e
            continue
        dyn = traceable_names(m, args)
        static = tuple((k, v) for k, v in sorted(m.hp.items()) if k not in dyn)
        groups.setdefault(static if dyn else ("trial", i), []).append((i, m))
    opts = FAST_COMPILE if fast_compile else None
    for members in groups.values():
        if len(members) == 1:
            i, m = members[0]
            try:
                results[i] = run_trial(task, method_name, m.hp, fast_compile=fast_compile)
            except Exception as e:  # noqa: BLE001
                results[i] = e
            continue
        m0 = members[0][1]
        dyn = traceable_names(m0, args)
        padded = [m for _, m in members] + [members[-1][1]] * (width - len(members))
        values = {k: np.array([m.hp[k] for m in padded], np.float32) for k in dyn}
        shapes = tuple((np.shape(x), str(x.dtype)) for x in jax.tree.leaves(args))
        key = ("vmap", width, m0.definition.name, m0.model,
               tuple((k, v) for k, v in sorted(m0.hp.items()) if k not in dyn), dyn,
               fast_compile, jax.tree.structure(args), shapes)
        t_compile = 0.0
        try:
            if key not in _COMPILED:
                t0 = time.perf_counter()
                fn = jax.vmap(m0.dynamic_fn(dyn), in_axes=(None, None, None, None, 0))
                _COMPILED[key] = jax.jit(fn, compiler_options=opts).lower(*args,
                                                                          values).compile()
                t_compile = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = jax.block_until_ready(_COMPILED[key](*args, values))
        except Exception:  # noqa: BLE001 - fall back to one trial at a time
            for i, m in members:
                try:
                    results[i] = run_trial(task, method_name, m.hp, fast_compile=fast_compile)
                except Exception as e:  # noqa: BLE001
                    results[i] = e
            continue
        t_run = (time.perf_counter() - t0) / len(members)
        for j, (i, _) in enumerate(members):
            try:
                results[i] = _score(task, jax.tree.map(lambda a, j=j: a[j], out), t_run,
                                    t_compile / len(members))
            except Exception as e:  # noqa: BLE001
                results[i] = e
    return results  # type: ignore[return-value]


def make_objective(task: SweepTask, method_name: str, *, clean: bool = False,
                   fast_compile: bool = True) -> Callable[[Any], tuple[float, ...]]:
    """The Optuna objective for ``method_name`` on ``task``: unlearn, evaluate, return the
    four minimised objectives of :func:`jaxmu.sweep.objective_values` (docs/methods.md#search).

    A trial that raises (bad combination, non-finite model, ...) returns ``inf`` on all four
    objectives, as the reference does, with the error in the trial's user attribute
    ``error``; U's accuracies, MIAs and timings are stored as user attributes.
    """
    definition = get_method(method_name).definition

    def objective(trial):
        hp = suggest_hparams(definition, trial, task.e_max, clean=clean)
        try:
            res = run_trial(task, method_name, hp, fast_compile=fast_compile)
        except Exception as e:  # noqa: BLE001 - the reference's failed-trial semantics
            res = e
        return _record(trial, res)

    return objective


def _record(trial, res: dict[str, Any] | Exception) -> tuple[float, ...]:
    """Stores a trial's metrics (or its error) as user attributes; returns its values."""
    if isinstance(res, Exception):
        trial.set_user_attr("error", f"{type(res).__name__}: {res}")
        trial.set_user_attr("traceback", "".join(traceback.format_exception(res, limit=3)))
        return (math.inf,) * len(OBJECTIVE_NAMES)
    for k in ("ra", "fa", "va", "ta", "mia_val", "mia_test", "retdev", "indisc_val"):
        if k in res["metrics"]:
            trial.set_user_attr(k, res["metrics"][k])
    trial.set_user_attr("run_seconds", res["run_seconds"])
    trial.set_user_attr("compile_seconds", res["compile_seconds"])
    return tuple(res["values"])


class _Heartbeat:
    """Records heartbeats for asked (not optimize-run) trials, so a killed batch is detected
    as stale and retried like a killed ``study.optimize`` trial."""

    def __init__(self, storage, trial_ids):
        self.storage, self.ids = storage, list(trial_ids)
        interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self.stop.wait(self.interval):
            for i in self.ids:
                try:
                    self.storage.record_heartbeat(i)
                except _storage_errors():  # the main loop reports a lost database
                    pass

    def __enter__(self):
        if self.interval:
            for i in self.ids:
                self.storage.record_heartbeat(i)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.interval:
            self.thread.join()


def storage_url(path_or_url: str | Path) -> str:
    """A SQLAlchemy URL: paths become ``sqlite:///<absolute path>``; URLs pass through.

    Raises:
        StorageError: the directory of a path cannot be created (one line).
    """
    s = str(path_or_url)
    if "://" in s:
        return s
    p = Path(s).expanduser().resolve()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot open study storage {s}: cannot create {p.parent} "
                           f"({e.strerror or e}); choose a writable path (--storage)") from e
    return f"sqlite:///{p}"


def _storage_errors() -> tuple[type[BaseException], ...]:
    """Errors of a database that is unreachable, locked or gone (not of a bad request)."""
    import optuna
    import sqlalchemy.exc

    return (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
            optuna.exceptions.StorageInternalError)


def _shown(url: str) -> str:
    """The URL without its password."""
    try:
        import sqlalchemy.engine

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy can parse: shown as given
        return url


def _reason(e: BaseException) -> str:
    """The first line of the database driver's message behind ``e``."""
    while e.__cause__ is not None and not getattr(e, "orig", None):
        e = e.__cause__
    inner = getattr(e, "orig", None) or e
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__


def _open_error(url: str, e: BaseException) -> StorageError:
    reason = _reason(e)
    if isinstance(e, ImportError):
        name = e.name or reason.rpartition("No module named ")[2].strip("'\"") or "its driver"
        todo = f"install its database driver (pip install {name})"
    elif "locked" in reason.lower():
        todo = "another program holds a lock on it: wait for it to finish or stop it"
    else:
        todo = ("check that the path or URL is right and the database reachable and "
                "writable (--storage)")
    return StorageError(f"cannot open study storage {_shown(url)}: {reason}; {todo}")


def open_storage(path_or_url: str | Path, *, heartbeat_s: int = HEARTBEAT_S,
                 grace_s: int = GRACE_S, attempts: int = 8, timeout_s: float = 120):
    """An Optuna RDB storage with heartbeats: a trial whose process died (no heartbeat for
    ``grace_s`` seconds) is marked FAIL by a worker that samples on the database and
    re-queued with the same parameters, so a killed study loses no trial; completed trials
    are never re-run. (A lone worker restarted on the study resumes such a trial itself,
    under its number, without waiting: see :func:`run_study`.)

    Several workers may open the same fresh database at once: the first creates the
    schema, and a worker that loses that race (a duplicate-key or "table exists" error from
    the database) retries, up to ``attempts`` times with a growing pause. A SQLite file
    locked by another program is waited for ``timeout_s`` seconds per attempt.

    Raises:
        StorageError: the storage cannot be opened (unreachable, locked, a bad URL, a
            missing driver): one line naming it and what to do.
    """
    import optuna
    import sqlalchemy.exc

    url = storage_url(path_or_url)
    kwargs = {"connect_args": {"timeout": timeout_s}} if url.startswith("sqlite") else {}
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = (retry or optuna.storages.RetryFailedTrialCallback)(max_retry=2)
        for attempt in range(attempts):
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s,
                    grace_period=grace_s, heartbeat_stale_trial_callback=callback)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as e:
                lost_race = isinstance(e, sqlalchemy.exc.IntegrityError) or any(
                    m in str(e).lower() for m in ("already exists", "locked"))
                if not lost_race or attempt == attempts - 1:
                    raise _open_error(url, e) from e
                time.sleep(0.25 * (attempt + 1))
            except (sqlalchemy.exc.SQLAlchemyError, ImportError) as e:
                raise _open_error(url, e) from e
    raise AssertionError("unreachable")  # pragma: no cover


def _storage_label(storage: Any) -> str:
    url = getattr(getattr(storage, "engine", None), "url", None)
    return url.render_as_string(hide_password=True) if url is not None else type(storage).__name__


def _retrying(call: Callable[[], Any], storage: Any, retries: int, backoff_s: float) -> Any:
    """``call()``, retried with exponential backoff while the database is unreachable."""
    for attempt in range(retries + 1):
        try:
            return call()
        except _storage_errors() as e:
            if attempt == retries:
                raise StorageError(
                    f"lost the study database {_storage_label(storage)} ({_reason(e)}) and "
                    f"it did not come back after {retries} retries; completed trials are "
                    "kept in it: rerun when it is reachable to resume") from e
            time.sleep(backoff_s * 2 ** attempt)
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def _quiet_lost_heartbeats():
    """Optuna's heartbeat threads die with a traceback when the database is gone; the main
    loop retries and reports that in one line, so their tracebacks are not shown."""
    previous = threading.excepthook

    def hook(args):
        if not isinstance(args.exc_value, _storage_errors()):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def study_sampler(seed: int | None, population_size: int = 50):
    """Optuna's NSGA-III sampler, re-seeded per trial once its trial numbers skip.

    ``NSGAIIISampler(seed=seed)`` draws every trial from one random stream that starts at
    ``seed`` in each process, and keeps NSGA-III's state (generations, cached parent
    populations) in the study. This sampler keeps that stream while the trials it samples
    are numbered 0, 1, 2, ... and leaves it otherwise:

    * While the trials it samples are numbered 0, 1, 2, ... in order, it is
      ``NSGAIIISampler(seed=seed)`` unchanged, so published trial sequences are reproduced.
    * From the first trial whose number breaks that sequence (the study already held
      trials, or another worker took a number in between), each trial ``n`` it samples
      draws from a stream seeded by ``(seed, n)``. Trial numbers are unique in a study's
      storage, so two workers never share a stream (without this, a second worker would
      repeat the first one's random first-generation trials).

    :func:`run_study` uses it in two places. A lone worker draws every trial in an
    in-memory copy of the study rebuilt from the database at each (re)start by *replay*
    (a fresh sampler is asked the stored trials again, in order, and told their values;
    trial numbers there are always 0, 1, 2, ...), so its draws are the first case's
    stream: a study killed and resumed any number of times draws exactly the trials of
    one uninterrupted run. Only a worker that cannot replay (another worker is running
    trials of the study, trials are queued, or the stored trials are not a lone
    worker's draws) samples on the database itself, and so in the second case; which
    worker takes which number then depends on timing, as does the selection.

    Args:
        seed: the base seed (the model seed); ``None`` draws from fresh entropy.
        population_size: the NSGA-III generation size.

    Returns:
        An ``optuna.samplers.NSGAIIISampler``.

    Raises:
        ValueError: ``population_size`` is not an integer >= 2.
    """
    import optuna

    if int(population_size) != population_size or population_size < 2:
        raise ValueError(f"population_size must be an integer >= 2, got {population_size}")

    class _PerTrialSeedNSGAIII(optuna.samplers.NSGAIIISampler):
        def __init__(self) -> None:
            super().__init__(seed=seed, population_size=int(population_size))
            self._next_in_stream: int | None = 0  # None once the sequence broke
            self._current: int | None = None

        def _enter(self, trial) -> None:
            n = trial.number
            if n == self._current:
                return
            self._current = n
            if self._next_in_stream == n:
                self._next_in_stream += 1
                return
            self._next_in_stream = None
            if seed is None:
                return
            own, rand = np.random.SeedSequence([int(seed), int(n)]).generate_state(2)
            self._rng.rng.seed(int(own))  # crossover, mutation, parent selection
            self._random_sampler._rng.rng.seed(int(rand))  # random (first-generation) draws

        def sample_relative(self, study, trial, search_space):
            self._enter(trial)
            return super().sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            self._enter(trial)
            return super().sample_independent(study, trial, param_name, param_distribution)

    return _PerTrialSeedNSGAIII()


OWNER_ATTR = "jaxmu:owner"
"""Trial system attribute: ``"<host> <pid> <process start>"`` of the worker that created it
(a RUNNING trial whose owner is dead is resumed by the next lone worker)."""
BATCH_ATTR = "jaxmu:batch"
"""Trial system attribute: ``[first, size]``, the batch it was asked in (indices of the
lone-worker sequence), so a replay asks and tells trials in the original order."""


def _start_time(pid: int) -> str:
    """The start time of process ``pid`` (clock ticks since boot; Linux), or ``""``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def _owner() -> str:
    import socket

    return f"{socket.gethostname()} {os.getpid()} {_start_time(os.getpid())}"


def _dead_owner(trial, stale: set[int]) -> bool:
    """Whether RUNNING ``trial`` belongs to no running worker: its creator on this host has
    exited (or is this process, which runs no trial between steps), or its heartbeat is
    stale. Trials without an owner (other tools) count as alive unless stale."""
    import socket

    if trial._trial_id in stale:
        return True
    host, _, rest = str(trial.system_attrs.get(OWNER_ATTR, "")).partition(" ")
    pid, _, start = rest.partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    from jaxmu.io import pid_alive

    return (int(pid) == os.getpid() or not pid_alive(int(pid))
            or bool(start) and _start_time(int(pid)) != start)


class _NoReplay(Exception):
    """The stored trials are not a lone worker's: sample on the database instead."""


@dataclasses.dataclass
class _Member:
    shadow: Any  # the in-memory trial
    hparams: dict[str, Any]
    trial_id: int | None = None  # the stored trial, once created (or adopted)
    done: bool = False


class _Replay:
    """The draws of a lone, uninterrupted worker for a study that may have been killed.

    Trials are drawn in an in-memory *shadow* study with :func:`study_sampler`, then
    created in the database fully formed (RUNNING, with their parameters, owner and batch)
    in one write. At the first step and after any error the shadow is rebuilt from the
    database: its complete trials (and the unfinished batch, if any) are asked again from
    a fresh sampler in order, checked to get the stored parameters, and told the stored
    values. A trial left RUNNING by a killed worker is resumed under its own number with its
    parameters (a batch is re-run whole, so vmapped trials see the same batch), so the
    study's trials, their numbers and everything selected from them are those of an
    uninterrupted run.
    """

    def __init__(self, study, seed, population_size, suggest, batch, n_trials):
        self.study, self.seed, self.population_size = study, seed, population_size
        self.suggest, self.batch, self.n_trials = suggest, batch, n_trials
        self.active = True
        self.shadow = None
        self.known: set[int] = set()
        self.pending: list[_Member] | None = None
        self.first = 0  # shadow index of the pending batch's first trial

    def stop(self, why: str) -> None:
        self.active = False
        warnings.warn(f"study {self.study.study_name}: {why}, so its next trials are drawn "
                      "with per-trial seeds (not replayed as a lone worker's; see run_study)",
                      stacklevel=3)

    def _shadow_ask(self, shadow) -> _Member:
        t = shadow.ask()
        return _Member(t, self.suggest(t))

    def rebuild(self) -> None:
        """The shadow and the unfinished batch from the database (:class:`_NoReplay`: not a
        lone worker's trials)."""
        import optuna

        state = optuna.trial.TrialState
        storage = self.study._storage
        trials = self.study.get_trials(deepcopy=False)
        stale: set[int] = set()
        get_stale = getattr(storage, "_get_stale_trial_ids", None)
        if (get_stale is not None
                and getattr(storage, "get_heartbeat_interval", lambda: None)() is not None
                and any(t.state == state.RUNNING for t in trials)):
            stale = set(get_stale(self.study._study_id))
        for t in trials:
            if t.state == state.RUNNING and not _dead_owner(t, stale):
                raise _NoReplay(f"trial {t.number} is running in another worker")
            if t.state == state.WAITING:
                raise _NoReplay(f"trial {t.number} is queued")
        shadow = optuna.create_study(directions=["minimize"] * len(OBJECTIVE_NAMES),
                                     sampler=study_sampler(self.seed, self.population_size))
        seq = [t for t in trials if t.state in (state.COMPLETE, state.RUNNING)]
        index, k, pending = 0, 0, None

        def batch_of(t) -> tuple[int, int]:
            first, size = t.system_attrs.get(BATCH_ATTR) or (
                index, min(self.batch, max(self.n_trials - index, 1)))
            return int(first), int(size)

        while k < len(seq):
            first, size = batch_of(seq[k])
            if first != index or pending is not None:
                raise _NoReplay(f"trial {seq[k].number} is out of a lone worker's order")
            group = []
            while k < len(seq) and len(group) < size and batch_of(seq[k]) == (first, size):
                group.append(seq[k])
                k += 1
            members = [self._shadow_ask(shadow) for _ in range(size)]
            for m, t in zip(members, group, strict=False):  # may lack trials never created
                if m.shadow.params != t.params:
                    raise _NoReplay(f"trial {t.number} is not the one a lone worker draws")
                m.trial_id = t._trial_id
            states = [t.state for t in group]
            n_done = states.count(state.COMPLETE)
            if states[:n_done] != [state.COMPLETE] * n_done:
                t = group[states.index(state.RUNNING)]
                raise _NoReplay(f"trial {t.number} is out of a lone worker's order")
            for m, t in zip(members[:n_done], group, strict=False):
                shadow.tell(m.shadow, t.values)
                m.done = True
            if n_done < size:
                pending = members
                self.first = index
            index += size
        self.shadow, self.pending = shadow, pending
        self.known = {t._trial_id for t in trials}

    def _create(self, m: _Member, first: int, size: int) -> int:
        import optuna

        shadow = m.shadow.study._storage.get_trial(m.shadow._trial_id)
        attrs = {k: v for k, v in shadow.system_attrs.items() if k.endswith(":generation")}
        template = optuna.trial.create_trial(
            state=optuna.trial.TrialState.RUNNING, params=shadow.params,
            distributions=shadow.distributions,
            system_attrs={**attrs, OWNER_ATTR: _owner(), BATCH_ATTR: [first, size]})
        return self.study._storage.create_new_trial(self.study._study_id,
                                                    template_trial=template)

    def step(self, n_complete: int, run: Callable, callbacks: Sequence[Callable]) -> bool:
        """Runs the next batch (or the unfinished one); ``False``: replay is off, sample on
        the database."""
        import optuna

        if not self.active:
            return False
        storage = self.study._storage
        try:
            if self.shadow is None:
                self.rebuild()
            trials = self.study.get_trials(deepcopy=False)
            foreign = [t for t in trials if t._trial_id not in self.known]
            if foreign:
                raise _NoReplay(f"another worker added trial {foreign[0].number}")
            if self.pending is None:
                size = min(self.batch, self.n_trials - n_complete)
                self.first = len(self.shadow.get_trials(deepcopy=False))
                self.pending = [self._shadow_ask(self.shadow) for _ in range(size)]
            expected = len(trials)
            for m in self.pending:
                if m.trial_id is None:
                    m.trial_id = self._create(m, self.first, len(self.pending))
                    self.known.add(m.trial_id)
                    if storage.get_trial_number_from_id(m.trial_id) != expected:
                        for o in self.pending:  # never run: another worker draws now
                            if o.trial_id is not None and not o.done:
                                storage.set_trial_state_values(
                                    o.trial_id, optuna.trial.TrialState.FAIL)
                        raise _NoReplay("another worker added a trial")
                    expected += 1
        except _NoReplay as e:
            self.stop(str(e))
            return False
        except BaseException:
            self.shadow = None  # rebuilt from the database at the next step
            raise
        try:
            todo = [m for m in self.pending if not m.done]
            with _Heartbeat(storage, [m.trial_id for m in todo]):
                results = run([m.hparams for m in self.pending])
            for m, res in zip(self.pending, results, strict=True):
                if m.done:
                    continue
                trial = optuna.Trial(self.study, m.trial_id)
                values = _record(trial, res)
                frozen = self.study.tell(trial, values)
                self.shadow.tell(m.shadow, values)
                m.done = True
                for cb in callbacks:
                    cb(self.study, frozen)
        except BaseException:
            self.shadow = None
            raise
        self.pending = None
        return True


def study_name(task_name: str, method_name: str, seed: int, clean: bool = False) -> str:
    return f"{task_name}-{method_name}-seed{seed}" + ("-clean" if clean else "")


def completed(study) -> list:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def run_study(
    task: SweepTask,
    method_name: str,
    *,
    n_trials: int,
    storage: Any,
    name: str | None = None,
    clean: bool = False,
    fast_compile: bool = True,
    population_size: int = 50,
    batch: int = 1,
    callbacks: Sequence[Callable] = (),
    progress: bool = False,
    storage_retries: int = STORAGE_RETRIES,
    storage_backoff_s: float = STORAGE_BACKOFF_S,
):
    """Runs (or resumes) one NSGA-III study until it has ``n_trials`` complete trials.

    Several processes may call this on the same storage and study name at once (workers
    on one SQLite file, or on a PostgreSQL URL across machines): each adds trials until
    the study holds ``n_trials`` complete ones. Selection uses the first ``n_trials``
    complete trials by number (as the reference), so trials beyond them never change it;
    with concurrent workers, which trials those are depends on completion order, so run
    the selection after every worker has returned.

    Resume by replay: a lone worker draws its trials from an in-memory copy of the study
    with :func:`study_sampler` (``NSGAIIISampler(seed=task.seed)`` there) and creates each
    in the database fully formed, with its parameters, its worker (host, pid) and its batch.
    At each (re)start, and after a lost database, that copy is rebuilt by asking the stored
    trials again from a fresh sampler, in their order and batches, checking that it draws
    the stored parameters, and telling it the stored values. A trial left RUNNING by a
    worker that is gone (killed, Ctrl-C, a lost database) is then run again under its own
    number with its parameters (a batch is re-run whole, so vmapped trials see the same
    batch), without waiting for its heartbeat to go stale. A study killed and resumed any
    number of times therefore ends with the trials (numbers, parameters, values) of one
    uninterrupted run, bitwise, and so with its selection; an uninterrupted study is
    bitwise the one of Optuna's sampler, so published studies are reproduced.

    A worker that cannot replay samples on the database with :func:`study_sampler` (trial
    ``n`` from a stream seeded by ``(task.seed, n)``, so workers do not repeat each other's
    random trials) and says why in one warning: another worker is running trials of the
    study (a RUNNING trial of a live process, of another host with a live heartbeat, or
    another worker's new trial seen mid-study), trials are queued (``enqueue_trial``, or
    heartbeat retries), or the stored trials are not the ones a lone worker draws (several
    workers, another sampler or seed).

    Args:
        task: O, R and the splits of one model seed.
        method_name: a registered method.
        n_trials: complete trials wanted (the reference: 100).
        storage: a path (SQLite file), a SQLAlchemy URL or an ``optuna`` storage.
        name: the study name (default :func:`study_name`).
        clean: drop dead search dimensions (see :func:`suggest_hparams`).
        fast_compile: compile trial programs with :data:`FAST_COMPILE`.
        population_size: NSGA-III generation size (Optuna's default 50).
        batch: trials asked at once and evaluated together (:func:`run_trials`: those
            sharing a structural setting run as one vmapped population). A killed batch
            is re-run whole by the next start (or, with concurrent workers, detected by
            heartbeats and retried). 1 (default) is the reference's one-trial-at-a-time
            loop.
        callbacks: Optuna callbacks ``f(study, frozen_trial)`` after each trial.
        progress: show a progress bar.
        storage_retries, storage_backoff_s: when the database becomes unreachable
            mid-study (a lost connection, a lock held too long), the step that failed
            (one trial, or one batch) is retried this many times after pauses of
            ``storage_backoff_s * 2**k`` seconds (default 6 over about a minute); a trial
            cut off there stays RUNNING and is resumed by the retried step or the rerun,
            like a killed one.

    Returns:
        The ``optuna.Study``.

    Raises:
        ValueError: on an unknown method or ``n_trials < 1``.
        StorageError: the storage cannot be opened, or was lost and did not come back
            within the retries (one line; completed trials are kept, rerun to resume).

    References:
        Deep Unlearn's search (docs/methods.md#search): NSGAIIISampler(seed=model_seed),
        four minimised objectives, SQLite storage, 100 trials per seed; resume by replay
        and the per-trial seeds of extra workers are this library's (the reference runs
        one worker per study).
    """
    import optuna

    get_method(method_name)  # validates the name
    if int(n_trials) != n_trials or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer, got {n_trials}")
    if int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch}")
    if isinstance(storage, (str, Path)):
        storage = open_storage(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    def retrying(call):
        return _retrying(call, storage, storage_retries, storage_backoff_s)

    study = retrying(lambda: optuna.create_study(
        storage=storage,
        sampler=study_sampler(task.seed, population_size),
        study_name=name or study_name(task.name, method_name, task.seed, clean),
        directions=["minimize"] * len(OBJECTIVE_NAMES),
        load_if_exists=True,
    ))
    retrying(lambda: study.set_metric_names(list(OBJECTIVE_NAMES)))
    objective = make_objective(task, method_name, clean=clean, fast_compile=fast_compile)

    def n_complete() -> int:
        return retrying(lambda: len(completed(study)))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_trials, desc=f"{method_name} seed {task.seed}", leave=False,
                   initial=min(n_complete(), n_trials))
    definition = get_method(method_name).definition

    def suggest(trial) -> dict[str, Any]:
        return suggest_hparams(definition, trial, task.e_max, clean=clean)

    def run(hps: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        if batch > 1:
            return run_trials(task, method_name, hps, width=batch, fast_compile=fast_compile)
        try:  # the objective's semantics (make_objective)
            return [run_trial(task, method_name, hps[0], fast_compile=fast_compile)]
        except Exception as e:  # noqa: BLE001
            return [e]

    replay = _Replay(study, task.seed, population_size, suggest, batch, n_trials)

    def step(n: int) -> None:
        if replay.step(n, run, callbacks):
            return
        if batch == 1:
            study.optimize(objective, n_trials=1, callbacks=list(callbacks))
            return
        optuna.storages.fail_stale_trials(study)
        with warnings.catch_warnings():  # heartbeats of asked trials: _Heartbeat below
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            asked = [study.ask() for _ in range(min(batch, n_trials - n))]
        hps = [suggest_hparams(definition, t, task.e_max, clean=clean) for t in asked]
        with _Heartbeat(study._storage, [t._trial_id for t in asked]):
            results = run_trials(task, method_name, hps, width=batch,
                                 fast_compile=fast_compile)
        for t, res in zip(asked, results, strict=True):
            frozen = study.tell(t, _record(t, res))
            for cb in callbacks:
                cb(study, frozen)

    with _quiet_lost_heartbeats():
        while (n := n_complete()) < n_trials:
            retrying(lambda n=n: step(n))
            if bar is not None:
                bar.update(min(n_complete(), n_trials) - n)
    if bar is not None:
        bar.close()
    return study


def trials_of(study, seed: int | None = None) -> list[dict[str, Any]]:
    """Complete trials as plain dicts (``number values params study seed user_attrs``)."""
    return [{"number": t.number, "values": list(t.values) if t.values else None,
             "params": dict(t.params), "study": study.study_name, "seed": seed,
             "user_attrs": dict(t.user_attrs)} for t in completed(study)]


def best_hparams(studies: Sequence[tuple[Any, int]], n_trials: int) -> dict[str, Any]:
    """The best trial across the seed studies ``[(study, seed), ...]``: the smallest L2 norm
    of the four objectives among each study's first ``n_trials`` complete trials
    (:func:`jaxmu.sweep.select_best`, docs/methods.md#search)."""
    pool = [t for study, seed in studies for t in trials_of(study, seed)]
    return select_best(pool, first_n=n_trials)
