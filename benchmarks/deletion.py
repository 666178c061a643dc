"""Deletion experiments on digits: accuracy and cost of unlearning vs retraining from scratch.

Two measurements, both in one run so that every cost ratio compares timings taken side by
side on the same machine load:

1. Deletion-ratio sweep (:func:`jaxmu.scenarios.deletion_ratio_sweep`): random forget sets
   of growing size (the survey's ratios 0.001 ... 0.3, plus 0.4 and 0.5 "to show the
   crossover point"); per ratio the exact retrain (and SISA, 5 shards) and the approximate
   methods at their default hyperparameters: RA / FA / TA, RetDev vs the retrain,
   indiscernibility (loss MIA vs test), cost (median of ``--repeats`` runs, compilation
   excluded) and cost / retrain cost. The crossover of a method is the smallest ratio at
   which retraining is cheaper than it.
2. Sequential deletion requests (:func:`jaxmu.scenarios.sequential_deletion`):
   ``--requests`` requests of ``--request-size`` of the training set, each unlearned on
   top of the previous one (approximate methods see the cumulative forget set); metrics vs
   a from-scratch retrain after each request, cost per request and cumulative.

Recipe: the digits recipe of ``tests/conftest.py`` (``TrainConfig(epochs=30,
batch_size=64, lr=0.05, augment=False)``), MLP by default.

Usage::

    python -m benchmarks.deletion [--quick] [--json] [--methods ft,ng,msg,sisa]
        [--ratios 0.01,0.1] [--requests 5] [--request-size 0.05] [--out DIR]

References:
    Qu et al., "Learn to Unlearn" survey (§VI-B/§VI-C: deletion ratios, Fig. 4 time
    consumption and its crossover; §III SISA); Bourtoule et al. 2021 (SISA).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks import _common as C  # noqa: E402

SURVEY_RATIOS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
QUICK_RATIOS = (0.01, 0.1, 0.3, 0.5)
DEFAULT_METHODS = ("ft", "ng", "msg", "sisa")
MODELS = ("mlp", "small_cnn")


def _ratio(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), got {text}")
    return v


def _ratios(text: str) -> list[float]:
    return [_ratio(t) for t in C.csv_list()(text)]


def _request_size(text: str) -> int | float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if v >= 1 and v.is_integer():
        return int(v)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1) or a row count >= 1, "
                                         f"got {text}")
    return v


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = C.make_parser("python -m benchmarks.deletion", __doc__.splitlines()[0])
    p.add_argument("--methods", type=C.csv_list(), default=None,
                   help=f"methods besides retrain (default {','.join(DEFAULT_METHODS)}); "
                        "'sisa' is the 5-shard SISA ensemble")
    p.add_argument("--ratios", type=_ratios, default=None,
                   help="deletion ratios (default: the survey's 0.001..0.5; --quick: "
                        f"{','.join(map(str, QUICK_RATIOS))})")
    p.add_argument("--requests", type=int, default=None,
                   help="sequential deletion requests (default 5, 3 with --quick; 0 skips)")
    p.add_argument("--request-size", type=_request_size, default=0.05,
                   help="rows per request, or a fraction of the training set (default 0.05)")
    p.add_argument("--model", choices=MODELS, default="mlp", help="network (default mlp)")
    p.add_argument("--epochs", type=C.positive_int, default=30,
                   help="epochs of the original/retrain/SISA recipe (default 30)")
    p.add_argument("--shards", type=C.positive_int, default=5, help="SISA shards (default 5)")
    p.add_argument("--out", type=Path, default=None,
                   help="directory to write deletion_<model>.md and .json into")
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 3 if args.quick else 5
    elif args.requests < 0:
        p.error(f"--requests must be >= 0, got {args.requests}")
    if args.ratios is None:
        args.ratios = list(QUICK_RATIOS if args.quick else SURVEY_RATIOS)
    if args.methods is None:
        args.methods = list(DEFAULT_METHODS)
    return args


def _f(x: Any, spec: str = ".3f") -> str:
    return C.fmt_num(x, spec) if isinstance(x, (int, float)) else "-"


def _over(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def render_sweep(sweep: dict[str, Any]) -> str:
    headers = ["ratio", "n_forget", "method", "RA", "FA", "TA", "RetDev", "indisc",
               "cost", "cost / retrain", "speedup"]
    rows = []
    for row in sweep["rows"]:
        for name, m in row["methods"].items():
            met = m["metrics"]
            rows.append([f"{row['ratio']:g}", row["n_forget"], name, _f(met.get("ra")),
                         _f(met.get("fa")), _f(met.get("ta")), _f(met.get("retdev")),
                         _f(met.get("indisc_test")), C.fmt_time(m["cost_s"]),
                         _f(_over(m["cost_s"], row["retrain_s"])),
                         _f(m["speedup"], ".2f")])
    cross = ", ".join(f"{k}: {'none' if v is None else f'{v:g}'}"
                      for k, v in sweep["crossover"].items())
    setup = sweep["sisa_setup"]
    extra = (f"SISA ensemble trained once in {C.fmt_time(setup['setup_s'])} (incl. compile), "
             f"{setup['num_shards']} shards x {setup['num_slices']} slice(s)" if setup else "")
    return "\n".join([C.markdown_table(headers, rows), "",
                      f"crossover (smallest ratio where retraining is cheaper): {cross}",
                      extra])


def render_sequence(seq: dict[str, Any]) -> str:
    headers = ["request", "n_deleted", "method", "RA", "FA", "TA", "RetDev", "cost",
               "cumulative", "cumulative / retrain"]
    rows = []
    for row in seq["requests"]:
        cum_r = row["methods"]["retrain"]["cumulative_cost_s"]
        for name, m in row["methods"].items():
            met = m["metrics"]
            rows.append([row["request"], row["n_deleted"], name, _f(met.get("ra")),
                         _f(met.get("fa")), _f(met.get("ta")), _f(met.get("retdev")),
                         C.fmt_time(m["cost_s"]), C.fmt_time(m["cumulative_cost_s"]),
                         _f(_over(m["cumulative_cost_s"], cum_r))])
    return C.markdown_table(headers, rows)


def render(res: dict[str, Any]) -> str:
    cfg, prov = res["config"], res["provenance"]
    lines = [
        f"deletion experiments on digits ({cfg['model']}), original/retrain/SISA: "
        f"{cfg['recipe']['epochs']} epochs, batch {cfg['recipe']['batch_size']}, lr "
        f"{cfg['recipe']['lr']}; costs: median of {cfg['repeats']} runs, compile excluded",
        f"device: {prov['backend']} {prov['devices'][0]}, {prov['threads']} threads, load avg "
        f"{prov['load_avg_1_5_15min']}; jax {prov['versions']['jax']}; wall time "
        f"{res['wall_s']:.0f} s",
        "", "## deletion-ratio sweep", "", render_sweep(res["sweep"]),
    ]
    if res["sequential"] is not None:
        s = res["sequential"]
        lines += ["", f"## sequential deletion: {s['num_requests']} requests x "
                  f"{s['request_size']} rows (approximate methods: {s['forget_set']} forget set)",
                  "", render_sequence(s)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from jaxmu.data import load_digits
    from jaxmu.models import mlp, small_cnn
    from jaxmu.scenarios import default_sisa_config, deletion_ratio_sweep, sequential_deletion
    from jaxmu.train import TrainConfig

    t_start = time.perf_counter()
    ds = load_digits()
    model = mlp((8, 8, 1), 10) if args.model == "mlp" else small_cnn((8, 8, 1), 10,
                                                                        channels=(8, 16))
    recipe = TrainConfig(epochs=args.epochs, batch_size=64, lr=0.05, augment=False)
    sisa = default_sisa_config(recipe, args.shards)
    n_rep = C.repeats(args)
    try:  # bad method names or request sizes: one line, exit 2, before any training
        from jaxmu.scenarios import check_methods, deletion_requests

        check_methods(args.methods)
        if args.requests:
            deletion_requests(ds, args.requests, args.request_size)
    except ValueError as e:
        sys.stderr.write(f"python -m benchmarks.deletion: error: {str(e).splitlines()[0]}\n")
        return 2
    C.log(f"deletion-ratio sweep: ratios {args.ratios}, methods {args.methods} ...")
    sweep = deletion_ratio_sweep(ds, model, args.methods, args.ratios, seed=args.seed,
                                 config=recipe, sisa_config=sisa, repeats=n_rep)
    seq = None
    if args.requests:
        C.log(f"sequential deletion: {args.requests} requests ...")
        seq = sequential_deletion(ds, model, args.methods, args.requests, args.request_size,
                                  seed=args.seed, config=recipe, sisa_config=sisa,
                                  repeats=n_rep)
    res = {
        "benchmark": "deletion",
        "config": {"dataset": "digits", "model": args.model, "recipe": recipe.to_dict(),
                   "methods": args.methods, "ratios": args.ratios, "requests": args.requests,
                   "request_size": args.request_size, "shards": args.shards,
                   "quick": args.quick, "repeats": n_rep},
        "seed": args.seed,
        "provenance": C.provenance(),
        "wall_s": time.perf_counter() - t_start,
        "sweep": sweep,
        "sequential": seq,
    }
    return C.finish(res, render(res), args, f"deletion_{args.model}")


if __name__ == "__main__":
    sys.exit(main())
