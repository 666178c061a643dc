"""The population engine: train, unlearn and predict many models at once, and the
population store that keeps their outputs.

It needs no metric: the evaluation pipelines built on it (the F-score, U-LiRA) live one
layer up, in :mod:`jaxmu.evaluation`.

References:
    docs/design.md#population-engine.
"""

from jaxmu.population._memory import chunk_for_budget, max_models, model_bytes
from jaxmu.population._population import (
    PopulationFit,
    balanced_masks,
    cached_fit_population,
    fit_population,
    init_population,
    load_population,
    merge_blocks,
    model_keys,
    predict_population,
    save_population,
    splits_axes,
    stack_splits,
    unlearn_population,
)
from jaxmu.population._store import PopulationStore, array_digest, method_identity, pool_digest
from jaxmu.population._strategies import (
    STRATEGIES,
    auto_strategy,
    has_conv,
    map_models,
    padding,
    resolve_strategy,
)

__all__ = [
    "STRATEGIES",
    "PopulationStore",
    "array_digest",
    "method_identity",
    "pool_digest",
    "PopulationFit",
    "cached_fit_population",
    "auto_strategy",
    "balanced_masks",
    "chunk_for_budget",
    "fit_population",
    "has_conv",
    "init_population",
    "map_models",
    "padding",
    "max_models",
    "load_population",
    "merge_blocks",
    "model_bytes",
    "model_keys",
    "predict_population",
    "save_population",
    "resolve_strategy",
    "splits_axes",
    "stack_splits",
    "unlearn_population",
]
