"""``run(task, method)``: the single-run pipeline the CLIs, the benchmark study and the
scenarios share.

Train (or load from the cache) the original O on the training rows and the retrained R on
the retain rows, run the method from O, evaluate it against O and R
(:func:`jaxmu.evaluate`), optionally judge it on a population (F-score, U-LiRA, audits),
and return a :class:`~jaxmu.experiment.RunRecord`.

The reference methods (:class:`jaxmu.methods.Reference`) read what they need from the
trained task instead of running: ``retrain`` *is* R (the exact answer, costing R's training
time) and ``original`` *is* O (no cost); inside a population, ``retrain`` retrains with the
task's own recipe (:meth:`jaxmu.methods.Method.for_recipe`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxmu import evaluation as pipelines
from jaxmu import train
from jaxmu._evaluate import evaluate
from jaxmu.experiment._task import Evaluation, Scenario, Task
from jaxmu.io import provenance
from jaxmu.methods import Method, get_method, method_key
from jaxmu.metrics import MIASkippedWarning, cross_entropy_losses, timed
from jaxmu.records import RunRecord, ScenarioRecord

Pair = tuple[Any, Any]


@dataclasses.dataclass(frozen=True)
class Fitted:
    """O and R of one (setting, seed): what every run of a method on it starts from.

    Attributes:
        model, splits, seed: the setting.
        original, retrained: ``(params, model_state)`` of O and R.
        original_seconds, retrain_seconds, retrain_compile_seconds: their training times.
        cache: the cache keys of O and R (None when not cached).
    """

    model: Any
    splits: Any
    seed: int
    original: Pair
    retrained: Pair
    retrain_seconds: float
    original_seconds: float = math.nan
    retrain_compile_seconds: float = 0.0
    cache: dict[str, Any] | None = None


def fit_references(task: Task, seed: int | None = None) -> Fitted:
    """Trains (or loads from ``task.cache_dir``) O and R of the task's (or ``seed``'s)
    model seed, R from the same init as O."""
    _, splits, model = task.load()
    seed = task.seed if seed is None else seed
    recipe, cache, bar = task.recipe, task.cache_dir, task.progress
    po, so, mo = train.cached_fit(cache, model, splits.pool, splits.mask("train"), seed, recipe,
                            progress=bar)
    pr, sr, mr = train.cached_fit(cache, model, splits.pool, splits.retain, seed, recipe,
                            progress=bar)
    return Fitted(model, splits, seed, (po, so), (pr, sr),
                  retrain_seconds=float(mr["timings"]["train_s"]),
                  original_seconds=float(mo["timings"]["train_s"]),
                  retrain_compile_seconds=float(mr["timings"]["compile_s"]),
                  cache={"original": mo.get("cache_key"), "retrain": mr.get("cache_key")})


def as_method(method: str | Method, hparams: Mapping[str, Any] | None = None) -> Method:
    """``method`` (a registered name or a :class:`~jaxmu.methods.Method`) with ``hparams``
    over its own."""
    if isinstance(method, Method):
        return method.with_hparams(**hparams) if hparams else method
    return get_method(method, **(hparams or {}))


def _finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree.leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.floating))


def unlearn(fitted: Fitted, method: Method) -> tuple[Pair, float, float]:
    """``(unlearned pair, run seconds, compile seconds)`` of ``method`` from O; a reference
    method reads its answer from ``fitted`` (:class:`jaxmu.methods.Reference`: ``retrain``
    is R with R's training time, ``original`` is O at no cost)."""
    if method.is_reference:
        return method.definition.reference.outcome(fitted)
    return timed(method.bind(fitted.model).jitted, *fitted.original, fitted.splits,
                 method_key(fitted.seed))


def run_fitted(fitted: Fitted, method: Method, *, classifier_mias: bool = True,
               evaluate_unusable: bool = False, forget_losses: bool = False) -> RunRecord:
    """Runs ``method`` from ``fitted``'s O and evaluates it against O and R.

    ``usable`` is False when the unlearned parameters or the accuracies ``ra``, ``fa``,
    ``ta`` are not finite; an unusable model is not evaluated (its metrics are the run
    and compile seconds) unless ``evaluate_unusable``. MIAs that could not run (a split
    too small) are missing from the metrics and their reasons are in ``warnings``.
    Timings: ``run_s``, ``compile_s``, ``retrain_s``; the metrics' ``rte`` needs a run time
    above 0 (``original`` has none).
    """
    out, t_run, t_compile = unlearn(fitted, method)
    usable = _finite(out[0])
    timings = {"run_seconds": t_run, "compile_seconds": t_compile}
    if t_run > 0 and math.isfinite(fitted.retrain_seconds):
        timings["reference_seconds"] = fitted.retrain_seconds
    rec = RunRecord(method=method.name, seed=fitted.seed, hparams=dict(method.hp),
                    metrics=dict(timings), usable=usable,
                    timings={"run_s": t_run, "compile_s": t_compile,
                             "retrain_s": fitted.retrain_seconds})
    if not (usable or evaluate_unusable):
        rec.metrics = {"run_seconds": t_run, "compile_seconds": t_compile}
        return rec
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MIASkippedWarning)
        rec.metrics = evaluate(fitted.model, out, fitted.splits, original=fitted.original,
                               retrained=fitted.retrained, timings=timings,
                               classifier_mias=classifier_mias, seed=fitted.seed)
    for w in caught:
        if issubclass(w.category, MIASkippedWarning):
            rec.warnings.append(str(w.message))
        else:  # not ours to collect: show it as usual
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    rec.usable = usable and all(math.isfinite(rec.metrics.get(k, math.nan))
                                for k in ("ra", "fa", "ta"))
    if forget_losses and usable:
        z = train.predict(fitted.model, *out, fitted.splits, "forget")
        rec.forget_losses = [float(x) for x in np.asarray(cross_entropy_losses(
            np.asarray(z), np.asarray(train.labels(fitted.splits, "forget"))))]
    return rec


def population_eval(evaluation: Evaluation, model, splits, original: Pair | None,
                    method: Method, recipe, cache_dir: str | None, progress: bool,
                    plot_dir: Path | None = None, *, seed: int = 0,
                    forget_fraction: float = 0.1,
                    given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The population evaluation ``evaluation.kind`` of ``method`` (not ``"single"``):
    :func:`jaxmu.evaluation.fscore_pipeline`, :func:`~jaxmu.evaluation.ulira_pipeline` or
    :func:`jaxmu.audits.run_audits` (against retraining with ``recipe`` as the oracle).
    A reference method takes ``recipe``'s hyperparameters (``retrain`` retrains as R was
    trained) except for those in ``given``."""
    ev = evaluation
    method = method.for_recipe(recipe, keep=tuple(given or ()))
    if ev.audits:
        from jaxmu.audits import AuditConfig, run_audits

        config = ev.audit or AuditConfig(num_shadows=ev.shadows, num_forget_sets=ev.forget_sets,
                                         forget_fraction=forget_fraction, flip=ev.ulira_flip,
                                         seed=seed)
        oracle = get_method("retrain").for_recipe(recipe).bind(model)
        return run_audits(model, splits, method.bind(model), ev.audits, oracle_method=oracle,
                          config=config, recipe=recipe, strategy=ev.strategy, chunk=ev.chunk,
                          cache_dir=cache_dir, plot_dir=plot_dir, progress=progress)
    bound = method.bind(model)
    common = dict(seed=seed, config=recipe, strategy=ev.strategy, chunk=ev.chunk,
                  cache_dir=cache_dir, progress=progress)
    if ev.kind == "fscore":
        return pipelines.fscore_pipeline(model, splits, original, bound,
                                         num_models=ev.models, **common)
    return pipelines.ulira_pipeline(model, splits, bound, num_shadows=ev.shadows,
                                    num_forget_sets=ev.forget_sets,
                                    forget_fraction=forget_fraction, flip=ev.ulira_flip,
                                    variant=ev.ulira_variant, **common)


def record_path(out: str | Path, task: Task, method: Method, evaluation: Evaluation) -> Path:
    """``OUT/<dataset>/<method>_seed<s>[_<eval>].json``."""
    suffix = "" if evaluation.kind == "single" else f"_{evaluation.kind}"
    return Path(out) / Path(task.dataset).stem / f"{method.name}_seed{task.seed}{suffix}.json"


def run(task: Task, method: str | Method, hparams: Mapping[str, Any] | None = None, *,
        evaluation: Evaluation | None = None, out: str | Path | None = None,
        config: Mapping[str, Any] | None = None,
        warn: Callable[[str], None] | None = None) -> RunRecord:
    """Runs ``method`` (with ``hparams`` over its own) on ``task`` and evaluates it.

    Args:
        task: the setting (data, splits, model, recipe, seed, cache).
        method: a registered name or a :class:`~jaxmu.methods.Method`.
        hparams: hyperparameter overrides.
        evaluation: single model (default) or a population evaluation.
        out: write the record to :func:`record_path` under this folder (None: not written;
            population plots go beside it).
        config: the invocation recorded under ``config`` (default: the task's and the
            evaluation's fields).
        warn: called with the reason when the method degenerates on the model (e.g. CT on
            an MLP is fine-tuning) before anything trains, and, once the record is written,
            with each of its ``warnings`` (an MIA that could not run, and why).

    Returns:
        The :class:`~jaxmu.experiment.RunRecord` (``path`` set when written).

    Raises:
        ValueError: an unknown method or bad hyperparameters, missing data or splits the
            data cannot hold (one line).
    """
    ev = evaluation or Evaluation()
    m = as_method(method, hparams)
    _, splits, model = task.load()
    degenerate = m.bind(model).degenerate_reason()
    if degenerate and warn is not None:
        warn(degenerate)
    fitted = fit_references(task)
    r = run_fitted(fitted, m, classifier_mias=task.classifier_mias, evaluate_unusable=True)
    if config is None:
        config = {**dataclasses.asdict(task), "eval": dataclasses.asdict(ev)}
    rec = RunRecord(
        experiment=task.dataset, eval=ev.kind, method=m.name, hparams=m.hp,
        config=dict(config), recipe=task.recipe.to_dict(), model=model.name,
        degenerate=degenerate, splits=splits.sizes(), seed=task.seed, metrics=r.metrics,
        warnings=r.warnings,
        timings={"original_s": fitted.original_seconds, "retrain_s": fitted.retrain_seconds,
                 "unlearned_s": r.timings["run_s"], "compile_s": r.timings["compile_s"]},
        cache=fitted.cache, provenance=provenance())
    path = record_path(out, task, m, ev) if out is not None else None
    if ev.kind != "single":
        rec.evaluation = population_eval(
            ev, model, splits, fitted.original, m, task.recipe, task.cache_dir, task.progress,
            path.with_suffix("") if path else None, seed=task.seed,
            forget_fraction=task.forget_fraction, given=hparams)
    if path is not None:
        rec.write(path)
    for note in rec.warnings if warn is not None else ():
        warn(note)
    return rec


def run_scenario(task: Task, scenario: Scenario, *, out: str | Path | None = None,
                 config: Mapping[str, Any] | None = None) -> ScenarioRecord:
    """Exact vs approximate unlearning over deletion sizes (``scenario.ratios``:
    :func:`jaxmu.scenarios.deletion_ratio_sweep`) or a sequence of ``scenario.requests``
    deletion requests (:func:`jaxmu.scenarios.sequential_deletion`); written to
    ``OUT/<dataset>/deletion_<sweep|sequential>_seed<s>.json`` when ``out`` is given.

    Returns:
        The :class:`~jaxmu.records.ScenarioRecord` (``path`` set when written; ``config``,
        the invocation, is its ``cli``).

    Raises:
        ValueError: methods or sizes the scenario cannot run (nothing written).
    """
    from jaxmu.scenarios import default_sisa_config, deletion_ratio_sweep, sequential_deletion

    ds, _, model = task.load()
    recipe, methods = task.recipe, scenario.resolved_methods()
    kw = dict(seed=task.seed, config=recipe, split_seed=task.split_seed,
              val_fraction=task.val_fraction,
              sisa_config=default_sisa_config(recipe, scenario.sisa_shards),
              cache_dir=task.cache_dir, progress=task.progress)
    if scenario.ratios is not None:
        res = deletion_ratio_sweep(ds, model, methods, list(scenario.ratios), **kw)
        kind = "sweep"
    else:
        size = scenario.request_size
        res = sequential_deletion(ds, model, methods, scenario.requests,
                                  size if size < 1 else int(size), **kw)
        kind = "sequential"
    rec = ScenarioRecord.from_dict(
        {**res, "experiment": task.dataset, "scenario": kind,
         "cli": dict(config) if config is not None else dataclasses.asdict(task),
         "provenance": provenance()}, "scenario result")
    if out is not None:
        rec.write(Path(out) / task.dataset / f"deletion_{kind}_seed{task.seed}.json")
    return rec
