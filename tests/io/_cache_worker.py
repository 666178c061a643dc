"""A process that needs one cache entry: ``cached_fit`` of a tiny MLP on 96 digits.

    python _cache_worker.py CACHE OUT_JSON [--hold FILE] [--announce]

Writes ``{"cache_hit", "params_sha256", "pid"}`` to OUT_JSON and appends one line per
training run (a call of ``jaxmu.train.fit``) to ``CACHE.fits``. With ``--hold FILE`` the
training, once started, creates ``FILE.training`` and waits until FILE exists (so a test can
start a second process while this one holds the entry). ``--announce`` prints one line
when the entry is busy (``cached_fit``'s ``progress``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _helpers import digits_subset_splits  # noqa: E402

import jaxmu.train  # noqa: E402
from jaxmu.models import mlp  # noqa: E402
from jaxmu.train import TrainConfig, cached_fit  # noqa: E402

RECIPE = TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=False)
MODEL = mlp((8, 8, 1), 10, hidden=(16,))


def params_sha256(tree) -> str:
    import jax
    import numpy as np

    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("cache")
    p.add_argument("out")
    p.add_argument("--hold", default=None)
    p.add_argument("--announce", action="store_true")
    a = p.parse_args()
    real_fit = jaxmu.train.fit

    def counted_fit(*args, **kw):
        with open(f"{a.cache}.fits", "a") as f:
            f.write(f"{os.getpid()}\n")
        if a.hold:
            Path(f"{a.hold}.training").touch()
            while not Path(a.hold).exists():
                time.sleep(0.05)
        return real_fit(*args, **kw)

    jaxmu.train.fit = counted_fit  # cached_fit looks it up at call time
    s = digits_subset_splits(n=96, n_forget=8, n_val=8, n_test=8)
    params, state, meta = cached_fit(a.cache, MODEL, s.pool, s.mask("train"), 0, RECIPE,
                                     progress=a.announce)
    Path(a.out).write_text(json.dumps({"cache_hit": meta["cache_hit"], "pid": os.getpid(),
                                       "params_sha256": params_sha256((params, state))}))


if __name__ == "__main__":
    main()
