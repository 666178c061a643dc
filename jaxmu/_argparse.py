"""The command-line parser shared by jaxmu's CLIs (experiments, benchmarks, report)."""

from __future__ import annotations

import argparse


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (invalid choice, bad type, unknown flag, ...) are one line on
    stderr, ``PROG: error: MESSAGE``, and exit status 2 (no usage block); ``--help`` is
    unchanged."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")
