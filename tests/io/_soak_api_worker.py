"""The library path of the CLI at the smallest size, to be killed: 96 digits, a tiny MLP.

    python _soak_api_worker.py KIND OUT CACHE

KIND ``fscore``: the original from ``cached_fit`` and ``fscore_pipeline`` (a retrained
population of 4 models, checkpointed per epoch and cached; 4 unlearning runs of ``ft``
from the original, their logits through the population store; F-score with 20 bootstrap
resamples), written with ``write_json`` to ``OUT/fscore.json``. KIND ``study``:
``run_benchmark`` of ``ft`` (2 trials, 1 search seed, 1 final seed, NSGA-III generation 4)
into ``OUT/study``, report included. Both run inside :func:`jaxmu._compile_cache.
compile_cache` at ``$JAXMU_COMPILE_CACHE`` (as the CLI does at ``CACHE/xla``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _helpers import digits_subset_splits  # noqa: E402

from jaxmu._compile_cache import compile_cache, frozen_gc, resolve_compile_cache  # noqa: E402
from jaxmu.models import mlp  # noqa: E402
from jaxmu.train import TrainConfig  # noqa: E402

RECIPE = TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=False)
MODEL = mlp((8, 8, 1), 10, hidden=(16,))


def fscore(out: Path, cache: str) -> None:
    from jaxmu.evaluation import fscore_pipeline
    from jaxmu.io import write_json
    from jaxmu.methods import get_method
    from jaxmu.train import cached_fit

    s = digits_subset_splits(n=96, n_forget=8, n_val=8, n_test=8)
    po, so, _ = cached_fit(cache, MODEL, s.pool, s.mask("train"), 0, RECIPE, progress=False)
    res = fscore_pipeline(MODEL, s, (po, so), get_method("ft", epochs=1).bind(MODEL),
                          num_models=4, seed=0, config=RECIPE, cache_dir=cache,
                          n_bootstrap=20, progress=False)
    write_json(out / "fscore.json", res)


def study(out: Path, cache: str) -> None:
    from jaxmu.sweep import run_benchmark

    s = digits_subset_splits(n=96, n_forget=8, n_val=8, n_test=8)
    run_benchmark(s.pool, MODEL, s, RECIPE, out / "study", methods=["ft"], trials=2,
                  search_seeds=[0], seeds=1, cache_dir=cache, classifier_mias=False,
                  population_size=4, progress=False, log=lambda _: None)


if __name__ == "__main__":
    kind, out, cache = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    with compile_cache(resolve_compile_cache(None, default_on=False)), frozen_gc():
        {"fscore": fscore, "study": study}[kind](out, cache)
