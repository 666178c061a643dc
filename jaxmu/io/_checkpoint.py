"""A small orbax wrapper: epoch checkpoints of a training state plus JSON metadata.

A checkpoint directory holds numbered steps (``<dir>/<epoch>/``) written by an
``orbax.checkpoint.CheckpointManager``; each step stores the pytree (params, model state,
optimizer state, ...) and a JSON record (config, seed, versions, timings). Writes are
atomic (orbax finalises a step only when complete), so a killed run resumes from the last
complete epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


def _manager(directory: str | os.PathLike, max_to_keep: int | None = 2) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        ),
    )


def save_checkpoint(
    directory: str | os.PathLike,
    step: int,
    tree: Any,
    meta: dict | None = None,
    *,
    max_to_keep: int | None = 2,
) -> None:
    """Saves ``tree`` (any pytree of arrays) and ``meta`` (JSON) as step ``step``."""
    with _manager(directory, max_to_keep) as mngr:
        mngr.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta or {})
            ),
            force=True,
        )
        mngr.wait_until_finished()


def latest_step(directory: str | os.PathLike) -> int | None:
    """The last complete step in ``directory``, or ``None``."""
    if not Path(directory).is_dir():
        return None
    with _manager(directory) as mngr:
        return mngr.latest_step()


def restore_checkpoint(
    directory: str | os.PathLike, like: Any, step: int | None = None
) -> tuple[Any, dict]:
    """Restores ``(tree, meta)``; ``like`` gives the target structure, shapes and dtypes.

    Raises:
        FileNotFoundError: no checkpoint in ``directory``.
    """
    with _manager(directory) as mngr:
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        out = mngr.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
    return out["state"], dict(out["meta"] or {})
