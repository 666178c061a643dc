"""Method speed on digits: compile time, run time and RTE of every registered method.

Trains an original and a retrained model once with the digits recipe of ``tests/conftest.py``
(``TrainConfig(epochs=30, batch_size=64, lr=0.05, augment=False)``, MLP by default,
``--model small_cnn`` for the BatchNorm CNN), then for each method (every name of
``jaxmu.methods.list_methods()`` at run time, or ``--methods a,b``) at its default
hyperparameters: AOT compile time, run time (median of repeats, compile excluded),
RTE = retrain time / method run time, and retain/forget/test accuracies. The retrain time is
the pure training time of :func:`jaxmu.train.fit` (``timings["train_s"]``); the retrain fit
is timed ``--retrain-repeats`` times (cached compile), spread between the methods so that
both sides of the ratio see the same machine load, and its median is used. "RTE (best)"
divides the fastest retrain by the fastest run of the method (least disturbed by other
processes on a shared machine).

A method that raises is recorded with its error and the run goes on.

CIFAR-like RTE: the reference retrains for 182 epochs on CIFAR while FT's default budget is
5 epochs (182/5 = 36.4 retrain epochs per FT epoch); digits' 30 epochs give only 30/5 = 6.
The CIFAR-like column rescales the measured retrain time per epoch to
``182/5 * ft_epochs`` epochs (``ft_epochs`` = FT's registered default), keeping every
method's own measured time, so it reads as "this method's speed-up if retraining cost what
it costs relative to fine-tuning in the reference".

Targets (set for this benchmark; Deep Unlearn §5 reports MSG 5.3x faster than retraining on
average): MSG >= 5.3x and CT >= 10.6x faster than retrain at default hyperparameters;
PASS/FAIL is printed for the measured RTE and for the CIFAR-like one.

Usage::

    python -m benchmarks.methods [--quick] [--json] [--methods msg,ct] [--model small_cnn]
"""

from __future__ import annotations

import os
import statistics
import sys
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

from benchmarks import _common as C  # noqa: E402

TARGETS = {"msg": 5.3, "ct": 10.6}
CIFAR_RETRAIN_EPOCHS = 182
CIFAR_FT_EPOCHS = 5
MODELS = ("mlp", "small_cnn")
SPLITS = ("random", "class")


def parse_args(argv: list[str] | None):
    p = C.make_parser("python -m benchmarks.methods", __doc__.splitlines()[0])
    p.add_argument("--methods", type=C.csv_list(), default=None,
                   help="comma-separated method names (default: every registered method)")
    p.add_argument("--model", choices=MODELS, default="mlp", help="network (default mlp)")
    p.add_argument("--split", choices=SPLITS, default="random",
                   help="random 10%% forget set (default) or class 3 forgotten")
    p.add_argument("--epochs", type=C.positive_int, default=30,
                   help="epochs of the original/retrain recipe (default 30, the digits recipe)")
    p.add_argument("--min-time", type=float, default=None,
                   help="keep repeating a method until its timed runs add up to this many "
                        "seconds (default 3, 1 with --quick; 0 = exactly --repeats runs)")
    p.add_argument("--retrain-repeats", type=C.positive_int, default=3,
                   help="times the retrain fit is timed, spread between the methods; the "
                        "retrain time is the median (default 3)")
    p.add_argument("--out", type=Path, default=None,
                   help="directory to write methods_<model>.md and .json into")
    args = p.parse_args(argv)
    if args.min_time is None:
        args.min_time = 1.0 if args.quick else 3.0
    elif not args.min_time >= 0:
        p.error(f"--min-time must be >= 0, got {args.min_time}")
    return args


def build_task(model_name: str, split: str, epochs: int, seed: int) -> dict[str, Any]:
    """Digits task as in tests/conftest.py: original (train) and retrain (retain) fits."""
    from jaxmu.data import classwise_splits, load_digits, random_splits
    from jaxmu.models import mlp, small_cnn
    from jaxmu.train import TrainConfig, fit, split_accuracies

    ds = load_digits()
    splits = random_splits(ds) if split == "random" else classwise_splits(ds, [3])
    model = mlp((8, 8, 1), 10) if model_name == "mlp" else small_cnn((8, 8, 1), 10,
                                                                        channels=(8, 16))
    recipe = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, augment=False)
    C.log(f"fit original ({model_name}, {epochs} epochs) ...")
    o = fit(model, splits.pool, splits.mask("train"), seed, recipe, progress=False)
    C.log(f"fit retrain ({model_name}, {epochs} epochs) ...")
    r = fit(model, splits.pool, splits.retain, seed, recipe, progress=False)

    def refit() -> float:
        """Times the same retrain fit again (compiled once: the cache serves it)."""
        return fit(model, splits.pool, splits.retain, seed, recipe,
                   progress=False).timings["train_s"]

    return {"refit": refit,
        "model": model, "splits": splits, "recipe": recipe,
        "params": o.params, "model_state": o.model_state,
        "original": {"train_s": o.timings["train_s"], "compile_s": o.timings["compile_s"],
                     "acc": split_accuracies(model, o.params, o.model_state, splits)},
        "retrain": {"train_s": r.timings["train_s"], "compile_s": r.timings["compile_s"],
                    "epochs": epochs, "train_s_all": [r.timings["train_s"]],
                    "acc": split_accuracies(model, r.params, r.model_state, splits)},
    }


def bench_method(name: str, task: dict[str, Any], key: jax.Array, n_rep: int,
                 min_total: float = 0.0) -> dict[str, Any]:
    """Compile time, median run time and accuracies of one method at its defaults (at least
    ``n_rep`` timed runs, more until they add up to ``min_total`` seconds)."""
    from jaxmu.methods import get_method
    from jaxmu.train import split_accuracies

    row: dict[str, Any] = {"method": name, "hparams": None, "compile_s": None, "run_s": None,
                           "run_min_s": None, "repeats": 0, "acc": None, "error": None}
    try:
        m = get_method(name).bind(task["model"])
        row["hparams"] = m.hp
        args = (task["params"], task["model_state"], task["splits"], key)
        compiled, row["compile_s"] = C.compile_timed(m.jitted, *args)
        params, model_state = jax.block_until_ready(compiled(*args))  # warm-up, kept for acc
        t = C.time_call(lambda: compiled(*args), n_rep, warmup=0, min_total=min_total)
        row["run_s"], row["run_min_s"], row["repeats"] = t["median_s"], t["min_s"], t["repeats"]
        row["acc"] = split_accuracies(task["model"], params, model_state, task["splits"])
    except Exception as e:  # noqa: BLE001 - one failing method must not stop the benchmark
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        row["error"] = f"{type(e).__name__}: {msg}"[:300]
        C.log(f"method {name} failed:\n{traceback.format_exc()}")
    return row


def ft_epochs() -> int:
    """FT's registered default epochs (the reference's FT budget; 5 if FT is missing)."""
    from jaxmu.methods import get_method

    try:
        return int(get_method("ft").hp["epochs"])
    except Exception:  # noqa: BLE001
        return CIFAR_FT_EPOCHS


def add_ratios(rows: list[dict[str, Any]], retrain: dict[str, Any], cifar_epochs: float):
    """RTE columns: measured, including compile, and with a CIFAR-like retrain length."""
    t_r, t_r_min = retrain["train_s"], min(retrain["train_s_all"])
    t_r_cifar = t_r / retrain["epochs"] * cifar_epochs
    t_r_compile = t_r + retrain["compile_s"]
    for row in rows:
        ok = row["run_s"] is not None and row["run_s"] > 0
        row["rte"] = t_r / row["run_s"] if ok else None
        row["rte_best"] = t_r_min / row["run_min_s"] if ok else None
        row["rte_cifar_like"] = t_r_cifar / row["run_s"] if ok else None
        row["rte_incl_compile"] = (t_r_compile / (row["run_s"] + row["compile_s"])
                                   if ok else None)
    return t_r_cifar


def _verdict(value: float | None, target: float) -> str:
    return "ERROR" if value is None else ("PASS" if value >= target else "FAIL")


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {r["method"]: r for r in rows}
    out = []
    for name, target in TARGETS.items():
        r = by_name.get(name)
        if r is None:
            out.append({"method": name, "target": target, "rte": None, "rte_best": None,
                        "rte_cifar_like": None, "status": "NOT RUN",
                        "status_cifar_like": "NOT RUN"})
            continue

        out.append({"method": name, "target": target, "rte": r["rte"], "rte_best": r["rte_best"],
                    "rte_cifar_like": r["rte_cifar_like"], "status": _verdict(r["rte"], target),
                    "status_cifar_like": _verdict(r["rte_cifar_like"], target)})
    return out


def _acc(a: dict | None, k: str) -> str:
    return "-" if a is None else f"{a[k]:.3f}"


def render(res: dict[str, Any]) -> str:
    cfg, prov, rt, og = res["config"], res["provenance"], res["retrain"], res["original"]
    head = [
        f"methods on digits ({cfg['model']}, {cfg['split']} split), original/retrain: "
        f"{cfg['recipe']['epochs']} epochs, batch {cfg['recipe']['batch_size']}, "
        f"lr {cfg['recipe']['lr']}; run time = median of >= {cfg['repeats']} runs "
        f"(>= {cfg['min_time_s']:g} s in all)",
        f"device: {prov['backend']} {prov['devices'][0]}, {prov['threads']} threads, load avg "
        f"{prov['load_avg_1_5_15min']}; "
        f"jax {prov['versions']['jax']}"
        + (f"; compile cache {prov['compile_cache']} (compile = load on a hit)"
           if prov.get("compile_cache") else ""),
        f"retrain: {C.fmt_time(rt['train_s'])} training (median of "
        f"{len(rt['train_s_all'])} fits spread between the methods, best "
        f"{C.fmt_time(rt['train_min_s'])}; {C.fmt_time(rt['compile_s'])} compile)",
        f"CIFAR-like retrain: {res['cifar_like']['retrain_epochs']:g} epochs "
        f"(= {CIFAR_RETRAIN_EPOCHS}/{CIFAR_FT_EPOCHS} x FT's {res['cifar_like']['ft_epochs']}) "
        f"-> {C.fmt_time(res['cifar_like']['retrain_s'])}",
        "",
    ]
    headers = ["method", "compile", "run", "RTE", "RTE (best)", "RTE (CIFAR-like)",
               "RTE incl. compile", "RA", "FA", "TA", "error"]
    rows = [["original (fit)", C.fmt_time(og["compile_s"]), C.fmt_time(og["train_s"]),
             "-", "-", "-", "-", _acc(og["acc"], "retain"), _acc(og["acc"], "forget"),
             _acc(og["acc"], "test"), ""],
            ["retrain (fit)", C.fmt_time(rt["compile_s"]), C.fmt_time(rt["train_s"]),
             "1", "1", "-", "1", _acc(rt["acc"], "retain"), _acc(rt["acc"], "forget"),
             _acc(rt["acc"], "test"), ""]]
    for r in res["methods"]:
        rows.append([r["method"], C.fmt_time(r["compile_s"]), C.fmt_time(r["run_s"]),
                     C.fmt_num(r["rte"], ".2f"), C.fmt_num(r["rte_best"], ".2f"),
                     C.fmt_num(r["rte_cifar_like"], ".1f"),
                     C.fmt_num(r["rte_incl_compile"], ".2f"), _acc(r["acc"], "retain"),
                     _acc(r["acc"], "forget"), _acc(r["acc"], "test"), r["error"] or ""])
    lines = head + [C.markdown_table(headers, rows), ""]
    for t in res["targets"]:
        lines.append(
            f"target {t['method']} RTE >= {t['target']}: {t['status']} "
            f"(measured {C.fmt_num(t['rte'], '.2f')}, best-of-repeats "
            f"{C.fmt_num(t['rte_best'], '.2f')}); CIFAR-like: {t['status_cifar_like']} "
            f"({C.fmt_num(t['rte_cifar_like'], '.1f')})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    with C.compile_cache():  # only with JAXMU_COMPILE_CACHE set: compile is then a load
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = parse_args(argv)
    from jaxmu.methods import list_methods

    names = args.methods if args.methods is not None else list_methods()
    n_rep = C.repeats(args)
    task = build_task(args.model, args.split, args.epochs, args.seed)
    key = jax.random.key(args.seed)
    # Further retrain fits are spread evenly between the methods, so that the reference and
    # the methods see the same machine load; the retrain time is their median.
    rt = task["retrain"]
    k = args.retrain_repeats - 1
    refit_after = sorted(round(i * len(names) / k) for i in range(1, k + 1)) if k else []
    rows = []
    for i, name in enumerate([None, *names]):
        if name is not None:
            C.log(f"method {name} ...")
            rows.append(bench_method(name, task, key, n_rep, args.min_time))
        while refit_after and refit_after[0] == i:
            refit_after.pop(0)
            C.log("fit retrain again (timing only) ...")
            rt["train_s_all"].append(task["refit"]())
    rt["train_s"] = statistics.median(rt["train_s_all"])
    rt["train_min_s"] = min(rt["train_s_all"])
    fte = ft_epochs()
    cifar_epochs = CIFAR_RETRAIN_EPOCHS / CIFAR_FT_EPOCHS * fte
    t_cifar = add_ratios(rows, task["retrain"], cifar_epochs)
    recipe = task["recipe"].to_dict()
    res = {
        "benchmark": "methods",
        "config": {"dataset": "digits", "model": args.model, "split": args.split,
                   "recipe": recipe, "methods": list(names), "quick": args.quick,
                   "repeats": n_rep, "min_time_s": args.min_time,
                   "retrain_repeats": args.retrain_repeats,
                   "splits": task["splits"].sizes()},
        "seed": args.seed,
        "provenance": C.provenance(),
        "original": task["original"],
        "retrain": task["retrain"],
        "cifar_like": {"retrain_epochs": cifar_epochs, "ft_epochs": fte,
                       "reference": f"{CIFAR_RETRAIN_EPOCHS}/{CIFAR_FT_EPOCHS}",
                       "retrain_s": t_cifar},
        "methods": rows,
        "targets": check_targets(rows),
    }
    return C.finish(res, render(res), args, f"methods_{args.model}")


if __name__ == "__main__":
    sys.exit(main())
