"""Import structure: ``import jaxmu`` stays light, subpackages form no cycle, ``--help`` is
answered without jax.

The weight checks run in a fresh interpreter (``python -c``) and inspect ``sys.modules``,
so they do not depend on what this test session has already imported, nor on timing.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import jaxmu

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxmu"

# Stacks that only some functions need; they are imported inside those functions.
HEAVY = ("matplotlib", "optuna", "sklearn", "tensorflow", "tensorflow_datasets")
# What answering --help must not import either: the numerical stack.
NUMERIC = ("jax", "jaxlib", "flax", "optax", "orbax", "scipy")

EXPERIMENTS = sorted(m.name for m in pkgutil.iter_modules([str(ROOT / "experiments")])
                     if not m.name.startswith("_"))


def _loaded_after(code: str, roots: tuple[str, ...]) -> dict:
    """Runs ``code`` in a fresh interpreter; returns the top-level packages of ``roots`` it
    left in ``sys.modules`` (key ``"loaded"``) and what ``code`` stored in ``out``."""
    probe = (
        "import json, sys\nout = {}\n" + code
        + f"\nout['loaded'] = sorted({{m.split('.')[0] for m in sys.modules}} & {set(roots)!r})"
        + "\nprint('\\n' + json.dumps(out))"
    )
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_import_jaxmu_imports_nothing_heavy():
    # The package root loads its names on first use: not even jax is imported.
    assert _loaded_after("import jaxmu", HEAVY + NUMERIC)["loaded"] == []


def test_public_api_imports_no_optional_stack():
    # Resolving every public name (what the eager ``import jaxmu`` used to do).
    out = _loaded_after(
        "import jaxmu\nfor n in jaxmu.__all__:\n    getattr(jaxmu, n)", HEAVY + ("jax",))
    assert out["loaded"] == ["jax"]


def test_every_jaxmu_module_imports_no_optional_stack():
    # Library-wide, including modules no __init__ imports (e.g. jaxmu.report.__main__).
    code = (
        "import importlib, pkgutil, jaxmu\n"
        "out['modules'] = [m.name for m in pkgutil.walk_packages(jaxmu.__path__, 'jaxmu.')]\n"
        "for name in out['modules']:\n"
        "    importlib.import_module(name)\n"
        "    bad = sorted({m.split('.')[0] for m in sys.modules} & HEAVY)\n"
        "    if bad:\n"
        "        out['first'] = [name, bad]\n"
        "        break\n"
    ).replace("HEAVY", repr(set(HEAVY)))
    out = _loaded_after(code, HEAVY)
    assert "first" not in out, f"importing {out['first'][0]} loads {out['first'][1]}"
    assert out["loaded"] == []
    assert {"jaxmu.sweep._study", "jaxmu.report._plots", "jaxmu.data._tfds"} <= set(
        out["modules"])


def test_lazy_names_behave_like_attributes():
    for name in jaxmu.__all__:
        assert name in dir(jaxmu)
        assert getattr(jaxmu, name) is not None
    assert jaxmu.fit is jaxmu.train.fit
    assert jaxmu.Dataset is jaxmu.data.Dataset
    assert jaxmu.evaluate.__module__ == "jaxmu._evaluate"
    from jaxmu import TrainConfig, io

    assert TrainConfig is jaxmu.train.TrainConfig and io is jaxmu.io
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jaxmu.nope  # noqa: B018
    assert not hasattr(jaxmu, "nope")


# --- the package-level import graph --------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _node(module: str) -> str:
    """The layer a module belongs to: ``jaxmu.<first component>`` (a subpackage, or a
    top-level module such as ``jaxmu._evaluate`` or ``jaxmu.types``)."""
    return ".".join(module.split(".")[:2])


def _type_checking_ids(tree: ast.Module) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test):
            ids.update(id(n) for child in node.body for n in ast.walk(child))
    return ids


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``jaxmu`` module this file imports, at module level and inside functions
    (imports under ``if TYPE_CHECKING:`` never run and are left out), with line numbers.
    ``from jaxmu import name`` of a re-exported name resolves to the module defining it."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_ids(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: None if path.name == "__init__.py" else -1]
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            if base == "jaxmu":
                for a in node.names:
                    is_module = (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").exists()
                    target = f"jaxmu.{a.name}" if is_module else jaxmu._NAMES[a.name]
                    out.append((target, node.lineno))
            else:
                out.append((base, node.lineno))
    return [(t, line) for t, line in out if t.startswith("jaxmu.")]


def _package_graph() -> dict[str, dict[str, list[str]]]:
    """layer -> imported layer -> the import sites (``file:line``) behind that edge. The
    package root (``jaxmu/__init__.py``, the lazy facade over all layers) is no layer."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue
        src = _node(_module_name(path))
        for target, line in _imports(path):
            dst = _node(target)
            if dst != src:
                site = f"{path.relative_to(ROOT)}:{line}"
                graph.setdefault(src, {}).setdefault(dst, []).append(site)
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one layer (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                found.append(sorted([v, *comp]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}, "d": {"a": ["w"]}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": ["x"]}, "b": {}}) == []


def test_no_import_cycle_between_subpackages():
    graph = _package_graph()
    assert "jaxmu.train" in graph["jaxmu.sweep"]  # the graph sees function-level imports
    cycles = _cycles(graph)
    detail = [{a: {b: graph[a][b] for b in c if b in graph.get(a, {})} for a in c}
              for c in cycles]
    assert cycles == [], json.dumps(detail, indent=1)


def _private_imports(path: Path) -> list[str]:
    """The imports in ``path`` that reach into another layer's private parts, as
    ``"file:line target"``: a module or name below another layer whose dotted path has a
    component starting with ``_`` (``jaxmu.metrics._lira``, ``jaxmu.report._plots._figure``,
    ``from jaxmu.metrics import _checks``). Imports at module level, inside functions and
    under ``if TYPE_CHECKING:`` all count. Within one layer private modules are fine, and so
    are the package root's own top-level modules (``jaxmu._names``, ``jaxmu._argparse``):
    they are internal to ``jaxmu`` as a whole, not to a sibling package (their private
    names are not)."""
    module = _module_name(path)
    src = _node(module)
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: None if path.name == "__init__.py" else -1]
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            targets = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] != "jaxmu" or len(parts) < 2 or _node(target) == src:
                continue
            if any(p.startswith("_") for p in parts[2:]):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {target}")
    return found


def test_private_import_finder_sees_both_levels_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "jaxmu" / "score"
    pkg.mkdir(parents=True)
    (pkg / "_x.py").write_text(
        "from jaxmu.metrics._lira import summarize\n"
        "from jaxmu.metrics import _checks, lira\n"
        "from jaxmu._names import MODELS\n"
        "from ._task import Task\n"
        "from ..report import _plots\n"
        "def f():\n"
        "    import jaxmu.io._errors\n"
        "    from jaxmu.evaluation import _pipelines as p\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _private_imports(pkg / "_x.py") == [
        "jaxmu/score/_x.py:1 jaxmu.metrics._lira.summarize",
        "jaxmu/score/_x.py:2 jaxmu.metrics._checks",
        "jaxmu/score/_x.py:5 jaxmu.report._plots",
        "jaxmu/score/_x.py:7 jaxmu.io._errors",
        "jaxmu/score/_x.py:8 jaxmu.evaluation._pipelines",
    ]


def test_no_imports_of_another_packages_private_modules():
    # A package uses another only through what that package's __init__ exports.
    found = [site for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "__init__.py"
             for site in _private_imports(path)]
    assert found == [], "\n".join(found)


def test_library_does_not_import_the_command_lines():
    # The experiment and benchmark CLIs sit on top of the library, never under it.
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                      if n.split(".")[0] in ("experiments", "benchmarks", "tests")]
    assert found == [], "\n".join(found)


def test_io_is_a_leaf():
    # io sits under train (which caches trained models through it): it may use only types.
    assert set(_package_graph().get("jaxmu.io", {})) <= {"jaxmu.types"}


# The evaluation stack, bottom to top: metrics (numbers from logits) and population (many
# models trained, unlearned, predicted and stored) know nothing of each other; evaluation
# (F-score, U-LiRA) combines them; audits build on evaluation's design population; score,
# scenarios, experiment and sweep sit on top (docs/design.md#layering). A layer never
# imports one above it.
LEAF_HELPERS = {"jaxmu.types", "jaxmu._names", "jaxmu._checks"}
ABOVE_EVALUATION = {"jaxmu.audits", "jaxmu.score", "jaxmu.scenarios", "jaxmu.experiment",
                    "jaxmu.sweep"}
NEVER_IMPORTS = {
    "jaxmu.population": {"jaxmu.metrics", "jaxmu.evaluation", "jaxmu.methods",
                         *ABOVE_EVALUATION},
    "jaxmu.evaluation": ABOVE_EVALUATION,
    "jaxmu.audits": {"jaxmu.score", "jaxmu.scenarios", "jaxmu.experiment", "jaxmu.sweep"},
}


def test_metrics_needs_only_leaf_helpers():
    # Metrics are host-side functions of arrays: no models, no training, no populations.
    graph = _package_graph()
    assert set(graph.get("jaxmu.metrics", {})) <= LEAF_HELPERS, graph["jaxmu.metrics"]


@pytest.mark.parametrize("layer", sorted(NEVER_IMPORTS))
def test_layer_imports_nothing_above_it(layer):
    graph = _package_graph()
    bad = {dst: sites for dst, sites in graph.get(layer, {}).items()
           if dst in NEVER_IMPORTS[layer]}
    assert bad == {}, json.dumps(bad, indent=1)


def test_evaluation_sits_above_population_and_metrics():
    # The pipelines moved out of population (which therefore needs no metric).
    graph = _package_graph()
    assert {"jaxmu.population", "jaxmu.metrics"} <= set(graph["jaxmu.evaluation"])
    assert "jaxmu.evaluation" in graph["jaxmu.audits"]
    assert "evaluation" in jaxmu.__all__


# --- experiment CLIs -----------------------------------------------------------------------


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_help_does_not_import_jax(name):
    # Exactly ``python -m experiments.<name> --help``, then a look at sys.modules.
    code = (
        "import contextlib, io, runpy\n"
        f"sys.argv = ['experiments/{name}.py', '--help']\n"
        "buf = io.StringIO()\n"
        "try:\n"
        "    with contextlib.redirect_stdout(buf):\n"
        f"        runpy.run_module('experiments.{name}', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    out['code'] = e.code\n"
        "out['help'] = buf.getvalue()\n"
    )
    out = _loaded_after(code, HEAVY + NUMERIC)
    assert out["code"] == 0
    assert out["help"].startswith(f"usage: python -m experiments.{name}")
    assert "--method" in out["help"] and "--model" in out["help"]
    assert out["loaded"] == []
