"""Unlearning methods: the registry and one small module per method.

``jaxmu.list_methods()`` names them; ``jaxmu.get_method(name, **hparams)`` returns a
:class:`Method`; ``method.bind(model)(params, model_state, splits, key)`` runs it.
"""

from jaxmu.methods import ct, ft, ga, msg, original, retrain  # noqa: F401  (registration)
from jaxmu.methods._core import (
    BATCH,
    COMMON,
    E_MAX,
    EPOCHS,
    HP,
    LR,
    MOMENTUM,
    UNIT,
    WD,
    Method,
    MethodDef,
    get_method,
    list_methods,
    parse_hp,
    register,
    register_preset,
)

__all__ = [
    "BATCH",
    "COMMON",
    "E_MAX",
    "EPOCHS",
    "HP",
    "LR",
    "MOMENTUM",
    "Method",
    "MethodDef",
    "UNIT",
    "WD",
    "get_method",
    "list_methods",
    "parse_hp",
    "register",
    "register_preset",
]
