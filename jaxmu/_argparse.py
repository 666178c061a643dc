"""The command-line parser shared by jaxmu's CLIs (experiments, benchmarks, report)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (invalid choice, bad type, unknown flag, ...) are one line on
    stderr, ``PROG: error: MESSAGE``, and exit status 2 (no usage block); ``--help`` is
    unchanged."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


@contextlib.contextmanager
def one_line_cache_warnings():
    """Inside: a corrupt checkpoint moved aside (:class:`jaxmu.io.CorruptCheckpointWarning`)
    shows as one ``warning: MESSAGE`` line on stderr; other warnings as usual."""
    from jaxmu.io import CorruptCheckpointWarning

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, CorruptCheckpointWarning):
                print(f"warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield
