"""The population engine: train, unlearn and evaluate many models at once.

References:
    design.md §4.
"""

from jaxmu.population._memory import chunk_for_budget, max_models, model_bytes
from jaxmu.population._pipelines import (
    DesignRuns,
    ULiRADesign,
    cached_fit_population,
    design_logits,
    fscore_bootstrap_ci,
    fscore_pipeline,
    retrained_population_logits,
    target_pairs,
    ulira_design,
    ulira_from_runs,
    ulira_pipeline,
)
from jaxmu.population._population import (
    PopulationFit,
    balanced_masks,
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
    "DesignRuns",
    "PopulationStore",
    "array_digest",
    "design_logits",
    "method_identity",
    "pool_digest",
    "PopulationFit",
    "ULiRADesign",
    "cached_fit_population",
    "fscore_bootstrap_ci",
    "fscore_pipeline",
    "retrained_population_logits",
    "ulira_design",
    "ulira_pipeline",
    "target_pairs",
    "ulira_from_runs",
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
