"""The shared experiment CLI: train or load O and R, run a method, evaluate, print, save.

Each dataset module (``experiments.digits``, ``experiments.cifar10``, ...) calls
:func:`main` with its defaults. Bad arguments exit with code 2 and one line on stderr, and so
do faults of the environment (:class:`jaxmu.io.IOFault`: a corrupt cache entry under
``--no-rebuild``, a full disk, an unreachable study database). Ctrl-C exits with code 130
and one line; rerunning the command resumes from the last checkpoint (docs/reliability.md).
Metrics that could not be computed (an MIA on a split too small for it, see
:class:`jaxmu.metrics.MIASkippedWarning`) are missing from ``metrics``, show as "–" in the
table, and the reasons are listed under the record's ``"warnings"`` (and on stderr). A method
that degenerates on the chosen model (:func:`jaxmu.methods.degenerate_reason`, e.g. CT on an
MLP is fine-tuning) gets one ``warning:`` line on stderr before training and its reason under
the record's ``"degenerate"`` (None otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from experiments import _audit_cli
from jaxmu._argparse import ArgumentParser
from jaxmu._names import DATASET_DEFAULTS, MODEL_VARIANTS, MODELS, SCENARIOS  # jax-free

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

class UsageError(Exception):
    """A bad argument: reported in one line, exit code 2."""


def build_parser(dataset: str) -> ArgumentParser:
    d = DATASET_DEFAULTS[dataset]
    model, epochs, batch = d.model, d.epochs, d.batch_size
    p = ArgumentParser(
        prog=f"python -m experiments.{dataset}",
        description=f"Unlearn a forget set from a model trained on {dataset}: train (or load "
        "from the cache) the original O and the retrained R, run --method, evaluate, print a "
        "table and write JSON.",
    )
    p.add_argument("--method", default="ft", help="unlearning method (see --list-methods)")
    p.add_argument("--hp", action="append", metavar="KEY=VALUE",
                   help="method hyperparameter override (repeatable)")
    p.add_argument("--list-methods", nargs="?", const="text", choices=("text", "markdown"),
                   help="list methods with their one-line recipes and exit ('markdown': the "
                        "README's methods table)")
    p.add_argument("--seed", type=int, default=0, help="model seed (init, data order, method)")
    p.add_argument("--split-seed", type=int, default=123, help="split seed (DU uses 123)")
    p.add_argument("--epochs", type=int, default=epochs,
                   help=f"epochs to train O and R (default {epochs})")
    p.add_argument("--batch-size", type=int, default=batch, help="O/R training batch size")
    p.add_argument("--lr", type=float, default=d.lr,
                   help="O/R training learning rate")
    p.add_argument("--model", default=model, choices=(*MODELS, *MODEL_VARIANTS),
                   help=f"model (default {model})")
    p.add_argument("--forget-fraction", type=float, default=0.1,
                   help="forget fraction of the non-val train set (0, 1)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="val fraction (0, 1)")
    p.add_argument("--forget-scenario", default="random",
                   help=f"forget-set scenario: {', '.join(SCENARIOS)}")
    p.add_argument("--train-size", type=int, default=None, metavar="N",
                   help="keep a class-stratified N of the official train part (seeded by "
                        "--split-seed; default: all)")
    p.add_argument("--test-size", type=int, default=None, metavar="N",
                   help="keep a class-stratified N of the official test part (default: all)")
    p.add_argument("--data-dir", default=None,
                   help="data folder: IDX files (mnist, fashion_mnist) or a tfds data dir")
    p.add_argument("--out", default="results", help="output directory for the JSON result")
    p.add_argument("--cache-dir", default=".jaxmu_cache",
                   help="cache of trained O/R models ('' disables)")
    p.add_argument("--no-rebuild", action="store_true",
                   help="a corrupt cache entry is an error (exit 2) instead of being moved "
                        "aside and rebuilt")
    p.add_argument("--no-compile-cache", action="store_true",
                   help="do not keep compiled XLA programs in CACHE_DIR/xla (on by default; "
                        "env JAXMU_COMPILE_CACHE=0 turns it off, =DIR moves it)")
    p.add_argument("--no-mia", action="store_true",
                   help="skip the classifier and feature MIAs (the loss MIA always runs)")
    p.add_argument("--eval", default="single",
                   choices=("single", "fscore", "ulira", *_audit_cli.AUDIT_EVALS),
                   help="single model (default), competition F-score, U-LiRA, or an audit "
                        "on one cached population: klom, rmia (RMIA and U-RMIA), relearn, "
                        "shadow-curve, all (U-LiRA and every audit); with --benchmark, "
                        "U-LiRA or the audits of every method")
    p.add_argument("--models", type=int, default=512,
                   help="--eval fscore: models per population (unlearned and retrained)")
    p.add_argument("--shadows", type=int, default=64, help="--eval ulira: shadow originals")
    p.add_argument("--forget-sets", type=int, default=10,
                   help="--eval ulira: forget sets per shadow")
    p.add_argument("--ulira-flip", action="store_true",
                   help="--eval ulira: also score horizontally flipped images (the "
                        "statistic averaged over both views)")
    p.add_argument("--ulira-variant", default="online", choices=("online", "offline"),
                   help="--eval ulira: likelihood ratio of both worlds (online, default) or a "
                        "one-sided test against the never-seen world (offline)")
    p.add_argument("--strategy", default="auto",
                   choices=("auto", "vmap", "chunked", "sequential", "sharded"),
                   help="population strategy (results do not depend on it)")
    p.add_argument("--chunk", type=int, default=None, help="models per chunk (chunked)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _audit_cli.add_arguments(p)
    b = p.add_argument_group("benchmark (the Deep Unlearn study: sweep, final runs, ranking, "
                             "report)")
    b.add_argument("--benchmark", action="store_true",
                   help="run the whole study into OUT/<dataset>/benchmark-<model> (resumable)")
    b.add_argument("--methods", default=None,
                   help="comma-separated methods (default: all but presets and references)")
    b.add_argument("--trials", type=int, default=100,
                   help="complete Optuna trials per method and search seed (DU: 100)")
    b.add_argument("--search-seeds", type=int, default=3,
                   help="model seeds 0..N-1 searched (DU: 3)")
    b.add_argument("--seeds", type=int, default=10, help="final runs per method (DU: 10)")
    b.add_argument("--storage", default=None,
                   help="Optuna storage: SQLite path or SQLAlchemy URL shared by workers "
                        "(default OUT/.../study.db)")
    b.add_argument("--clean", action="store_true",
                   help="drop the reference's dead search dimensions")
    b.add_argument("--population-size", type=int, default=50,
                   help="NSGA-III generation size (Optuna default 50)")
    b.add_argument("--trial-batch", type=int, default=1,
                   help="trials evaluated at once, vmapped where their structure agrees")
    d = p.add_argument_group("deletion scenarios (survey paper 003: exact vs approximate)")
    d.add_argument("--deletion-ratios", default=None, metavar="R1,R2,...",
                   help="deletion-ratio sweep over these forget fractions, e.g. 0.01,0.1,0.5")
    d.add_argument("--sequential-requests", type=int, default=None, metavar="N",
                   help="N deletion requests applied one after another")
    d.add_argument("--request-size", type=float, default=0.05,
                   help="rows per request: a count (>= 1) or a fraction of train (< 1)")
    d.add_argument("--compare-methods", default=None, metavar="A,B,...",
                   help="methods compared with retrain (default: --method and sisa)")
    d.add_argument("--sisa-shards", type=int, default=5, help="SISA shards (default 5)")
    return p


def _check_args(a: argparse.Namespace) -> None:
    from jaxmu.methods import list_methods

    if a.method not in list_methods():
        raise UsageError(f"unknown method {a.method!r}; valid: {', '.join(list_methods())}")
    for name in ("forget_fraction", "val_fraction"):
        v = getattr(a, name)
        if not (0 < v < 1) or math.isnan(v):
            raise UsageError(f"--{name.replace('_', '-')} must lie in (0, 1), got {v}")
    if a.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {a.epochs}")
    if a.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {a.batch_size}")
    if not a.lr > 0:
        raise UsageError(f"--lr must be > 0, got {a.lr}")
    if a.models < 2:
        raise UsageError(f"--models must be >= 2, got {a.models}")
    if a.shadows < 4 or a.shadows % 2:
        raise UsageError(f"--shadows must be an even number >= 4, got {a.shadows}")
    if a.forget_sets < 1:
        raise UsageError(f"--forget-sets must be >= 1, got {a.forget_sets}")
    if a.strategy == "chunked" and not (a.chunk and a.chunk >= 1):
        raise UsageError("--strategy chunked needs --chunk >= 1")
    if a.eval in _audit_cli.AUDIT_EVALS:  # one method, or every method of --benchmark
        try:
            _audit_cli.config(a)
        except ValueError as e:
            raise UsageError(str(e)) from None
    scenario = a.deletion_ratios is not None or a.sequential_requests is not None
    if scenario and (a.benchmark or a.eval != "single"):
        raise UsageError("deletion scenarios cannot be combined with --benchmark or --eval")
    if a.deletion_ratios is not None:
        from jaxmu.scenarios import check_ratios

        if a.forget_scenario != "random":
            raise UsageError("--deletion-ratios needs --forget-scenario random")
        try:
            check_ratios(_floats(a.deletion_ratios))
        except ValueError as e:
            raise UsageError(f"--deletion-ratios: {e}") from None
    if a.sequential_requests is not None and a.sequential_requests < 1:
        raise UsageError(f"--sequential-requests must be >= 1, got {a.sequential_requests}")
    if scenario:
        from jaxmu.scenarios import check_methods

        if a.sisa_shards < 1:
            raise UsageError(f"--sisa-shards must be >= 1, got {a.sisa_shards}")
        if not a.request_size > 0:
            raise UsageError(f"--request-size must be > 0, got {a.request_size}")
        try:
            check_methods(_compare_methods(a))
        except ValueError as e:
            raise UsageError(f"--compare-methods: {e}") from None
    if a.benchmark:
        if a.eval == "fscore":
            raise UsageError("--benchmark takes --eval ulira or an audit (klom, rmia, "
                             "relearn, shadow-curve, all) of every method, not --eval fscore")
        if a.ulira_flip or a.ulira_variant != "online":
            raise UsageError("--ulira-flip and --ulira-variant apply to --eval of one "
                             "method; --benchmark uses the defaults (online, no flip)")
        for m in _methods(a):
            if m not in list_methods():
                raise UsageError(f"unknown method {m!r} in --methods; valid: "
                                 f"{', '.join(list_methods())}")
        for name in ("trials", "search_seeds", "seeds", "population_size", "trial_batch"):
            if getattr(a, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, "
                                 f"got {getattr(a, name)}")


def load_data(a: argparse.Namespace, dataset: str):
    """The dataset of the run: ``--data-dir``, then ``--train-size`` / ``--test-size``."""
    from jaxmu.data import load_dataset, subset_dataset

    ds = load_dataset(dataset, a.data_dir)
    if a.train_size is None and a.test_size is None:
        return ds
    return subset_dataset(ds, a.train_size, a.test_size, seed=a.split_seed)


def _cache(a: argparse.Namespace) -> str | None:
    """The model/population cache directory (None: ``--no-cache`` or ``--cache-dir ''``)."""
    return None if a.no_cache else (a.cache_dir or None)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"expected comma-separated numbers, got {text!r}") from None


def _compare_methods(a: argparse.Namespace) -> list[str]:
    if a.compare_methods:
        return [m.strip() for m in a.compare_methods.split(",") if m.strip()]
    return [a.method, "sisa"] if a.method != "sisa" else ["sisa"]


def run_scenario(a: argparse.Namespace, dataset: str) -> dict[str, Any]:
    """``--deletion-ratios`` / ``--sequential-requests``: exact vs approximate unlearning
    over deletion sizes or request sequences; JSON to OUT/<dataset>/deletion_*_seed<s>.json."""
    from jaxmu.data import DataNotFoundError
    from jaxmu.io import provenance, write_json
    from jaxmu.models import build_model
    from jaxmu.scenarios import default_sisa_config, deletion_ratio_sweep, sequential_deletion
    from jaxmu.train import TrainConfig

    try:
        ds = load_data(a, dataset)
    except (DataNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    model = build_model(a.model, ds.pool.num_classes, ds.pool.image_shape)
    recipe = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                         augment=DATASET_DEFAULTS[dataset].augment)
    kw = dict(seed=a.seed, config=recipe, split_seed=a.split_seed, val_fraction=a.val_fraction,
              sisa_config=default_sisa_config(recipe, a.sisa_shards),
              cache_dir=_cache(a), progress=not a.quiet)
    from jaxmu.methods import get_method, parse_hp

    try:  # --hp applies to --method
        hp = parse_hp(a.hp)
        methods = [get_method(m, **hp) if m == a.method and hp and m not in ("retrain", "sisa")
                   else m for m in _compare_methods(a)]
        if a.deletion_ratios is not None:
            res, kind = deletion_ratio_sweep(ds, model, methods, _floats(a.deletion_ratios),
                                             **kw), "sweep"
        else:
            size = a.request_size if a.request_size < 1 else int(a.request_size)
            res, kind = sequential_deletion(ds, model, methods, a.sequential_requests, size,
                                            **kw), "sequential"
    except ValueError as e:
        raise UsageError(str(e)) from None
    res = {"experiment": dataset, "scenario": kind, "cli": vars(a), **res,
           "provenance": provenance()}
    out = Path(a.out) / dataset / f"deletion_{kind}_seed{a.seed}.json"
    write_json(out, res)
    res["_path"] = str(out)
    return res


def _methods(a: argparse.Namespace) -> list[str]:
    return [m.strip() for m in (a.methods or "").split(",") if m.strip()]


MISSING = "–"  # en dash: a metric that is not in the record


def _fmt(v: Any, spec: str = "6.3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return f"{MISSING:>{len(format(0.0, spec))}}"
    return format(v, spec)


def format_table(record: dict[str, Any]) -> str:
    """Accuracies of O, R and U per split, test MIA, retention and timing as a text table."""
    m = record["metrics"]
    t = record["timings"]
    lines = [f"{'model':<12}{'RA':>8}{'FA':>8}{'VA':>8}{'TA':>8}{'T-MIA':>8}{'time s':>9}"]
    for who, prefix in (("original", "original_"), ("retrain", "retrained_"),
                        ("unlearned", "")):
        row = [m.get(f"{prefix}{k}") for k in ("ra", "fa", "va", "ta", "mia_test")]
        lines.append(f"{who:<12}" + "".join(f"{_fmt(v):>8}" for v in row)
                     + f"{t[f'{who}_s']:9.2f}")
    lines.append(f"retention vs R: RR {_fmt(m.get('rr'))}  FR {_fmt(m.get('fr'))}  "
                 f"TR {_fmt(m.get('tr'))}  RetDev {_fmt(m.get('retdev'))}  "
                 f"indiscernibility {_fmt(m.get('indisc_test'))}")
    lines.append(f"run time {t['unlearned_s']:.3f} s (compile {t['compile_s']:.2f} s excluded), "
                 f"RTE = T_retrain / T_method = {_fmt(m.get('rte'), '.2f')}x")
    return "\n".join(lines)


def run(a: argparse.Namespace, dataset: str) -> dict[str, Any]:
    """Runs one experiment and returns its JSON record (also written to ``--out``)."""
    import jax

    from jaxmu import evaluate
    from jaxmu.data import DataNotFoundError, scenario_splits
    from jaxmu.io import provenance, write_json
    from jaxmu.methods import get_method, parse_hp
    from jaxmu.metrics import MIASkippedWarning
    from jaxmu.models import build_model
    from jaxmu.train import TrainConfig, cached_fit

    try:
        hp = parse_hp(a.hp)
        method = get_method(a.method, **hp)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        ds = load_data(a, dataset)
    except (DataNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    try:
        splits = scenario_splits(ds, a.forget_scenario, forget_fraction=a.forget_fraction,
                                 val_fraction=a.val_fraction, seed=a.split_seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    pool = ds.pool
    model = build_model(a.model, pool.num_classes, pool.image_shape)
    degenerate = method.bind(model).degenerate_reason()  # e.g. CT on an MLP is FT
    if degenerate:
        print(f"warning: {degenerate}", file=sys.stderr)
    recipe = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                         augment=DATASET_DEFAULTS[dataset].augment)
    cache = _cache(a)
    progress = not a.quiet
    po, so, meta_o = cached_fit(cache, model, pool, splits.mask("train"), a.seed, recipe,
                                progress=progress)
    pr, sr, meta_r = cached_fit(cache, model, pool, splits.retain, a.seed, recipe,
                                progress=progress)
    t_retrain = float(meta_r["timings"]["train_s"])

    key = jax.random.fold_in(jax.random.key(a.seed), 2)
    if a.method == "retrain":
        # The retrained model R is the exact answer; reuse it (same init seed as O).
        pu, su, t_method, t_compile = pr, sr, t_retrain, float(meta_r["timings"]["compile_s"])
    else:
        from jaxmu.metrics import timed

        (pu, su), t_method, t_compile = timed(method.bind(model).jitted, po, so, splits, key)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MIASkippedWarning)
        metrics = evaluate(model, (pu, su), splits, original=(po, so), retrained=(pr, sr),
                           timings={"run_seconds": t_method, "compile_seconds": t_compile,
                                    "reference_seconds": t_retrain},
                           classifier_mias=not a.no_mia, seed=a.seed)
    notes = []
    for w in caught:
        if issubclass(w.category, MIASkippedWarning):
            notes.append(str(w.message))
        else:  # not ours to collect: show it as usual
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    record: dict[str, Any] = {
        "experiment": dataset,
        "eval": a.eval,
        "method": method.name,
        "hparams": method.hp,
        "config": {k: v for k, v in vars(a).items() if k not in ("list_methods",)},
        "recipe": recipe.to_dict(),
        "model": model.name,
        "degenerate": degenerate,
        "splits": splits.sizes(),
        "seed": a.seed,
        "metrics": metrics,
        "warnings": notes,
        "timings": {"original_s": float(meta_o["timings"]["train_s"]), "retrain_s": t_retrain,
                    "unlearned_s": t_method, "compile_s": t_compile},
        "cache": {"original": meta_o.get("cache_key"), "retrain": meta_r.get("cache_key")},
        "provenance": provenance(),
    }
    suffix = "" if a.eval == "single" else f"_{a.eval}"
    out = Path(a.out) / Path(dataset).stem / f"{method.name}_seed{a.seed}{suffix}.json"
    if a.eval != "single":
        record[a.eval] = _population_eval(a, model, splits, (po, so), method, recipe, cache,
                                          progress, out.with_suffix(""))
    write_json(out, record)
    record["_path"] = str(out)
    return record


def run_benchmark(a: argparse.Namespace, dataset: str) -> dict[str, Any]:
    """``--benchmark``: the whole study of (dataset, --model) (OUT/<dataset>/benchmark-<model>)."""
    from jaxmu.data import DataNotFoundError, scenario_splits
    from jaxmu.models import build_model
    from jaxmu.sweep import default_methods
    from jaxmu.sweep import run_benchmark as _run
    from jaxmu.train import TrainConfig

    try:
        ds = load_data(a, dataset)
        splits = scenario_splits(ds, a.forget_scenario, forget_fraction=a.forget_fraction,
                                 val_fraction=a.val_fraction, seed=a.split_seed)
    except (DataNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    model = build_model(a.model, ds.pool.num_classes, ds.pool.image_shape)
    recipe = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                         augment=DATASET_DEFAULTS[dataset].augment)
    out = Path(a.out) / dataset / f"benchmark-{model.name}"
    setting = (f"--model {a.model} --epochs {a.epochs} --batch-size {a.batch_size} "
               f"--lr {a.lr} --forget-scenario {a.forget_scenario} --forget-fraction "
               f"{a.forget_fraction} --val-fraction {a.val_fraction} --split-seed "
               f"{a.split_seed}" + (f" --data-dir {a.data_dir}" if a.data_dir else "")
               + (f" --train-size {a.train_size}" if a.train_size is not None else "")
               + (f" --test-size {a.test_size}" if a.test_size is not None else ""))
    methods = _methods(a) or default_methods()
    mia = " --no-mia" if a.no_mia else ""
    run_command = f"python -m experiments.{dataset} {setting}{mia}"
    audit = a.eval in _audit_cli.AUDIT_EVALS
    flags = _audit_flags(a) if audit else None
    command = (f"{run_command} --benchmark --methods {','.join(methods)} --trials {a.trials} "
               f"--search-seeds {a.search_seeds} --seeds {a.seeds} --population-size "
               f"{a.population_size} --trial-batch {a.trial_batch}"
               + (" --clean" if a.clean else "")
               + (f" --eval ulira --shadows {a.shadows} --forget-sets {a.forget_sets}"
                  f" --seed {a.seed}" if a.eval == "ulira" else "")
               + (f" {flags}" if audit else ""))
    ulira = ({"shadows": a.shadows, "forget_sets": a.forget_sets,
              "forget_fraction": a.forget_fraction, "seed": a.seed}
             if a.eval == "ulira" else None)
    audits = ({"audits": _audit_cli.audits_of(a.eval), "audit_config": _audit_cli.config(a),
               "audit_flags": flags, "strategy": a.strategy, "chunk": a.chunk}
              if audit else {})
    return _run(ds.pool, model, splits, recipe, out, methods=methods, command=command,
                run_command=run_command,
                trials=a.trials, search_seeds=range(a.search_seeds), seeds=a.seeds,
                storage=a.storage, cache_dir=_cache(a), clean=a.clean,
                classifier_mias=not a.no_mia, population_size=a.population_size,
                trial_batch=a.trial_batch, ulira=ulira, progress=not a.quiet, **audits)


def _audit_flags(a: argparse.Namespace) -> str:
    """The options of ``--eval <audit>`` that fix :func:`_audit_cli.config` (besides the
    setting's ``--forget-fraction``), every one spelled out: appended to a single-method
    command they reproduce that method's audits of a ``--benchmark`` study."""
    flags = [f"--eval {a.eval}", f"--shadows {a.shadows}", f"--forget-sets {a.forget_sets}",
             f"--seed {a.seed}"]
    if a.targets is not None:
        flags.append(f"--targets {a.targets}")
    flags.append(f"--bootstrap {a.bootstrap}")
    if a.rmia_offline:
        flags.append("--rmia-offline")
    flags += [f"--rmia-a {a.rmia_a}", f"--relearn-variant {a.relearn_variant}",
              f"--relearn-steps {a.relearn_steps}", f"--relearn-lr {a.relearn_lr}",
              f"--relearn-runs {a.relearn_runs}", f"--shadow-draws {a.shadow_draws}"]
    return " ".join(flags)


def _population_eval(a, model, splits, original, method, recipe, cache, progress,
                     plot_dir=None):
    from jaxmu.methods import get_method, parse_hp
    from jaxmu.methods.retrain import recipe_hparams
    from jaxmu.population import fscore_pipeline, ulira_pipeline

    if method.definition.name == "retrain":
        # Exact unlearning inside a population: retrain with the experiment's own recipe
        # (unless overridden with --hp).
        given = set(parse_hp(a.hp))
        recipe_hp = recipe_hparams(recipe)
        method = method.with_hparams(**{k: v for k, v in recipe_hp.items() if k not in given})
    if a.eval in _audit_cli.AUDIT_EVALS:  # the oracle: retrain with the originals' recipe
        oracle = get_method("retrain", **recipe_hparams(recipe))
        return _audit_cli.run(a, model, splits, method, oracle, recipe, cache, plot_dir,
                              progress)
    bound = method.bind(model)
    if a.eval == "fscore":
        return fscore_pipeline(model, splits, original, bound, num_models=a.models, seed=a.seed,
                               config=recipe, strategy=a.strategy, chunk=a.chunk,
                               cache_dir=cache, progress=progress)
    return ulira_pipeline(model, splits, bound, num_shadows=a.shadows,
                          num_forget_sets=a.forget_sets, forget_fraction=a.forget_fraction,
                          flip=a.ulira_flip, variant=a.ulira_variant,
                          seed=a.seed, config=recipe, strategy=a.strategy, chunk=a.chunk,
                          cache_dir=cache, progress=progress)


def _print_scenario(res: dict[str, Any]) -> None:
    rows = res["table"]
    keys = [k for k in rows[0] if k != "method"] if rows else []
    print(f"{res['experiment']}: deletion {res['scenario']} ({', '.join(res['methods'])})"
          if "methods" in res else f"{res['experiment']}: deletion {res['scenario']}")
    print(" ".join(f"{k:>10}" for k in ["method", *keys]))
    for r in rows:
        print(" ".join(f"{_fmt(r[k]) if isinstance(r[k], float) else str(r[k]):>10}"
                       for k in ["method", *keys]))
    if "crossover" in res:
        print("crossover (smallest ratio where retraining is cheaper): "
              + ", ".join(f"{k}: {v}" for k, v in res["crossover"].items()))
    print(f"wrote {res['_path']}")


def _ci_text(ci) -> str:
    return f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def _population_summary(record: dict[str, Any]) -> str:
    audit = next((k for k in _audit_cli.AUDIT_EVALS if k in record), None)
    if audit is not None:
        return "\n".join(_audit_cli.summary_lines(record[audit]))
    if "fscore" in record:
        f = record["fscore"]
        ra, ta = f["unlearned_ra"], f["unlearned_ta"]
        fci, sci = (_ci_text(f.get(k)) for k in ("forget_quality_ci", "score_ci"))
        return (f"competition F-score over {f['num_models']}+{f['num_models']} models: "
                f"forget quality F = {f['forget_quality']:.4f}{fci}, score = "
                f"{f['score']:.4f}{sci} "
                f"(RA_U {ra['value']:.3f} [{ra['ci'][0]:.3f}, {ra['ci'][1]:.3f}], "
                f"TA_U {ta['value']:.3f} [{ta['ci'][0]:.3f}, {ta['ci'][1]:.3f}])")
    u = record["ulira"]
    ci = u.get("ulira_accuracy_ci")
    ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    mode = ("offline, " if u.get("variant") == "offline" else "") + (
        "flip, " if u.get("flip") else "")
    return (f"U-LiRA ({mode}{u['num_shadows']} shadows x {u['num_forget_sets']} forget sets, "
            f"{u['num_targets']} held-out targets): accuracy {u['ulira_accuracy']:.3f}{ci_s} "
            f"(0.5 = perfect unlearning), best-threshold {u['ulira_best_acc']:.3f}, "
            f"AUC {u['auc']:.3f}, TPR@1%FPR {u['tpr_at_1fpr']:.3f}")


def methods_table() -> str:
    """The README's methods table (Markdown), rendered from the registry: one row per
    ``list_methods()`` name with its one-line recipe (a preset's own) and its source
    (``paper (section)``). ``python -m experiments.digits --list-methods markdown`` prints it;
    ``tests/test_readme.py`` checks that README.md holds exactly this."""
    from jaxmu.methods import get_method, list_methods

    def cell(text: str) -> str:  # literal text inside a Markdown table cell
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")

    lines = ["| method | recipe | source |", "|---|---|---|"]
    for n in list_methods():
        m = get_method(n)
        sec = (f"[{m.section.split('#')[-1]}]({m.section})" if m.section.startswith("docs/")
               else cell(m.section))  # a link into the repo's docs renders as one
        lines.append(f"| `{n}` | {cell(m.summary)} | {cell(m.paper)} ({sec}) |")
    return "\n".join(lines)


@contextlib.contextmanager
def _one_line_cache_warnings():
    """Shows a corrupt checkpoint moved aside (:class:`jaxmu.io.CorruptCheckpointWarning`)
    as one ``warning:`` line; other warnings as usual."""
    from jaxmu.io import CorruptCheckpointWarning

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, CorruptCheckpointWarning):
                print(f"warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def main(dataset: str, argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code: 0; 2 for bad arguments, missing data or a fault
    of the environment (one line on stderr); 130 when interrupted (Ctrl-C)."""
    parser = build_parser(dataset)
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:  # --help (0), or a bad argument (2; one line already on stderr)
        return e.code if isinstance(e.code, int) else 2
    from jaxmu.io import IOFault, rebuild_corrupt

    guard = contextlib.ExitStack()
    guard.enter_context(rebuild_corrupt(not a.no_rebuild))
    guard.enter_context(_one_line_cache_warnings())
    try:
        if a.list_methods == "markdown":
            print(methods_table())
            return 0
        if a.list_methods:
            from jaxmu.methods import get_method, list_methods

            for n in list_methods():
                print(f"{n:<20} {get_method(n).summary}")
            return 0
        _check_args(a)
        from jaxmu._compile_cache import compile_cache, frozen_gc, resolve_compile_cache

        xla_dir = resolve_compile_cache(a.cache_dir,
                                       disabled=a.no_compile_cache or a.no_cache)
        a.compile_cache = str(xla_dir) if xla_dir else None  # recorded with the config
        with compile_cache(xla_dir), frozen_gc():
            if a.deletion_ratios is not None or a.sequential_requests is not None:
                res = run_scenario(a, dataset)
                _print_scenario(res)
                return 0
            if a.benchmark:
                study = run_benchmark(a, dataset)
                print(f"report: {study.get('report', '(not written)')}")
                return 0
            record = run(a, dataset)
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
    finally:
        guard.close()
    print(f"{dataset}: method {record['method']}  model {record['model']}  seed {record['seed']}"
          f"  splits {record['splits']}")
    print(format_table(record))
    for note in record["warnings"]:
        print(f"warning: {note}", file=sys.stderr)
    if a.eval != "single":
        print(_population_summary(record))
    print(f"wrote {record['_path']}")
    return 0
