"""Self-checking checkpoints (orbax), the model cache, result files and provenance.

Faults of the environment (a corrupt checkpoint with rebuilding off, a full disk) raise
:class:`IOFault` subclasses whose message is one line; see docs/reliability.md.
"""

from jaxmu.io._cache import cache_key, cached_fit
from jaxmu.io._checkpoint import (
    MANIFEST,
    check_resume,
    latest_step,
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
    IOFault,
    WriteFailedError,
)
from jaxmu.io._lock import entry_lock
from jaxmu.io._provenance import provenance, versions, write_json

__all__ = [
    "MANIFEST",
    "CorruptCheckpointError",
    "CorruptCheckpointWarning",
    "IOFault",
    "WriteFailedError",
    "cache_key",
    "cached_fit",
    "check_resume",
    "entry_lock",
    "latest_step",
    "provenance",
    "read_meta",
    "rebuild_corrupt",
    "restore_checkpoint",
    "run_identity",
    "save_checkpoint",
    "set_aside",
    "verify_step",
    "versions",
    "write_json",
]
