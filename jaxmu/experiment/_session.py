"""The process settings an experiment runs under (the experiment CLIs use them)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from jaxmu._argparse import one_line_cache_warnings
from jaxmu._compile_cache import compile_cache, frozen_gc, resolve_compile_cache
from jaxmu.io import rebuild_corrupt


@contextlib.contextmanager
def session(cache_dir: str | os.PathLike | None, *, compile_cache_on: bool = True,
            rebuild: bool = True) -> Iterator[Path | None]:
    """Inside: corrupt cache entries are moved aside and rebuilt (``rebuild``; else they
    raise :class:`jaxmu.io.CorruptCheckpointError`) with one ``warning:`` line on stderr
    each, compiled XLA programs are kept in ``CACHE_DIR/xla`` (``compile_cache_on``; the
    environment variable ``JAXMU_COMPILE_CACHE=0`` turns it off, ``=DIR`` moves it) and
    the garbage collector does not re-scan the long-lived objects. Yields the compile
    cache folder (None when off); every setting is restored on exit."""
    with rebuild_corrupt(rebuild), one_line_cache_warnings():
        xla = resolve_compile_cache(cache_dir, disabled=not compile_cache_on)
        with compile_cache(xla), frozen_gc():
            yield xla
