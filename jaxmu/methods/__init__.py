"""Unlearning methods: the registry and one small module per method.

``jaxmu.list_methods()`` names them; ``jaxmu.get_method(name, **hparams)`` returns a
:class:`Method`; ``method.bind(model)(params, model_state, splits, key)`` runs it.
"""

import importlib as _importlib
import pkgutil as _pkgutil

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
    Need,
    degenerate_reason,
    get_method,
    list_methods,
    parse_hp,
    register,
    register_preset,
)

# Every public module of this package defines (and registers) one method.
for _m in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _m.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m.name}")

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
    "Need",
    "UNIT",
    "WD",
    "degenerate_reason",
    "get_method",
    "list_methods",
    "parse_hp",
    "register",
    "register_preset",
]
