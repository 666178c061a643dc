"""Unlearning methods: the registry and one small module per method.

``jaxmu.list_methods()`` names them; ``jaxmu.get_method(name, **hparams)`` returns a
:class:`Method`; ``method.bind(model)(params, model_state, splits, key)`` runs it.

Each method is declared by one frozen config dataclass (defaults, search space, checks,
what it touches and needs), exported here under its class name: ``MsgConfig(lr=1e-2)``,
``get_method(MsgConfig(lr=1e-2))`` or ``get_method("msg", lr=1e-2)`` give the same method;
``get_method("msg").config`` is its config and ``get_method("msg").definition.config`` the
class. docs/methods.md#adding-a-method shows how to add one.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from jaxmu.methods._core import _REGISTRY as _REGISTERED
from jaxmu.methods._core import (
    BATCH,
    COMMON,
    E_MAX,
    EPOCHS,
    EPOCHS_FLOAT,
    ETA_MIN,
    HP,
    LR,
    MOMENTUM,
    TEMPERATURE,
    UNIT,
    WD,
    Method,
    MethodConfig,
    MethodDef,
    Need,
    Reference,
    degenerate_reason,
    get_method,
    hparam,
    list_methods,
    parse_hp,
    reference_methods,
    register,
    register_preset,
    unregister,
)
from jaxmu.methods._key import method_key

# Every public module of this package defines (and registers) one method.
for _m in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _m.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m.name}")

# Each method's config class, under its own name (``jaxmu.methods.MsgConfig``).
_CONFIGS = {d.config.__name__: d.config for d in _REGISTERED.values()}
globals().update(_CONFIGS)

__all__ = [
    "BATCH",
    "COMMON",
    "E_MAX",
    "EPOCHS",
    "EPOCHS_FLOAT",
    "ETA_MIN",
    "HP",
    "LR",
    "MOMENTUM",
    "Method",
    "MethodConfig",
    "MethodDef",
    "Need",
    "Reference",
    "TEMPERATURE",
    "UNIT",
    "WD",
    "degenerate_reason",
    "get_method",
    "hparam",
    "list_methods",
    "method_key",
    "parse_hp",
    "reference_methods",
    "register",
    "register_preset",
    "unregister",
    *sorted(_CONFIGS),
]
