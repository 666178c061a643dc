"""Cache of trained original / retrained models keyed by what determines them.

The key hashes (dataset name and pool size, the training mask, the model, the recipe, the
seed), so experiments reuse models instead of retraining them, and any change of those
inputs trains anew. Entries are orbax checkpoints with JSON metadata (timings, history).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxmu.io._checkpoint import latest_step, restore_checkpoint, save_checkpoint


def cache_key(pool: Any, mask: Any, model: Any, config: Any, seed: int) -> str:
    """A short stable hash of the inputs that determine a trained model."""
    h = hashlib.sha256()
    h.update(json.dumps({
        "dataset": pool.name, "n": pool.size, "model": model.name,
        "module": repr(getattr(model, "module", model)),
        "config": config.to_dict(), "seed": int(seed),
    }, sort_keys=True).encode())
    h.update(np.packbits(np.asarray(mask)).tobytes())
    return h.hexdigest()[:16]


def cached_fit(
    cache_dir: str | os.PathLike | None,
    model: Any,
    pool: Any,
    mask: Any,
    seed: int,
    config: Any,
    *,
    progress: bool = True,
) -> tuple[Any, Any, dict]:
    """``fit`` with a cache: returns ``(params, model_state, meta)``; ``meta`` holds
    ``timings``, ``history``, ``cache_key`` and whether it was a ``cache_hit``.

    With ``cache_dir=None`` it always trains. A partially written entry (killed run) is
    resumed from its last epoch checkpoint.
    """
    from jaxmu.train import fit

    if cache_dir is None:
        r = fit(model, pool, mask, seed, config, progress=progress)
        return r.params, r.model_state, {"timings": r.timings, "history": r.history,
                                         "cache_key": None, "cache_hit": False}
    key = cache_key(pool, mask, model, config, seed)
    final = Path(cache_dir) / key / "final"
    if latest_step(final) is not None:
        like = jax.eval_shape(model.init, jax.random.key(0))
        (params, state), meta = restore_checkpoint(final, like)
        return params, state, {**meta, "cache_key": key, "cache_hit": True}
    r = fit(model, pool, mask, seed, config, progress=progress,
            checkpoint_dir=str(Path(cache_dir) / key / "epochs"))
    meta = {"timings": r.timings, "history": r.history, "config": config.to_dict(),
            "model": model.name, "seed": int(seed)}
    save_checkpoint(final, 0, (r.params, r.model_state), meta)
    return r.params, r.model_state, {**meta, "cache_key": key, "cache_hit": False}
