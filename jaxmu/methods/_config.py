"""Method configs: one frozen dataclass per method declares its hyperparameters.

Each field of a :class:`MethodConfig` subclass is one hyperparameter: its default, and in
the field's metadata its search range (an :class:`HP`: kind, bounds, log scale, choices,
whether it is a dead dimension), whether a sweep passes it to the compiled program as a
traced value (continuous: learning rates, decays, temperatures) or compiles one program
per value (structural, "static": epochs, batch sizes, switches), and its value check. The
method's default values, its Optuna search space, its validation and the traced/static
split of a sweep are all read from these fields; the class also declares what the method
may change (:attr:`MethodConfig.touches`) and what it needs of the model to be itself
(:attr:`MethodConfig.needs`).

Search fields are declared by calling a search primitive with the default::

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class FtConfig(MethodConfig):
        lr: float = LR(0.1, check=positive)
        momentum: float = MOMENTUM(0.9)
        weight_decay: float = WD(5e-4)
        batch_size: int = BATCH(256, check=batch)
        epochs: int = EPOCHS(5)
        touches = "all"

Search fields suggest in declaration order (the order matters to a seeded sampler);
a field with a plain default is not searched. docs/methods.md#hyperparameters lists the
primitives and explains the epoch budget :data:`E_MAX` and dead dimensions.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax

from jaxmu.models import ALL, Selector, conv_kernels
from jaxmu.types import Model

E_MAX = "E_max"
"""Placeholder for the epoch budget E_max = ceil(0.2 * the original model's training epochs)
(37 for a 182-epoch CIFAR model, 10 for 50 epochs): the upper bound of epoch search ranges,
resolved when a sweep knows the recipe."""

NOTHING = Selector("regex", r"$^")
"""A selector that matches no parameter (``touches`` of a method that changes nothing)."""

Check = Callable[[str, Any], Any]
"""A value check ``check(name, value)``: raises ``ValueError`` naming the field, else
returns (see :mod:`jaxmu.methods._checks`)."""


@dataclasses.dataclass(frozen=True)
class HP:
    """One dimension of a search space.

    Attributes:
        kind: ``float`` (uniform), ``log`` (log-uniform), ``int``, ``categorical``, ``fixed``.
        low, high: bounds; ``high`` may be :data:`E_MAX`.
        choices: for ``categorical``; ``value`` for ``fixed``.
        dead: the reference searches it but it has no effect (kept in "faithful" sweeps so
            the NSGA-III trajectory matches, dropped in "clean" sweeps).
        traced: a sweep passes the value to one compiled program as an argument
            (continuous hyperparameters); otherwise each value compiles its own program
            (structural ones). A field may override it (``UNIT(0.7, traced=False)``).
    """

    kind: str
    low: float | None = None
    high: float | str | None = None
    choices: tuple = ()
    value: Any = None
    dead: bool = False
    traced: bool = False

    def bounds(self, e_max: int) -> tuple[Any, Any]:
        hi = e_max if self.high == E_MAX else self.high
        return self.low, hi

    def suggest(self, trial: Any, name: str, e_max: int) -> Any:
        """Draws a value with an ``optuna.Trial``."""
        lo, hi = self.bounds(e_max)
        if self.kind == "float":
            return trial.suggest_float(name, lo, hi)
        if self.kind == "log":
            return trial.suggest_float(name, lo, hi, log=True)
        if self.kind == "int":
            return trial.suggest_int(name, int(lo), int(hi))
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "fixed":
            return trial.suggest_float(name, self.value, self.value)
        raise ValueError(f"unknown HP kind {self.kind!r}")

    def __call__(self, default: Any, *, check: Check | None = None, dead: bool | None = None,
                 traced: bool | None = None) -> Any:
        """A config field searched over this range: ``lr: float = LR(0.1)``.

        ``dead`` and ``traced`` override this primitive's flags for the one field.
        """
        hp = self
        if dead is not None and dead != hp.dead:
            hp = dataclasses.replace(hp, dead=dead)
        if traced is not None and traced != hp.traced:
            hp = dataclasses.replace(hp, traced=traced)
        return hparam(default, hp, check=check)


def hparam(default: Any, search: HP | None = None, *, check: Check | None = None) -> Any:
    """A config field: ``default``, optionally searched over ``search`` and checked by
    ``check(name, value)`` (a plain default is an unsearched, unchecked field)."""
    return dataclasses.field(default=default, metadata={"search": search, "check": check})


# Search-space primitives: the reference's Optuna ranges (docs/methods.md#hyperparameters).
LR = HP("log", 1e-5, 1e-1, traced=True)
WD = HP("log", 1e-5, 1e-1, traced=True)
MOMENTUM = HP("fixed", value=0.9, traced=True)
EPOCHS = HP("int", 1, E_MAX)
EPOCHS_FLOAT = HP("float", 1, E_MAX)
BATCH = HP("categorical", choices=(64, 128, 256))
UNIT = HP("float", 0.0, 1.0, traced=True)
TEMPERATURE = HP("float", 0.0, 5.0, traced=True)  # the reference allows 0; jaxmu clips to 1e-3
ETA_MIN = HP("log", 1e-6, 1e-1, traced=True)
COMMON = {"lr": LR, "momentum": MOMENTUM, "weight_decay": WD, "batch_size": BATCH,
          "epochs": EPOCHS}
"""The dimensions most methods search, in the order they declare them."""


@dataclasses.dataclass(frozen=True)
class Need:
    """A structural requirement of a method on the model it runs on.

    A method whose model lacks one of its needs still runs, but it degenerates to a simpler
    method (e.g. CT on an MLP has no conv kernel to transpose and is plain fine-tuning);
    :func:`jaxmu.methods.degenerate_reason` says so, and the CLI and studies report it.

    Attributes:
        what: what the method needs, as a noun phrase (``"conv kernels"``).
        otherwise: what the method is without it (``"fine-tuning (FT)"``).
        select: the parameter tensors that count (default: 2-D conv kernels).
        at_least: the number of selected tensors needed (default 1).
    """

    what: str
    otherwise: str
    select: Selector = conv_kernels
    at_least: int = 1

    def missing(self, model: Model, params: Any) -> str | None:
        """Why ``model`` (with ``params``, arrays or shape structs) lacks this need, else None.

        Returns:
            ``"needs <what>"``, with the model's count of selected tensors when more than one
            is needed; ``None`` when the model has at least :attr:`at_least` of them.
        """
        n = sum(bool(f) for f in jax.tree.leaves(self.select(model, params, allow_empty=True)))
        if n >= self.at_least:
            return None
        return f"needs {self.what}" + (f" ({model.name} has {n})" if self.at_least > 1 else "")


def _traced(v: Any) -> bool:
    return isinstance(v, jax.core.Tracer)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MethodConfig:
    """Base class of the method configs (see the module docstring).

    Constructing a config validates it: every value must have its default's type (a bool
    for a bool, a finite number for a number; an integral float for an int default becomes
    an int, a list becomes a tuple), then each field's ``check`` runs, then
    :meth:`check`. Traced values (a sweep's arguments) skip the checks; a sweep checks the
    concrete values first.

    Class attributes a subclass sets (not fields):
        method: the registered method's name (set by ``register``).
        touches: what the method may change: ``"all"``, ``"none"``, a
            :class:`~jaxmu.models.Selector`, or a method ``touches(self)`` returning one
            (e.g. CF-k's last ``num_blocks`` blocks). Every other parameter comes back
            bit-identical (the conformance suite checks it).
        needs: the :class:`Need`\\ s of the model for the method to be itself, or a method
            ``needs(self)`` returning them.
    """

    method: ClassVar[str] = ""
    touches: ClassVar[Any] = None
    needs: ClassVar[Any] = ()

    def __post_init__(self) -> None:
        name = self.method or type(self).__name__
        for f in sorted(dataclasses.fields(self), key=lambda f: f.name):
            v, d = getattr(self, f.name), f.default
            if _traced(v):
                continue
            if isinstance(d, bool) and not isinstance(v, bool):
                raise ValueError(f"{name}.{f.name} must be a bool, got {v!r}")
            if isinstance(d, (int, float)) and not isinstance(d, bool):
                if (not isinstance(v, (int, float)) or isinstance(v, bool)
                        or not math.isfinite(v)):
                    raise ValueError(f"{name}.{f.name} must be a finite number, got {v!r}")
                if isinstance(d, int) and float(v).is_integer() and not isinstance(v, int):
                    object.__setattr__(self, f.name, int(v))
            if isinstance(v, list):
                object.__setattr__(self, f.name, tuple(v))
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            v = getattr(self, f.name)
            if check is not None and not _traced(v):
                check(f.name, v)
        self.check()

    def check(self) -> None:
        """Checks across fields, or beyond one field's ``check`` (override; raise
        ``ValueError``). Runs after the field checks; traced values may reach it."""

    # ------------------------------------------------------------------ the declaration

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Field name -> default, in declaration order."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def space(cls) -> dict[str, HP]:
        """The search space: searched field name -> :class:`HP`, in suggestion order."""
        return {f.name: f.metadata["search"] for f in dataclasses.fields(cls)
                if f.metadata.get("search") is not None}

    @classmethod
    def traced_names(cls) -> tuple[str, ...]:
        """The searched fields a sweep passes as traced arguments, sorted."""
        return tuple(sorted(n for n, hp in cls.space().items() if hp.traced))

    def values(self) -> dict[str, Any]:
        """Field name -> value (a shallow ``dataclasses.asdict``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> MethodConfig:
        """``dataclasses.replace(self, **changes)`` (validated)."""
        return dataclasses.replace(self, **changes)

    def touch_selector(self) -> Selector:
        """The parameters the method may change with these values, as a Selector.

        Raises:
            ValueError: the config declares nothing, or an unknown value.
        """
        t = _declared(self, "touches")
        if isinstance(t, Selector):
            return t
        if t == "all":
            return ALL
        if t == "none":
            return NOTHING
        raise ValueError(f"{self.method or type(self).__name__}: touches must be 'all', "
                         f"'none', a Selector or a method returning one, got {t!r}")

    def requirements(self) -> tuple[Need, ...]:
        """The structural needs of the method with these values (see :class:`Need`)."""
        return tuple(_declared(self, "needs") or ())


def _declared(config: MethodConfig, attr: str) -> Any:
    """A class-level declaration, called with the config when it is a method."""
    v = inspect.getattr_static(type(config), attr)
    if inspect.isfunction(v):
        return v(config)
    return v
