"""A training process to be killed: builds one cache entry and reports its parameters.

    python _soak_worker.py KIND CACHE EPOCHS OUT_JSON

KIND ``fit``: ``cached_fit`` of a tiny MLP on 96 digits; ``population``: the same recipe as
a population of 4 models (``cached_fit_population``, vmap). Both checkpoint every epoch
and resume from the last intact one. Writes ``{"params_sha256", "cache_hit"}`` to OUT_JSON
when done.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cache_worker import MODEL, params_sha256  # noqa: E402
from _helpers import digits_subset_splits  # noqa: E402

from jaxmu.train import TrainConfig  # noqa: E402


def build(kind: str, cache: str | None, epochs: int) -> tuple[str, bool]:
    """The entry's parameter hash and whether it was a cache hit."""
    import numpy as np

    s = digits_subset_splits(n=96, n_forget=8, n_val=8, n_test=8)
    recipe = TrainConfig(epochs=epochs, batch_size=16, lr=0.05, augment=False)
    mask = np.asarray(s.mask("train"))
    if kind == "fit":
        from jaxmu.train import cached_fit

        params, state, meta = cached_fit(cache, MODEL, s.pool, mask, 0, recipe, progress=False)
        return params_sha256((params, state)), bool(meta["cache_hit"])
    from jaxmu.population import cached_fit_population

    masks = np.stack([mask, np.roll(mask, 1), np.roll(mask, 2), np.roll(mask, 3)])
    r = cached_fit_population(cache, MODEL, s.pool, masks, 0, recipe, tag="soak",
                              strategy="vmap", progress=False)
    return params_sha256((r.params, r.model_state)), False


if __name__ == "__main__":
    kind, cache, epochs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    digest, hit = build(kind, cache, epochs)
    Path(out).write_text(json.dumps({"params_sha256": digest, "cache_hit": hit}))
