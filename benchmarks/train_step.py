"""Training-step speed: time per step and achieved FLOP/s against a measured matmul peak.

One training step is what :func:`jaxmu.train.train_epoch` runs per batch: cross-entropy,
train-mode BatchNorm, SGD with momentum 0.9 and coupled weight decay 5e-4 (lr 0.1), on a
batch of 64 images of 32x32x3 with 10 classes, for the MLP, the small CNN and ResNet18
(ImageNet stem). FLOPs per step come from XLA's cost analysis of the compiled step;
achieved FLOP/s is compared with a measured f32 matmul (``jnp.dot``, 2048x2048) timed in the
same run. When PyTorch and torchvision are importable (``pip install jaxmu[bench]``), the
same step of torchvision's ``resnet18(num_classes=10)`` (eager, same optimizer, same
threads) is timed too and the jaxmu/PyTorch step-time ratio printed.

Usage::

    python -m benchmarks.train_step [--quick] [--json] [--models mlp,small_cnn,resnet18]

References:
    docs/benchmarks.md (measured numbers); design.md §1 (benchmarks print ratios from one run).
"""

from __future__ import annotations

import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import _common as C  # noqa: E402

MODELS = ("mlp", "small_cnn", "resnet18")
BATCH = 64
INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4


def parse_args(argv: list[str] | None):
    p = C.make_parser("python -m benchmarks.train_step", __doc__.splitlines()[0])
    p.add_argument("--models", type=C.csv_list(MODELS), default=list(MODELS),
                   help=f"comma-separated subset of {','.join(MODELS)} (default: all)")
    p.add_argument("--peak-n", type=C.positive_int, default=2048,
                   help="matrix size of the matmul peak measurement (default 2048)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    return p.parse_args(argv)


def make_step(model):
    """The jitted training step ``(params, state, opt_state, x, y) -> (..., loss)``."""
    from jaxmu.losses import cross_entropy
    from jaxmu.train import TrainConfig

    tx = TrainConfig(lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY).direction()

    def step(params, model_state, opt_state, x, y):
        def loss_fn(p):
            logits, new_state = model.apply(p, model_state, x, train=True)
            return cross_entropy(logits, y), new_state

        (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        direction, opt_state = tx.update(grads, opt_state, params)
        params = jax.tree.map(lambda p, d: p - LR * d, params, direction)
        return params, model_state, opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1, 2)), tx


def setup_jax(name: str, seed: int, min_time: float) -> tuple[dict[str, Any], C.LoopTimer]:
    """Builds, compiles and calibrates one model's training step; returns (info, timer)."""
    from jaxmu.models import get_model

    model = get_model(name, NUM_CLASSES, INPUT_SHAPE)
    kp, kx, ky = jax.random.split(jax.random.key(seed), 3)
    params, model_state = model.init(kp)
    x = jax.random.normal(kx, (BATCH, *INPUT_SHAPE), jnp.float32)
    y = jax.random.randint(ky, (BATCH,), 0, NUM_CLASSES)
    step, tx = make_step(model)
    opt_state = tx.init(params)
    n_params = model.num_params(params)
    compiled, compile_s = C.compile_timed(step, params, model_state, opt_state, x, y)

    def loop(p, s, o):
        return compiled(p, s, o, x, y)[:3]

    timer = C.LoopTimer(loop, (params, model_state, opt_state), min_time)
    return {"params": n_params, "flops_per_step": C.cost_flops(compiled),
            "compile_s": compile_s}, timer


def finish_jax(info: dict[str, Any], t: dict[str, Any]) -> dict[str, Any]:
    flops = info["flops_per_step"]
    return {**info, "step_s": t["median_s"], "step_min_s": t["min_s"], "inner": t["inner"],
            "repeats": t["repeats"], "steps_per_s": 1.0 / t["median_s"],
            "flops_per_s": flops / t["median_s"] if flops else None}


def setup_torch(seed: int, min_time: float) -> tuple[dict[str, Any] | None, Any, str]:
    """torchvision's resnet18 training step; returns (info, timer, status), info None when
    PyTorch or torchvision is missing."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None, None, "not installed"
    torch.set_num_threads(C.threads())
    torch.manual_seed(seed)
    device = "cpu"
    if jax.default_backend() == "gpu" and torch.cuda.is_available():
        device = "cuda"
    net = torchvision.models.resnet18(num_classes=NUM_CLASSES).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM,
                          weight_decay=WEIGHT_DECAY)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(BATCH, INPUT_SHAPE[2], *INPUT_SHAPE[:2], device=device)
    y = torch.randint(0, NUM_CLASSES, (BATCH,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
        return ()

    def sync(_):
        if device == "cuda":
            torch.cuda.synchronize()

    timer = C.LoopTimer(step, (), min_time, sync=sync)
    info = {"model": "torchvision.models.resnet18(num_classes=10)", "mode": "eager, NCHW",
            "device": device, "threads": torch.get_num_threads(),
            "params": sum(p.numel() for p in net.parameters()),
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__}}
    return info, timer, "measured"


def render(res: dict[str, Any]) -> str:
    cfg, peak = res["config"], res["peak"]
    prov = res["provenance"]
    out = [
        f"train step: batch {cfg['batch']}, input {'x'.join(map(str, cfg['input_shape']))}, "
        f"{cfg['num_classes']} classes, SGD lr {LR} momentum {MOMENTUM} wd {WEIGHT_DECAY}, "
        "CE, train-mode BN",
        f"device: {prov['backend']} {prov['devices'][0]}, {prov['threads']} threads, load avg "
        f"{prov['load_avg_1_5_15min']}; "
        f"jax {prov['versions']['jax']}; repeats {cfg['repeats']} (median)",
        f"matmul peak ({peak['n']}x{peak['n']} f32 jnp.dot): "
        f"{peak['flops_per_s'] / 1e9:.1f} GFLOP/s (best of {peak['repeats']}, measured before "
        f"and after the models; median {peak['median_flops_per_s'] / 1e9:.1f} GFLOP/s)",
        "",
    ]
    rows = []
    for name, m in res["models"].items():
        gflop = m["flops_per_step"] / 1e9 if m["flops_per_step"] else None
        gfs = m["flops_per_s"] / 1e9 if m["flops_per_s"] else None
        rows.append([name, f"{m['params']:,}", C.fmt_num(gflop, ".4f"),
                     C.fmt_time(m["compile_s"]), C.fmt_time(m["step_s"]),
                     C.fmt_time(m["step_min_s"]), f"{m['steps_per_s']:.1f}",
                     C.fmt_num(gfs, ".2f"), C.fmt_num(m["peak_ratio"], ".3f"),
                     C.fmt_num(m["peak_ratio_best"], ".3f")])
    out.append(C.markdown_table(
        ["model", "params", "GFLOP/step", "compile", "step (median)", "step (best)", "steps/s",
         "GFLOP/s", "achieved/peak", "best/peak"], rows))
    out.append("")
    pt = res["pytorch"]
    if pt is None:
        out.append(f"pytorch: {res['pytorch_status']}")
    else:
        out.append(
            f"pytorch: torchvision resnet18 step {C.fmt_time(pt['step_s'])} "
            f"(best {C.fmt_time(pt['step_min_s'])}) "
            f"(torch {pt['versions']['torch']}, {pt['device']}, {pt['threads']} threads); "
            f"jaxmu/PyTorch step-time ratio {pt['jax_over_torch']:.2f} (medians of "
            f"interleaved repeats; {pt['jax_over_torch_best']:.2f} best vs best; < 1 means "
            "jaxmu is faster)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n_rep = C.repeats(args)
    min_time = 0.2 if args.quick else 0.5
    C.log(f"matmul peak {args.peak_n}x{args.peak_n} ...")
    peak = C.matmul_peak(args.peak_n, n_rep, args.seed)
    models: dict[str, Any] = {}
    pt, status = None, "skipped (resnet18 not selected)"
    for name in args.models:
        C.log(f"train step {name} ...")
        info, timer = setup_jax(name, args.seed, min_time)
        if name != "resnet18" or args.no_torch:
            models[name] = finish_jax(info, C.interleaved([timer], n_rep)[0])
            continue
        C.log("train step torchvision resnet18 (interleaved with jaxmu's) ...")
        pt, pt_timer, status = setup_torch(args.seed, min_time)
        if pt is None:
            models[name] = finish_jax(info, C.interleaved([timer], n_rep)[0])
            continue
        t_jax, t_pt = C.interleaved([timer, pt_timer], n_rep)
        models[name] = finish_jax(info, t_jax)
        pt.update(step_s=t_pt["median_s"], step_min_s=t_pt["min_s"], inner=t_pt["inner"],
                  repeats=t_pt["repeats"])
        pt["jax_over_torch"] = models[name]["step_s"] / pt["step_s"]
        pt["jax_over_torch_best"] = models[name]["step_min_s"] / pt["step_min_s"]
    if args.no_torch:
        status = "skipped (--no-torch)"
    C.log("matmul peak again ...")
    peak_end = C.matmul_peak(args.peak_n, n_rep, args.seed)
    if peak_end["flops_per_s"] > peak["flops_per_s"]:
        peak = {**peak_end, "compile_s": peak["compile_s"]}
    for m in models.values():
        ok = m["flops_per_s"] is not None
        m["peak_ratio"] = m["flops_per_s"] / peak["flops_per_s"] if ok else None
        m["peak_ratio_best"] = (m["flops_per_step"] / m["step_min_s"] / peak["flops_per_s"]
                                if ok else None)
    res = {
        "benchmark": "train_step",
        "config": {"models": list(args.models), "batch": BATCH, "input_shape": INPUT_SHAPE,
                   "num_classes": NUM_CLASSES, "resnet18_stem": "imagenet",
                   "optimizer": {"name": "sgd", "lr": LR, "momentum": MOMENTUM,
                                 "weight_decay": WEIGHT_DECAY},
                   "loss": "cross_entropy", "bn": "train", "quick": args.quick,
                   "repeats": n_rep, "min_repeat_s": min_time, "peak_n": args.peak_n},
        "seed": args.seed,
        "provenance": C.provenance(),
        "peak": peak,
        "models": models,
        "pytorch": pt,
        "pytorch_status": status,
    }
    print(render(res), flush=True)
    C.emit(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
