"""Checkpoints (orbax), result files and provenance."""

from jaxmu.io._cache import cache_key, cached_fit
from jaxmu.io._checkpoint import (
    check_resume,
    latest_step,
    read_meta,
    restore_checkpoint,
    run_identity,
    save_checkpoint,
)
from jaxmu.io._provenance import provenance, versions, write_json

__all__ = [
    "cache_key",
    "cached_fit",
    "check_resume",
    "latest_step",
    "provenance",
    "read_meta",
    "restore_checkpoint",
    "run_identity",
    "save_checkpoint",
    "versions",
    "write_json",
]
