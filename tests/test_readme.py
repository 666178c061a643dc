"""README.md's methods table is generated from the registry and must not drift from it.

Regenerate it with ``python -m experiments.digits --list-methods markdown``.
"""

from __future__ import annotations

import re
from pathlib import Path

from experiments._cli import main
from jaxmu.experiment import methods_table
from jaxmu.methods import get_method, list_methods

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- methods-table (generated from the registry) -->"
REGENERATE = "python -m experiments.digits --list-methods markdown"


def readme_table() -> str:
    """The lines after the marker, up to the first blank line."""
    text = README.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"README.md must hold {MARKER!r} once"
    block = text.split(MARKER, 1)[1].lstrip("\n")
    return block.split("\n\n", 1)[0].rstrip("\n")


def _cells(row: str) -> list[str]:
    assert row.startswith("| ") and row.endswith(" |"), row
    parts = re.split(r"(?<!\\)\|", row[1:-1])  # split on unescaped pipes
    return [re.sub(r"\\(.)", r"\1", p.strip()) for p in parts]


def test_readme_methods_table_matches_registry():
    rows = readme_table().splitlines()
    assert _cells(rows[0]) == ["method", "recipe", "source"]
    assert rows[1] == "|---|---|---|"
    table = {}
    for row in rows[2:]:
        name, recipe, source = _cells(row)
        table[name.strip("`")] = (recipe, source)
    assert list(table) == list_methods(), f"README methods differ; run: {REGENERATE}"
    for name, (recipe, source) in table.items():
        m = get_method(name)
        assert recipe == m.summary, f"{name}: README recipe is stale; run: {REGENERATE}"
        anchor = m.section.split("#")[-1]
        assert source == f"{m.paper} ([{anchor}]({m.section}))", f"{name}: stale source"
        assert (README.parent / m.section.split("#")[0]).is_file()  # the link resolves
        assert f'id="{anchor}"' in (README.parent / "docs" / "methods.md").read_text()
    # ... and byte for byte what the generator writes (escaping included)
    assert readme_table() == methods_table(), f"run: {REGENERATE}"


def test_readme_names_the_regeneration_command():
    assert REGENERATE in README.read_text(encoding="utf-8")


def test_list_methods_markdown_prints_the_table(capsys):
    assert main("digits", ["--list-methods", "markdown"]) == 0
    assert capsys.readouterr().out == methods_table() + "\n"
