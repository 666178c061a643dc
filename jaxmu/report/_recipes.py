"""RECIPES.md: the exact command behind every number of a benchmark report.

References:
    docs/methods.md#search: each method's final runs all use one hyperparameter setting,
    the best search trial across the seed studies, per dataset and architecture.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from jaxmu.report._format import md_table


def _hp_value(v: Any) -> str:
    """The ``--hp KEY=VALUE`` spelling that :func:`jaxmu.methods.parse_hp` reads back."""
    if isinstance(v, (tuple, list)):
        return ",".join(_hp_value(x) for x in v)
    return str(v)


def _hp_flags(hp: Mapping[str, Any]) -> str:
    return " ".join(f"--hp {shlex.quote(f'{k}={_hp_value(v)}')}" for k, v in sorted(hp.items()))


def recipes_markdown(study: Mapping) -> str:
    """Markdown with one exact command per table cell of the report.

    Needs ``study["config"]["command"]`` (the study's own command line) and
    ``study["config"]["run_command"]`` (the single-run command of the same setting, to which
    ``--method``, ``--hp`` and ``--seed`` are appended); without them only the
    hyperparameter table is written. A study with audits gets one command per audited
    method: ``run_command``, the method's ``--hp`` flags and
    ``study["config"]["audits"]["flags"]`` (the CLI options of the audits, e.g. ``--eval all
    --shadows 8 ...``), which reproduces that method's row of every audit table; without
    recorded flags (audits run through the API) the section says so.
    """
    cfg = study.get("config", {}) or {}
    cmd, run = cfg.get("command"), cfg.get("run_command")
    parts = [f"# Recipes: {study['dataset']} / {study['model']}",
             "Every number of the report comes from one of these commands (same seed -> "
             "identical results up to timings)."]
    if cmd:
        parts += ["## The whole study (Tables 1-2, every cell)",
                  f"```bash\n{cmd}\n```",
                  f"Search budget: {cfg.get('trials')} trials x search seeds "
                  f"{cfg.get('search_seeds')}, NSGA-III population "
                  f"{cfg.get('population_size')}, E_max {cfg.get('e_max')}; "
                  f"{cfg.get('seeds')} final seeds."]
    rows, cells = [], []
    for name, m in study["methods"].items():
        hp = dict(m.get("hparams") or {})
        s = m.get("search") or {}
        found = ("reference (no search)" if m.get("reference") else
                 f"{s.get('n_trials')} trials, seed {s.get('seed')}, trial {s.get('trial')}, "
                 f"score {s.get('score'):.4g}" if s.get("score") is not None else
                 "search failed: defaults")
        rows.append([name, ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in sorted(hp.items())) or "–", found])
        if run:
            flags = "" if m.get("reference") else _hp_flags(hp)
            seeds = sorted(r["seed"] for r in m.get("runs", []))
            for seed in seeds:
                cells.append(f"{run} --method {name} {flags} --seed {seed}".replace("  ", " "))
    parts += ["## Chosen hyperparameters and the search that found them",
              md_table(["Method", "Hyperparameters", "Found by"], rows)]
    if cells:
        parts += ["## One final run per command (the metric table's cells are their means)",
                  "```bash\n" + "\n".join(cells) + "\n```"]
    design = cfg.get("ulira")
    if run and design and study.get("ulira"):
        lines = []
        for name in study["ulira"]:
            m = study["methods"].get(name, {})
            flags = "" if m.get("reference") else _hp_flags(m.get("hparams") or {})
            lines.append(f"{run} --method {name} {flags} --eval ulira --shadows "
                         f"{design['shadows']} --forget-sets {design['forget_sets']} "
                         f"--seed {design['seed']}".replace("  ", " "))
        parts += ["## U-LiRA, one command per row (shadow originals are cached and shared)",
                  "```bash\n" + "\n".join(lines) + "\n```"]
    audits = cfg.get("audits")
    if isinstance(audits, Mapping) and study.get("audits"):
        names = ", ".join(audits.get("audits") or [])
        head = (f"## Audits ({names}), one command per method (its row of every audit table; "
                "the design population is cached and shared)")
        if run and audits.get("flags"):
            lines = []
            for name in study["audits"]:
                m = study["methods"].get(name, {})
                flags = "" if m.get("reference") else _hp_flags(m.get("hparams") or {})
                lines.append(f"{run} --method {name} {flags} {audits['flags']}"
                             .replace("  ", " "))
            parts += [head, "```bash\n" + "\n".join(lines) + "\n```"]
        else:
            parts += [head, "No command line was recorded for the audits (run through the "
                      "API); their configuration is `config.audits` in results.json."]
    return "\n\n".join(parts) + "\n"
