"""Faults of the environment (disk, checkpoint files, study database), reported in one line.

A fault is not a bug: the message names the path or storage and what to do, and the
experiment CLI prints it on one line and exits with code 2 (see docs/reliability.md).
"""

from __future__ import annotations

import errno as _errno
import os
import re
from pathlib import Path
from typing import Any


class IOFault(Exception):
    """A fault of the environment, not of the code; its message is one line that names the
    path (or storage) and what to do. The experiment CLI prints it and exits with code 2."""


class CorruptCheckpointError(IOFault):
    """A checkpoint failed its integrity check (checksum, completeness or identity) and
    rebuilding is off (:func:`jaxmu.io.rebuild_corrupt` with ``False``, ``--no-rebuild``)."""


class WriteFailedError(IOFault, OSError):
    """A write failed (disk full, quota, read-only file system, permission); nothing was
    half-written and the previous state of the path is kept.

    Attributes:
        errno: the operating-system error code (e.g. ``errno.ENOSPC``), or ``None``.
        path: the path that could not be written.
    """

    def __init__(self, path: str | os.PathLike, what: str, code: int | None):
        reason = os.strerror(code) if code else "write failed"
        super().__init__(code, f"cannot write {what} {path}: {reason}; the previous state "
                               "is kept (free space or fix permissions, then rerun)")
        self.path = str(path)

    def __str__(self) -> str:
        return str(self.strerror)


class CorruptCheckpointWarning(UserWarning):
    """A corrupt or incomplete checkpoint was moved aside (``<step>.corrupt-<time>``) and
    will be rebuilt; the message is one line naming it."""


class CorruptCompileCacheWarning(CorruptCheckpointWarning):
    """A corrupt entry of the persistent XLA compilation cache was moved aside
    (``<key>-cache.corrupt-<time>``) and its program is compiled anew; one line naming it.
    A subclass of :class:`CorruptCheckpointWarning`, so whatever shows or filters corrupt
    cache entries (the CLI's one-line ``warning:``) covers it."""


_OS_CODE = re.compile(r"os_error_code='?(\d+)")
_KNOWN = (_errno.ENOSPC, _errno.EDQUOT, _errno.EROFS, _errno.EACCES, _errno.EPERM,
          _errno.EIO, _errno.EFBIG)


def write_errno(exc: BaseException) -> int | None:
    """The operating-system error code behind a failed write, or ``None`` if ``exc`` is not
    one: an ``OSError``'s errno, or the code a C++ writer such as tensorstore puts in the
    text of its ``ValueError`` (``... No space left on device [os_error_code='28']``)."""
    if isinstance(exc, OSError):
        return exc.errno or None
    if not isinstance(exc, (ValueError, RuntimeError)):
        return None
    text = str(exc)
    m = _OS_CODE.search(text)
    if m:
        return int(m.group(1))
    return next((c for c in _KNOWN if os.strerror(c) in text), None)


def as_write_error(exc: BaseException, path: Any, what: str) -> BaseException:
    """``exc`` as a :class:`WriteFailedError` naming ``path`` when it is an operating-system
    write failure; otherwise ``exc`` itself (a bug stays a traceback)."""
    if isinstance(exc, WriteFailedError):
        return exc
    code = write_errno(exc)
    return exc if code is None else WriteFailedError(Path(path), what, code)
