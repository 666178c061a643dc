"""Scoring an unlearned population given as logits against jaxmu's retrained population.

:func:`score_logits` is the whole computation on arrays (pure: NumPy/SciPy, no training);
:func:`score_submission` checks a submission file against its task, trains or loads
jaxmu's retrained population through the population store and calls it; the CLI
``python -m jaxmu.score`` calls :func:`score_submission`.

Why only offline attacks: the reference models available here are the retrained models.
All of them trained on the same retain rows, so for every example either all references
trained on it (retain rows) or none did (forget, val and test rows): no example has both
IN and OUT reference observations, and no reference *forgot* anything (a reference that
forgot x would be an unlearning run of the submitter's method, which only the submitter
can run). The online attacks (U-LiRA's likelihood ratio of the "forgot x" and "never saw
x" worlds, online RMIA's ``Pr(x)`` from IN and OUT references) need exactly those
observations. The offline variants need only models that never saw x: U-LiRA's one-sided
test against the never-seen Gaussian of each example and RMIA's offline ``Pr(x)``
(``((1 + a) / 2) * P_out + (1 - a) / 2``), both fitted on the retrained models, for which
the forget and test rows are never-seen.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxmu.io import plain
from jaxmu.score._task import ROLES, Task, as_task, load_submission

AUDITS = ("fscore", "klom", "ulira", "urmia", "attack_power")
RELEARN_NOTE = "needs model weights; not available from logits"


def _as_roles(roles: Any, n: int) -> np.ndarray:
    """``[N]`` role codes (0 forget, 1 retain, 2 test) from codes or names."""
    r = np.asarray(roles)
    if r.shape != (n,):
        raise ValueError(f"roles: expected [{n}] roles, got shape {r.shape}")
    if r.dtype.kind in "US":
        names = r.astype(str)
        bad = sorted(set(names.tolist()) - set(ROLES))
        if bad:
            raise ValueError(f"roles: unknown role name(s) {bad}; valid: {list(ROLES)}")
        return np.array([ROLES.index(x) for x in names], np.int8)
    if r.dtype.kind not in "iu" or (r.size and (r.min() < 0 or r.max() >= len(ROLES))):
        raise ValueError(f"roles: expected names {list(ROLES)} or codes 0..{len(ROLES) - 1}")
    return r.astype(np.int8)


def _as_population(name: str, logits: Any) -> np.ndarray:
    a = np.asarray(logits)
    if a.dtype.kind != "f":
        raise ValueError(f"{name}: expected float logits, got dtype {a.dtype}")
    if a.ndim != 3:
        raise ValueError(f"{name}: expected [models, N, K] logits, got shape {a.shape}")
    if a.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 models, got {a.shape[0]}")
    if a.shape[2] < 2:
        raise ValueError(f"{name}: need at least 2 classes, got {a.shape[2]}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(a)))} non-finite value(s)")
    return a


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``[M]`` float32 top-1 accuracies as :func:`jaxmu.evaluation.fscore_pipeline`
    computes them (jax's float32 mean of the correct flags: XLA may divide by N as a
    multiplication by 1/N), so the competition score agrees with it bit for bit."""
    import jax.numpy as jnp

    correct = np.argmax(logits, axis=-1) == labels[None]
    return np.asarray(jnp.mean(jnp.asarray(correct), axis=-1))


def _attack_report(rep: dict[str, Any]) -> dict[str, Any]:
    """A U-LiRA / RMIA report without its per-pair and per-example arrays."""
    drop = {"scores", "stats", "target_mask", "reference_probability", "population_size"}
    # every row is a positive or a negative of every target: no per-example accuracy
    return plain({k: v for k, v in rep.items()
                   if k not in drop and not k.startswith("per_example")})


def _fscore(u: np.ndarray, r: np.ndarray, y: np.ndarray, role: np.ndarray, *,
            n_bootstrap: int, confidence: float, seed: int) -> dict[str, Any]:
    from jaxmu.evaluation import fscore_bootstrap_ci
    from jaxmu.metrics import bootstrap_ci, competition_score, forget_quality, membership_statistic

    f_, r_, t_ = (np.flatnonzero(role == i) for i in range(3))
    n = min(u.shape[0], r.shape[0])
    confs = {who: membership_statistic(lg[:n, f_], y[f_]) for who, lg in (("unlearned", u),
                                                                         ("retrained", r))}
    acc = {who: {"retain": _accuracy(lg[:, r_], y[r_]), "test": _accuracy(lg[:, t_], y[t_])}
           for who, lg in (("unlearned", u), ("retrained", r))}
    f, eps = forget_quality(confs["unlearned"], confs["retrained"])
    first = {who: {sp: a[:n] for sp, a in d.items()} for who, d in acc.items()}
    score = competition_score(confs["unlearned"], confs["retrained"],
                              first["unlearned"]["retain"], first["retrained"]["retain"],
                              first["unlearned"]["test"], first["retrained"]["test"])
    out: dict[str, Any] = {}
    for who in acc:
        for sp in ("retain", "test"):
            v, lo, hi = bootstrap_ci(acc[who][sp])
            out[f"{who}_{'ra' if sp == 'retain' else 'ta'}"] = {"value": v, "ci": [lo, hi]}
    if n_bootstrap:
        cis = fscore_bootstrap_ci(confs["unlearned"], confs["retrained"],
                                  first["unlearned"]["retain"], first["retrained"]["retain"],
                                  first["unlearned"]["test"], first["retrained"]["test"],
                                  n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        out.update({k: list(v) for k, v in cis.items()})
    out.update({"forget_quality": float(f), "score": float(score), "eps": eps.tolist(),
                "num_models": n, "forget_size": int(f_.size),
                "models_used": ("all" if u.shape[0] == r.shape[0] else
                                f"the first {n} of each population (the F-score compares "
                                f"populations of equal size)")})
    return out


def _klom(u: np.ndarray, r: np.ndarray, y: np.ndarray, role: np.ndarray, *,
          n_bootstrap: int, n_permutations: int, confidence: float,
          seed: int) -> dict[str, Any]:
    from jaxmu.metrics import klom_report, margins

    mu = margins(u, y, augmented=False)
    mr = margins(r, y, augmented=False)
    present = [name for i, name in enumerate(ROLES) if np.any(role == i)]
    mask = {name: role == ROLES.index(name) for name in present}
    rep = klom_report(mu, mr,
                      unlearned_masks={s: np.broadcast_to(m, mu.shape) for s, m in mask.items()},
                      oracle_masks={s: np.broadcast_to(m, mr.shape) for s, m in mask.items()},
                      n_bootstrap=n_bootstrap, n_permutations=n_permutations,
                      confidence=confidence, seed=seed)
    out = {k: v for k, v in rep.items() if k not in present}  # drop the [N] arrays
    out["roles"] = present
    return plain(out)


def _attack_inputs(u: np.ndarray, r: np.ndarray, y: np.ndarray, role: np.ndarray
                   ) -> tuple[np.ndarray, ...]:
    """The forget (positive) and test (negative) columns of both populations."""
    cols = np.flatnonzero((role == 0) | (role == 2))
    pos = role[cols] == 0
    return u[:, cols], r[:, cols], y[cols], pos


_ATTACK_KEYS = ("balanced_accuracy", "best_accuracy", "auc", "tpr_at_1fpr", "tpr_at_0.1fpr")


class _Attack:
    """An offline attack of the unlearned models (targets) with the retrained models as
    references, on the forget (positive) and test (negative) columns."""

    def __init__(self, kind: str, u: np.ndarray, r: np.ndarray, y: np.ndarray,
                 pos: np.ndarray, *, offline_a: float = 0.3, gamma: float = 1.0):
        from jaxmu.metrics import membership_statistic, rmia_signal

        self.kind, self.pos = kind, pos
        self.offline_a, self.gamma = offline_a, gamma
        if kind == "ulira":  # logit-scaled confidence, U-LiRA's statistic
            self.t = membership_statistic(u, y)
            self.ref = membership_statistic(r, y)
        else:  # RMIA's signal: the probability of the true label
            self.t = rmia_signal(u, y, augmented=False)
            self.ref = rmia_signal(r, y, augmented=False)
        # decisions: U-LiRA at log-ratio 0, RMIA at score 0.5
        self.shift = 0.0 if kind == "ulira" else 0.5

    def run(self, ref_rows: np.ndarray) -> dict[str, Any]:
        """The metric's report with the reference rows ``ref_rows`` (repeats allowed)."""
        from jaxmu.metrics import u_rmia, ulira

        ref = self.ref[ref_rows]
        truth = np.broadcast_to(self.pos, self.t.shape)
        if self.kind == "ulira":
            return ulira(None, ref, self.t, truth, online=False)
        return u_rmia(ref, np.zeros(ref.shape, bool), np.ones(ref.shape, bool), self.t, truth,
                      ~truth, online=False, offline_a=self.offline_a, gamma=self.gamma)

    def intervals(self, point: dict[str, Any], ref_rows: np.ndarray, *, n_bootstrap: int,
                  confidence: float, seed: int) -> dict[str, tuple[float, float]]:
        """Two-way bootstrap intervals of the ROC statistics.

        Each resample draws, with replacement and independently, the target models, the
        reference models (the attack is refitted on them) and the rows: the forget rows
        among the forget rows and the test rows among the test rows. A pair (target t, row
        x) counts with the product of their multiplicities. The rows are resampled because
        the task's forget and test rows are themselves a sample: with per-example
        difficulty entering the score (RMIA's offline ``Pr(x)`` is affine in the
        references' probability), which examples happen to be forget rows moves the AUC
        as much as which models one has. The interval is centred on the point value
        (refits on resampled references attack worse than the real fit, so a percentile
        interval would sit low).
        """
        from jaxmu.metrics import bootstrap_roc, percentile_ci

        rng = np.random.default_rng([seed, 11])
        n_t, n = self.t.shape
        pc, nc = np.flatnonzero(self.pos), np.flatnonzero(~self.pos)
        truth = np.broadcast_to(self.pos, (n_t, n)).reshape(-1, 1)
        boot = {k: np.full(int(n_bootstrap), np.nan) for k in _ATTACK_KEYS}
        for b in range(int(n_bootstrap)):
            w_t = np.bincount(rng.integers(0, n_t, n_t), minlength=n_t).astype(np.float64)
            refs = ref_rows[rng.integers(0, ref_rows.size, ref_rows.size)]
            v_x = (np.bincount(pc[rng.integers(0, pc.size, pc.size)], minlength=n)
                   + np.bincount(nc[rng.integers(0, nc.size, nc.size)], minlength=n))
            sc = np.asarray(self.run(refs)["scores"], np.float64) - self.shift
            ok = np.isfinite(sc)
            w = (w_t[:, None] * v_x[None, :]) * ok
            roc = bootstrap_roc(np.where(ok, sc, 0.0).reshape(-1, 1), truth,
                                ok.reshape(-1, 1), w.reshape(1, -1))
            for k, v in roc.items():
                boot[k][b] = v[0]
            pred = sc > 0
            pw, nw = w * self.pos, w * ~self.pos
            with np.errstate(invalid="ignore", divide="ignore"):
                boot["balanced_accuracy"][b] = 0.5 * ((pw * pred).sum() / pw.sum()
                                                      + (nw * ~pred).sum() / nw.sum())
        alpha = (1 - confidence) / 2
        return {f"{k}_ci": percentile_ci(boot[k], alpha, point[k]) for k in _ATTACK_KEYS}

    def report(self, ref_rows: np.ndarray | None = None, *, n_bootstrap: int = 0,
               confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
        """The point report, with two-way bootstrap intervals when ``n_bootstrap > 0``."""
        rows = np.arange(self.ref.shape[0]) if ref_rows is None else np.asarray(ref_rows)
        rep = self.run(rows)
        if n_bootstrap:
            rep.update(self.intervals(rep, rows, n_bootstrap=n_bootstrap,
                                      confidence=confidence, seed=seed))
            head = "ulira" if self.kind == "ulira" else "urmia"
            rep[f"{head}_accuracy_ci"] = rep["balanced_accuracy_ci"]
            rep[f"{head}_best_acc_ci"] = rep["best_accuracy_ci"]
            rep["interval"] = ("two-way bootstrap (target models, reference models refitted, "
                               "forget and test rows), centred")
            rep["n_bootstrap"] = int(n_bootstrap)
        rep["num_references"] = int(rows.size)
        return rep


def reference_counts(num_references: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to ``num_references``, and ``num_references`` itself."""
    c = [2 ** i for i in range(int(num_references).bit_length()) if 2 ** i <= num_references]
    return tuple(sorted({*c, int(num_references)}))


def _attack_power(attacks: dict[str, _Attack], *, counts: Sequence[int], draws: int,
                  seed: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 7])
    n_ref = next(iter(attacks.values())).ref.shape[0]
    table: dict[str, dict[str, list]] = {
        a: {"references": [], "draws": [], "auc": [], "auc_range": [], "tpr_at_1fpr": [],
            "accuracy": [], "failed": []} for a in attacks}
    for c in counts:
        n_draws = 1 if c == n_ref else draws
        vals: dict[str, list[tuple[float, float, float]]] = {a: [] for a in table}
        for _ in range(n_draws):
            rows = np.sort(rng.choice(n_ref, c, replace=False))
            for a, attack in attacks.items():
                try:
                    rep = attack.run(rows)
                    vals[a].append((rep["auc"], rep["tpr_at_1fpr"], rep["balanced_accuracy"]))
                except ValueError:  # e.g. U-LiRA's Gaussian fit needs 2 references
                    vals[a].append((np.nan, np.nan, np.nan))
        for a, v in vals.items():
            arr = np.asarray(v, np.float64)
            ok = np.isfinite(arr[:, 0])
            t = table[a]
            t["references"].append(int(c))
            t["draws"].append(int(n_draws))
            t["failed"].append(int((~ok).sum()))
            if ok.any():
                lo, hi = np.quantile(arr[ok, 0], [0.025, 0.975])
                t["auc"].append(float(arr[ok, 0].mean()))
                t["auc_range"].append([float(lo), float(hi)])
                t["tpr_at_1fpr"].append(float(arr[ok, 1].mean()))
                t["accuracy"].append(float(arr[ok, 2].mean()))
            else:
                t["auc"].append(float("nan"))
                t["auc_range"].append([float("nan"), float("nan")])
                t["tpr_at_1fpr"].append(float("nan"))
                t["accuracy"].append(float("nan"))
    return {"table": table, "counts": [int(c) for c in counts], "draws": int(draws)}


def score_logits(
    unlearned_logits: Any,
    retrained_logits: Any,
    labels: Any,
    roles: Any,
    *,
    audits: Sequence[str] = AUDITS,
    n_bootstrap: int = 200,
    n_permutations: int = 100,
    confidence: float = 0.95,
    seed: int = 0,
    offline_a: float = 0.3,
    gamma: float = 1.0,
    counts: Sequence[int] | None = None,
    draws: int = 5,
) -> dict[str, Any]:
    """Every logit-based audit of an unlearned population against a retrained one.

    The unlearned models (targets) and the retrained models (the oracle and the attacks'
    reference models) are evaluated on the same N rows, each with a role: "forget" (the
    unlearned models' originals trained on it and then forgot it; the retrained models
    never saw it), "retain" (everyone trained on it) or "test" (nobody saw it).

    Audits (``audits``, any subset of :data:`AUDITS`):

    * ``fscore``: the NeurIPS-2023 competition's forget quality F (per forget example, the
      epsilon separating the logit-scaled confidences of the two populations) and score
      ``F * (RA_U / RA_R) * (TA_U / TA_R)`` with retain / test accuracies from the retain
      and test rows (:func:`jaxmu.metrics.forget_quality`,
      :func:`jaxmu.metrics.competition_score`), CIs from
      :func:`jaxmu.evaluation.fscore_bootstrap_ci` (models of both populations
      resampled). The official F compares populations of equal size: with M unlearned
      and R retrained models it uses the first ``min(M, R)`` of each (the accuracies use
      all). The same numbers as :func:`jaxmu.evaluation.fscore_pipeline` on the same
      logits, bit for bit.
    * ``klom``: KLoM per role (:func:`jaxmu.metrics.klom_report` on
      :func:`jaxmu.metrics.margins`): the KL divergence between the unlearned and the
      retrained margin distributions of each row, summarised per role (mean, P50, P95,
      P99) with intervals (each model a unit) and a permutation null.
    * ``ulira``: offline U-LiRA (:func:`jaxmu.metrics.ulira` with ``online=False``): per
      forget or test row a Gaussian of the retrained models' logit-scaled confidence (the
      never-seen world), and each unlearned model's confidence scored by a one-sided test
      against it; positives are forget rows, negatives test rows. Perfect unlearning makes
      them exchangeable: AUC 0.5. Offline, the threshold-0 accuracy saturates near 0.75
      even for separated worlds: read ``auc`` and ``ulira_best_acc``.
    * ``urmia``: offline U-RMIA (:func:`jaxmu.metrics.u_rmia`, ``online=False``, scaling
      ``offline_a``, threshold ``gamma``): ``Pr(x)`` from the retrained models, each
      unlearned model's ratio on a forget row (positive) or test row (negative) ranked
      against its ratios on the test rows (the population). AUC 0.5 under perfect
      unlearning.
    * ``attack_power``: the offline U-LiRA and U-RMIA with only c reference (retrained)
      models, for c in ``counts`` (default 1, 2, 4, ... R): per count ``draws`` random
      subsets (seeded, without replacement; one when c = R), the mean AUC, TPR at 1% FPR
      and balanced accuracy over the subsets and the 2.5-97.5% range of the AUC over them
      (how much the attack's power depends on which references one has; the targets are
      fixed). U-LiRA needs at least 2 references (``failed`` counts the subsets where an
      attack could not run).

    Why only offline attacks: every retrained model trained on the same retain rows, so
    each row is seen by all references or by none, and no reference forgot anything; the
    online attacks need references on both sides of each example (see the module
    docstring). Relearning attacks need the unlearned weights and are not run
    (``"relearn"`` says so).

    Intervals: every interval resamples models, the submitted models as independent units
    (runs from one original differ only by their own randomness; the original is fixed),
    and for the attacks also the reference models (the fits are redone per resample). The
    rows are fixed: the intervals are conditional on the task's forget and test examples.

    Args:
        unlearned_logits: ``[M, N, K]`` float logits of M >= 2 unlearned models.
        retrained_logits: ``[R, N, K]`` float logits of R >= 2 retrained models.
        labels: ``[N]`` integer labels in ``[0, K)``.
        roles: ``[N]`` role names ("forget", "retain", "test") or codes (0, 1, 2); forget
            and test rows are required, retain rows for the F-score's accuracies.
        audits: which audits to run.
        n_bootstrap: resamples of every interval (0 skips them; KLoM's intervals are
            jackknife intervals whenever this is > 0).
        n_permutations: permutations of KLoM's null (0 skips it).
        confidence: level of the intervals, in (0, 1).
        seed: seed of every resampling (the F-score's CI uses it as fscore_pipeline uses
            its population seed).
        offline_a, gamma: RMIA's offline scaling parameter (paper default 0.3) and ratio
            threshold.
        counts: reference counts of ``attack_power`` (each in [1, R]).
        draws: reference subsets per count.

    Returns:
        A JSON-ready dict: ``rows`` (per role), ``num_unlearned``, ``num_retrained``,
        ``num_classes``, one report per audit run (``fscore``, ``klom``, ``ulira``,
        ``urmia``, ``attack_power``), ``relearn`` (the note above), ``settings`` and
        ``timings`` (seconds per audit).

    Raises:
        ValueError: one line, on logits that are not finite ``[models, N, K]`` floats with
            at least 2 models, populations that disagree on N or K, labels or roles of the
            wrong shape or out of range, missing forget / test (or, for the F-score,
            retain) rows, or bad settings.
    """
    u = _as_population("unlearned_logits", unlearned_logits)
    r = _as_population("retrained_logits", retrained_logits)
    if r.shape[1:] != u.shape[1:]:
        raise ValueError(f"retrained_logits has shape {r.shape}, unlearned_logits {u.shape}: "
                         f"rows and classes must agree")
    n, k = u.shape[1:]
    y = np.asarray(labels)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(f"labels: expected [{n}] integers, got dtype {y.dtype} shape {y.shape}")
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in [0, {k - 1}], got [{y.min()}, {y.max()}]")
    role = _as_roles(roles, n)
    audits = tuple(audits)
    if not audits or len(set(audits)) != len(audits) or set(audits) - set(AUDITS):
        raise ValueError(f"audits must be distinct names from {list(AUDITS)}, got "
                         f"{list(audits)}")
    for name in ("forget", "test") + (("retain",) if "fscore" in audits else ()):
        if not np.any(role == ROLES.index(name)):
            raise ValueError(f"roles: no {name} rows")
    for name, v in (("n_bootstrap", n_bootstrap), ("n_permutations", n_permutations)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws must be an integer >= 1, got {draws!r}")
    cnts = reference_counts(r.shape[0]) if counts is None else tuple(
        sorted({int(c) for c in counts}))
    if not cnts or any(not 1 <= c <= r.shape[0] for c in cnts):
        raise ValueError(f"counts must lie in [1, {r.shape[0]}], got {counts}")
    y = y.astype(np.int64)
    out: dict[str, Any] = {
        "rows": {name: int(np.sum(role == i)) for i, name in enumerate(ROLES)},
        "num_unlearned": int(u.shape[0]), "num_retrained": int(r.shape[0]),
        "num_classes": int(k)}
    timings: dict[str, float] = {}
    au, ar, ay, pos = _attack_inputs(u, r, y, role)
    kw = dict(n_bootstrap=int(n_bootstrap), confidence=confidence, seed=int(seed))
    attacks: dict[str, _Attack] = {}

    def attack(kind: str) -> _Attack:
        if kind not in attacks:
            attacks[kind] = _Attack(kind, au, ar, ay, pos, offline_a=offline_a, gamma=gamma)
        return attacks[kind]

    for a in audits:
        t0 = time.perf_counter()
        if a == "fscore":
            out[a] = _fscore(u, r, y, role, **kw)
        elif a == "klom":
            out[a] = _klom(u, r, y, role, n_permutations=int(n_permutations), **kw)
        elif a in ("ulira", "urmia"):
            out[a] = _attack_report(attack(a).report(**kw))
        else:
            out[a] = _attack_power({k: attack(k) for k in ("ulira", "urmia")}, counts=cnts,
                                   draws=int(draws), seed=int(seed))
        timings[a] = time.perf_counter() - t0
    out["relearn"] = RELEARN_NOTE
    out["settings"] = {"n_bootstrap": int(n_bootstrap), "n_permutations": int(n_permutations),
                       "confidence": float(confidence), "seed": int(seed),
                       "offline_a": float(offline_a), "gamma": float(gamma),
                       "counts": list(cnts), "draws": int(draws), "audits": list(audits)}
    out["timings"] = timings
    return out


def task_retrained_logits(task: Task, splits: Any, *, cache_dir: str | None = None,
                          strategy: str = "auto", chunk: int | None = None,
                          progress: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """``[R, N, K]`` logits of jaxmu's retrained population on the task's eval rows, in
    order, and the store's info (``from_store``, ``retrain_s``, ``wall_s``).

    The population is :func:`jaxmu.evaluation.retrained_population_logits` of the task's
    model, recipe, ``num_models`` and ``seed``: the one ``fscore_pipeline`` (and
    ``python -m experiments.<dataset> --eval fscore``) trains and caches for the same
    setting, read from the same store entry. Retain rows of a sampled task are picked
    from the logits on the whole retain split.
    """
    from jaxmu.evaluation import retrained_population_logits
    from jaxmu.score._task import reference_model, reference_recipe

    logits, info = retrained_population_logits(
        reference_model(task), splits, num_models=task.num_models, seed=task.seed,
        config=reference_recipe(task), strategy=strategy, chunk=chunk, cache_dir=cache_dir,
        progress=progress)
    parts = []
    for i, sp in enumerate(ROLES):
        where = task.eval_index[task.eval_role == i]
        pos = np.searchsorted(getattr(task, f"{sp}_index"), where)
        parts.append(logits[sp][:, pos])
    return np.concatenate(parts, axis=1), info


def population_eval_logits(task: Task, splits: Any, model: Any, params: Any,
                           model_state: Any, *, strategy: str = "auto",
                           chunk: int | None = None) -> np.ndarray:
    """``[M, N, K]`` float32 eval-mode logits of a stacked jaxmu population on the task's
    eval rows, in order: what a submission of jaxmu models holds.

    Each role's rows are predicted with :func:`jaxmu.population.predict_population` on
    the pool (the same calls :func:`jaxmu.evaluation.fscore_pipeline` makes).
    """
    import jax.numpy as jnp

    from jaxmu.population import predict_population

    parts = []
    for i in range(len(ROLES)):
        mask = np.zeros(splits.pool.size, bool)
        mask[task.eval_index[task.eval_role == i]] = True
        parts.append(np.asarray(predict_population(model, params, model_state, splits.pool,
                                                   jnp.asarray(mask), strategy=strategy,
                                                   chunk=chunk), np.float32))
    return np.concatenate(parts, axis=1)


def jaxmu_unlearned_logits(task: Task | str | os.PathLike, method: Any, *,
                           data_dir: str | None = None, cache_dir: str | None = None,
                           strategy: str = "auto", chunk: int | None = None,
                           progress: bool = False) -> np.ndarray:
    """``[M, N, K]`` logits of jaxmu's own unlearned population for a task (M = the task's
    ``num_models``): the population :func:`jaxmu.evaluation.fscore_pipeline` unlearns.

    The original is trained on the task's train rows (forget and retain) with the task's
    model, recipe and ``seed`` (:func:`jaxmu.train.cached_fit`, as the experiment CLIs do),
    and ``method`` is run ``num_models`` times from it with keys ``fold_in(key(seed), 99)``
    folded with 0, 1, ... (fscore_pipeline's keys). Useful as a submission (the worked
    example of ``docs/scoring.md``) and as the in-process reference of a round trip.

    Args:
        task: the task (or its file).
        method: a method name or :class:`jaxmu.methods.Method` (a reference method takes
            the task's recipe: :meth:`jaxmu.methods.Method.for_recipe`).

    Returns:
        float32 logits on the eval rows, in order.
    """
    import jax

    from jaxmu.methods import Method, get_method
    from jaxmu.population import model_keys, unlearn_population
    from jaxmu.score._task import reference_model, reference_recipe, task_splits
    from jaxmu.train import cached_fit
    from jaxmu.types import as_key

    t = as_task(task)
    splits = task_splits(t, data_dir)
    model = reference_model(t)
    recipe = reference_recipe(t)
    m = method if isinstance(method, Method) else get_method(str(method))
    bound = m.for_recipe(recipe).bind(model)
    po, so, _ = cached_fit(cache_dir, model, splits.pool, splits.mask("train"), t.seed, recipe,
                           progress=progress)
    keys = model_keys(jax.random.fold_in(as_key(t.seed), 99), range(t.num_models))
    pu, su, _ = unlearn_population(bound, po, so, splits, keys, strategy=strategy, chunk=chunk,
                                   shared_model=True)
    return population_eval_logits(t, splits, model, pu, su, strategy=strategy, chunk=chunk)


def score_submission(
    submission: Any,
    task: Task | str | os.PathLike,
    *,
    cache_dir: str | None = ".jaxmu_cache",
    data_dir: str | None = None,
    n_bootstrap: int = 200,
    n_permutations: int = 100,
    strategy: str = "auto",
    chunk: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Scores a submission against jaxmu's retrained population for its task.

    Checks the submission against the task (:func:`jaxmu.score.load_submission`), rebuilds
    the task's splits from the dataset and checks them (:func:`jaxmu.score.task_splits`),
    trains or loads jaxmu's retrained population (:func:`task_retrained_logits`: the
    population store entry ``fscore_pipeline`` uses, so nothing is trained twice) and runs
    :func:`score_logits` with the task's seed.

    Args:
        submission: a submission file, or ``[M, N, K]`` logits in memory.
        task: the task (or its file).
        cache_dir: the model and population cache (None: train without caching).
        data_dir: where the dataset's files are.
        n_bootstrap, n_permutations: as :func:`score_logits`.
        strategy, chunk: population strategy for training and predicting.
        progress: progress lines on stderr.

    Returns:
        :func:`score_logits`'s dict plus ``task`` (hash, dataset, split, reference
        setting) and ``retrained`` (whether the population came from the store, seconds).

    Raises:
        ValueError: one line on a bad submission, task or dataset (nothing is trained).
    """
    from jaxmu.score._task import check_logits, task_splits

    t = as_task(task)
    if isinstance(submission, (str, os.PathLike)):
        logits = load_submission(submission, t)
    else:
        logits = check_logits(submission, t)
    splits = task_splits(t, data_dir)
    t0 = time.perf_counter()
    rlog, info = task_retrained_logits(t, splits, cache_dir=cache_dir, strategy=strategy,
                                       chunk=chunk, progress=progress)
    t_ref = time.perf_counter() - t0
    res = score_logits(logits, rlog, t.eval_labels, t.eval_role, n_bootstrap=n_bootstrap,
                       n_permutations=n_permutations, seed=t.seed)
    res["task"] = {"task_hash": t.task_hash, "dataset": t.dataset,
                   "forget_scenario": t.forget_scenario, "forget_fraction": t.forget_fraction,
                   "val_fraction": t.val_fraction, "split_seed": t.split_seed,
                   "retain_sample": t.retain_sample, "model": t.model, "recipe": t.recipe,
                   "num_models": t.num_models, "seed": t.seed}
    res["retrained"] = {"from_store": bool(info["from_store"]),
                        "train_s": float(info.get("retrain_s", 0.0)), "wall_s": t_ref}
    return res
