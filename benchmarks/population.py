"""Population throughput: models x steps per second, per strategy, vs a loop of single steps.

For each model (MLP, small CNN) and population size M, one training epoch of M models on
digits (each model its own data order and membership mask) runs with every strategy
(``vmap``, ``chunked``, ``sequential``, and ``sharded`` when several devices exist) and, as
the baseline, as a Python loop of M calls of the jitted single-model epoch. Reported:
model-steps per second, the speed-up over the loop, and whether ``auto`` picked a strategy
within 10% of the best (the benchmark's target).

    python -m benchmarks.population [--quick] [--json] [--models mlp,small_cnn,resnet18]
                                    [--sizes 1,8] [--data digits|synthetic-cifar]
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _common as C

SIZES = (1, 8, 64, 256)
QUICK_SIZES = (1, 8, 64)


def synthetic_cifar(seed: int, n_train: int = 2000, n_test: int = 500):
    """A CIFAR-shaped (32x32x3, 10 classes) dataset of random images whose mean colour
    depends on the label (learnable, no download): for device checks of conv nets."""
    from jaxmu.data import make_dataset

    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = rng.integers(0, 10, n)
    base = rng.integers(0, 256, (10, 1, 1, 3))
    x = np.clip(rng.normal(base[y], 60.0, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
    return make_dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                        name="synthetic_cifar", num_classes=10)


def _setup(model_name: str, m: int, seed: int, data: str = "digits"):
    from jaxmu.data import load_digits
    from jaxmu.models import get_model
    from jaxmu.population import balanced_masks, init_population, model_keys
    from jaxmu.train import TrainConfig, init_keys

    ds = load_digits() if data == "digits" else synthetic_cifar(seed)
    shape = ds.pool.image_shape
    kw = {"channels": (16, 32)} if model_name == "small_cnn" else {}
    model = get_model(model_name, 10, shape, **kw)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, augment=True)
    cand = np.arange(ds.pool.size) < ds.n_train
    masks = balanced_masks(seed, max(2, m + m % 2), cand)[:m]
    params, state = init_population(model, seed, range(m))
    opt = jax.vmap(cfg.direction().init)(params)
    keys = jax.vmap(lambda k: init_keys(k)[1])(model_keys(seed, range(m)))
    return ds.pool, model, cfg, jnp.asarray(masks), params, state, opt, keys


def measure(model_name: str, m: int, strategies: list[str], n_rep: int, seed: int,
            data: str = "digits") -> dict:
    from jaxmu.population import map_models, resolve_strategy
    from jaxmu.train import steps_per_epoch, train_epoch

    pool, model, cfg, masks, params, state, opt, keys = _setup(model_name, m, seed, data)
    n = int(masks[0].sum())
    steps = steps_per_epoch(n, cfg.batch_size)
    lr = jnp.float32(cfg.lr)

    def one(p, s, o, mask, k):
        return train_epoch(model, cfg, p, s, o, pool, mask, n, k, lr)

    rows = {}
    for strat in strategies:
        chunk = max(1, min(8, m)) if strat == "chunked" else None
        f = jax.jit(map_models(one, strat, chunk))
        compiled, t_c = C.compile_timed(f, params, state, opt, masks, keys)
        t = C.time_call(lambda c=compiled: c(params, state, opt, masks, keys), n_rep)
        rows[strat] = {"compile_s": t_c, "median_s": t["median_s"],
                       "model_steps_per_s": m * steps / t["median_s"]}
    # Baseline: a Python loop of the jitted single-model epoch.
    single = jax.jit(one)
    sl = lambda i: jax.tree.map(lambda x: x[i], (params, state, opt, masks, keys))  # noqa: E731
    args = [sl(i) for i in range(m)]
    compiled, t_c = C.compile_timed(single, *args[0])

    def loop():
        return [compiled(*a) for a in args]

    t = C.time_call(loop, n_rep)
    rows["loop"] = {"compile_s": t_c, "median_s": t["median_s"],
                    "model_steps_per_s": m * steps / t["median_s"]}
    auto = resolve_strategy("auto", params, m)
    best = max((s for s in strategies), key=lambda s: rows[s]["model_steps_per_s"])
    auto_ratio = (rows[auto]["model_steps_per_s"] / rows[best]["model_steps_per_s"]
                  if auto in rows else None)
    for r in rows.values():
        r["speedup_vs_loop"] = r["model_steps_per_s"] / rows["loop"]["model_steps_per_s"]
    return {"model": model_name, "data": data, "M": m, "steps_per_epoch": steps,
            "strategies": rows,
            "auto": auto, "best": best, "auto_vs_best": auto_ratio,
            "auto_within_10pct": auto_ratio is not None and auto_ratio >= 0.9}


def main(argv: list[str] | None = None) -> int:
    p = C.make_parser("python -m benchmarks.population", __doc__.splitlines()[0])
    p.add_argument("--models", type=C.csv_list(["mlp", "small_cnn", "resnet18"]),
                   default=["mlp", "small_cnn"], help="models to measure")
    p.add_argument("--data", choices=("digits", "synthetic-cifar"), default="digits",
                   help="digits (8x8x1) or CIFAR-shaped random images (32x32x3)")
    p.add_argument("--sizes", type=C.csv_list(), default=None,
                   help="population sizes (default 1,8,64,256; 1,8,64 with --quick)")
    a = p.parse_args(argv)
    try:
        sizes = [int(s) for s in a.sizes] if a.sizes else list(QUICK_SIZES if a.quick
                                                                else SIZES)
        if min(sizes) < 1:
            raise ValueError
    except ValueError:
        p.error(f"--sizes must be positive integers, got {a.sizes}")
    strategies = ["vmap", "chunked", "sequential"] + (["sharded"] if jax.device_count() > 1
                                                       else [])
    n_rep = C.repeats(a)
    t0 = time.perf_counter()
    results = []
    for name in a.models:
        for m in sizes:
            C.log(f"measuring {name} M={m}")
            results.append(measure(name, m, strategies, n_rep, a.seed, a.data))
    headers = ["model", "M", *[f"{s} (x loop)" for s in strategies], "loop steps/s", "auto",
               "auto/best"]
    rows = []
    for r in results:
        s = r["strategies"]
        rows.append([r["model"], r["M"],
                     *[f"{s[k]['model_steps_per_s']:.0f} ({s[k]['speedup_vs_loop']:.2f}x)"
                       for k in strategies],
                     f"{s['loop']['model_steps_per_s']:.0f}", r["auto"],
                     C.fmt_num(r["auto_vs_best"], ".2f")])
    print("model-steps per second (speed-up over a Python loop of jitted single steps)")
    print(C.markdown_table(headers, rows))
    ok = all(r["auto_within_10pct"] for r in results if r["M"] > 1)
    print(f"target: auto within 10% of the best strategy for M > 1: {'PASS' if ok else 'FAIL'}")
    C.emit({"benchmark": "population", "config": {"models": a.models, "sizes": sizes,
                                                  "data": a.data,
                                                  "repeats": n_rep, "seed": a.seed},
            "results": results, "auto_within_10pct": ok,
            "total_s": time.perf_counter() - t0, "provenance": C.provenance()}, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
