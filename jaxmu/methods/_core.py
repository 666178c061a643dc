"""Method definitions, hyperparameter search spaces and the method registry.

A method is a frozen :class:`Method`: a registered definition (a builder composing stages,
default hyperparameters and an Optuna search space, all data) plus the resolved
hyperparameters and the model it is bound to. Calling it is the pure function

    method(params, model_state, splits, key) -> (params, model_state)

``method.fn`` is that function un-jitted (vmap it over a population); ``method.jitted`` is
``jax.jit(method.fn)``, compiled once per input shape; ``method(...)`` calls ``jitted``.

The search-space primitives below (:data:`LR`, :data:`EPOCHS`, ...) are the ranges of
Deep Unlearn's Optuna searches; docs/methods.md#hyperparameters explains them, the epoch
budget :data:`E_MAX`, dead dimensions, and each method's space.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from jaxmu.models import ALL, Selector, conv_kernels
from jaxmu.types import Model, Splits, Stage, UnlearnState, as_key

E_MAX = "E_max"
"""Placeholder for the epoch budget E_max = ceil(0.2 * the original model's training epochs)
(37 for a 182-epoch CIFAR model, 10 for 50 epochs): the upper bound of epoch search ranges,
resolved when a sweep knows the recipe."""

NOTHING = Selector("regex", r"$^")
"""A selector that matches no parameter (``touches`` of a method that changes nothing)."""


@dataclasses.dataclass(frozen=True)
class HP:
    """One dimension of a search space.

    Attributes:
        kind: ``float`` (uniform), ``log`` (log-uniform), ``int``, ``categorical``, ``fixed``.
        low, high: bounds; ``high`` may be :data:`E_MAX`.
        choices: for ``categorical``; ``value`` for ``fixed``.
        dead: the reference searches it but it has no effect (kept in "faithful" sweeps so
            the NSGA-III trajectory matches, dropped in "clean" sweeps).
    """

    kind: str
    low: float | None = None
    high: float | str | None = None
    choices: tuple = ()
    value: Any = None
    dead: bool = False

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


# Search-space primitives: the reference's Optuna ranges (docs/methods.md#hyperparameters).
LR = HP("log", 1e-5, 1e-1)
WD = HP("log", 1e-5, 1e-1)
MOMENTUM = HP("fixed", value=0.9)
EPOCHS = HP("int", 1, E_MAX)
EPOCHS_FLOAT = HP("float", 1, E_MAX)
BATCH = HP("categorical", choices=(64, 128, 256))
UNIT = HP("float", 0.0, 1.0)
TEMPERATURE = HP("float", 0.0, 5.0)  # the reference allows 0; jaxmu clips to >= 1e-3
ETA_MIN = HP("log", 1e-6, 1e-1)
COMMON = {"lr": LR, "momentum": MOMENTUM, "weight_decay": WD, "batch_size": BATCH,
          "epochs": EPOCHS}


@dataclasses.dataclass(frozen=True)
class Need:
    """A structural requirement of a method on the model it runs on.

    A method whose model lacks one of its needs still runs, but it degenerates to a simpler
    method (e.g. CT on an MLP has no conv kernel to transpose and is plain fine-tuning);
    :func:`degenerate_reason` says so, and the CLI and studies report it.

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


@dataclasses.dataclass(frozen=True)
class MethodDef:
    """A registered method: ``build(**hparams) -> Stage`` plus defaults and search space."""

    name: str
    build: Callable[..., Stage]
    defaults: Mapping[str, Any]
    space: Mapping[str, HP]
    summary: str
    paper: str
    section: str
    random: bool = True
    touches: str | Selector | Callable[[Mapping[str, Any]], str | Selector] | None = None
    needs: Sequence[Need] | Callable[[Mapping[str, Any]], Sequence[Need]] = ()

    def needs_for(self, hparams: Mapping[str, Any]) -> tuple[Need, ...]:
        """The structural needs of this method with ``hparams`` (see :class:`Need`)."""
        n = self.needs
        return tuple(n(hparams) if callable(n) else n)

    def touch_selector(self, hparams: Mapping[str, Any]) -> Selector:
        """The parameters this method may change with ``hparams``, as a :class:`Selector`.

        ``touches`` is ``"all"``, ``"none"``, a ``Selector``, or a function of the resolved
        hyperparameters returning one of those (e.g. CF-k's last ``num_blocks`` blocks).
        Every parameter outside the selector comes back bit-identical.

        Raises:
            ValueError: the method declares nothing, or declares an unknown value.
        """
        t = self.touches
        if callable(t) and not isinstance(t, Selector):
            t = t(hparams)
        if isinstance(t, Selector):
            return t
        if t == "all":
            return ALL
        if t == "none":
            return NOTHING
        raise ValueError(f"{self.name}: touches must be 'all', 'none', a Selector or a "
                         f"function of the hyperparameters returning one, got {t!r}")

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MethodDef) and other.name == self.name


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named preset: the registered method ``base`` with other defaults (``overrides``).

    ``summary``, ``paper`` and ``section`` describe the preset itself (``None``: derived from
    the base method when asked, see :meth:`Method.summary`)."""

    name: str
    base: str
    overrides: Mapping[str, Any]
    summary: str | None = None
    paper: str | None = None
    section: str | None = None


_REGISTRY: dict[str, MethodDef] = {}
_PRESETS: dict[str, Preset] = {}


def register(
    name: str,
    *,
    defaults: Mapping[str, Any],
    space: Mapping[str, HP],
    summary: str,
    paper: str,
    section: str,
    random: bool = True,
    touches: str | Selector | Callable[[Mapping[str, Any]], str | Selector] | None = None,
    needs: Sequence[Need] | Callable[[Mapping[str, Any]], Sequence[Need]] = (),
) -> Callable[[Callable[..., Stage]], Callable[..., Stage]]:
    """Decorator registering a builder ``build(**hparams) -> Stage`` under ``name``.

    ``touches`` declares which parameters the method may change (see
    :meth:`MethodDef.touch_selector`); the conformance suite checks that every other
    parameter comes back bit-identical, and that every method declares it. ``needs`` declares
    what the method needs of the model to be itself (:class:`Need`s, or a function of the
    resolved hyperparameters returning them); see :func:`degenerate_reason`.
    """
    unknown = set(space) - set(defaults)
    if unknown:
        raise ValueError(f"{name}: search space names unknown hyperparameters {sorted(unknown)}")

    def deco(build):
        if name in _REGISTRY or name in _PRESETS:
            raise ValueError(f"method {name!r} registered twice")
        _REGISTRY[name] = MethodDef(name, build, dict(defaults), dict(space), summary, paper,
                                    section, random, touches, needs)
        return build

    return deco


def register_preset(name: str, base: str, *, summary: str | None = None,
                    paper: str | None = None, section: str | None = None,
                    **overrides: Any) -> None:
    """Registers a named preset: an existing method with other defaults (e.g. the variants in
    :mod:`jaxmu.methods.presets`).

    ``summary`` is the preset's own one-line recipe (``--list-methods``, the README table):
    give one whenever the overrides change what the base's summary says. Without it the
    summary is ``"preset of <base>: k=v, ..."``; ``paper``/``section`` default to the base's.
    """
    if name in _REGISTRY or name in _PRESETS:
        raise ValueError(f"method {name!r} registered twice")
    _PRESETS[name] = Preset(name, base, dict(overrides), summary, paper, section)


@dataclasses.dataclass(frozen=True)
class Method:
    """A method with resolved hyperparameters, optionally bound to a model."""

    definition: MethodDef
    hparams: tuple[tuple[str, Any], ...]
    model: Model | None = None
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.definition.name

    @property
    def hp(self) -> dict[str, Any]:
        return dict(self.hparams)

    @property
    def preset(self) -> Preset | None:
        """The preset this method was made from (``get_method(preset_name)``), else None."""
        return _PRESETS.get(self.label) if self.label else None

    @property
    def summary(self) -> str:
        """One-line recipe: the preset's own for a preset, else the definition's."""
        p = self.preset
        if p is None:
            return self.definition.summary
        if p.summary is not None:
            return p.summary
        return f"preset of {p.base}: " + ", ".join(f"{k}={v}" for k, v in p.overrides.items())

    @property
    def paper(self) -> str:
        """The source paper: the preset's own for a preset, else the definition's."""
        p = self.preset
        return p.paper if p is not None and p.paper is not None else self.definition.paper

    @property
    def section(self) -> str:
        """Where the method is described (the ``section`` given at registration): the
        preset's own for a preset, else the definition's."""
        p = self.preset
        return p.section if p is not None and p.section is not None else self.definition.section

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.definition.defaults)

    @property
    def touches(self) -> Selector:
        """The parameters this method (with its hyperparameters) may change."""
        return self.definition.touch_selector(self.hp)

    def degenerate_reason(self, model: Model | None = None, params: Any = None) -> str | None:
        """Why this method degenerates on ``model`` (default: the bound one), else None.

        See :func:`degenerate_reason`.
        """
        model = model if model is not None else self.model
        if model is None:
            raise ValueError(f"method {self.name!r} is not bound to a model: pass a model")
        return _degenerate(self.name, self.definition.needs_for(self.hp), model, params)

    @property
    def search_space(self) -> dict[str, HP]:
        return dict(self.definition.space)

    def bind(self, model: Model) -> Method:
        """Returns this method bound to ``model`` (needed before calling it)."""
        return dataclasses.replace(self, model=model)

    def with_hparams(self, **hp: Any) -> Method:
        """Returns a copy with some hyperparameters replaced (validated)."""
        return dataclasses.replace(self, hparams=_resolve(self.definition, {**self.hp, **hp}))

    @functools.cached_property
    def stage(self) -> Stage:
        return self.definition.build(**self.hp)

    @functools.cached_property
    def fn(self) -> Callable[..., tuple[Any, Any]]:
        """The pure function ``(params, model_state, splits, key) -> (params, model_state)``."""
        if self.model is None:
            raise ValueError(
                f"method {self.name!r} is not bound to a model: use method.bind(model)")
        model, stage = self.model, self.stage

        def run(params, model_state, splits: Splits, key):
            state = UnlearnState(params, model_state, {}, model)
            state = stage(state, splits, as_key(key))
            return state.params, state.model_state

        return run

    def dynamic_fn(self, names: Sequence[str]) -> Callable[..., tuple[Any, Any]]:
        """The method with hyperparameters ``names`` passed as (traceable) arguments.

        Returns ``f(params, model_state, splits, key, values)`` where ``values`` maps each
        name in ``names`` to a scalar; the method is built inside ``f`` from ``{**self.hp,
        **values}``. Jitting ``f`` compiles one program for every value of those
        hyperparameters (a sweep recompiles only when a structural one, e.g. epochs or a
        batch size, changes). Builders that need a concrete value (Python control flow on
        it) raise a JAX concretization error when traced; callers fall back to :attr:`fn`.
        Values are range-checked by :attr:`stage` on the concrete ``self.hp``, not in ``f``.
        """
        if self.model is None:
            raise ValueError(
                f"method {self.name!r} is not bound to a model: use method.bind(model)")
        unknown = sorted(set(names) - set(self.definition.defaults))
        if unknown:
            raise ValueError(f"{self.name}: unknown hyperparameter(s) {unknown}")
        model, base, names = self.model, self.hp, tuple(names)

        def run(params, model_state, splits: Splits, key, values):
            if set(values) != set(names):
                raise ValueError(f"values: expected keys {sorted(names)}, got {sorted(values)}")
            stage = self.definition.build(**{**base, **values})
            state = UnlearnState(params, model_state, {}, model)
            state = stage(state, splits, as_key(key))
            return state.params, state.model_state

        return run

    @functools.cached_property
    def jitted(self) -> Callable[..., tuple[Any, Any]]:
        return jax.jit(self.fn)

    def __call__(self, params, model_state, splits: Splits, key) -> tuple[Any, Any]:
        if not isinstance(splits, Splits):
            raise ValueError(f"splits must be a jaxmu.Splits, got {type(splits).__name__}")
        return self.jitted(params, model_state, splits, as_key(key))


def _resolve(defn: MethodDef, hp: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    unknown = sorted(set(hp) - set(defn.defaults))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for {defn.name!r}; valid: "
            f"{', '.join(sorted(defn.defaults))}"
        )
    merged = {**defn.defaults, **hp}
    out = []
    for k in sorted(merged):
        v = merged[k]
        d = defn.defaults[k]
        if isinstance(d, bool) and not isinstance(v, bool):
            raise ValueError(f"{defn.name}.{k} must be a bool, got {v!r}")
        if isinstance(d, (int, float)) and not isinstance(d, bool):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{defn.name}.{k} must be a finite number, got {v!r}")
            if isinstance(d, int) and not isinstance(d, bool) and float(v).is_integer():
                v = int(v)
        if isinstance(v, list):
            v = tuple(v)
        out.append((k, v))
    return tuple(out)


def list_methods(include_presets: bool = True) -> list[str]:
    """Names of all registered methods (and presets), sorted."""
    names = set(_REGISTRY) | (set(_PRESETS) if include_presets else set())
    return sorted(names)


def get_method(name: str, model: Model | None = None, **hparams: Any) -> Method:
    """Returns a registered method with hyperparameters resolved (defaults + overrides).

    Raises:
        ValueError: unknown method (listing the valid ones) or unknown/invalid hyperparameter.
    """
    label = ""
    if name in _PRESETS:
        preset = _PRESETS[name]
        label, name, hparams = name, preset.base, {**preset.overrides, **hparams}
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(list_methods())}")
    defn = _REGISTRY[name]
    m = Method(defn, _resolve(defn, hparams), model, label)
    m.stage  # build now so bad hyperparameter values fail here, not inside jit  # noqa: B018
    return m


def degenerate_reason(method_name: str, hparams: Mapping[str, Any] | None, model: Model,
                      params: Any = None) -> str | None:
    """Why a method cannot act as itself on a model, in one line; None when it can.

    Some methods need a structure the model may lack (conv kernels for CT/Rotate, enough
    tensors for RNI to pick from, see :class:`Need`); without it they still run but reduce to
    a simpler method. Reporting that keeps a study from ranking an alias of fine-tuning as a
    method of its own.

    Args:
        method_name: a registered method or preset name.
        hparams: hyperparameter overrides (``None``: the defaults).
        model: the model the method would run on.
        params: the model's parameters (arrays or ``jax.ShapeDtypeStruct``s); ``None``
            derives their shapes from ``model.init`` without computing them.

    Returns:
        E.g. ``"ct needs conv kernels; on mlp it is fine-tuning (FT)"``, or None.

    Raises:
        ValueError: unknown method or invalid hyperparameters.
    """
    m = get_method(method_name, **dict(hparams or {}))
    return _degenerate(m.name, m.definition.needs_for(m.hp), model, params)


def _degenerate(name: str, needs: Sequence[Need], model: Model, params: Any) -> str | None:
    if not needs:
        return None
    if params is None:
        params = jax.eval_shape(model.init, jax.random.key(0))[0]
    for need in needs:
        why = need.missing(model, params)
        if why is not None:
            return f"{name} {why}; on {model.name} it is {need.otherwise}"
    return None


def parse_hp(items: list[str] | None) -> dict[str, Any]:
    """Parses CLI ``key=value`` overrides (numbers, true/false, comma lists)."""
    out: dict[str, Any] = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise ValueError(f"--hp expects key=value, got {item!r}")
        out[k.strip()] = _parse_value(v.strip())
    return out


def _parse_value(v: str) -> Any:
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    if "," in v:
        return tuple(_parse_value(p) for p in v.split(","))
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v
