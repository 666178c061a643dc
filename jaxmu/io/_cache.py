"""The key of a trained-model cache entry: a short hash of what determines the model.

:func:`jaxmu.train.cached_fit` stores an original / retrained model under
``<cache_dir>/<cache_key(...)>/`` and the population caches of :mod:`jaxmu.population` use
the same key, so a change of the dataset, the training mask, the model, the recipe or the
seed trains anew.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


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
