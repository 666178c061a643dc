"""``cached_fit``: the cache of trained original / retrained models keyed by what determines them.

The key (:func:`jaxmu.io.cache_key`) hashes the dataset name and pool size, the training
mask, the model, the recipe and the seed, so experiments reuse models instead of retraining
them, and any change of those inputs trains anew. An entry ``<cache_dir>/<key>/`` holds
``final/`` (the trained model and JSON metadata: timings, history and the run's identity)
and ``epochs/`` (the epoch checkpoints it was trained with).

Entries check themselves: checkpoints carry checksums (see :func:`jaxmu.io.save_checkpoint`)
and the stored identity must match the request; a corrupt or foreign entry is moved aside
with one warning line and rebuilt (from its last intact epoch checkpoint, else from
scratch). Processes sharing a cache take a lock per entry, so one trains and the others
wait and then load the finished entry.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import jax

from jaxmu.io import (
    cache_key,
    entry_lock,
    latest_step,
    rebuild_corrupt,
    restore_checkpoint,
    run_identity,
    save_checkpoint,
    set_aside,
)


def cached_fit(
    cache_dir: str | os.PathLike | None,
    model: Any,
    pool: Any,
    mask: Any,
    seed: int,
    config: Any,
    *,
    progress: bool = True,
    rebuild: bool | None = None,
) -> tuple[Any, Any, dict]:
    """``fit`` with a self-checking cache.

    Args:
        cache_dir: the cache directory; ``None`` always trains.
        model, pool, mask, seed, config: as for :func:`fit`.
        progress: progress bars, and one line on stderr while waiting for another process
            that builds the same entry.
        rebuild: what a corrupt entry does: ``True`` moves it aside with one warning line
            and rebuilds it, ``False`` raises :class:`~jaxmu.io.CorruptCheckpointError`;
            ``None`` (default) follows :func:`~jaxmu.io.rebuild_corrupt` (on by default).

    Returns:
        ``(params, model_state, meta)``; ``meta`` holds ``timings``, ``history``,
        ``cache_key`` and whether it was a ``cache_hit``.

    Raises:
        CorruptCheckpointError: a corrupt entry with rebuilding off.
        WriteFailedError: the cache cannot be written (disk full, ...): one line naming it.
    """
    from jaxmu.train import fit  # looked up per call, so a patched ``jaxmu.train.fit`` is used

    if cache_dir is None:
        r = fit(model, pool, mask, seed, config, progress=progress)
        return r.params, r.model_state, {"timings": r.timings, "history": r.history,
                                         "cache_key": None, "cache_hit": False}
    key = cache_key(pool, mask, model, config, seed)
    entry = Path(cache_dir) / key
    final = entry / "final"
    identity = {"config": config.to_dict(), "model": model.name, "seed": int(seed),
                "dataset": pool.name, "n_pool": int(pool.size),
                "masks_sha256": run_identity(seed, mask)["masks_sha256"]}
    policy = contextlib.nullcontext() if rebuild is None else rebuild_corrupt(rebuild)
    with policy, entry_lock(entry, announce=progress):
        while (step := latest_step(final)) is not None:  # corrupt steps are moved aside
            like = jax.eval_shape(model.init, jax.random.key(0))
            (params, state), meta = restore_checkpoint(final, like, step)
            diff = [k for k, v in identity.items() if k in meta and meta[k] != v]
            if not diff:
                return params, state, {**meta, "cache_key": key, "cache_hit": True}
            set_aside(final / str(step), f"made by another run: differs in {', '.join(diff)}")
        r = fit(model, pool, mask, seed, config, progress=progress,
                checkpoint_dir=str(entry / "epochs"))
        meta = {"timings": r.timings, "history": r.history, **identity}
        save_checkpoint(final, 0, (r.params, r.model_state), meta)
    return r.params, r.model_state, {**meta, "cache_key": key, "cache_hit": False}
