"""Benchmark: vectorised competition F-score vs a direct transcription of the official loop.

Run ``python -m benchmarks.fscore [--quick] [--json] [--models N] [--examples S]``. It
builds synthetic populations of 512 unlearned + 512 retrained models on 40 forget examples
(identical, shifted, narrower and discretised distributions) and scores them with
:func:`jaxmu.metrics.forget_quality_details` (median of repeats taken before and after the
reference, after a warm-up call) and with :func:`reference_forget_quality` below (once). It
prints the per-example speed-up (CPU seconds, both sides single-threaded NumPy; the
wall-clock ratio next to it), the largest epsilon difference and whether the scores on the
commonly scored examples are identical, all from this one run. ``--quick`` runs the
reference on 4 evenly spaced examples instead of all 40 (per-example times on both sides, so
the ratio means the same). With ``--json`` the last stdout line is one JSON object with
those numbers.

The reference is a line-by-line NumPy transcription of google-deepmind/unlearning_evaluation
``metric.py`` (ffae0ff): the per-example Python loop, both threshold families, float32 rates,
the epsilon rules and the bucket loop. Changes, all behaviour-preserving: torch tensors are
NumPy arrays (``torch.linspace`` is its CUDA formula, :func:`torch_linspace`); the
``[N, T]`` tiles are broadcasts (same values, less memory); the ``assert thr_eps``, which
crashes whenever more than one threshold survives (NumPy refuses the truth value of an
array), is a size check that returns NaN for an example with no surviving threshold. The
tests import it as the oracle.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from benchmarks import _common as C

DELTA = 1e-05
EPSILON_CAP = 50
NUM_THRESHOLDS_PER_UNIT = 100


def torch_linspace(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace`` as its CUDA kernel computes it (symmetric from both ends)."""
    if steps <= 0:
        return np.zeros(0)
    if steps == 1:
        return np.array([start], dtype=np.float64)
    step = (end - start) / (steps - 1)
    idx = np.arange(steps)
    return np.where(idx < steps // 2, start + step * idx, end - step * (steps - idx - 1))


def _get_double_threshold_rates(pos_confs_, neg_confs_):
    pos_diff = pos_confs_.max() - pos_confs_.min()
    neg_diff = neg_confs_.max() - neg_confs_.min()
    smallest = neg_diff if pos_diff > neg_diff else pos_diff
    if pos_diff >= neg_diff:
        pos_confs_, neg_confs_ = neg_confs_, pos_confs_
    buffer = 2.0
    width = smallest
    min_ = pos_confs_.min() + width - buffer
    max_ = pos_confs_.max() + buffer
    num_right_thresholds = int(np.ceil((max_ - min_) * NUM_THRESHOLDS_PER_UNIT))
    right_thresholds_ = np.linspace(min_, max_, num=num_right_thresholds)
    num_left_thresholds = int(np.ceil(2 * buffer * NUM_THRESHOLDS_PER_UNIT))
    thr_left_ = np.concatenate(
        [np.linspace(tr - width - buffer, tr - width + buffer, num=num_left_thresholds)
         for tr in right_thresholds_]
    )
    thr_right_ = np.tile(np.reshape(right_thresholds_, (-1, 1)), (1, num_left_thresholds))
    thr_right_ = thr_right_.reshape(-1)

    def _is_pp(c):
        return np.logical_and(thr_left_[None, :] <= c[:, None],
                              c[:, None] <= thr_right_[None, :]).astype(np.float32)

    def _is_pn(c):
        return np.logical_not(_is_pp(c)).astype(np.float32)

    tpr = np.mean(_is_pp(pos_confs_), 0)
    fnr = np.mean(_is_pn(pos_confs_), 0)
    fpr = np.mean(_is_pp(neg_confs_), 0)
    tnr = np.mean(_is_pn(neg_confs_), 0)
    return tpr, fnr, fpr, tnr


def _get_single_threshold_rates(pos_confs_, neg_confs_):
    all_confs = np.concatenate([pos_confs_, neg_confs_])
    min_val, max_val = all_confs.min(), all_confs.max()
    num_thresholds = int(np.ceil((max_val - min_val) * NUM_THRESHOLDS_PER_UNIT))
    thresholds_ = torch_linspace(min_val, max_val, num_thresholds)[None, :]
    f32 = np.float32
    tpr = np.mean((pos_confs_[:, None] >= thresholds_).astype(f32), 0)
    fpr = np.mean((neg_confs_[:, None] >= thresholds_).astype(f32), 0)
    tnr = np.mean((neg_confs_[:, None] < thresholds_).astype(f32), 0)
    fnr = np.mean((pos_confs_[:, None] < thresholds_).astype(f32), 0)
    return tpr, fnr, fpr, tnr


def _get_epsilons(pos_confs, neg_confs, delta):
    epsilons = []
    for i in range(pos_confs.shape[1]):
        pos_confs_ = pos_confs[:, i].reshape(-1)
        neg_confs_ = neg_confs[:, i].reshape(-1)
        pos_diff = np.max(pos_confs_) - np.min(pos_confs_)
        neg_diff = np.max(neg_confs_) - np.min(neg_confs_)
        largest = pos_diff if pos_diff > neg_diff else neg_diff
        smallest = neg_diff if pos_diff > neg_diff else pos_diff
        if smallest / largest < 0.01:
            epsilons.append(EPSILON_CAP)
            continue
        tpr_d, fnr_d, fpr_d, tnr_d = _get_double_threshold_rates(pos_confs_, neg_confs_)
        tpr_s, fnr_s, fpr_s, tnr_s = _get_single_threshold_rates(pos_confs_, neg_confs_)
        tpr = np.concatenate([tpr_d, tpr_s], 0)
        fnr = np.concatenate([fnr_d, fnr_s], 0)
        fpr = np.concatenate([fpr_d, fpr_s], 0)
        tnr = np.concatenate([tnr_d, tnr_s], 0)
        total_num_thresholds = tpr.shape[0]
        thr_eps = np.zeros(total_num_thresholds, dtype=np.float32)
        fpr_fnr_both_zero = np.equal(fpr + fnr, np.zeros(total_num_thresholds))
        tpr_tnr_both_ones = np.equal(tpr + tnr, 2 * np.ones(total_num_thresholds))
        thr_eps = np.where(fpr_fnr_both_zero * tpr_tnr_both_ones, np.float32(np.inf), thr_eps)
        thr_eps_is_zero = np.equal(thr_eps, np.zeros_like(thr_eps))
        fpr_or_fnr_is_zero = np.equal(fpr * fnr, np.zeros_like(thr_eps))
        thr_eps = np.where(thr_eps_is_zero * fpr_or_fnr_is_zero, np.float32(np.nan), thr_eps)
        thr_eps = np.where(
            np.equal(thr_eps, np.zeros_like(thr_eps)),
            np.clip(np.nanmax([np.log(1 - delta - fpr) - np.log(fnr),
                               np.log(1 - delta - fnr) - np.log(fpr)], axis=0), 0, None),
            thr_eps,
        )
        keep_inds = [ind for ind, te in enumerate(thr_eps) if not np.isnan(te)]
        thr_eps = thr_eps[keep_inds]
        if thr_eps.size == 0:  # the official `assert thr_eps` (crashes on arrays)
            epsilons.append(np.nan)
            continue
        epsilons.append(np.nanmax(thr_eps))
    return np.clip(np.array(epsilons, dtype=np.float64), 0, EPSILON_CAP)


def reference_epsilons(unlearned_confs, retrained_confs, delta=DELTA):
    """Per-example epsilons ``[S]`` of the official scorer for ``[N, S]`` confidences."""
    u = np.asarray(unlearned_confs, dtype=np.float64)
    r = np.asarray(retrained_confs, dtype=np.float64)
    retrain_is_positive = np.median(r, axis=0) > np.median(u, axis=0)
    pos_confs = np.where(retrain_is_positive, r, u)
    neg_confs = np.where(retrain_is_positive, u, r)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0), all-NaN nanmax
        return _get_epsilons(pos_confs, neg_confs, delta)


def reference_forget_quality(unlearned_confs, retrained_confs, delta=DELTA):
    """``(F, eps)`` with the official bucket loop (``compute_forget_score_from_confs``)."""
    eps = reference_epsilons(unlearned_confs, retrained_confs, delta)
    num_models = np.asarray(unlearned_confs).shape[0]
    max_epsilon = np.ceil(np.log(num_models - 1))
    start_idx, bucket_size, points = 0, 0.5, 1
    end_idx = start_idx + bucket_size
    bucket_points = {}
    while end_idx <= max_epsilon:
        bucket_points[start_idx] = points
        points /= 2
        start_idx += bucket_size
        end_idx = start_idx + bucket_size
    forget_score = 0
    for e in eps:
        for start, pts in bucket_points.items():
            if e < start + bucket_size:
                forget_score += pts
                break
    return forget_score / eps.size, eps


def make_populations(num_models: int, num_examples: int, seed: int = 0):
    """Synthetic ``[N, S]`` confidences: four quarters of identical, shifted (0.5 sigma),
    narrower (0.7x) and discretised (0.01 grid, many exact threshold ties) examples."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(2.0, 1.0, size=num_examples)
    sd = rng.uniform(0.5, 1.5, size=num_examples)
    r = mu + sd * rng.standard_normal((num_models, num_examples))
    z = rng.standard_normal((num_models, num_examples))
    kind = np.arange(num_examples) * 4 // num_examples
    shift = np.where(kind == 1, 0.5 * sd, 0.0)
    scale = np.where(kind == 2, 0.7, 1.0)
    u = mu + shift + scale * sd * z
    disc = kind == 3
    u[:, disc], r[:, disc] = np.round(u[:, disc], 2), np.round(r[:, disc], 2)
    return u, r


def _timed(fn, n_repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (process) seconds of ``n_repeats`` calls of ``fn``."""
    wall, cpu = [], []
    for _ in range(n_repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def run(num_models: int, num_examples: int, ref_examples: int, seed: int,
        n_repeats: int) -> dict:
    """Times both scorers side by side on the same populations; returns the result dict.

    The vectorised scorer is timed before and after the reference (medians over both
    halves), so drifting machine load hits both sides alike. Both are single-threaded NumPy;
    the headline speed-up uses CPU seconds (robust to time-slicing on a shared machine),
    the wall-clock ratio is reported next to it.
    """
    from jaxmu.metrics import forget_quality_details

    u, r = make_populations(num_models, num_examples, seed)
    sub = np.linspace(0, num_examples - 1, ref_examples).round().astype(int)
    vec = lambda: forget_quality_details(u, r)  # noqa: E731
    res = vec()  # warm-up (fills the epsilon-table cache)
    w1, c1 = _timed(vec, n_repeats)
    C.log(f"reference on {ref_examples} examples ...")
    w0, c0 = time.perf_counter(), time.process_time()
    f_ref, eps_ref = reference_forget_quality(u[:, sub], r[:, sub])
    ref_wall, ref_cpu = time.perf_counter() - w0, time.process_time() - c0
    w2, c2 = _timed(vec, n_repeats)
    f_vec_sub = forget_quality_details(u[:, sub], r[:, sub]).score
    vec_wall = float(np.median(w1 + w2)) / num_examples
    vec_cpu = float(np.median(c1 + c2)) / num_examples
    ref_wall_per, ref_cpu_per = ref_wall / ref_examples, ref_cpu / ref_examples
    return {
        "benchmark": "fscore",
        "config": {"models": num_models, "examples": num_examples,
                   "reference_examples": int(ref_examples), "seed": seed,
                   "repeats": 2 * n_repeats},
        "vectorised_cpu_ms_per_example": 1e3 * vec_cpu,
        "reference_cpu_ms_per_example": 1e3 * ref_cpu_per,
        "vectorised_wall_ms_per_example": 1e3 * vec_wall,
        "reference_wall_ms_per_example": 1e3 * ref_wall_per,
        "speedup": ref_cpu_per / vec_cpu,
        "speedup_wall": ref_wall_per / vec_wall,
        "max_abs_delta_eps": float(np.max(np.abs(res.eps[sub] - eps_ref))),
        "scores_identical": bool(f_vec_sub == f_ref),
        "score": res.score,
        "score_reference_subset": f_ref,
        "score_vectorised_subset": f_vec_sub,
        "provenance": C.provenance(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = C.make_parser(
        "python -m benchmarks.fscore",
        "Time the vectorised competition F-score against a transcription of the official "
        "per-example loop; the speed-up is per example, from one run.")
    parser.add_argument("--models", type=C.positive_int, default=512,
                        help="models per population (default 512, at least 2)")
    parser.add_argument("--examples", type=C.positive_int, default=40,
                        help="forget examples (default 40)")
    parser.add_argument("--ref-examples", type=C.positive_int, default=None,
                        help="examples scored by the reference (default all; 4 with --quick)")
    args = parser.parse_args(argv)
    if args.models < 2:
        parser.error("--models must be at least 2")
    ref_examples = args.ref_examples or (4 if args.quick else args.examples)
    if ref_examples > args.examples:
        parser.error("--ref-examples cannot exceed --examples")
    out = run(args.models, args.examples, ref_examples, args.seed, C.repeats(args))
    cfg = out["config"]
    print(f"competition F-score: {cfg['models']}+{cfg['models']} models x {cfg['examples']} "
          f"examples (reference on {cfg['reference_examples']})")
    print(C.markdown_table(
        ["scorer", "CPU per example", "wall per example"],
        [["jaxmu vectorised (median)",
          C.fmt_time(out["vectorised_cpu_ms_per_example"] / 1e3),
          C.fmt_time(out["vectorised_wall_ms_per_example"] / 1e3)],
         ["official loop, transcribed",
          C.fmt_time(out["reference_cpu_ms_per_example"] / 1e3),
          C.fmt_time(out["reference_wall_ms_per_example"] / 1e3)]]))
    print(f"speed-up: {out['speedup']:.0f}x CPU, {out['speedup_wall']:.0f}x wall (target >= "
          f"500x); max |delta eps|: {out['max_abs_delta_eps']:.3g}; scores identical: "
          f"{out['scores_identical']}")
    C.emit(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
