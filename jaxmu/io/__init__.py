"""Self-checking checkpoints, cache keys and locks, result files and provenance.

The lowest layer of jaxmu: it imports no other jaxmu package (only :mod:`jaxmu.types`). The
model cache built on it is :func:`jaxmu.train.cached_fit`.

Faults of the environment (a corrupt checkpoint with rebuilding off, a full disk) raise
:class:`IOFault` subclasses whose message is one line; see docs/reliability.md.
"""

from jaxmu.io._cache import cache_key
from jaxmu.io._checkpoint import (
    MANIFEST,
    check_resume,
    latest_step,
    pid_alive,
    read_meta,
    rebuild_corrupt,
    restore_checkpoint,
    run_identity,
    save_checkpoint,
    set_aside,
    verify_step,
)
from jaxmu.io._errors import (
    CorruptCheckpointError,
    CorruptCheckpointWarning,
    CorruptCompileCacheWarning,
    IOFault,
    WriteFailedError,
    as_write_error,
)
from jaxmu.io._json import JSONValueError, dumps, loads, nan_if_none, plain, read_json, to_json
from jaxmu.io._lock import entry_lock
from jaxmu.io._provenance import provenance, versions, write_json, write_text

__all__ = [
    "MANIFEST",
    "CorruptCheckpointError",
    "CorruptCheckpointWarning",
    "CorruptCompileCacheWarning",
    "IOFault",
    "JSONValueError",
    "WriteFailedError",
    "as_write_error",
    "cache_key",
    "check_resume",
    "dumps",
    "entry_lock",
    "latest_step",
    "loads",
    "nan_if_none",
    "pid_alive",
    "plain",
    "provenance",
    "read_json",
    "read_meta",
    "rebuild_corrupt",
    "restore_checkpoint",
    "run_identity",
    "save_checkpoint",
    "set_aside",
    "to_json",
    "verify_step",
    "versions",
    "write_json",
    "write_text",
]
