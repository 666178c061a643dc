"""Training-step speed as users run it: in ``train_epoch``'s scan, in a population's
``lax.map``, in a Python loop of jitted steps, and PyTorch eager on the same net.

Each setting is a model, an input shape and a batch size:

* ``small_cnn_16_32``: the small CNN, channels (16, 32), 28x28x1, batch 256;
* ``small_cnn_32_64_128``: the small CNN, channels (32, 64, 128), 28x28x1, batch 256;
* ``resnet18_b64`` / ``resnet18_b256``: ResNet18 with the ImageNet stem (as Deep Unlearn
  uses it at 32x32), 32x32x3, batch 64 / 256;
* ``mlp``: the MLP (hidden 128, 64), 28x28x1, batch 256 (no PyTorch twin; cheap, for tests).

The step is :func:`jaxmu.train.make_train_step` (cross-entropy, train-mode BatchNorm, SGD
lr 0.1, momentum 0.9, coupled weight decay 5e-4, batch gathered from a pool of random
images, no augmentation), timed four ways side by side, repeats interleaved (A B C D A B C
D ...) so every mode sees the same machine load:

* ``scan``: :func:`jaxmu.train.train_epoch` (one compiled epoch = ``lax.scan`` over steps);
  time per step = epoch time / steps;
* ``map``: that epoch inside the population engine's ``sequential`` strategy (``lax.map``
  over 2 models), time per step per model;
* ``loop``: a Python loop of the jitted step (params donated);
* ``torch``: PyTorch eager, the same architecture (torchvision's ``resnet18``; the small CNN
  written out), same optimizer, same threads, NCHW, when ``torch`` imports (the ``bench``
  extra).

Also printed: FLOPs per step (XLA's cost analysis) and achieved FLOP/s against a measured
f32 matmul peak, the compile time of each jaxmu program, and the load average before and
after. **A run is valid only on an idle machine**: with a 1-minute load average above
``--max-load`` (1.5 on 2 cores) at the start, or other processes using more than
``--max-foreign`` cores (0.25) on average during the run (machine busy time from
``/proc/stat`` minus this process's CPU time), the result says ``"valid": false`` and the
table says why; never quote such a run. (The load average at the end is recorded but not
judged: the benchmark's own two busy threads raise it.)

Usage::

    python -m benchmarks.train_step [--quick] [--json] [--settings small_cnn_16_32,...]
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import _common as C  # noqa: E402

# name: (model, kwargs, input shape, batch)
SETTINGS: dict[str, tuple[str, dict[str, Any], tuple[int, int, int], int]] = {
    "mlp": ("mlp", {}, (28, 28, 1), 256),
    "small_cnn_16_32": ("small_cnn", {"channels": (16, 32)}, (28, 28, 1), 256),
    "small_cnn_32_64_128": ("small_cnn", {"channels": (32, 64, 128)}, (28, 28, 1), 256),
    "resnet18_b64": ("resnet18", {}, (32, 32, 3), 64),
    "resnet18_b256": ("resnet18", {}, (32, 32, 3), 256),
}
DEFAULT = ("small_cnn_16_32", "small_cnn_32_64_128", "resnet18_b64", "resnet18_b256")
MODES = ("scan", "map", "loop", "torch")
NUM_CLASSES = 10
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4
POP_MODELS = 2
TORCH_WARMUP = 5


def parse_args(argv: list[str] | None):
    p = C.make_parser("python -m benchmarks.train_step", __doc__.splitlines()[0])
    p.add_argument("--settings", "--models", dest="settings", type=C.csv_list(tuple(SETTINGS)),
                   default=list(DEFAULT),
                   help=f"comma-separated subset of {','.join(SETTINGS)} "
                        f"(default: {','.join(DEFAULT)})")
    p.add_argument("--steps", type=C.positive_int, default=None,
                   help="steps per timed epoch (default 8, --quick 4)")
    p.add_argument("--peak-n", type=C.positive_int, default=2048,
                   help="matrix size of the matmul peak measurement (default 2048)")
    p.add_argument("--max-load", type=float, default=1.5,
                   help="1-min load average above which the run is marked invalid (default 1.5)")
    p.add_argument("--max-foreign", type=float, default=0.25,
                   help="other processes' mean CPU use (cores) above which the run is marked "
                        "invalid (default 0.25)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    return p.parse_args(argv)


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        return None


def _cpu_seconds() -> tuple[float | None, float]:
    """(busy CPU seconds of the whole machine from /proc/stat or None, this process's CPU
    seconds including its children)."""
    import resource

    own = sum(getattr(resource.getrusage(w), f) for w in
              (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # - idle, iowait
        return busy / os.sysconf("SC_CLK_TCK"), own
    except (OSError, ValueError):  # pragma: no cover - not Linux
        return None, own


def build_model(setting: str):
    """The jaxmu model of a setting."""
    from jaxmu.models import get_model

    name, kw, shape, _ = SETTINGS[setting]
    return get_model(name, NUM_CLASSES, shape, **kw)


def setup_jax(setting: str, seed: int, steps: int, min_time: float):
    """Compiles the three jaxmu programs of a setting; returns (info, {mode: LoopTimer})."""
    from jaxmu.population import map_models
    from jaxmu.train import TrainConfig, make_train_step, train_epoch
    from jaxmu.types import Pool

    _, _, shape, batch = SETTINGS[setting]
    model = build_model(setting)
    config = TrainConfig(epochs=1, batch_size=batch, lr=LR, momentum=MOMENTUM,
                         weight_decay=WEIGHT_DECAY, schedule="constant", augment=False)
    n = steps * batch
    kp, kx, ky, kd = jax.random.split(jax.random.key(seed), 4)
    pool = Pool(jax.random.randint(kx, (n, *shape), 0, 256).astype(jnp.uint8),
                jax.random.randint(ky, (n,), 0, NUM_CLASSES), NUM_CLASSES,
                (0.5,) * shape[2], (0.25,) * shape[2], "random")
    mask = jnp.ones((n,), bool)
    lr = jnp.float32(LR)
    tx = config.direction()

    def fresh():
        params, state = model.init(kp)
        return params, state, tx.init(params)

    info: dict[str, Any] = {"params": model.num_params(fresh()[0]), "batch": batch,
                            "input_shape": list(shape), "steps_per_epoch": steps}
    timers: dict[str, C.LoopTimer] = {}

    # scan: the epoch users run.
    compiled, info["compile_scan_s"] = C.compile_timed(
        train_epoch, model, config, *fresh(), pool, mask, n, kd, lr)

    def epoch(p, s, o):
        return compiled(p, s, o, pool, mask, kd, lr)[:3]

    timers["scan"] = C.LoopTimer(epoch, fresh(), min_time, per_call=steps)

    # map: the same epoch for POP_MODELS models in the population engine's lax.map.
    def one(p, s, o):
        return train_epoch(model, config, p, s, o, pool, mask, n, kd, lr)[:3]

    mapped = jax.jit(map_models(one, "sequential"), donate_argnums=(0, 1, 2))
    stacked = jax.tree.map(lambda a: jnp.stack([a] * POP_MODELS), fresh())
    compiled_map, info["compile_map_s"] = C.compile_timed(mapped, *stacked)
    timers["map"] = C.LoopTimer(lambda p, s, o: compiled_map(p, s, o), stacked, min_time,
                                per_call=steps * POP_MODELS)

    # loop: a Python loop of the jitted step.
    step = make_train_step(model, config, pool, lr)
    bidx = jnp.arange(batch)

    def single(p, s, o):
        return step((p, s, o), (bidx, kd))[0]

    compiled_step, info["compile_step_s"] = C.compile_timed(
        jax.jit(single, donate_argnums=(0, 1, 2)), *fresh())
    timers["loop"] = C.LoopTimer(lambda p, s, o: compiled_step(p, s, o), fresh(), min_time)
    info["flops_per_step"] = C.cost_flops(compiled_step)
    return info, timers


def torch_net(setting: str):
    """The PyTorch twin of a setting's model, or None (MLP: no twin)."""
    import torch
    import torchvision

    name, kw, shape, _ = SETTINGS[setting]
    if name == "resnet18":
        return torchvision.models.resnet18(num_classes=NUM_CLASSES)
    if name != "small_cnn":
        return None
    layers: list[Any] = []
    cin = shape[2]
    channels = kw["channels"]
    for i, c in enumerate(channels):
        layers += [torch.nn.Conv2d(cin, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c),
                   torch.nn.ReLU()]
        if i < len(channels) - 1:
            layers.append(torch.nn.MaxPool2d(2))
        cin = c
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
               torch.nn.Linear(cin, NUM_CLASSES)]
    return torch.nn.Sequential(*layers)


def setup_torch(setting: str, seed: int, min_time: float):
    """PyTorch eager step of a setting; returns (info, timer), or (status, None)."""
    try:
        import torch
        import torchvision
    except ImportError:
        return "not installed", None
    net = torch_net(setting)
    if net is None:
        return "no PyTorch twin", None
    torch.set_num_threads(C.threads())
    torch.manual_seed(seed)
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    net = net.to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM,
                          weight_decay=WEIGHT_DECAY)
    loss_fn = torch.nn.CrossEntropyLoss()
    _, _, shape, batch = SETTINGS[setting]
    x = torch.randn(batch, shape[2], *shape[:2], device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
        return ()

    def sync(_):
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(TORCH_WARMUP):  # oneDNN picks and caches kernels over the first steps
        step()
    sync(None)
    info = {"device": device, "threads": torch.get_num_threads(), "warmup_steps": TORCH_WARMUP,
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__}}
    return info, C.LoopTimer(step, (), min_time, sync=sync)


def run_setting(setting: str, args, steps: int, n_rep: int, min_time: float) -> dict[str, Any]:
    C.log(f"{setting}: compiling ...")
    info, timers = setup_jax(setting, args.seed, steps, min_time)
    torch_info, torch_timer = ("skipped (--no-torch)", None) if args.no_torch else \
        setup_torch(setting, args.seed, min_time)
    if torch_timer is not None:
        timers["torch"] = torch_timer
    C.log(f"{setting}: timing {', '.join(timers)} interleaved ...")
    results = dict(zip(timers, C.interleaved(list(timers.values()), n_rep), strict=True))
    out = {**info, "torch": torch_info if torch_timer is not None else None,
           "torch_status": "measured" if torch_timer is not None else torch_info,
           "step_s": {m: r["median_s"] for m, r in results.items()},
           "step_min_s": {m: r["min_s"] for m, r in results.items()},
           "repeats": n_rep}
    s = out["step_s"]
    out["ratios"] = {
        "scan_over_loop": s["scan"] / s["loop"],
        "map_over_loop": s["map"] / s["loop"],
        **({f"{m}_over_torch": s[m] / s["torch"] for m in ("scan", "map", "loop")}
           if "torch" in s else {}),
    }
    flops = info["flops_per_step"]
    out["flops_per_s_scan"] = flops / s["scan"] if flops else None
    return out


def render(res: dict[str, Any]) -> str:
    cfg, peak, prov = res["config"], res["peak"], res["provenance"]
    out = [
        "train step (make_train_step: CE, train-mode BN, SGD lr 0.1 momentum 0.9 wd 5e-4, "
        "no augmentation); per-step medians of interleaved repeats",
        f"device: {prov['backend']} {prov['devices'][0]}, {prov['threads']} threads; jax "
        f"{prov['versions']['jax']}; repeats {cfg['repeats']}; load avg start "
        f"{res['load_start']} end {res['load_end']}",
        f"matmul peak ({peak['n']}x{peak['n']} f32): {peak['flops_per_s'] / 1e9:.1f} GFLOP/s",
        "",
    ]
    rows = []
    for name, m in res["settings"].items():
        st, r = m["step_s"], m["ratios"]
        gfs = m["flops_per_s_scan"]
        rows.append([
            name, f"{m['batch']}", C.fmt_time(m["compile_scan_s"]), C.fmt_time(st["scan"]),
            C.fmt_time(st["map"]), C.fmt_time(st["loop"]), C.fmt_time(st.get("torch")),
            f"{r['scan_over_loop']:.2f}", C.fmt_num(r.get("scan_over_torch"), ".2f"),
            C.fmt_num(r.get("map_over_torch"), ".2f"),
            C.fmt_num(gfs / 1e9 if gfs else None, ".1f"),
            C.fmt_num(gfs / peak["flops_per_s"] if gfs else None, ".2f"),
        ])
    out.append(C.markdown_table(
        ["setting", "batch", "compile", "scan", "map", "loop", "pytorch", "scan/loop",
         "scan/torch", "map/torch", "GFLOP/s", "of peak"], rows))
    out.append("")
    statuses = {m["torch_status"] for m in res["settings"].values()} - {"measured"}
    if statuses:
        out.append(f"pytorch: {', '.join(sorted(statuses))} for some settings")
    fc = res["foreign_cores"]
    out.append("VALID: idle machine" if res["valid"] else
               f"INVALID: load average at start {res['load_start']} (max {cfg['max_load']}), "
               f"other processes used {C.fmt_num(fc, '.2f')} cores during the run (max "
               f"{cfg['max_foreign']}); timings on a loaded machine are not evidence")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n_rep = C.repeats(args)
    steps = args.steps or (4 if args.quick else 8)
    min_time = 0.2 if args.quick else 0.5
    load_start = _load()
    t0, (busy0, own0) = time.perf_counter(), _cpu_seconds()
    C.log(f"matmul peak {args.peak_n}x{args.peak_n} ...")
    peak = C.matmul_peak(args.peak_n, n_rep, args.seed)
    settings = {s: run_setting(s, args, steps, n_rep, min_time) for s in args.settings}
    load_end = _load()
    busy1, own1 = _cpu_seconds()
    wall = time.perf_counter() - t0
    # Other processes' CPU use during the run, in cores (the run's own threads raise the
    # load average, so the end-of-run load cannot tell whether the machine was shared).
    foreign = None if busy0 is None else max(0.0, (busy1 - busy0) - (own1 - own0)) / wall
    valid = (load_start is not None and load_start <= args.max_load
             and (foreign is None or foreign <= args.max_foreign))
    res = {
        "benchmark": "train_step",
        "config": {"settings": list(args.settings), "steps_per_epoch": steps,
                   "population_models": POP_MODELS, "num_classes": NUM_CLASSES,
                   "optimizer": {"name": "sgd", "lr": LR, "momentum": MOMENTUM,
                                 "weight_decay": WEIGHT_DECAY},
                   "loss": "cross_entropy", "bn": "train", "quick": args.quick,
                   "repeats": n_rep, "min_repeat_s": min_time, "peak_n": args.peak_n,
                   "max_load": args.max_load, "max_foreign": args.max_foreign},
        "seed": args.seed,
        "provenance": C.provenance(),
        "load_start": load_start,
        "load_end": load_end,
        "foreign_cores": foreign,
        "valid": valid,
        "peak": peak,
        "settings": settings,
    }
    print(render(res), flush=True)
    C.emit(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
