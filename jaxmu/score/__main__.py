"""``python -m jaxmu.score``: export a task, or score a submission against it.

::

    python -m jaxmu.score export DATASET --out TASK.npz [split and reference options]
    python -m jaxmu.score SUBMISSION.npz --task TASK.npz [--cache-dir DIR] [--out RESULT.json]
                          [--bootstrap N] [--quiet]

Scoring prints one line per audit and writes a JSON result (the scores, the command's
configuration, library versions, timings and the task hash). A bad file (missing, not an
``.npz``, missing keys, wrong shapes, non-finite logits, another task's hash), a bad
argument or missing data prints one line on stderr and exits with status 2, writing
nothing. ``--help`` imports no jax. Formats and a worked example: ``docs/scoring.md``.
"""

from __future__ import annotations

import errno
import sys
import time
from pathlib import Path
from typing import Any

from jaxmu._argparse import ArgumentParser

PROG = "python -m jaxmu.score"


def build_parser() -> ArgumentParser:
    """The scoring command's parser (``export`` has its own, :func:`build_export_parser`)."""
    p = ArgumentParser(
        prog=PROG,
        description="Score the logits of an unlearned population (from any framework) "
        "against jaxmu's retrained population: competition F-score, KLoM, offline U-LiRA and "
        "U-RMIA, attack power vs reference models. First export a task with "
        f"'{PROG} export DATASET --out TASK.npz' (see '{PROG} export --help'); "
        "formats in docs/scoring.md.")
    p.add_argument("submission", metavar="SUBMISSION.npz",
                   help="logits [M, N, K] of M unlearned models on the task's N eval rows, "
                        "and the task's task_hash")
    p.add_argument("--task", required=True, metavar="TASK.npz", help="the task file")
    p.add_argument("--cache-dir", default=".jaxmu_cache",
                   help="cache of trained models and populations (default .jaxmu_cache; the "
                        "experiment CLIs' cache, so their --eval fscore population is reused)")
    p.add_argument("--no-cache", action="store_true", help="train without reading or "
                   "writing the cache")
    p.add_argument("--data-dir", default=None, help="where the task's dataset files are")
    p.add_argument("--out", default=None, metavar="RESULT.json",
                   help="the JSON result (default: SUBMISSION with suffix .score.json)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="N",
                   help="resamples of every interval (default 200; 0 skips them)")
    p.add_argument("--permutations", type=int, default=100, metavar="N",
                   help="permutations of KLoM's null (default 100; 0 skips it)")
    p.add_argument("--strategy", default="auto",
                   choices=("auto", "vmap", "chunked", "sequential", "sharded"),
                   help="population strategy of the retrained models (results do not "
                        "depend on it)")
    p.add_argument("--chunk", type=int, default=None, help="models per chunk (chunked)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def build_export_parser() -> ArgumentParser:
    """``export``'s parser."""
    from jaxmu._names import SCENARIOS

    p = ArgumentParser(
        prog=f"{PROG} export",
        description="Write a task file: the dataset split, the eval rows a submission must "
        "predict (forget, retain, test; with their labels and uint8 images) and the "
        "reference setting of jaxmu's retrained population. Defaults are those of "
        "python -m experiments.DATASET.")
    p.add_argument("dataset", metavar="DATASET",
                   help="digits, mnist, fashion_mnist, cifar10, cifar100 or an .npz path")
    p.add_argument("--out", required=True, metavar="TASK.npz", help="the task file to write")
    p.add_argument("--forget-scenario", default="random",
                   help=f"forget-set scenario: {', '.join(SCENARIOS)}")
    p.add_argument("--forget-fraction", type=float, default=0.1,
                   help="forget fraction of the non-val train set (default 0.1)")
    p.add_argument("--val-fraction", type=float, default=0.15,
                   help="val fraction of the train set (default 0.15)")
    p.add_argument("--split-seed", type=int, default=123, help="split seed (default 123)")
    p.add_argument("--data-dir", default=None, help="where the dataset's files are")
    p.add_argument("--model", default=None,
                   help="model of the retrained population (default: the dataset's)")
    p.add_argument("--epochs", type=int, default=None, help="its training epochs")
    p.add_argument("--batch-size", type=int, default=None, help="its batch size")
    p.add_argument("--lr", type=float, default=None, help="its learning rate")
    p.add_argument("--models", type=int, default=512,
                   help="retrained models (default 512, the competition's)")
    p.add_argument("--seed", type=int, default=0, help="population seed (default 0)")
    p.add_argument("--retain-sample", type=int, default=None, metavar="N",
                   help="keep a seeded sample of N retain rows among the eval rows (large "
                        "datasets); default all")
    return p


def _fmt(v: Any, spec: str = ".3f") -> str:
    try:
        return "-" if v is None or v != v else format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def _ci(ci: Any, spec: str = ".3f") -> str:
    return f" [{_fmt(ci[0], spec)}, {_fmt(ci[1], spec)}]" if ci else ""


def summary_lines(res: dict[str, Any]) -> list[str]:
    """One line per audit of a :func:`jaxmu.score.score_logits` result."""
    lines = []
    if "fscore" in res:
        f = res["fscore"]
        acc = " ".join(f"{k} {_fmt(f[key]['value'])}{_ci(f[key]['ci'])}" for k, key in (
            ("RA_U", "unlearned_ra"), ("TA_U", "unlearned_ta"), ("RA_R", "retrained_ra"),
            ("TA_R", "retrained_ta")))
        lines.append(f"F-score ({f['num_models']}+{f['num_models']} models, "
                     f"{f['forget_size']} forget rows): forget quality F = "
                     f"{_fmt(f['forget_quality'], '.4f')}{_ci(f.get('forget_quality_ci'), '.4f')}"
                     f", score = {_fmt(f['score'], '.4f')}{_ci(f.get('score_ci'), '.4f')} "
                     f"({acc})")
    if "klom" in res:
        k = res["klom"]
        parts = []
        for role in k["roles"]:
            null = (f", null {_fmt(k.get(f'{role}_p95_null'))} "
                    f"p={_fmt(k.get(f'{role}_p95_pvalue'))}" if f"{role}_p95_null" in k else "")
            parts.append(f"{role} {_fmt(k[f'{role}_p95'])}{_ci(k.get(f'{role}_p95_ci'))}{null}")
        lines.append("KLoM P95 (unlearned vs retrained margins; compare with the null): "
                     + "; ".join(parts))
    for key, name, acc, label in (
            ("ulira", "U-LiRA (offline)", "ulira_best_acc", "best-threshold accuracy"),
            ("urmia", "U-RMIA (offline)", "urmia_accuracy", "accuracy at score 0.5")):
        if key in res:
            u = res[key]
            lines.append(f"{name}: AUC {_fmt(u['auc'])}{_ci(u.get('auc_ci'))}, TPR@1%FPR "
                         f"{_fmt(u['tpr_at_1fpr'])}{_ci(u.get('tpr_at_1fpr_ci'))}, {label} "
                         f"{_fmt(u[acc])}{_ci(u.get(acc + '_ci'))} (0.5: forget rows "
                         f"indistinguishable from test rows)")
    if "attack_power" in res:
        t = res["attack_power"]["table"]
        parts = [f"{name} " + ", ".join(f"{c}: {_fmt(a)}" for c, a in zip(
            t[key]["references"], t[key]["auc"], strict=True))
            for key, name in (("ulira", "U-LiRA"), ("urmia", "U-RMIA"))]
        lines.append("attack AUC vs reference models: " + "; ".join(parts))
    lines.append(f"relearn: {res.get('relearn')}")
    return lines


def _export(argv: list[str]) -> int:
    parser = build_export_parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    from jaxmu.io import IOFault
    from jaxmu.score._task import _describe, export_task

    try:
        t = export_task(a.dataset, a.out, forget_scenario=a.forget_scenario,
                        forget_fraction=a.forget_fraction, val_fraction=a.val_fraction,
                        split_seed=a.split_seed, data_dir=a.data_dir, model=a.model,
                        epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                        num_models=a.models, seed=a.seed, retain_sample=a.retain_sample)
    except (ValueError, IOFault) as e:
        print(f"{parser.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"task {t.task_hash[:16]}: {_describe(t)}; reference {t.model}, "
          f"{t.recipe['epochs']} epochs, {t.num_models} models, seed {t.seed}")
    print(f"wrote {a.out}")
    return 0


def _score(argv: list[str]) -> int:
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    for name in ("bootstrap", "permutations"):
        if getattr(a, name) < 0:
            print(f"{PROG}: error: --{name} must be >= 0, got {getattr(a, name)}",
                  file=sys.stderr)
            return 2
    if a.strategy == "chunked" and not (a.chunk and a.chunk >= 1):
        print(f"{PROG}: error: --strategy chunked needs --chunk >= 1", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    from jaxmu.io import IOFault, provenance, write_json
    from jaxmu.score._score import score_submission
    from jaxmu.score._task import _describe, load_submission, load_task

    out = Path(a.out) if a.out else Path(a.submission).with_suffix(".score.json")
    try:
        task = load_task(a.task)
        logits = load_submission(a.submission, task)
        if not a.quiet:
            print(f"{PROG}: {_describe(task)}; {logits.shape[0]} submitted models",
                  file=sys.stderr)
        res = score_submission(logits, task, cache_dir=None if a.no_cache else
                               (a.cache_dir or None), data_dir=a.data_dir,
                               n_bootstrap=a.bootstrap, n_permutations=a.permutations,
                               strategy=a.strategy, chunk=a.chunk, progress=not a.quiet)
        record = {**res, "submission": str(a.submission), "task_file": str(a.task),
                  "task_hash": task.task_hash,
                  "config": {k: v for k, v in vars(a).items()},
                  "provenance": provenance(),
                  "timings": {**res["timings"], "retrained_s": res["retrained"]["wall_s"],
                              "total_s": time.perf_counter() - t0}}
        write_json(out, record)
    except (ValueError, IOFault) as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk met outside jaxmu.io
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
            raise
        print(f"{PROG}: error: cannot write {e.filename or 'a file'}: {e.strerror}",
              file=sys.stderr)
        return 2
    src = ("from the store" if res["retrained"]["from_store"]
           else f"trained in {res['retrained']['wall_s']:.1f} s")
    print(f"{task.dataset}: {res['num_unlearned']} submitted vs {res['num_retrained']} "
          f"retrained models ({task.model}; retrained population {src}), rows {res['rows']}")
    for line in summary_lines(res):
        print(line)
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code: 0, or 2 for a bad argument, file or dataset (one
    line on stderr, nothing written)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export":
        return _export(argv[1:])
    return _score(argv)


if __name__ == "__main__":
    sys.exit(main())
