"""Every audit of one method from one cached population.

The population is the U-LiRA shadow design (:func:`jaxmu.evaluation.ulira_design`): M
shadow originals trained on balanced random halves of the train candidates, K forget sets
per original, and the method run on every (original, forget set) pair. The same design is
run with exact unlearning ("retrain", an independent stream of keys) as the oracle. All
logits go through the population store (:class:`jaxmu.population.PopulationStore`), so a
second audit, a second run or ``--eval all`` trains nothing again.

Per candidate example x and run r the *role* of x is "forget" (r forgot x), "retain" (r's
original trained on x and r did not forget it) or "unseen" (r's original never saw x).

Audits (:data:`AUDITS`):

* ``ulira``: U-LiRA (per-example Gaussians of forgotten vs never-seen, held-out targets).
* ``klom``: KL divergence of margins between the method's runs and the oracle's runs, per
  example and role (:func:`jaxmu.metrics.klom_report`).
* ``rmia``: RMIA membership inference on the originals and U-RMIA on the method's runs
  (:func:`jaxmu.metrics.rmia`, :func:`jaxmu.metrics.u_rmia`).
* ``relearn``: fine-tune unlearned and oracle runs, forget accuracy against steps
  (:mod:`jaxmu.audits._relearn`).
* ``shadow-curve``: U-LiRA, LiRA, RMIA and U-RMIA re-evaluated on random subsets of 1, 2,
  4, ... shadow originals of the same population (no retraining).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxmu.audits._relearn import RelearnConfig
from jaxmu.evaluation import (
    DesignRuns,
    design_logits,
    target_pairs,
    ulira_design,
    ulira_from_runs,
)
from jaxmu.io import plain
from jaxmu.population import stack_splits
from jaxmu.train import TrainConfig
from jaxmu.types import Model, Splits

AUDITS = ("ulira", "klom", "rmia", "relearn", "shadow-curve")


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """Settings of the audit population and of every audit.

    Attributes:
        num_shadows: M shadow originals (balanced halves of the train candidates).
        num_forget_sets: K forget sets per original (M*K runs per method).
        forget_fraction: size of each forget set as a fraction of its original's members.
        num_targets: held-out target originals (default ``max(2, M // 8)``); their runs
            are attacked, the others are shadows / reference models.
        flip: also score horizontally mirrored images (U-LiRA, RMIA signals averaged).
        seed: seed of the design, the originals and the unlearning keys.
        n_bootstrap: resamples of every interval (0 skips them).
        n_permutations: permutations of KLoM's null.
        rmia_offline: RMIA/U-RMIA offline (OUT references only, scaling ``rmia_a``)
            instead of online.
        rmia_a: the offline scaling parameter a of RMIA.
        rmia_gamma: RMIA's likelihood-ratio threshold gamma.
        rmia_references: reference originals of RMIA / U-RMIA (the first ones of the
            shadows; default all). RMIA is meant to work with few (1, 2, 4): the shadow
            curve shows its power at every count.
        shadow_draws: random subsets of shadows per count in the shadow curve.
        shadow_counts: numbers of shadow originals of the curve (default 1, 2, 4, ... and
            all shadows).
        relearn: the relearning attack (:class:`RelearnConfig`).
        relearn_runs: target runs relearned (the first ones, whole originals first).
    """

    num_shadows: int = 64
    num_forget_sets: int = 10
    forget_fraction: float = 0.1
    num_targets: int | None = None
    flip: bool = False
    seed: int = 0
    n_bootstrap: int = 200
    n_permutations: int = 100
    rmia_offline: bool = False
    rmia_a: float = 0.3
    rmia_gamma: float = 1.0
    rmia_references: int | None = None
    shadow_draws: int = 5
    shadow_counts: tuple[int, ...] | None = None
    relearn: RelearnConfig = RelearnConfig()
    relearn_runs: int = 32

    def __post_init__(self):
        if self.num_shadows < 4:
            raise ValueError(f"num_shadows must be >= 4, got {self.num_shadows}")
        if self.num_forget_sets < 1:
            raise ValueError(f"num_forget_sets must be >= 1, got {self.num_forget_sets}")
        if not 0 < self.forget_fraction < 1:
            raise ValueError(f"forget_fraction must lie in (0, 1), got {self.forget_fraction}")
        t = self.targets
        if not 1 <= t <= self.num_shadows - 2:
            raise ValueError(f"num_targets must lie in [1, {self.num_shadows - 2}], got {t}")
        if self.n_bootstrap < 0 or self.n_permutations < 0:
            raise ValueError("n_bootstrap and n_permutations must be >= 0")
        if self.shadow_draws < 1:
            raise ValueError(f"shadow_draws must be >= 1, got {self.shadow_draws}")
        if self.rmia_references is not None and not (
                1 <= self.rmia_references <= self.num_shadows - t):
            raise ValueError(f"rmia_references must lie in [1, {self.num_shadows - t}], got "
                             f"{self.rmia_references}")
        if self.relearn_runs < 1:
            raise ValueError(f"relearn_runs must be >= 1, got {self.relearn_runs}")
        if self.shadow_counts is not None and (
                not self.shadow_counts or
                any(not 1 <= c <= self.num_shadows - t for c in self.shadow_counts)):
            raise ValueError(f"shadow_counts must lie in [1, {self.num_shadows - t}], got "
                             f"{self.shadow_counts}")

    @property
    def targets(self) -> int:
        """The number of held-out target originals."""
        return self.num_targets if self.num_targets is not None else max(2,
                                                                          self.num_shadows // 8)

    def counts(self) -> tuple[int, ...]:
        """The shadow counts of the curve."""
        if self.shadow_counts is not None:
            return tuple(sorted(set(self.shadow_counts)))
        s = self.num_shadows - self.targets
        c = [2 ** i for i in range(s.bit_length()) if 2 ** i <= s]
        return tuple(sorted(set([*c, s])))


def _margins(runs: DesignRuns) -> np.ndarray:
    from jaxmu.metrics import margins

    return margins(runs.logits, runs.y)


def _signal(runs: DesignRuns) -> np.ndarray:
    from jaxmu.metrics import rmia_signal

    return rmia_signal(runs.logits, runs.y)


def _strip(rep: dict[str, Any]) -> dict[str, Any]:
    """Drops per-pair arrays from a metric report (kept out of JSON)."""
    return {k: v for k, v in rep.items()
            if k not in ("scores", "stats", "target_mask", "per_example_accuracy")}


def audit_klom(runs: DesignRuns, oracle: DesignRuns, cfg: AuditConfig) -> dict[str, Any]:
    """KLoM of the method's runs against the oracle's, per role (forget, retain, unseen).

    Both populations run on the same design (run i of each unlearns forget set k of
    original m), so the permutation null swaps whole originals between the two sides
    pairwise (``null="paired"`` of :func:`jaxmu.metrics.klom_report`); intervals are the
    report's default (leave-one-original-out jackknife)."""
    from jaxmu.metrics import klom_report

    masks = lambda r: {"forget": r.forget, "retain": r.retain, "unseen": r.unseen}  # noqa
    rep = klom_report(_margins(runs), _margins(oracle), unlearned_masks=masks(runs),
                      oracle_masks=masks(oracle), unlearned_groups=runs.groups,
                      oracle_groups=oracle.groups, n_bootstrap=cfg.n_bootstrap,
                      n_permutations=cfg.n_permutations, seed=cfg.seed, null="paired")
    out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in rep.items()
           if not (isinstance(v, np.ndarray) and v.ndim == 1 and v.size == runs.y.size)}
    out["per_example"] = {s: np.asarray(rep[s]).tolist() for s in ("forget", "retain", "unseen")}
    return out


def _target_rows(runs: DesignRuns, cfg: AuditConfig) -> int:
    """Index of the first target run."""
    per = runs.num_runs // cfg.num_shadows
    return runs.num_runs - cfg.targets * per


def audit_rmia(runs: DesignRuns, originals: DesignRuns, cfg: AuditConfig,
               shadow_rows: Any = None, original_rows: Any = None,
               n_bootstrap: int | None = None, signals: Any = None,
               target_mask: Any = None) -> dict[str, Any]:
    """RMIA membership on the target originals and U-RMIA on the target runs.

    ``signals`` (``(originals, runs)`` true-label probabilities) and ``target_mask`` (the
    target pairs) let the shadow curve compute them once for all its subsets."""
    from jaxmu.metrics import rmia, u_rmia

    nb = cfg.n_bootstrap if n_bootstrap is None else n_bootstrap
    online = not cfg.rmia_offline
    kw = dict(online=online, offline_a=cfg.rmia_a, gamma=cfg.rmia_gamma, n_bootstrap=nb,
              seed=cfg.seed)
    p_o, p = (_signal(originals), _signal(runs)) if signals is None else signals
    t0 = originals.num_runs - cfg.targets
    n_ref = t0 if cfg.rmia_references is None else cfg.rmia_references
    ro = np.arange(n_ref) if original_rows is None else np.asarray(original_rows)
    m = originals.member
    mem = rmia(p_o[ro], m[ro], ~m[ro], p_o[t0:], m[t0:], target_groups=originals.groups[t0:],
               reference_groups=originals.groups[ro] if nb else None, **kw)
    n_sh = _target_rows(runs, cfg)
    if shadow_rows is None:
        shadow_rows = np.flatnonzero(runs.groups[:n_sh] < n_ref)
    rows = np.asarray(shadow_rows)
    tmask = target_pairs(runs, n_sh, cfg.seed) if target_mask is None else target_mask
    unl = u_rmia(p[rows], runs.forget[rows], runs.unseen[rows], p[n_sh:],
                 runs.forget[n_sh:] & tmask, runs.unseen[n_sh:] & tmask,
                 z_mask=runs.unseen[n_sh:], target_groups=runs.groups[n_sh:],
                 shadow_groups=runs.groups[rows] if nb else None, **kw)
    return {"membership": _strip(mem), "unlearning": _strip(unl),
            "online": online, "offline_a": cfg.rmia_a, "gamma": cfg.rmia_gamma,
            "references": int(ro.size),
            "_scores": {"rmia": (mem.get("scores"), m[t0:], np.ones_like(m[t0:]),
                                 originals.groups[t0:]),
                        "urmia": (unl.get("scores"), runs.forget[n_sh:], tmask,
                                  runs.groups[n_sh:])}}


def audit_shadow_curve(runs: DesignRuns, originals: DesignRuns,
                       cfg: AuditConfig) -> dict[str, Any]:
    """AUC, TPR at 1% FPR and balanced accuracy of U-LiRA, LiRA, RMIA and U-RMIA with
    random subsets of c shadow originals, for each c of ``cfg.counts()``.

    For each count, ``cfg.shadow_draws`` subsets of the shadow originals are drawn without
    replacement (seeded); the table gives the mean over draws and the 2.5-97.5% range over
    draws (how much the attack's power depends on which shadows one happens to have). All
    draws reuse the population's logits: nothing is trained.
    """
    from jaxmu.metrics import lira, membership_statistic

    rng = np.random.default_rng(cfg.seed + 7)
    n_sh_orig = originals.num_runs - cfg.targets
    n_sh = _target_rows(runs, cfg)
    o_stats = membership_statistic(originals.logits,
                                   originals.y if originals.logits.ndim == 3
                                   else originals.y[:, None])
    m = originals.member
    # computed once for every subset of shadows (the attacks only refit on other rows)
    u_stats = membership_statistic(runs.logits, runs.y if runs.logits.ndim == 3
                                   else runs.y[:, None])
    tmask = target_pairs(runs, n_sh, cfg.seed)
    signals = (_signal(originals), _signal(runs))
    table: dict[str, dict[str, list]] = {a: {"shadows": [], "auc": [], "auc_lo": [],
                                             "auc_hi": [], "tpr_at_1fpr": [],
                                             "accuracy": [], "failed": []}
                                         for a in ("ulira", "lira", "rmia", "urmia")}
    for c in cfg.counts():
        vals: dict[str, list[tuple[float, float, float]]] = {a: [] for a in table}
        for _ in range(cfg.shadow_draws):
            chosen = np.sort(rng.choice(n_sh_orig, c, replace=False))
            rows = np.flatnonzero(np.isin(runs.groups[:n_sh], chosen))
            res: dict[str, dict[str, Any] | None] = {}
            try:
                res["ulira"] = ulira_from_runs(runs, num_targets=cfg.targets, n_bootstrap=0,
                                               seed=cfg.seed, bootstrap_fits=False,
                                               shadow_rows=rows, stats=u_stats,
                                               target_mask=tmask)
            except ValueError:
                res["ulira"] = None
            try:
                res["lira"] = lira(o_stats[chosen], m[chosen], o_stats[n_sh_orig:],
                                   m[n_sh_orig:])
            except ValueError:
                res["lira"] = None
            try:
                r = audit_rmia(runs, originals, cfg, shadow_rows=rows, original_rows=chosen,
                               n_bootstrap=0, signals=signals, target_mask=tmask)
                res["rmia"], res["urmia"] = r["membership"], r["unlearning"]
            except ValueError:
                res["rmia"] = res["urmia"] = None
            for a, rep in res.items():
                if rep is None:
                    vals[a].append((np.nan, np.nan, np.nan))
                    continue
                acc = rep.get("ulira_accuracy", rep.get("urmia_accuracy",
                                                          rep.get("balanced_accuracy")))
                vals[a].append((rep["auc"], rep["tpr_at_1fpr"], acc))
        for a, v in vals.items():
            arr = np.asarray(v, np.float64)
            ok = np.isfinite(arr[:, 0])
            t = table[a]
            t["shadows"].append(int(c))
            t["failed"].append(int((~ok).sum()))
            if ok.any():
                lo, hi = np.quantile(arr[ok, 0], [0.025, 0.975])
                t["auc"].append(float(arr[ok, 0].mean()))
                t["auc_lo"].append(float(lo))
                t["auc_hi"].append(float(hi))
                t["tpr_at_1fpr"].append(float(np.nanmean(arr[ok, 1])))
                t["accuracy"].append(float(np.nanmean(arr[ok, 2])))
            else:
                for k in ("auc", "auc_lo", "auc_hi", "tpr_at_1fpr", "accuracy"):
                    t[k].append(float("nan"))
    return {"table": table, "draws": cfg.shadow_draws, "counts": list(cfg.counts())}


def _relearn_splits(design: Any, splits: Splits, rows: np.ndarray) -> Splits:
    k_f = design.forget.shape[1]
    forget = design.forget.reshape(-1, design.forget.shape[-1])[rows]
    ins = np.repeat(design.in_masks, k_f, axis=0)[rows]
    out = design.candidates[None] & ~ins
    return stack_splits(splits.pool, forget, ins & ~forget, val=splits.val, test=out)


def audit_relearn(model: Model, splits: Splits, design: Any, runs: DesignRuns,
                  oracle: DesignRuns, originals: DesignRuns, cfg: AuditConfig, *,
                  strategy: str = "auto", chunk: int | None = None) -> dict[str, Any]:
    """Relearning curves of the kept target runs of the method and of the oracle, and the
    steps each needs to get back to its original's forget accuracy."""
    from jaxmu.audits._relearn import relearn_curves, relearn_summary
    from jaxmu.population import model_keys

    rows = np.asarray(runs.kept)
    psplits = _relearn_splits(design, splits, rows)
    keys = model_keys(jax.random.fold_in(jax.random.key(cfg.seed), 5), rows.tolist())
    t0 = time.perf_counter()
    cu = relearn_curves(model, runs.params, runs.model_state, psplits, keys, cfg.relearn,
                        strategy=strategy, chunk=chunk)
    co = relearn_curves(model, oracle.params, oracle.model_state, psplits, keys, cfg.relearn,
                        strategy=strategy, chunk=chunk)
    seconds = time.perf_counter() - t0
    # the original's accuracy on exactly the examples each curve is measured on
    cand = design.candidates
    eval_c = np.asarray(cu.eval_mask)[:, cand]
    k_f = design.forget.shape[1]
    orig_rows = rows // k_f
    correct = np.argmax(originals.logits[orig_rows], -1) == originals.y[None]
    if correct.ndim == 3:  # flip: the identity view
        correct = correct[..., 0]
    orig_acc = (correct & eval_c).sum(1) / np.maximum(eval_c.sum(1), 1)
    rep = relearn_summary(cu, co, orig_acc, groups=runs.groups[rows],
                          retrained_groups=oracle.groups[rows],
                          n_bootstrap=max(1, cfg.n_bootstrap),
                          seed=cfg.seed)
    rep.update({"runs": int(rows.size), "variant": cfg.relearn.variant,
                "config": dataclasses.asdict(cfg.relearn), "seconds": seconds,
                "original_forget_acc": float(orig_acc.mean())})
    return rep


def run_audits(
    model: Model,
    splits: Splits,
    method: Any,
    audits: Any = AUDITS,
    *,
    oracle_method: Any,
    config: AuditConfig = AuditConfig(),
    recipe: TrainConfig = TrainConfig(),
    strategy: str = "auto",
    chunk: int | None = None,
    cache_dir: str | None = None,
    plot_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Runs the requested audits of ``method`` on one cached design population.

    Args:
        model: the model of the originals.
        splits: the dataset's splits; the train candidates (forget and retain) form the
            design, the val split is every run's val split.
        method: the bound method to audit.
        audits: names from :data:`AUDITS` (any order, no repeats).
        oracle_method: the bound exact-unlearning method ("retrain" with the originals'
            recipe); its runs use an independent key stream (``stream=1``), so auditing
            "retrain" itself compares two independent retrain populations (the null).
        config: :class:`AuditConfig`.
        recipe: the originals' training recipe.
        strategy, chunk: population strategy (:mod:`jaxmu.population`).
        cache_dir: the cache (originals, population store); None stores nothing.
        plot_dir: write the audits' PNG plots here (None: no plots).
        progress: progress lines on stderr.

    Returns:
        ``{audit: report}`` plus ``"population"`` (design sizes and, per population,
        whether it came from the store and how long this run spent on it) and
        ``"plots"`` (paths).

    Raises:
        ValueError: an unknown or repeated audit name.
    """
    audits = tuple(audits)
    bad = [a for a in audits if a not in AUDITS]
    if bad or len(set(audits)) != len(audits) or not audits:
        raise ValueError(f"audits must be distinct names from {list(AUDITS)}, got "
                         f"{list(audits)}")
    cfg = config
    design = ulira_design(splits, cfg.num_shadows, cfg.num_forget_sets, cfg.forget_fraction,
                          cfg.seed)
    kw = dict(seed=cfg.seed, config=recipe, flip=cfg.flip, strategy=strategy, chunk=chunk,
              cache_dir=cache_dir, progress=progress)
    r_total = cfg.num_shadows * cfg.num_forget_sets
    first_target = r_total - cfg.targets * cfg.num_forget_sets
    # the relearning rows' weights are stored whatever the audits, so a later --eval
    # relearn / all finds them with the logits instead of unlearning the population again
    keep = tuple(range(first_target, min(r_total, first_target + cfg.relearn_runs)))
    t0 = time.perf_counter()
    runs = design_logits(model, splits, design, method, keep_params=keep, **kw)
    pops = {"method": runs}
    if {"klom", "relearn"} & set(audits):
        pops["oracle"] = design_logits(model, splits, design, oracle_method, stream=1,
                                       keep_params=keep, **kw)
    if {"rmia", "relearn", "shadow-curve"} & set(audits):
        pops["originals"] = design_logits(model, splits, design, None, **kw)
    population_s = time.perf_counter() - t0
    out: dict[str, Any] = {"population": {
        "num_shadows": cfg.num_shadows, "num_forget_sets": cfg.num_forget_sets,
        "num_targets": cfg.targets, "forget_fraction": cfg.forget_fraction,
        "forget_size": int(runs.forget[0].sum()), "candidates": int(runs.y.size),
        "flip": cfg.flip, "seed": cfg.seed, "seconds": population_s,
        "from_store": {k: bool(v.timings["from_store"])
                       and bool(v.timings.get("params_from_store", True))
                       for k, v in pops.items()},
        "timings": {k: v.timings for k, v in pops.items()}}}
    scores: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for a in audits:
        t1 = time.perf_counter()
        if a == "ulira":
            rep = ulira_from_runs(runs, num_targets=cfg.targets, n_bootstrap=cfg.n_bootstrap,
                                  seed=cfg.seed)
            n_sh = _target_rows(runs, cfg)
            scores["ulira"] = (rep.get("scores"), runs.forget[n_sh:], rep["target_mask"],
                               runs.groups[n_sh:])
            out[a] = _strip(rep)
        elif a == "klom":
            out[a] = audit_klom(runs, pops["oracle"], cfg)
        elif a == "rmia":
            rep = audit_rmia(runs, pops["originals"], cfg)
            scores.update(rep.pop("_scores"))
            out[a] = rep
        elif a == "relearn":
            out[a] = audit_relearn(model, splits, design, runs, pops["oracle"],
                                   pops["originals"], cfg, strategy=strategy, chunk=chunk)
        else:
            out[a] = audit_shadow_curve(runs, pops["originals"], cfg)
        timings[a] = time.perf_counter() - t1
    out["timings"] = timings
    out["plots"] = (_plots(out, scores, runs, pops.get("oracle"), cfg, Path(plot_dir))
                    if plot_dir is not None else {})
    return plain(out)


def _plots(out: dict[str, Any], scores: dict[str, Any], runs: DesignRuns,
           oracle: DesignRuns | None, cfg: AuditConfig, plot_dir: Path) -> dict[str, str]:
    from jaxmu.audits import _plots as pl

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    curves = {}
    for name, (s, pos, valid, groups) in scores.items():
        if s is None:
            continue
        s = np.asarray(s, np.float64)
        curves[name] = pl.roc_band(s, np.asarray(pos), np.asarray(valid, bool) & np.isfinite(s),
                                   groups=groups, n_bootstrap=min(cfg.n_bootstrap, 200),
                                   seed=cfg.seed)
        rep = {"ulira": out.get("ulira"), "rmia": out.get("rmia", {}).get("membership"),
               "urmia": out.get("rmia", {}).get("unlearning")}.get(name)
        if rep:  # the legend quotes the audit's own AUC and interval
            curves[name]["auc"] = rep["auc"]
            if rep.get("auc_ci") is not None:
                curves[name]["auc_ci"] = rep["auc_ci"]
    if curves:
        paths["roc"] = str(pl.plot_roc(curves, plot_dir / "roc.png",
                                       title="ROC of the attacks (targets), 95% bands"))
    if "klom" in out and oracle is not None:
        per = np.asarray(out["klom"]["per_example"]["forget"], np.float64)
        ok = np.flatnonzero(np.isfinite(per))
        if ok.size:
            order = ok[np.argsort(per[ok])]
            pick = sorted({int(order[len(order) // 2]),
                           int(order[min(len(order) - 1, int(0.95 * len(order)))]),
                           int(order[-1])})
            paths["klom"] = str(pl.plot_margin_histograms(
                _margins(runs), _margins(oracle), plot_dir / "klom_margins.png",
                unlearned_mask=runs.forget, oracle_mask=oracle.forget, examples=pick,
                title="margins of forgotten examples (median, P95, max KLoM)"))
    if "relearn" in out:
        rl = out["relearn"]
        curves = {who: {"steps": rl["steps"], "mean": rl[who]["forget_acc"]["mean"],
                        "lo": rl[who]["forget_acc"]["ci_low"],
                        "hi": rl[who]["forget_acc"]["ci_high"]}
                  for who in ("unlearned", "retrained")}
        paths["relearn"] = str(pl.plot_relearn(curves, plot_dir / "relearn.png",
                                               original_acc=rl["original_forget_acc"],
                                               title=f"relearning ({rl['variant']})"))
    if "shadow-curve" in out:
        t = out["shadow-curve"]["table"]
        table = {a: {"shadows": v["shadows"], "value": v["auc"], "lo": v["auc_lo"],
                     "hi": v["auc_hi"]} for a, v in t.items()
                 if np.isfinite(np.asarray(v["auc"], np.float64)).any()}
        if table:
            paths["shadow_curve"] = str(pl.plot_shadow_curve(
                table, plot_dir / "shadow_curve.png", metric="auc",
                title="attack AUC vs shadow originals"))
    return paths


__all__ = ["AUDITS", "AuditConfig", "audit_klom", "audit_relearn", "audit_rmia",
           "audit_shadow_curve", "run_audits"]
