"""``python -m jaxmu.report combine OUT_DIR STUDY [STUDY ...]``: Table 1 over settings.

Each STUDY is a study directory of :func:`jaxmu.sweep.run_benchmark` (its ``study.json``)
or a study JSON file; the combined report (:func:`jaxmu.report.combine_studies`,
:func:`jaxmu.report.write_combined_report`) goes to OUT_DIR. Bad inputs (a missing file,
not a study, a duplicate setting) print one line on stderr and exit with status 2, writing
nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jaxmu._argparse import ArgumentParser
from jaxmu.report._combine import combine_studies, write_combined_report

PROG = "python -m jaxmu.report"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="jaxmu report tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = sub.add_parser("combine", help="Table 1 over several studies (settings)",
                       description="Ranks the methods of several studies (one per dataset "
                       "and architecture) together, as Deep Unlearn's Table 1, and writes "
                       "report.md, ranking.png and results.json into OUT_DIR.")
    c.add_argument("out_dir", metavar="OUT_DIR", help="the combined report directory")
    c.add_argument("studies", nargs="+", metavar="STUDY",
                   help="a study directory (holding study.json) or a study JSON file")
    return parser


def load_study(path: str) -> tuple[object, Path]:
    """The parsed JSON of a study directory's ``study.json`` (or of a JSON file) and its
    path.

    Raises:
        ValueError: one line when the file is missing or not JSON.
    """
    p = Path(path)
    f = p / "study.json" if p.is_dir() else p
    if not f.is_file():
        raise ValueError(f"{path}: no study here (expected a study directory holding "
                         "study.json, or a study JSON file)")
    try:
        return json.loads(f.read_text(encoding="utf-8")), f
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{f}: not a JSON file ({e})") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0, or 2 for bad arguments or inputs)."""
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:  # --help (0), or a bad argument (2; one line already on stderr)
        return e.code if isinstance(e.code, int) else 2
    try:
        loaded = [load_study(s) for s in a.studies]
        combined = combine_studies([s for s, _ in loaded], sources=[str(f) for _, f in loaded])
        path = write_combined_report(combined, a.out_dir)
    except (ValueError, OSError) as e:
        print(f"{PROG} {a.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
