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


def read_meta(directory: str | os.PathLike, step: int | None = None) -> dict:
    """The JSON record of a checkpoint step (default: the last) without its arrays.

    Raises:
        FileNotFoundError: no checkpoint in ``directory``.
    """
    if latest_step(directory) is None:
        raise FileNotFoundError(f"no checkpoint in {directory}")
    with _manager(directory) as mngr:
        step = mngr.latest_step() if step is None else step
        out = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(out["meta"] or {})


def run_identity(key: Any, masks: Any) -> dict[str, Any]:
    """What makes a training run itself, for checkpoint metadata: the key's raw data (and
    the seed when ``key`` is an int) and a SHA-256 of the membership mask(s)."""
    import hashlib

    import numpy as np

    from jaxmu.types import as_key

    k = as_key(key)
    ident: dict[str, Any] = {
        "key": np.asarray(jax.random.key_data(k)).astype(np.uint32).ravel().tolist(),
        "masks_sha256": hashlib.sha256(np.ascontiguousarray(np.asarray(masks, bool))
                                       .tobytes()).hexdigest()[:16]}
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        ident["seed"] = int(key)
    return ident


def check_resume(saved: dict, meta: dict, directory: Any,
                 fields: tuple[str, ...] = ("config", "model", "n", "ids", "key",
                                            "masks_sha256")) -> None:
    """Refuses to resume from a checkpoint written by another run.

    Compares the ``fields`` present in ``meta`` with the saved metadata (a field missing
    from an old checkpoint is not checked).

    Raises:
        ValueError: one line naming the fields that differ.
    """
    diff = [f for f in fields if f in meta and f in saved and saved[f] != meta[f]]
    if diff:
        raise ValueError(f"checkpoint in {directory} was made by another run (differs in "
                         f"{', '.join(diff)}); use another checkpoint directory")
