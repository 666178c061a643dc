"""The shared experiment CLI: train or load O and R, run a method, evaluate, print, save.

Each dataset module (``experiments.digits``, ``experiments.cifar10``, ...) calls
:func:`main` with its defaults. Bad arguments exit with code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# name: (default model, original-training epochs, batch size)
DEFAULTS = {
    "digits": ("mlp", 30, 64),
    "mnist": ("resnet18", 50, 256),
    "fashion_mnist": ("resnet18", 50, 256),
    "cifar10": ("resnet18", 182, 256),
    "cifar100": ("resnet18", 182, 256),
}


class UsageError(Exception):
    """A bad argument: reported in one line, exit code 2."""


def build_parser(dataset: str) -> argparse.ArgumentParser:
    from jaxmu.data import SCENARIOS
    from jaxmu.models import MODELS

    model, epochs, batch = DEFAULTS[dataset]
    p = argparse.ArgumentParser(
        prog=f"python -m experiments.{dataset}",
        description=f"Unlearn a forget set from a model trained on {dataset}: train (or load "
        "from the cache) the original O and the retrained R, run --method, evaluate, print a "
        "table and write JSON.",
    )
    p.add_argument("--method", default="ft", help="unlearning method (see --list-methods)")
    p.add_argument("--hp", action="append", metavar="KEY=VALUE",
                   help="method hyperparameter override (repeatable)")
    p.add_argument("--list-methods", action="store_true", help="list methods and exit")
    p.add_argument("--seed", type=int, default=0, help="model seed (init, data order, method)")
    p.add_argument("--split-seed", type=int, default=123, help="split seed (DU uses 123)")
    p.add_argument("--epochs", type=int, default=epochs,
                   help=f"epochs to train O and R (default {epochs})")
    p.add_argument("--batch-size", type=int, default=batch, help="O/R training batch size")
    p.add_argument("--lr", type=float, default=0.1 if dataset != "digits" else 0.05,
                   help="O/R training learning rate")
    p.add_argument("--model", default=model, choices=MODELS, help=f"model (default {model})")
    p.add_argument("--forget-fraction", type=float, default=0.1,
                   help="forget fraction of the non-val train set (0, 1)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="val fraction (0, 1)")
    p.add_argument("--forget-scenario", default="random",
                   help=f"forget-set scenario: {', '.join(SCENARIOS)}")
    p.add_argument("--data-dir", default=None, help="tfds data dir (prepared offline)")
    p.add_argument("--out", default="results", help="output directory for the JSON result")
    p.add_argument("--cache-dir", default=".jaxmu_cache",
                   help="cache of trained O/R models ('' disables)")
    p.add_argument("--no-mia", action="store_true", help="skip the membership-inference metrics")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
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


def _fmt(v: Any) -> str:
    return "   -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:6.3f}"


def format_table(acc: dict[str, dict[str, float]], record: dict[str, Any]) -> str:
    """Accuracies of O, R and U per split, retention, MIA and timing as a text table."""
    lines = [f"{'model':<12}{'RA':>8}{'FA':>8}{'VA':>8}{'TA':>8}{'MIA':>8}{'time s':>9}"]
    for who in ("original", "retrain", "unlearned"):
        a = acc[who]
        t = record["timings"].get(f"{who}_s")
        mia = record.get("mia", {}).get(who)
        lines.append(f"{who:<12}" + "".join(f"{_fmt(a[s]):>8}" for s in
                                             ("retain", "forget", "val", "test"))
                     + f"{_fmt(mia):>8}" + (f"{t:9.2f}" if t is not None else f"{'-':>9}"))
    r = record["retention"]
    lines.append(f"retention vs R: RR {r['RR']:.3f}  FR {r['FR']:.3f}  TR {r['TR']:.3f}  "
                 f"RetDev {r['RetDev']:.3f}")
    t = record["timings"]
    lines.append(f"run time {t['unlearned_s']:.3f} s (compile {t['compile_s']:.2f} s excluded), "
                 f"RTE = T_retrain / T_method = {record['rte']:.2f}x")
    return "\n".join(lines)


def run(a: argparse.Namespace, dataset: str) -> dict[str, Any]:
    """Runs one experiment and returns its JSON record (also written to ``--out``)."""
    import jax

    from jaxmu.data import DataNotFoundError, load_dataset, scenario_splits
    from jaxmu.io import cached_fit, provenance, write_json
    from jaxmu.methods import get_method, parse_hp
    from jaxmu.models import get_model
    from jaxmu.train import TrainConfig, split_accuracies

    try:
        hp = parse_hp(a.hp)
        method = get_method(a.method, **hp)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        ds = load_dataset(dataset, a.data_dir)
    except DataNotFoundError as e:
        raise UsageError(str(e)) from None
    try:
        splits = scenario_splits(ds, a.forget_scenario, forget_fraction=a.forget_fraction,
                                 val_fraction=a.val_fraction, seed=a.split_seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    pool = ds.pool
    model = get_model(a.model, pool.num_classes, pool.image_shape)
    recipe = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                         augment=dataset != "digits")
    cache = a.cache_dir or None
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
        bound = method.bind(model)
        t0 = time.perf_counter()
        compiled = bound.jitted.lower(po, so, splits, key).compile()
        t_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        pu, su = jax.block_until_ready(compiled(po, so, splits, key))
        t_method = time.perf_counter() - t0

    acc = {
        "original": split_accuracies(model, po, so, splits),
        "retrain": split_accuracies(model, pr, sr, splits),
        "unlearned": split_accuracies(model, pu, su, splits),
    }
    record: dict[str, Any] = {
        "experiment": dataset,
        "method": method.name,
        "hparams": method.hp,
        "config": {k: v for k, v in vars(a).items() if k not in ("list_methods",)},
        "recipe": recipe.to_dict(),
        "model": model.name,
        "splits": splits.sizes(),
        "seed": a.seed,
        "accuracy": acc,
        "timings": {"original_s": float(meta_o["timings"]["train_s"]), "retrain_s": t_retrain,
                    "unlearned_s": t_method, "compile_s": t_compile},
        "cache": {"original": meta_o.get("cache_key"), "retrain": meta_r.get("cache_key")},
        "provenance": provenance(),
    }
    record.update(_metrics(model, (po, so), (pr, sr), (pu, su), splits, acc, t_retrain,
                           t_method, mia=not a.no_mia))
    out = Path(a.out) / dataset / f"{method.name}_seed{a.seed}.json"
    write_json(out, record)
    record["_path"] = str(out)
    return record


def _metrics(model, o, r, u, splits, acc, t_retrain, t_method, *, mia: bool) -> dict[str, Any]:
    """Retention, RetDev, RTE and (optionally) the population MIA for O, R and U."""
    from jaxmu import evaluate

    return evaluate.experiment_metrics(model, o, r, u, splits, acc, t_retrain, t_method,
                                       mia=mia)


def main(dataset: str, argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0, or 2 for bad arguments / missing data)."""
    parser = build_parser(dataset)
    a = parser.parse_args(argv)
    try:
        if a.list_methods:
            from jaxmu.methods import get_method, list_methods

            for n in list_methods():
                print(f"{n:<20} {get_method(n).definition.summary}")
            return 0
        _check_args(a)
        record = run(a, dataset)
    except UsageError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    acc = record["accuracy"]
    print(f"{dataset}: method {record['method']}  model {record['model']}  seed {record['seed']}"
          f"  splits {record['splits']}")
    print(format_table(acc, record))
    print(f"wrote {record['_path']}")
    return 0
