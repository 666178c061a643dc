"""Ranking methods by performance groups (G1/G2/G3/Failed), as in Deep Unlearn's Table 1.

:func:`rank_methods` ranks rows of (setting, method, seed) metrics; :func:`ranking_rows`
turns one benchmark study (the dict of :func:`jaxmu.sweep.run_benchmark`) into such rows and
:func:`study_ranking` ranks them on RetDev and on indiscernibility. These live in
``jaxmu.report`` so that both the benchmark (``jaxmu.sweep``) and the report builders use
them without the two packages importing each other.

The paper names agglomerative clustering with cut-offs giving three clusters but not the
linkage, features or cut-offs, and the reference code has no ranking, so the exact
procedure is jaxmu's choice (also in docs/evaluation.md#ranking):

1. Per setting (dataset, architecture) and method, average the metric over the seeds
   (RetDev: lower is better; indiscernibility: higher is better). A method with fewer
   usable runs than seeds (non-finite metrics or parameters) is **Failed** (F) there.
2. Cluster the non-failed methods' 1-D means with agglomerative clustering (Ward linkage,
   scikit-learn) into ``min(3, #distinct values)`` clusters; order the clusters by their
   mean, best first: G1, G2, G3 (with only two clusters there is no G3, one: all G1).
3. Count each method's memberships over the settings; rank by (G1, G2, G3) counts, all
   descending, then fewest F; equal count vectors share a rank (dense ranking, as in the
   paper's Table 1 where FT and MSG are both 1st).

References:
    Cadet et al., Deep Unlearn (2024) §4 "Ranking" and Table 1; docs/evaluation.md#ranking.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxmu._names import REFERENCES
from jaxmu.report._validate import GROUPS

LOWER_IS_BETTER = {"retdev": True, "indisc_test": False, "indisc_val": False,
                   "indisc": False, "rte": False}


def performance_groups(means: Mapping[str, float], *, lower_is_better: bool,
                       failed: Iterable[str] = ()) -> dict[str, str]:
    """Assigns each method of one setting to G1/G2/G3 (or F) by Ward clustering of its mean.

    Args:
        means: method -> the metric averaged over seeds (non-finite values count as failed).
        lower_is_better: orientation of the metric.
        failed: methods without enough usable runs.

    Returns:
        method -> "G1" | "G2" | "G3" | "F".

    Raises:
        ValueError: on an empty ``means``.
    """
    from sklearn.cluster import AgglomerativeClustering

    if not means:
        raise ValueError("means: no methods to group")
    failed = set(failed)
    out = {m: "F" for m in means if m in failed or not math.isfinite(float(means[m]))}
    ok = [m for m in means if m not in out]
    if not ok:
        return out
    x = np.array([float(means[m]) for m in ok])
    score = x if lower_is_better else -x  # lower score = better
    n_clusters = min(3, len(np.unique(score)))
    if n_clusters == 1:
        return {**out, **{m: "G1" for m in ok}}
    labels = AgglomerativeClustering(n_clusters=n_clusters, linkage="ward").fit_predict(
        score[:, None])
    order = sorted(set(labels), key=lambda c: score[labels == c].mean())
    name = {c: GROUPS[i] for i, c in enumerate(order)}
    return {**out, **{m: name[c] for m, c in zip(ok, labels, strict=True)}}


def rank_methods(rows: Sequence[Mapping[str, Any]], metric: str, *,
                 lower_is_better: bool | None = None, seeds: int | None = None
                 ) -> list[dict[str, Any]]:
    """Table 1 of Deep Unlearn for one metric, over any number of settings.

    Args:
        rows: one per (setting, method, seed) with keys ``setting`` (e.g.
            ``"digits/mlp"``), ``method``, ``seed``, ``usable`` (bool) and ``metric``.
        metric: the row key to rank on (``"retdev"``, ``"indisc_test"``, ...).
        lower_is_better: orientation; default from :data:`LOWER_IS_BETTER`.
        seeds: runs a method needs per setting to be usable (default: the most runs any
            method has in that setting).

    Returns:
        ``[{"method", "G1", "G2", "G3", "F", "rank"}, ...]`` sorted best first.

    Raises:
        ValueError: on empty rows, missing keys or an unknown orientation.
    """
    if not rows:
        raise ValueError("rows: nothing to rank")
    if lower_is_better is None:
        if metric not in LOWER_IS_BETTER:
            raise ValueError(f"unknown orientation of {metric!r}; pass lower_is_better")
        lower_is_better = LOWER_IS_BETTER[metric]
    per: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        for k in ("setting", "method", "usable"):
            if k not in r:
                raise ValueError(f"row lacks {k!r}: {dict(r)}")
        v = float(r.get(metric, math.nan)) if r["usable"] else math.nan
        per.setdefault(r["setting"], {}).setdefault(r["method"], []).append(v)
    methods = sorted({r["method"] for r in rows})
    counts = {m: dict.fromkeys(GROUPS, 0) for m in methods}
    for by_method in per.values():
        need = seeds or max(len(v) for v in by_method.values())
        failed = [m for m, v in by_method.items()
                  if sum(math.isfinite(x) for x in v) < need]
        means = {m: (float(np.mean(v)) if m not in failed else math.nan)
                 for m, v in by_method.items()}
        groups = performance_groups(means, lower_is_better=lower_is_better, failed=failed)
        for m, g in groups.items():
            counts[m][g] += 1
    key = {m: (-c["G1"], -c["G2"], -c["G3"], c["F"]) for m, c in counts.items()}
    distinct = sorted(set(key.values()))
    table = [{"method": m, **counts[m], "rank": distinct.index(key[m]) + 1} for m in methods]
    return sorted(table, key=lambda t: (t["rank"], t["method"]))


def setting_name(study: Mapping[str, Any]) -> str:
    """The label of a study's (dataset, architecture) setting in the ranking rows:
    ``"<dataset>-<model>"`` (e.g. ``"digits-mlp"``)."""
    return f"{study['dataset']}-{study['model']}"


def is_reference(name: str, entry: Mapping[str, Any]) -> bool:
    """Whether a study's method entry is a reference (O or R, reported but never ranked):
    its ``reference`` flag, or for a study written before the flag existed, its name in
    :data:`REFERENCES`."""
    flag = entry.get("reference")
    return bool(flag) if flag is not None else name in REFERENCES


def ranking_rows(study: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of :func:`rank_methods` of one study: one per (method, final run), the
    references (:func:`is_reference`) left out, ``setting`` = :func:`setting_name`, the run's
    metrics as row keys (``None``, NaN in a study read back from JSON, becomes NaN), and
    ``degenerate``: the method's entry of that name (None when absent)."""
    setting = setting_name(study)
    return [{"setting": setting, "method": m, "seed": r["seed"], "usable": r["usable"],
             "degenerate": v.get("degenerate"),
             **{k: math.nan if x is None else x for k, x in r.get("metrics", {}).items()}}
            for m, v in study["methods"].items() if not is_reference(m, v) for r in v["runs"]]


def study_ranking(rows: Sequence[Mapping[str, Any]], seeds: int | None
                  ) -> dict[str, list[dict[str, Any]]]:
    """Table 1 on RetDev and on indiscernibility (test MIA) over ``rows``
    (:func:`ranking_rows` of one or several studies): ``{"retdev": [...], "indisc": [...]}``
    (:func:`rank_methods`, ``seeds`` runs needed per setting); ``{}`` without rows. The
    ranking row of a method that degenerates in some setting is marked with
    ``"degenerate"``: the reasons, ``"; "``-joined over settings (see
    :func:`jaxmu.methods.degenerate_reason`); other rows have no such key."""
    if not rows:
        return {}
    reasons: dict[str, list[str]] = {}
    for r in rows:
        why = r.get("degenerate")
        if why and why not in reasons.setdefault(r["method"], []):
            reasons[r["method"]].append(why)
    out = {"retdev": rank_methods(rows, "retdev", seeds=seeds),
           "indisc": rank_methods(rows, "indisc_test", seeds=seeds)}
    for table in out.values():
        for t in table:
            if reasons.get(t["method"]):
                t["degenerate"] = "; ".join(reasons[t["method"]])
    return out
