"""PNG figures of a study, drawn with matplotlib's Agg canvas.

Figures are built as ``matplotlib.figure.Figure`` objects on a ``FigureCanvasAgg``, never
through ``pyplot``: nothing is registered in pyplot's figure manager (so nothing leaks) and
the caller's global backend, e.g. a notebook's inline backend, is left untouched. Each
function returns False, writing nothing, when the study has no data for its figure.

References:
    Cadet et al., Deep Unlearn (2024) Tables 1-2; docs/evaluation.md (metrics; #u-lira,
    #ranking).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jaxmu.report._format import (
    degenerate_reasons,
    fmt_count,
    is_failed,
    marked,
    method_stat,
    usable_runs,
)
from jaxmu.report._tables import RANKING_TITLES, sorted_ranking
from jaxmu.report._validate import GROUPS, as_float, number_list

_ACC = (("ra", "RA"), ("fa", "FA"), ("va", "VA"), ("ta", "TA"))
_GROUP_COLORS = {"G1": "#2ca02c", "G2": "#ffbf00", "G3": "#ff7f0e", "F": "#7f7f7f"}

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: jaxmu stays light
    from matplotlib.figure import Figure


def agg_figure(width: float, height: float, layout: str = "tight") -> Figure:
    """A new matplotlib ``Figure`` on its own Agg canvas, without pyplot.

    Nothing is registered in pyplot's figure manager, so nothing leaks when the figure is
    dropped, and the caller's global backend (e.g. a notebook's inline backend) is left
    untouched. Save it with ``fig.savefig(path, format="png")``.

    Args:
        width, height: the size in inches (at 100 dpi).
        layout: matplotlib's layout engine: ``"tight"``, ``"constrained"``,
            ``"compressed"`` or ``"none"``.

    Raises:
        ValueError: if ``width`` or ``height`` is not a positive finite number, or
            ``layout`` is not one of the above.
    """
    for name, v in (("width", width), ("height", height)):
        if (isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating)
                or not 0 < v < math.inf):
            raise ValueError(f"{name}: expected a positive number of inches, got {v!r}")
    if layout not in ("tight", "constrained", "compressed", "none"):
        raise ValueError(f"layout: expected 'tight', 'constrained', 'compressed' or 'none', "
                         f"got {layout!r}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> bool:
    fig.savefig(path, format="png", bbox_inches="tight")
    fig.clear()
    return True


def _yerr(value: float, low: float, high: float) -> tuple[float, float]:
    if any(math.isnan(x) for x in (value, low, high)):
        return 0.0, 0.0
    return max(value - low, 0.0), max(high - value, 0.0)


def accuracy_png(study: Mapping, path: Path) -> bool:
    """Grouped bars of RA/FA/VA/TA per method with their CI as error bars."""
    methods = study["methods"]
    names = list(methods)
    stats = {k: [method_stat(methods[n], k) for n in names] for k, _ in _ACC}
    if all(math.isnan(s.value) for k, _ in _ACC for s in stats[k]):
        return False
    fig = agg_figure(max(6.0, 0.9 * len(names) + 2.0), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    width = 0.8 / len(_ACC)
    failed = [is_failed(methods[n]) for n in names]
    for i, (k, label) in enumerate(_ACC):
        pairs = list(zip(failed, stats[k], strict=True))
        vals = [np.nan if f else s.value for f, s in pairs]
        err = np.array([(0.0, 0.0) if f else _yerr(*s[:3]) for f, s in pairs]).T
        ax.bar(x + (i - 1.5) * width, vals, width, yerr=err, capsize=2, label=label)
    for j, f in enumerate(failed):
        if f:
            ax.text(j, 0.5, "Failed", ha="center", va="center", rotation=90, color="0.4")
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("accuracy (mean, 95% CI)")
    ax.set_title(f"Accuracies: {study['dataset']} / {study['model']}")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def rte_png(study: Mapping, path: Path) -> bool:
    """RTE bars per method on a log scale (only methods with a positive RTE)."""
    methods = study["methods"]
    items = [(n, method_stat(m, "rte")) for n, m in methods.items() if not is_failed(m)]
    items = [(n, s) for n, s in items if s.value > 0]  # NaN compares False
    if not items:
        return False
    items.sort(key=lambda t: -t[1].value)
    fig = agg_figure(max(6.0, 0.6 * len(items) + 2.0), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(items))
    vals = [s.value for _, s in items]
    err = np.array([_yerr(*s[:3]) for _, s in items]).T
    err[0] = np.minimum(err[0], np.asarray(vals) * 0.999)  # keep the lower bar end positive
    ax.bar(x, vals, 0.7, yerr=err, capsize=3, color="#1f77b4")
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    lo, hi = ax.get_ylim()
    ax.yaxis.set_minor_formatter(plain if hi / lo < 20 else NullFormatter())
    ax.set_xticks(x, [n for n, _ in items], rotation=45, ha="right")
    ax.set_ylabel("RTE = T_retrain / T_method (log)")
    ax.set_title("Run-time efficiency")
    return _save(fig, path)


def ranking_png(study: Mapping, path: Path) -> bool:
    """Stacked G1/G2/G3/F counts per method, one panel per ranking metric, best on top."""
    ranking = study.get("ranking") or {}
    sides = [(m, sorted_ranking(ranking.get(m))) for m in RANKING_TITLES]
    sides = [(m, rows) for m, rows in sides if rows]
    if not sides:
        return False
    from matplotlib.ticker import MaxNLocator

    height = max(3.0, 0.3 * max(len(rows) for _, rows in sides) + 1.5)
    fig = agg_figure(5.5 * len(sides), height)
    for i, (metric, rows) in enumerate(sides):
        ax = fig.add_subplot(1, len(sides), i + 1)
        y = np.arange(len(rows))[::-1]
        left = np.zeros(len(rows))
        for g in GROUPS:
            counts = np.nan_to_num([as_float(r.get(g)) for r in rows])
            ax.barh(y, counts, left=left, color=_GROUP_COLORS[g], label=g)
            left += counts
        ax.set_yticks(y, [f"{r['method']} ({fmt_count(r.get('rank'))})" for r in rows])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("count")
        ax.set_title(RANKING_TITLES[metric])
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def _small_multiples(title: str, data: list[tuple[str, np.ndarray]], bins: np.ndarray,
                     xlabel: str, path: Path, vline: float | None = None) -> bool:
    ncols = min(4, len(data))
    nrows = math.ceil(len(data) / ncols)
    fig = agg_figure(3.0 * ncols, 2.4 * nrows + 0.4, layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    for ax, (label, vals) in zip(axes[:len(data)], data, strict=True):
        ax.hist(np.clip(vals, bins[0], bins[-1]), bins=bins, density=True, color="#1f77b4")
        if vline is not None:
            ax.axvline(vline, color="0.3", lw=0.8, ls="--")
        ax.set_title(label, fontsize="small")
        ax.set_xlabel(xlabel, fontsize="small")
        ax.tick_params(labelbottom=True)
    for ax in axes[::ncols]:
        ax.set_ylabel("density", fontsize="small")
    for ax in axes[len(data):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return _save(fig, path)


def mia_hist_png(study: Mapping, path: Path) -> bool:
    """Per-method histograms of the per-example forget-set losses of the usable runs."""
    data = []
    for name, m in study["methods"].items():
        parts = [number_list(r["forget_losses"], "forget_losses") for r in usable_runs(m)
                 if r.get("forget_losses") is not None]
        vals = np.concatenate(parts) if parts else np.zeros(0)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            data.append((f"{name} (n={vals.size})", vals))
    if not data:
        return False
    allv = np.concatenate([v for _, v in data])
    hi = float(np.quantile(allv, 0.99))
    lo = float(min(allv.min(), 0.0))
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
    return _small_multiples("Forget-set CE losses", data, bins, "loss (clipped at p99)", path)


def ulira_hist_png(study: Mapping, path: Path) -> bool:
    """Per-method histograms of per-example U-LiRA accuracies (0.5: indistinguishable)."""
    data = []
    for name, u in (study.get("ulira") or {}).items():
        if u.get("per_example_accuracy") is None:
            continue
        vals = number_list(u["per_example_accuracy"], "per_example_accuracy")
        vals = vals[np.isfinite(vals)]
        if vals.size:
            acc = as_float(u.get("ulira_accuracy"))
            label = name if math.isnan(acc) else f"{name} (acc {acc:.3f})"
            data.append((label, vals))
    if not data:
        return False
    return _small_multiples("Per-example U-LiRA accuracy", data, np.linspace(0.0, 1.0, 21),
                            "accuracy", path, vline=0.5)


def audit_shadow_curve_png(study: Mapping, path: Path) -> bool:
    """Attack AUC against the number of shadow originals (``study["audits"]``): one panel
    each for U-LiRA and U-RMIA, one line per method with the 2.5-97.5% range over shadow
    draws as a band, chance (0.5) dashed."""
    attacks = (("ulira", "U-LiRA"), ("urmia", "U-RMIA"))
    lines: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {
        a: [] for a, _ in attacks}
    for name, rep in (study.get("audits") or {}).items():
        table = ((rep or {}).get("shadow-curve") or {}).get("table") or {}
        for a, _ in attacks:
            t = table.get(a)
            if not isinstance(t, Mapping) or not t.get("shadows"):
                continue
            cols = [number_list(t.get(k) or [], f"audits[{name!r}][{a!r}][{k!r}]")
                    for k in ("shadows", "auc", "auc_lo", "auc_hi")]
            if len({c.size for c in cols}) == 1 and np.isfinite(cols[1]).any():
                lines[a].append((name, *cols))
    if not any(lines.values()):
        return False
    reasons = degenerate_reasons(study)
    fig = agg_figure(9.0, 3.6)
    axes = fig.subplots(1, len(attacks), sharey=True, squeeze=False)[0]
    for ax, (a, label) in zip(axes, attacks, strict=True):
        for name, x, y, lo, hi in lines[a]:
            ok = np.isfinite(y)
            (ln,) = ax.plot(x[ok], y[ok], marker="o", ms=3, label=marked(name, reasons))
            band = ok & np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(x[band], lo[band], hi[band], color=ln.get_color(), alpha=0.15)
        ax.axhline(0.5, color="0.3", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ticks = sorted({int(c) for _, x, *_ in lines[a] for c in x if np.isfinite(c)})
        if ticks:
            ax.set_xticks(ticks, [str(c) for c in ticks])
            ax.minorticks_off()
        ax.set_xlabel("shadow originals")
        ax.set_title(label)
    axes[0].set_ylabel("AUC (mean, range over draws)")
    axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Attack AUC vs number of shadow models")
    return _save(fig, path)
