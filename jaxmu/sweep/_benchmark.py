"""The Deep Unlearn study as one call: sweep every method, final multi-seed runs, rank, report.

Layout of ``out_dir`` (every step resumes from what is already there):

* ``config.json`` – the study's configuration and provenance;
* ``study.db`` – the Optuna studies (one per method and search seed) unless ``storage`` is
  given (any SQLAlchemy URL, e.g. PostgreSQL, shared by many workers);
* ``best_hparams.json`` – per method: chosen hyperparameters and the trial that found them;
* ``runs/<method>/seed<s>.json`` – the final runs (skipped when present);
* ``ulira/<method>.json`` – with ``ulira=...``: U-LiRA of each method with its chosen
  hyperparameters and of the references (skipped when present for the same design);
* ``audits/<method>.json`` and ``audits/<method>/*.png`` – with ``audits=...``: the audits
  of :func:`jaxmu.audits.run_audits` (KLoM, RMIA / U-RMIA, relearning, attack power against
  shadow count, U-LiRA) of each method and reference on one shared design population
  (skipped when present for the same hyperparameters, audits and configuration);
* ``study.json`` – everything above in one dict, the input of :func:`jaxmu.report.write_report`;
* ``report/`` – ``report.md``, ``results.csv``, ``results.json`` and PNG figures.

References:
    Cadet et al., Deep Unlearn (2024) §4 and Tables 1-2; docs/methods.md#search (the
    search and the final runs), docs/evaluation.md#ranking (Table 1).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxmu.experiment import AUDIT_EVALS, Evaluation, Fitted, Plan, Study, Task, run_fitted
from jaxmu.io import read_json
from jaxmu.methods import degenerate_reason, get_method, list_methods, reference_methods
from jaxmu.metrics import MIASkippedWarning
from jaxmu.records import MethodResult, RunRecord, StudyRecord
from jaxmu.report import ranking_rows, study_ranking, write_report
from jaxmu.sweep._study import (
    SweepTask,
    best_hparams,
    open_storage,
    run_study,
    study_name,
)

SUMMARY_METRICS = ("ra", "fa", "va", "ta", "rr", "fr", "tr", "retdev", "mia_val", "mia_test",
                   "indisc_val", "indisc_test", "classifier_mia", "js_original", "rte",
                   "run_seconds", "compile_seconds")
"""The headline metrics, summarised first and in this order; :func:`summarize` covers every
other numeric run metric too (:func:`summary_metrics`)."""


def default_methods() -> list[str]:
    """Every registered method except presets (same search space as their base) and the
    reference methods (original, retrain: :func:`jaxmu.methods.reference_methods`)."""
    references = reference_methods()
    return [m for m in list_methods(include_presets=False) if m not in references]


def e_max(original_epochs: int) -> int:
    """The unlearning epoch budget E_max = ceil(0.2 x the original's epochs), Deep Unlearn's
    bound on searched epochs (37 for 182 epochs, 10 for 50; docs/methods.md#hyperparameters)."""
    return max(1, math.ceil(0.2 * original_epochs - 1e-9))


def prepare_task(model, pool, splits, seed: int, recipe, *, cache_dir=None, name="task",
                 progress: bool = False) -> SweepTask:
    """Trains (or loads from the cache) O and R of ``seed`` and evaluates R."""
    from jaxmu import evaluate
    from jaxmu.train import cached_fit

    po, so, _ = cached_fit(cache_dir, model, pool, splits.mask("train"), seed, recipe,
                           progress=progress)
    pr, sr, meta_r = cached_fit(cache_dir, model, pool, splits.retain, seed, recipe,
                                progress=progress)
    r_metrics = evaluate(model, (pr, sr), splits, classifier_mias=False, seed=seed)
    return SweepTask(model=model, splits=splits, seed=seed, original=(po, so),
                     retrained=(pr, sr), retrained_metrics=r_metrics,
                     e_max=e_max(recipe.epochs),
                     reference_seconds=float(meta_r["timings"]["train_s"]), name=name)


def final_run(task: SweepTask, method_name: str, hparams: dict[str, Any], *,
              classifier_mias: bool = True) -> RunRecord:
    """One final run: the method with ``hparams`` on ``task`` (normal compilation), fully
    evaluated against O and R by :func:`jaxmu.experiment.run_fitted` (the pipeline of
    :func:`jaxmu.experiment.run`), with run time excluding compile.

    ``usable`` is False when the unlearned parameters or its accuracies are not finite
    (the paper's "does not produce usable models", which sends a method to group F).
    A reference method reads its answer from the task (:class:`jaxmu.methods.Reference`:
    ``original`` returns O at no cost, ``retrain`` returns R with R's training time) and
    ignores ``hparams``.

    Returns:
        The final-run form of :class:`jaxmu.records.RunRecord` (``method``, ``seed``,
        ``hparams``, ``usable``, ``metrics``, ``forget_losses``, ``timings``).
    """
    fitted = Fitted(task.model, task.splits, task.seed, task.original, task.retrained,
                    retrain_seconds=task.reference_seconds)
    method = get_method(method_name)
    if not method.is_reference:
        method = method.with_hparams(**hparams)
    rec = run_fitted(fitted, method, classifier_mias=classifier_mias, forget_losses=True)
    rec.method, rec.hparams = method_name, hparams
    for note in rec.warnings:  # shown as before (the record of a final run has no notes)
        warnings.warn(note, MIASkippedWarning, stacklevel=2)
    return rec


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(
        x, bool | np.bool_)


def _run_dicts(runs: Sequence[RunRecord | Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r.to_dict() if isinstance(r, RunRecord) else r for r in runs]


def summary_metrics(runs: Sequence[RunRecord | Mapping[str, Any]]) -> list[str]:
    """Every numeric metric of the usable runs: :data:`SUMMARY_METRICS` first (in that
    order, those present), then the others (``acc_err_*``, ``mia_auc_*``,
    ``feature_mia_*``, distances, ``original_*`` / ``retrained_*``, ...) sorted by name."""
    usable = [r for r in _run_dicts(runs) if r.get("usable")]
    seen = {k for r in usable for k, v in r.get("metrics", {}).items() if _is_number(v)}
    return [m for m in SUMMARY_METRICS if m in seen] + sorted(seen - set(SUMMARY_METRICS))


def summarize(runs: Sequence[RunRecord | Mapping[str, Any]], metrics: Sequence[str] | None = None,
              *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Mean over the usable runs of each metric with a 95% bootstrap CI over seeds.

    Args:
        runs: final-run records (:func:`final_run`, or their dicts); only ``usable`` ones
            count.
        metrics: the metrics to summarise; None (default) means every numeric metric in the
            usable runs, in :func:`summary_metrics` order (the report's fixed list first).
        seed: seed of the bootstrap.

    Returns:
        metric -> ``{"value": mean, "ci": [low, high], "n": runs}``. A metric seen in one
        run only gets a degenerate interval ``[v, v]``; ``n`` counts the runs that have it
        with a finite value; metrics without any finite value are left out.

    References:
        :func:`jaxmu.metrics.bootstrap_ci` (percentile bootstrap over seeds);
        docs/statistics.md#bootstrap-units (seeds are the independent unit).
    """
    from jaxmu.metrics import bootstrap_ci

    out: dict[str, dict[str, Any]] = {}
    usable = [r for r in _run_dicts(runs) if r.get("usable")]
    for m in (summary_metrics(runs) if metrics is None else metrics):
        vals = np.array([r["metrics"][m] for r in usable
                         if _is_number(r.get("metrics", {}).get(m))], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            continue
        if vals.size == 1:
            v = lo = hi = float(vals[0])
        else:
            v, lo, hi = bootstrap_ci(vals, seed=seed)
        out[m] = {"value": float(v), "ci": [float(lo), float(hi)], "n": int(vals.size)}
    return out


def run_benchmark(
    pool,
    model,
    splits,
    recipe,
    out_dir: str | Path,
    *,
    methods: Sequence[str] | None = None,
    trials: int = 100,
    search_seeds: Sequence[int] = (0, 1, 2),
    seeds: int = 10,
    storage: str | None = None,
    cache_dir: str | None = None,
    clean: bool = False,
    classifier_mias: bool = True,
    population_size: int = 50,
    trial_batch: int = 1,
    fast_compile: bool = True,
    ulira: Mapping[str, Any] | None = None,
    audits: Sequence[str] | None = None,
    audit_config: Any = None,
    audit_flags: str | None = None,
    strategy: str = "auto",
    chunk: int | None = None,
    progress: bool = True,
    report: bool = True,
    command: str | None = None,
    run_command: str | None = None,
    log: Callable[[str], None] = print,
) -> StudyRecord:
    """Runs (or resumes) the whole study on one (dataset, architecture) setting.

    1. O and R for every seed in ``search_seeds`` and ``range(seeds)`` (cached);
    2. per method, an NSGA-III study of ``trials`` complete trials per search seed, the best
       trial across them by the L2 norm of the 4 objectives (docs/methods.md#search);
    3. ``seeds`` final runs with the chosen hyperparameters, fully evaluated, plus the
       references O and R; per-metric mean and bootstrap CI over seeds;
    4. the Table 1 ranking on RetDev and on indiscernibility (test MIA), Failed included;
       a method that degenerates on ``model`` (:func:`jaxmu.methods.degenerate_reason`,
       e.g. CT on an MLP is fine-tuning) is ranked but marked: ``degenerate`` holds the
       reason in its :class:`~jaxmu.records.MethodResult` (else None) and in its ranking rows (else
       absent), and one warning line is logged up front;
    5. optionally U-LiRA of every method and reference (:func:`ulira_study`);
    6. optionally the audits of every method and reference on one shared design population
       (:func:`audit_study`): ``study.audits`` holds method -> report without its
       per-example arrays (those stay in ``audits/<method>.json``);
    7. ``study.json`` and the report directory (:func:`jaxmu.report.write_report`).

    Args:
        pool: the data :class:`jaxmu.Pool` (its ``name`` labels the study).
        model: the architecture. splits: the fixed splits (DU: one split, seed 123).
        recipe: the O/R :class:`jaxmu.train.TrainConfig`; E_max = ceil(0.2 x its epochs).
        out_dir: the study directory (see the module docstring); resumable.
        methods: registered method names (default :func:`default_methods`).
        trials: complete trials per (method, search seed) study (reference: 100).
        search_seeds: model seeds of the search studies (reference: 0, 1, 2).
        seeds: final runs, model seeds ``0 .. seeds-1`` (reference: 10).
        storage: SQLAlchemy URL shared by workers (default ``out_dir/study.db``).
        cache_dir: cache of O and R (see :func:`jaxmu.train.cached_fit`).
        clean: drop dead search dimensions. classifier_mias: also run the classifier and
            four-feature MIAs in the final runs. population_size: NSGA-III generation size.
        trial_batch: trials evaluated together, as one vmapped population where their
            structural settings agree (:func:`jaxmu.sweep.run_trials`).
        fast_compile: compile trial programs with fewer XLA passes (final runs never do).
        ulira: U-LiRA design, e.g. ``{"shadows": 16, "forget_sets": 4}`` (optional keys
            ``forget_fraction`` (default 0.1) and ``seed`` (default 0)); None skips U-LiRA.
            Shadow originals are cached in ``cache_dir`` (else ``out_dir/cache``) and shared
            by all methods.
        audits: audit names of :data:`jaxmu.audits.AUDITS` to run for every method and
            reference after the final runs (None: none). The shadow originals and the
            retrained (oracle) population are built once, in ``cache_dir`` (else
            ``out_dir/cache``), and shared by all methods.
        audit_config: the :class:`jaxmu.audits.AuditConfig` of the audits (None: its
            defaults).
        audit_flags: the experiment CLI's options that reproduce ``audits`` and
            ``audit_config`` for one method (e.g. ``"--eval all --shadows 8 ..."``); RECIPES.md
            appends them to ``run_command`` for one command per method (the CLIs pass them).
        strategy, chunk: population strategy of the audits (results do not depend on it).
        progress: tqdm bars. report: write the report directory. log: status lines.
        command, run_command: the study's command line and the single-run command of this
            setting (for RECIPES.md; the experiment CLIs pass them).

    Returns:
        The :class:`~jaxmu.records.StudyRecord` (``study.json`` is its
        :meth:`~jaxmu.records.StudyRecord.to_dict`; ``report`` set when the report was
        written).

    Raises:
        ValueError: on an unknown method, ``trials < 1``, ``seeds < 1``, no search seed,
            a bad ``ulira`` design, bad audit names or an ``audit_config`` that is not an
            :class:`jaxmu.audits.AuditConfig` (all checked before anything is written).
    """
    from jaxmu.io import provenance, write_json

    methods = list(methods) if methods else default_methods()
    valid = list_methods()
    for m in methods:
        if m not in valid:
            raise ValueError(f"unknown method {m!r}; valid: {', '.join(valid)}")
    if int(trials) != trials or trials < 1:
        raise ValueError(f"trials must be a positive integer, got {trials}")
    if int(seeds) != seeds or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds}")
    search_seeds = [int(s) for s in search_seeds]
    if not search_seeds:
        raise ValueError("search_seeds: need at least one seed")
    design = ulira_design_config(ulira) if ulira is not None else None
    audit_names = audit_names_of(audits) if audits is not None else None
    if audit_names is None and (audit_config is not None or audit_flags is not None):
        raise ValueError("audit_config and audit_flags need audits=...")
    if audit_names is not None:
        audit_config = _audit_config(audit_config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    setting = f"{pool.name or 'dataset'}-{model.name}"
    config = {"dataset": pool.name or "dataset", "model": model.name,
              "methods": methods, "trials": trials, "search_seeds": search_seeds,
              "seeds": seeds, "e_max": e_max(recipe.epochs), "recipe": recipe.to_dict(),
              "splits": splits.sizes(), "clean": clean, "population_size": population_size,
              "classifier_mias": classifier_mias, "fast_compile": fast_compile,
              "trial_batch": trial_batch, "ulira": design,
              "audits": (None if audit_names is None else
                         {"audits": list(audit_names), "config": _config_dict(audit_config),
                          "flags": audit_flags}),
              "storage": storage or str(out / "study.db"), "command": command,
              "run_command": run_command}
    _check_same_setting(out / "config.json", config, splits)
    config["splits_hash"] = _splits_hash(splits)
    write_json(out / "config.json", {**config, "provenance": provenance()})
    t_start = time.perf_counter()
    references = reference_methods()
    for m in methods:  # marked in study.methods and the ranking rows; said once up front
        why = None if m in references else degenerate_reason(m, None, model)
        if why:
            log(f"warning: {why}")

    tasks: dict[int, SweepTask] = {}

    def task(seed: int) -> SweepTask:
        if seed not in tasks:
            tasks[seed] = prepare_task(model, pool, splits, seed, recipe,
                                       cache_dir=cache_dir, name=setting, progress=False)
        return tasks[seed]

    store = open_storage(storage or out / "study.db")
    best_path = out / "best_hparams.json"
    best: dict[str, Any] = read_json(best_path) if best_path.exists() else {}
    bar = _bar(progress, len(methods) * len(search_seeds), "search")
    t0 = time.perf_counter()
    for m in methods:
        if m in references:  # answered from the task, never searched
            continue
        studies = []
        for s in search_seeds:
            studies.append((run_study(task(s), m, n_trials=trials, storage=store,
                                      name=study_name(setting, m, s, clean), clean=clean,
                                      fast_compile=fast_compile,
                                      population_size=population_size, batch=trial_batch,
                                      progress=progress),
                            s))
            bar.update(1)
        try:
            b = best_hparams(studies, trials)
            chosen = {**get_method(m).hp, **b["params"]}
            best[m] = {"hparams": chosen, "search": {
                "n_trials": trials, "score": b["score"], "seed": b["seed"],
                "trial": b["number"], "study": b["study"], "values": b["values"],
                "search_seeds": search_seeds, "e_max": e_max(recipe.epochs)}}
        except ValueError:  # every trial failed: the method is Failed, runs use defaults
            best[m] = {"hparams": get_method(m).hp, "search": {
                "n_trials": trials, "score": None, "failed": True}}
        write_json(best_path, best)
    bar.close()
    t_search = time.perf_counter() - t0

    t0 = time.perf_counter()
    study = StudyRecord(config["dataset"], model.name, config)
    runs_of = [*references, *(m for m in methods if m not in references)]
    bar = _bar(progress, len(runs_of) * seeds, "final runs")
    for m in runs_of:
        if m in study.methods:
            continue
        hp = best.get(m, {}).get("hparams", get_method(m).hp if m not in references else {})
        runs: list[RunRecord] = []
        for s in range(seeds):
            path = out / "runs" / m / f"seed{s}.json"
            old = read_json(path) if path.exists() else None
            if old is not None and old.get("hparams") == json.loads(json.dumps(hp)):
                runs.append(RunRecord.from_dict(old, str(path)))
            else:
                runs.append(final_run(task(s), m, hp, classifier_mias=classifier_mias))
                write_json(path, runs[-1])
            bar.update(1)
        why = None if m in references else degenerate_reason(m, hp, model)
        study.methods[m] = MethodResult(hp, runs, summarize(runs),
                                        search=best.get(m, {}).get("search"),
                                        reference=m in references, degenerate=why)
    bar.close()
    t_final = time.perf_counter() - t0

    study.ranking = study_ranking(ranking_rows(study.to_dict()), seeds)
    chosen = {m: v.hparams for m, v in study.methods.items()}
    t_ulira = 0.0
    if design is not None:
        t0 = time.perf_counter()
        study.ulira = ulira_study(
            model, splits, recipe, chosen,
            out / "ulira", design=design,
            cache_dir=cache_dir or str(out / "cache"), progress=progress, log=log)
        t_ulira = time.perf_counter() - t0
    t_audits = 0.0
    if audit_names is not None:
        t0 = time.perf_counter()
        reports = audit_study(
            model, splits, recipe, chosen,
            out / "audits", audits=audit_names, config=audit_config,
            cache_dir=cache_dir or str(out / "cache"), strategy=strategy, chunk=chunk,
            progress=progress, log=log)
        study.audits = {m: compact_audit_report(r) for m, r in reports.items()}
        t_audits = time.perf_counter() - t0
    study.provenance = provenance()
    study.timings = {"search_s": t_search, "final_s": t_final, "ulira_s": t_ulira,
                     "audits_s": t_audits, "total_s": time.perf_counter() - t_start}
    write_json(out / "study.json", study)
    if report:
        study.report = str(write_report(study.to_dict(), out / "report"))
    log(f"study {setting}: {len(methods)} methods, {trials} trials x {len(search_seeds)} "
        f"search seeds, {seeds} final seeds in {study.timings['total_s']:.0f} s "
        f"(search {t_search:.0f} s, final runs {t_final:.0f} s) -> {out}")
    return study


ULIRA_DEFAULTS = {"shadows": 16, "forget_sets": 4, "forget_fraction": 0.1, "seed": 0}


def ulira_design_config(ulira: Mapping[str, Any]) -> dict[str, Any]:
    """The U-LiRA design of a study: ``ulira`` over :data:`ULIRA_DEFAULTS`, validated.

    Raises:
        ValueError: unknown keys, an odd or < 4 shadow count, no forget set, or a forget
            fraction outside (0, 1).
    """
    if not isinstance(ulira, Mapping):
        raise ValueError(f"ulira: expected a mapping like {ULIRA_DEFAULTS}, got {ulira!r}")
    unknown = sorted(set(ulira) - set(ULIRA_DEFAULTS))
    if unknown:
        raise ValueError(f"ulira: unknown keys {unknown}; valid: {', '.join(ULIRA_DEFAULTS)}")
    d = {**ULIRA_DEFAULTS, **ulira}
    for k in ("shadows", "forget_sets", "seed"):
        if isinstance(d[k], bool) or int(d[k]) != d[k]:
            raise ValueError(f"ulira[{k!r}]: expected an integer, got {d[k]!r}")
        d[k] = int(d[k])
    if d["shadows"] < 4 or d["shadows"] % 2:
        raise ValueError(f"ulira['shadows']: need an even number >= 4, got {d['shadows']}")
    if d["forget_sets"] < 1:
        raise ValueError(f"ulira['forget_sets']: need >= 1, got {d['forget_sets']}")
    if not 0 < float(d["forget_fraction"]) < 1:
        raise ValueError(f"ulira['forget_fraction']: must lie in (0, 1), "
                         f"got {d['forget_fraction']}")
    d["forget_fraction"] = float(d["forget_fraction"])
    return d


def _population_method(name: str, hp: Mapping[str, Any], recipe) -> tuple[Any, dict]:
    """The method ``name`` as a population runs it, and the hyperparameters recorded for it:
    a reference method takes the recipe's (:meth:`jaxmu.methods.Method.for_recipe`;
    ``hp`` is ignored), any other method ``hp``."""
    method = get_method(name)
    if method.is_reference:
        method = method.for_recipe(recipe)
        return method, method.hp
    return method.with_hparams(**hp), dict(hp)


def ulira_study(model, splits, recipe, hparams: Mapping[str, Mapping[str, Any]],
                out_dir: str | Path, *, design: Mapping[str, Any], cache_dir: str | None,
                progress: bool = True, log: Callable[[str], None] = print,
                ) -> dict[str, dict[str, Any]]:
    """U-LiRA (:func:`jaxmu.evaluation.ulira_pipeline`) of each method with its
    hyperparameters, one shared set of shadow originals (cached in ``cache_dir``).

    A reference method takes ``recipe``'s hyperparameters
    (:meth:`jaxmu.methods.Method.for_recipe`: ``retrain`` retrains as R was trained);
    ``original`` is the no-op: the two anchors (about 0.5 and clearly above). Each result is
    written to ``out_dir/<method>.json`` and reused when its hyperparameters and design match.

    Returns:
        method -> the U-LiRA report (``ulira_accuracy`` with its CI, AUC, TPRs,
        ``per_example_accuracy``, timings).

    References:
        docs/evaluation.md#u-lira (jaxmu's protocol); Cadet et al., Deep Unlearn (2024),
        U-LiRA.
    """
    from jaxmu.evaluation import ulira_pipeline
    from jaxmu.io import write_json

    design = ulira_design_config(design)
    out, res = Path(out_dir), {}
    for m, hp in hparams.items():
        method, hp = _population_method(m, hp, recipe)
        path = out / f"{m}.json"
        want = json.loads(json.dumps({"hparams": hp, "design": design}))
        if path.exists():
            old = read_json(path)
            if {"hparams": old.get("hparams"), "design": old.get("design")} == want:
                res[m] = old["ulira"]
                continue
        rep = ulira_pipeline(model, splits, method.bind(model),
                             num_shadows=design["shadows"], num_forget_sets=design["forget_sets"],
                             forget_fraction=design["forget_fraction"], seed=design["seed"],
                             config=recipe, cache_dir=cache_dir, progress=progress)
        write_json(path, {"method": m, **want, "ulira": rep})
        res[m] = rep
        ci = rep.get("ulira_accuracy_ci")
        log(f"U-LiRA {m}: {rep['ulira_accuracy']:.3f}"
            + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    return res


def audit_names_of(audits: Sequence[str] | str) -> tuple[str, ...]:
    """The audits of a study: distinct names of :data:`jaxmu.audits.AUDITS` in that order,
    ``"all"`` meaning every audit.

    Raises:
        ValueError: an empty, repeated or unknown name.
    """
    from jaxmu.audits import AUDITS

    names = tuple(AUDITS) if audits == "all" else (
        (audits,) if isinstance(audits, str) else tuple(audits))
    if not names or len(set(names)) != len(names) or any(a not in AUDITS for a in names):
        raise ValueError(f"audits: expected distinct names from {list(AUDITS)} or 'all', "
                         f"got {audits!r}")
    return tuple(a for a in AUDITS if a in names)


def _audit_config(config: Any) -> Any:
    from jaxmu.audits import AuditConfig

    if config is None:
        return AuditConfig()
    if not isinstance(config, AuditConfig):
        raise ValueError(f"audit_config: expected a jaxmu.audits.AuditConfig, got "
                         f"{type(config).__name__}")
    return config


def _config_dict(config: Any) -> dict[str, Any]:
    """An :class:`~jaxmu.audits.AuditConfig` as the JSON dict stored with its results."""
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(config)))


# Per-example arrays of an audit report: kept in audits/<method>.json, left out of the study.
_PER_EXAMPLE = {("klom", "per_example"), ("rmia", "membership", "reference_probability"),
                ("rmia", "unlearning", "reference_probability")}


def compact_audit_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """An audit report (:func:`jaxmu.audits.run_audits`) without its per-example arrays
    (KLoM per example, RMIA's reference probabilities), the form kept in the study and
    its results.json; every summary number, interval, curve and plot path is kept."""
    if not isinstance(report, Mapping):
        raise ValueError(f"report: expected a mapping, got {type(report).__name__}")

    def strip(x: Any, path: tuple[str, ...]) -> Any:
        if not isinstance(x, Mapping):
            return x
        return {k: strip(v, (*path, k)) for k, v in x.items() if (*path, k) not in _PER_EXAMPLE}

    return strip(report, ())


def audit_study(model, splits, recipe, hparams: Mapping[str, Mapping[str, Any]],
                out_dir: str | Path, *, audits: Sequence[str] | str, config: Any = None,
                cache_dir: str | None, strategy: str = "auto", chunk: int | None = None,
                progress: bool = True, log: Callable[[str], None] = print,
                ) -> dict[str, dict[str, Any]]:
    """The audits (:func:`jaxmu.audits.run_audits`) of each method with its
    hyperparameters, all on one design population.

    Every method runs on the same design (shadow originals, forget sets, targets: fixed by
    ``config``), so the shadow originals, their logits and the oracle (retraining with
    ``recipe``, :func:`jaxmu.methods.retrain.recipe_hparams`) population are built for the
    first method and read from the population store in ``cache_dir`` for every other one
    (each report's ``population.from_store`` says which). ``retrain`` is audited with the
    recipe's hyperparameters (against an independent retrain population: the null),
    ``original`` is the no-op. Each report is written atomically to
    ``out_dir/<method>.json`` (``{"method", "hparams", "audits", "config", "recipe",
    "report"}``) after its plots (``out_dir/<method>/*.png``), and reused when its
    hyperparameters, audits, configuration and recipe match.

    Args:
        model: the architecture. splits: the study's splits. recipe: the originals' recipe.
        hparams: method -> hyperparameters (references: ``{}``), in report order.
        out_dir: where the reports and plots go.
        audits: names of :data:`jaxmu.audits.AUDITS` (or ``"all"``).
        config: the :class:`jaxmu.audits.AuditConfig` (None: its defaults).
        cache_dir: the cache of originals and populations (None: nothing shared: every
            method trains its own).
        strategy, chunk: population strategy (results do not depend on it).
        progress: progress lines. log: one status line per method.

    Returns:
        method -> the report of :func:`jaxmu.audits.run_audits` (its ``plots`` pointing
        into ``out_dir/<method>/``).

    Raises:
        ValueError: bad audit names or a ``config`` that is not an ``AuditConfig``.
    """
    from jaxmu.audits import run_audits
    from jaxmu.io import write_json

    names = audit_names_of(audits)
    config = _audit_config(config)
    if not isinstance(hparams, Mapping):
        raise ValueError(f"hparams: expected a mapping method -> hyperparameters, got "
                         f"{type(hparams).__name__}")
    oracle = get_method("retrain").for_recipe(recipe).bind(model)
    out, res = Path(out_dir), {}
    for m, hp in hparams.items():
        method, hp = _population_method(m, hp, recipe)
        path = out / f"{m}.json"
        want = json.loads(json.dumps({"hparams": hp, "audits": list(names),
                                      "config": _config_dict(config),
                                      "recipe": recipe.to_dict()}))
        if path.exists():
            old = read_json(path)
            if {k: old.get(k) for k in want} == want and isinstance(old.get("report"), dict):
                res[m] = _here(old["report"], out / m)
                continue
        rep = run_audits(model, splits, method.bind(model), names,
                         oracle_method=oracle, config=config, recipe=recipe,
                         strategy=strategy, chunk=chunk, cache_dir=cache_dir,
                         plot_dir=out / m, progress=progress)
        rep = _here(rep, out / m)
        write_json(path, {"method": m, **want, "report": rep})
        res[m] = rep
        pop = rep["population"]
        src = ", ".join(f"{k} {'from the store' if v else 'built'}"
                        for k, v in pop["from_store"].items())
        log(f"audits {m}: {', '.join(names)} in {sum(rep['timings'].values()):.1f} s "
            f"(+ populations {pop['seconds']:.1f} s: {src})")
    return res


def _here(report: dict[str, Any], plot_dir: Path) -> dict[str, Any]:
    """``report`` with its plot paths pointing into ``plot_dir`` (absolute; plots whose
    file is missing are dropped), so a moved study directory still finds them."""
    plots = {}
    for k, v in (report.get("plots") or {}).items():
        p = (plot_dir / Path(str(v)).name).resolve()
        if p.exists():
            plots[k] = str(p)
    return {**report, "plots": plots}


SETTING_KEYS = ("dataset", "model", "recipe", "splits", "clean", "e_max", "splits_hash")


def _splits_hash(splits) -> str:
    import hashlib

    h = hashlib.sha256()
    for name in ("forget", "retain", "val", "test"):
        h.update(np.asarray(splits.mask(name)).tobytes())
    return h.hexdigest()[:16]


def _check_same_setting(path: Path, config: dict[str, Any], splits) -> None:
    """Refuses to resume a study directory made with another setting (its trials and runs
    would be reused against different O and R)."""
    if not path.exists():
        return
    old = read_json(path)
    new = {**json.loads(json.dumps(config)), "splits_hash": _splits_hash(splits)}
    diff = [k for k in SETTING_KEYS if k in old and old[k] != new.get(k)]
    if diff:
        raise ValueError(f"{path.parent} holds a study of another setting (differs in "
                         f"{', '.join(diff)}); use another output directory")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(progress: bool, total: int, desc: str):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc)


def run_task_benchmark(task: Task, out: str | Path, study: Study | None = None,
                       evaluation: Evaluation | None = None) -> StudyRecord:
    """:func:`run_benchmark` of a :class:`jaxmu.experiment.Task` (its data, splits, model
    and recipe) with the options of ``study`` into ``OUT/<dataset>/benchmark-<model>``, with
    the experiment CLI's command lines of the study and of one run recorded for RECIPES.md.

    Args:
        task: the setting; its ``cache_dir``, ``classifier_mias`` and ``progress`` apply.
        out: the results folder.
        study: the :class:`jaxmu.experiment.Study` options (None: its defaults; empty
            ``methods``: :func:`default_methods`).
        evaluation: ``"ulira"``: U-LiRA of every method (``shadows`` x ``forget_sets``,
            the task's seed and forget fraction); an audit kind: the audits of every
            method with ``evaluation.audit`` (recorded with
            :meth:`~jaxmu.experiment.Evaluation.audit_flags`), on its ``strategy`` and
            ``chunk``; None or ``"single"``: neither.

    Raises:
        ValueError: an evaluation a study cannot take (``"fscore"``), or as
            :func:`run_benchmark`.
    """
    study = study or Study()
    ev = evaluation or Evaluation()
    Plan(task, evaluation=ev, study=study)  # the study takes this evaluation
    ds, splits, model = task.load()
    methods = list(study.methods) or default_methods()
    ulira, audits = ev.kind == "ulira", ev.kind in AUDIT_EVALS
    flags = ev.audit_flags() if audits and ev.audit is not None else None
    run_command = (f"python -m experiments.{task.dataset} {task.setting_flags()}"
                   + ("" if task.classifier_mias else " --no-mia"))
    command = (f"{run_command} --benchmark --methods {','.join(methods)} --trials "
               f"{study.trials} --search-seeds {study.search_seeds} --seeds {study.seeds} "
               f"--population-size {study.population_size} --trial-batch {study.trial_batch}"
               + (" --clean" if study.clean else "")
               + (f" --eval ulira --shadows {ev.shadows} --forget-sets {ev.forget_sets} "
                  f"--seed {task.seed}" if ulira else "") + (f" {flags}" if flags else ""))
    design = ({"shadows": ev.shadows, "forget_sets": ev.forget_sets,
               "forget_fraction": task.forget_fraction, "seed": task.seed} if ulira else None)
    kw: dict[str, Any] = {}
    if audits:
        kw = dict(audits=audit_names_of(ev.kind), audit_config=ev.audit, audit_flags=flags,
                  strategy=ev.strategy, chunk=ev.chunk)
    return run_benchmark(ds.pool, model, splits, task.recipe,
                         Path(out) / task.dataset / f"benchmark-{model.name}",
                         methods=methods, command=command, run_command=run_command,
                         trials=study.trials, search_seeds=range(study.search_seeds),
                         seeds=study.seeds, storage=study.storage, clean=study.clean,
                         population_size=study.population_size,
                         trial_batch=study.trial_batch, cache_dir=task.cache_dir,
                         classifier_mias=task.classifier_mias, ulira=design,
                         progress=task.progress, **kw)
