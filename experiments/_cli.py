"""The shared experiment CLI: argparse -> :class:`jaxmu.experiment.Plan` (the library checks
the options) -> library call -> printer. Each dataset module (``experiments.digits``, ...)
calls :func:`main`; the per-dataset defaults are data (:data:`jaxmu.data.DATASET_DEFAULTS`).
Bad arguments, missing data and faults of the environment (:class:`jaxmu.io.IOFault`) exit
2 with one line on stderr; Ctrl-C exits 130 (rerunning resumes, docs/reliability.md).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from experiments import _audit_cli
from jaxmu._argparse import ArgumentParser
from jaxmu._names import DATASET_DEFAULTS, EVALS, MODEL_VARIANTS, MODELS, SCENARIOS, STRATEGIES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
MISSING = "–"  # en dash: a metric that is not in the record (jaxmu.experiment.MISSING)


class UsageError(Exception):
    """A bad argument: reported in one line, exit code 2."""


def build_parser(dataset: str) -> ArgumentParser:
    d = DATASET_DEFAULTS[dataset]
    p = ArgumentParser(prog=f"python -m experiments.{dataset}", description=f"Unlearn a forget "
                       f"set from a model trained on {dataset}: train (or load from the cache) "
                       "the original O and the retrained R, run --method, evaluate, print a "
                       "table and write JSON.")
    a = p.add_argument
    a("--method", default="ft", help="unlearning method (see --list-methods)")
    a("--hp", action="append", metavar="KEY=VALUE",
      help="method hyperparameter override (repeatable)")
    a("--list-methods", nargs="?", const="text", choices=("text", "markdown"), help="list "
      "methods with their one-line recipes and exit ('markdown': the README's methods table)")
    a("--seed", type=int, default=0, help="model seed (init, data order, method)")
    a("--split-seed", type=int, default=123, help="split seed (DU uses 123)")
    a("--epochs", type=int, default=d.epochs, help=f"epochs to train O and R (default "
      f"{d.epochs})")
    a("--batch-size", type=int, default=d.batch_size, help="O/R training batch size")
    a("--lr", type=float, default=d.lr, help="O/R training learning rate")
    a("--model", default=d.model, choices=(*MODELS, *MODEL_VARIANTS),
      help=f"model (default {d.model})")
    a("--forget-fraction", type=float, default=0.1,
      help="forget fraction of the non-val train set (0, 1)")
    a("--val-fraction", type=float, default=0.15, help="val fraction (0, 1)")
    a("--forget-scenario", default="random", help=f"forget-set scenario: {', '.join(SCENARIOS)}")
    a("--train-size", type=int, default=None, metavar="N", help="keep a class-stratified N of "
      "the official train part (seeded by --split-seed; default: all)")
    a("--test-size", type=int, default=None, metavar="N",
      help="keep a class-stratified N of the official test part (default: all)")
    a("--data-dir", default=None,
      help="data folder: IDX files (mnist, fashion_mnist) or a tfds data dir")
    a("--out", default="results", help="output directory for the JSON result")
    a("--cache-dir", default=".jaxmu_cache", help="cache of trained O/R models ('' disables)")
    a("--no-rebuild", action="store_true", help="a corrupt cache entry is an error (exit 2) "
      "instead of being moved aside and rebuilt")
    a("--no-compile-cache", action="store_true", help="do not keep compiled XLA programs in "
      "CACHE_DIR/xla (on by default; env JAXMU_COMPILE_CACHE=0 turns it off, =DIR moves it)")
    a("--no-mia", action="store_true",
      help="skip the classifier and feature MIAs (the loss MIA always runs)")
    a("--eval", default="single", choices=EVALS,
      help="single model (default), competition F-score, U-LiRA, or an audit on one cached "
      "population: klom, rmia (RMIA and U-RMIA), relearn, shadow-curve, all (U-LiRA and every "
      "audit); with --benchmark, U-LiRA or the audits of every method")
    a("--models", type=int, default=512,
      help="--eval fscore: models per population (unlearned and retrained)")
    a("--shadows", type=int, default=64, help="--eval ulira: shadow originals")
    a("--forget-sets", type=int, default=10, help="--eval ulira: forget sets per shadow")
    a("--ulira-flip", action="store_true", help="--eval ulira: also score horizontally flipped "
      "images (the statistic averaged over both views)")
    a("--ulira-variant", default="online", choices=("online", "offline"), help="--eval ulira: "
      "likelihood ratio of both worlds (online, default) or a one-sided test against the "
      "never-seen world (offline)")
    a("--strategy", default="auto", choices=STRATEGIES,
      help="population strategy (results do not depend on it)")
    a("--chunk", type=int, default=None, help="models per chunk (chunked)")
    a("--quiet", action="store_true", help="no progress bars")
    _audit_cli.add_arguments(p)
    a = p.add_argument_group("benchmark (the Deep Unlearn study: sweep, final runs, ranking, "
                             "report)").add_argument
    a("--benchmark", action="store_true",
      help="run the whole study into OUT/<dataset>/benchmark-<model> (resumable)")
    a("--methods", default=None,
      help="comma-separated methods (default: all but presets and references)")
    a("--trials", type=int, default=100,
      help="complete Optuna trials per method and search seed (DU: 100)")
    a("--search-seeds", type=int, default=3, help="model seeds 0..N-1 searched (DU: 3)")
    a("--seeds", type=int, default=10, help="final runs per method (DU: 10)")
    a("--storage", default=None, help="Optuna storage: SQLite path or SQLAlchemy URL shared by "
      "workers (default OUT/.../study.db)")
    a("--clean", action="store_true", help="drop the reference's dead search dimensions")
    a("--population-size", type=int, default=50,
      help="NSGA-III generation size (Optuna default 50)")
    a("--trial-batch", type=int, default=1,
      help="trials evaluated at once, vmapped where their structure agrees")
    a = p.add_argument_group("deletion scenarios (survey paper 003: exact vs "
                             "approximate)").add_argument
    a("--deletion-ratios", default=None, metavar="R1,R2,...",
      help="deletion-ratio sweep over these forget fractions, e.g. 0.01,0.1,0.5")
    a("--sequential-requests", type=int, default=None, metavar="N",
      help="N deletion requests applied one after another")
    a("--request-size", type=float, default=0.05,
      help="rows per request: a count (>= 1) or a fraction of train (< 1)")
    a("--compare-methods", default=None, metavar="A,B,...",
      help="methods compared with retrain (default: --method and sisa)")
    a("--sisa-shards", type=int, default=5, help="SISA shards (default 5)")
    return p


def _list(text: str | None) -> list[str]:
    return [m.strip() for m in (text or "").split(",") if m.strip()]


def _prepare(a: argparse.Namespace, dataset: str):
    """The options as a :class:`jaxmu.experiment.Plan` (checked by the library) with its task
    loaded, before anything trains or is written; a bad value raises :class:`UsageError`."""
    from jaxmu.experiment import Evaluation, Plan, Scenario, Study, Task
    from jaxmu.methods import parse_hp

    try:
        hp = parse_hp(a.hp)
        ev = Evaluation(a.eval, a.models, a.shadows, a.forget_sets, a.ulira_flip,
                        a.ulira_variant, a.strategy, a.chunk, _audit_cli.config(a))
        ratios = None if a.deletion_ratios is None else tuple(
            float(x) for x in _list(a.deletion_ratios))
        sc = None if ratios is None and a.sequential_requests is None else Scenario(
            tuple(_list(a.compare_methods) or dict.fromkeys([a.method, "sisa"])), ratios,
            a.sequential_requests, a.request_size, a.sisa_shards, a.method, hp)
        study = Study(tuple(_list(a.methods)), a.trials, a.search_seeds, a.seeds, a.storage,
                      a.clean, a.population_size, a.trial_batch) if a.benchmark else None
        task = Task(dataset, a.model, a.epochs, a.batch_size, a.lr, None, a.forget_scenario,
                    a.forget_fraction, a.val_fraction, a.split_seed, a.seed, a.data_dir,
                    a.train_size, a.test_size, None if a.no_cache else a.cache_dir,
                    not a.no_mia, not a.quiet)
        plan = Plan(task, a.method, hp, ev, sc, study)
        task.load()  # missing data or splits the data cannot hold: one line, exit 2
    except ValueError as e:
        raise UsageError(str(e)) from None
    return plan


def run(a: argparse.Namespace, dataset: str) -> str:
    """One run, a deletion scenario or a benchmark study; returns the text to print."""
    from jaxmu import experiment
    from jaxmu.sweep import run_task_benchmark

    p = _prepare(a, dataset)
    config = {k: v for k, v in vars(a).items() if k != "list_methods"}
    if p.scenario is not None:
        try:
            res = experiment.run_scenario(p.task, p.scenario, out=a.out, config=config)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return experiment.format_scenario(res)
    if p.study is not None:
        study = run_task_benchmark(p.task, a.out, p.study, p.evaluation)
        return f"report: {study.report or '(not written)'}"
    rec = experiment.run(p.task, p.method, p.hparams, evaluation=p.evaluation, out=a.out,
                         config=config, warn=lambda w: print(f"warning: {w}", file=sys.stderr))
    return experiment.format_run(rec)


def main(dataset: str, argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code: 0; 2 for bad arguments, missing data or a fault
    of the environment (one line on stderr); 130 when interrupted (Ctrl-C)."""
    parser = build_parser(dataset)
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:  # --help (0), or a bad argument (2; one line already on stderr)
        return e.code if isinstance(e.code, int) else 2
    from jaxmu.experiment import methods_list, methods_table, session
    from jaxmu.io import IOFault

    if a.list_methods:
        print(methods_table() if a.list_methods == "markdown" else methods_list())
        return 0
    try:
        with session(a.cache_dir, compile_cache_on=not (a.no_compile_cache or a.no_cache),
                     rebuild=not a.no_rebuild) as xla:
            a.compile_cache = str(xla) if xla else None  # recorded with the config
            text = run(a, dataset)
    except (UsageError, IOFault) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk met outside jaxmu.io (e.g. writing the report)
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
            raise
        print(f"{parser.prog}: error: cannot write {e.filename or 'a file'}: {e.strerror}; "
              "free space, then rerun", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumable = "; rerun the same command to resume" if a.cache_dir or a.benchmark else ""
        print(f"{parser.prog}: interrupted{resumable}", file=sys.stderr)
        return 130
    print(text)
    return 0
