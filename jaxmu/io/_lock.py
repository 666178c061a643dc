"""An inter-process lock per cache entry (``fcntl.flock`` on ``<entry>.lock``)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no locking
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def entry_lock(entry: str | os.PathLike, *, announce: bool = False) -> Iterator[bool]:
    """Holds an exclusive lock on the cache entry ``entry`` for the ``with`` block.

    The lock is ``flock`` on the file ``<entry>.lock`` beside the entry (created if
    missing, never removed, so there is no race on its creation). A second process asking
    for the same entry waits until the first leaves its block, then finds the finished entry.
    The operating system releases the lock when its holder dies, so a killed run never
    blocks the next one.

    Args:
        entry: the entry's path (its parent directory is created).
        announce: print one line on stderr when the entry is busy and this process waits.

    Yields:
        ``True`` when the lock is held; ``False`` when it could not be taken (no ``fcntl``,
        or the lock file cannot be created, e.g. on a read-only cache: reading a finished
        entry is safe without it, and writing one fails with its own error).
    """
    lock = Path(f"{Path(entry)}.lock")
    fd = None
    if fcntl is not None:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if announce:
                    print(f"waiting for {lock}: another process is building this cache entry",
                          file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock
