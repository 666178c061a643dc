"""Method definitions and the method registry.

A method is a frozen :class:`Method`: a registered definition (a builder composing stages
from a config, and the method's config class) plus a config instance (the resolved
hyperparameters) and the model it is bound to. Calling it is the pure function

    method(params, model_state, splits, key) -> (params, model_state)

``method.fn`` is that function un-jitted (vmap it over a population); ``method.jitted`` is
``jax.jit(method.fn)``, compiled once per input shape; ``method(...)`` calls ``jitted``.

A method is declared once, by its config class (:mod:`jaxmu.methods._config`): the fields
carry the defaults, the search space (the ranges of Deep Unlearn's Optuna searches,
docs/methods.md#hyperparameters), the checks and the traced/static split of a sweep; the
class declares what the method touches and needs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from jaxmu.methods._config import (
    BATCH,
    COMMON,
    E_MAX,
    EPOCHS,
    EPOCHS_FLOAT,
    ETA_MIN,
    HP,
    LR,
    MOMENTUM,
    NOTHING,
    TEMPERATURE,
    UNIT,
    WD,
    MethodConfig,
    Need,
    hparam,
)
from jaxmu.models import Selector
from jaxmu.types import Model, Splits, Stage, UnlearnState, as_key

__all__ = ["BATCH", "COMMON", "E_MAX", "EPOCHS", "EPOCHS_FLOAT", "ETA_MIN", "HP", "LR",
           "MOMENTUM", "NOTHING", "TEMPERATURE", "UNIT", "WD", "Method", "MethodConfig",
           "MethodDef", "Need", "Preset", "Reference", "degenerate_reason", "get_method",
           "hparam", "list_methods", "parse_hp", "reference_methods", "register",
           "register_preset", "unregister"]


@dataclasses.dataclass(frozen=True)
class Reference:
    """Declares a reference method: one whose answer an experiment already holds.

    An experiment trains, per seed, the original model O on the training rows and the
    retrained model R on the retain rows (from the same init, with the task's recipe).
    A reference method (``original`` is O, ``retrain`` is R) is answered from those
    instead of being run, so a study reports it next to the methods at no extra cost and
    never searches or ranks it. Inside a population (U-LiRA, F-score, audits), where every
    model is unlearned by running the method, it takes its hyperparameters from the task's
    training recipe so it reproduces how O or R was trained.

    Attributes:
        outcome: ``outcome(trained) -> ((params, model_state), run_seconds,
            compile_seconds)`` where ``trained`` holds the task's models and their costs:
            attributes ``original`` and ``retrained`` (``(params, model_state)`` pairs),
            ``original_seconds``, ``retrain_seconds`` and ``retrain_compile_seconds``
            (a :class:`jaxmu.experiment.Fitted`).
        from_recipe: ``from_recipe(recipe) -> hyperparameters`` equal to a training recipe
            (:class:`jaxmu.train.TrainConfig`), or None: the method keeps its own inside a
            population.
    """

    outcome: Callable[[Any], tuple[tuple[Any, Any], float, float]]
    from_recipe: Callable[[Any], dict[str, Any]] | None = None


@dataclasses.dataclass(frozen=True)
class MethodDef:
    """A registered method: ``build(config) -> Stage`` and its config class.

    The config class (a :class:`~jaxmu.methods.MethodConfig`) declares the defaults, the
    search space, the checks, what the method touches and what it needs; the properties
    below read them from it.
    """

    name: str
    build: Callable[[MethodConfig], Stage]
    config: type[MethodConfig]
    summary: str
    paper: str
    section: str
    random: bool = True
    reference: Reference | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """Hyperparameter name -> default (the config's fields)."""
        return self.config.defaults()

    @property
    def space(self) -> dict[str, HP]:
        """The search space, in suggestion order (the config's searched fields)."""
        return self.config.space()

    @property
    def traced(self) -> tuple[str, ...]:
        """The searched hyperparameters a sweep passes as traced values (sorted)."""
        return self.config.traced_names()

    @property
    def touches(self) -> Any:
        """The config's ``touches`` declaration ("all", "none", a Selector or a method)."""
        return self.config.touches

    @property
    def needs(self) -> Any:
        """The config's ``needs`` declaration (Needs, or a method returning them)."""
        return self.config.needs

    def needs_for(self, hparams: Mapping[str, Any]) -> tuple[Need, ...]:
        """The structural needs of this method with ``hparams`` (see :class:`Need`)."""
        return self.config(**hparams).requirements()

    def touch_selector(self, hparams: Mapping[str, Any]) -> Selector:
        """The parameters this method may change with ``hparams``, as a :class:`Selector`
        (see :attr:`MethodConfig.touches`); every other parameter comes back bit-identical.

        Raises:
            ValueError: the method declares nothing, or declares an unknown value.
        """
        return self.config(**hparams).touch_selector()

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MethodDef) and other.name == self.name


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named preset: the registered method ``base`` with the config ``config``, a
    ``dataclasses.replace`` of its default config (``overrides``: the replaced fields).

    ``summary``, ``paper`` and ``section`` describe the preset itself (``None``: derived from
    the base method when asked, see :meth:`Method.summary`)."""

    name: str
    base: str
    overrides: Mapping[str, Any]
    config: MethodConfig
    summary: str | None = None
    paper: str | None = None
    section: str | None = None


_REGISTRY: dict[str, MethodDef] = {}
_PRESETS: dict[str, Preset] = {}
_BY_CONFIG: dict[type, str] = {}


def register(
    name: str,
    *,
    config: type[MethodConfig],
    summary: str,
    paper: str,
    section: str,
    random: bool = True,
    reference: Reference | None = None,
) -> Callable[[Callable[[Any], Stage]], Callable[[Any], Stage]]:
    """Decorator registering a builder ``build(config) -> Stage`` under ``name``.

    ``config`` is the method's frozen :class:`MethodConfig` subclass (defaults, search
    space, checks, ``touches``, ``needs``); ``summary`` is its one-line recipe
    (``--list-methods``), ``paper`` its source, ``section`` where the docs describe it;
    ``random``: whether the output depends on the key; ``reference``: how an experiment
    answers it from its trained models (see :class:`Reference`), None for a method that
    runs.
    """
    if reference is not None and not isinstance(reference, Reference):
        raise ValueError(f"{name}: reference must be a Reference, got {reference!r}")
    if not (isinstance(config, type) and issubclass(config, MethodConfig)
            and dataclasses.is_dataclass(config)):
        raise ValueError(f"{name}: config must be a MethodConfig dataclass, got {config!r}")
    if config in _BY_CONFIG:
        raise ValueError(f"{name}: {config.__name__} is already the config of "
                         f"{_BY_CONFIG[config]!r}")

    def deco(build):
        if name in _REGISTRY or name in _PRESETS:
            raise ValueError(f"method {name!r} registered twice")
        config.method = name
        _REGISTRY[name] = MethodDef(name, build, config, summary, paper, section, random,
                                    reference)
        _BY_CONFIG[config] = name
        return build

    return deco


def register_preset(name: str, config: MethodConfig | str, *, summary: str | None = None,
                    paper: str | None = None, section: str | None = None,
                    **overrides: Any) -> None:
    """Registers a named preset: a registered method's config with other values, e.g.
    ``register_preset("rotate", dataclasses.replace(CtConfig(), epochs=9), summary=...)``
    (the variants in :mod:`jaxmu.methods.presets`).

    ``config`` is a config instance, or a registered method's name with the changed fields
    as ``overrides``. ``summary`` is the preset's own one-line recipe (``--list-methods``,
    the README table): give one whenever the overrides change what the base's summary says.
    Without it the summary is ``"preset of <base>: k=v, ..."``; ``paper``/``section``
    default to the base's.
    """
    if name in _REGISTRY or name in _PRESETS:
        raise ValueError(f"method {name!r} registered twice")
    if isinstance(config, str):
        if config not in _REGISTRY:
            raise ValueError(f"unknown method {config!r}; valid: {', '.join(list_methods())}")
        base = config
        config = _resolve(_REGISTRY[base], overrides)
    else:
        if type(config) not in _BY_CONFIG:
            raise ValueError(f"{name}: {type(config).__name__} is not a registered config")
        if overrides:
            config = dataclasses.replace(config, **overrides)
        base = _BY_CONFIG[type(config)]
        defaults = type(config).defaults()
        overrides = {k: v for k, v in config.values().items() if v != defaults[k]}
    _PRESETS[name] = Preset(name, base, dict(overrides), config, summary, paper, section)


@dataclasses.dataclass(frozen=True)
class Method:
    """A method with its config (resolved hyperparameters), optionally bound to a model."""

    definition: MethodDef
    config: MethodConfig
    model: Model | None = None
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.definition.name

    @property
    def hparams(self) -> tuple[tuple[str, Any], ...]:
        """``(name, value)`` pairs of the config, sorted by name."""
        return tuple(sorted(self.config.values().items()))

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
        return self.config.touch_selector()

    def degenerate_reason(self, model: Model | None = None, params: Any = None) -> str | None:
        """Why this method degenerates on ``model`` (default: the bound one), else None.

        See :func:`degenerate_reason`.
        """
        model = model if model is not None else self.model
        if model is None:
            raise ValueError(f"method {self.name!r} is not bound to a model: pass a model")
        return _degenerate(self.name, self.config.requirements(), model, params)

    @property
    def search_space(self) -> dict[str, HP]:
        return dict(self.definition.space)

    @property
    def is_reference(self) -> bool:
        """Whether an experiment answers this method from its trained models instead of
        running it (see :class:`Reference`)."""
        return self.definition.reference is not None

    def for_recipe(self, recipe: Any, keep: Sequence[str] = ()) -> Method:
        """This method as it runs inside a population trained with ``recipe`` (a
        :class:`jaxmu.train.TrainConfig`): a reference method that declares
        ``from_recipe`` takes the recipe's hyperparameters (except those named in
        ``keep``), so a population's R is trained as the experiment's R was; any other
        method is returned unchanged."""
        ref = self.definition.reference
        if ref is None or ref.from_recipe is None:
            return self
        return self.with_hparams(**{k: v for k, v in ref.from_recipe(recipe).items()
                                    if k not in keep})

    def bind(self, model: Model) -> Method:
        """Returns this method bound to ``model`` (needed before calling it)."""
        return dataclasses.replace(self, model=model)

    def with_hparams(self, **hp: Any) -> Method:
        """Returns a copy with some hyperparameters replaced (validated)."""
        return self.with_config(_resolve(self.definition, hp, self.config))

    def with_config(self, config: MethodConfig) -> Method:
        """Returns a copy running ``config`` (an instance of this method's config class)."""
        if type(config) is not self.definition.config:
            raise ValueError(f"{self.name}: expected a {self.definition.config.__name__}, "
                             f"got {type(config).__name__}")
        return dataclasses.replace(self, config=config)

    @functools.cached_property
    def stage(self) -> Stage:
        return self.definition.build(self.config)

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
        name in ``names`` to a scalar; the method is built inside ``f`` from the config with
        those fields replaced. Jitting ``f`` compiles one program for every value of those
        hyperparameters (a sweep recompiles only when a structural one, e.g. epochs or a
        batch size, changes). ``names`` should be traced fields of the config
        (:attr:`MethodDef.traced`); values are range-checked on the concrete
        :attr:`config`, not in ``f``.
        """
        if self.model is None:
            raise ValueError(
                f"method {self.name!r} is not bound to a model: use method.bind(model)")
        unknown = sorted(set(names) - set(self.definition.defaults))
        if unknown:
            raise ValueError(f"{self.name}: unknown hyperparameter(s) {unknown}")
        model, base, names = self.model, self.config, tuple(names)

        def run(params, model_state, splits: Splits, key, values):
            if set(values) != set(names):
                raise ValueError(f"values: expected keys {sorted(names)}, got {sorted(values)}")
            stage = self.definition.build(dataclasses.replace(base, **values))
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


def _resolve(defn: MethodDef, hp: Mapping[str, Any],
             base: MethodConfig | None = None) -> MethodConfig:
    """``base`` (default: the default config) with the fields ``hp`` replaced, validated."""
    unknown = sorted(set(hp) - set(defn.defaults))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for {defn.name!r}; valid: "
            f"{', '.join(sorted(defn.defaults))}"
        )
    if base is None:
        return defn.config(**hp)
    return dataclasses.replace(base, **hp) if hp else base


def unregister(name: str) -> None:
    """Removes a method registered with :func:`register` (and the presets of it), or one
    preset; afterwards its config class may be registered again. For methods registered
    outside :mod:`jaxmu.methods` (an example, a notebook cell run twice); the built-in ones
    are imported with the package and stay.

    Raises:
        ValueError: ``name`` is neither a registered method nor a preset.
    """
    if name in _PRESETS:
        del _PRESETS[name]
        return
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(list_methods())}")
    defn = _REGISTRY.pop(name)
    _BY_CONFIG.pop(defn.config, None)
    for p in [p for p, preset in _PRESETS.items() if preset.base == name]:
        del _PRESETS[p]


def reference_methods() -> tuple[str, ...]:
    """Names of the registered reference methods (see :class:`Reference`), in
    registration order: ``("original", "retrain")`` for the built-in ones."""
    return tuple(n for n, d in _REGISTRY.items() if d.reference is not None)


def list_methods(include_presets: bool = True) -> list[str]:
    """Names of all registered methods (and presets), sorted."""
    names = set(_REGISTRY) | (set(_PRESETS) if include_presets else set())
    return sorted(names)


def get_method(name: str | MethodConfig, model: Model | None = None,
               **hparams: Any) -> Method:
    """Returns a registered method with hyperparameters resolved (defaults + overrides).

    ``name`` is a method or preset name, or a config instance
    (``get_method(MsgConfig(lr=1e-2))``: the method it is registered for, with those
    values); ``hparams`` replace fields of the (preset's) config.

    Raises:
        ValueError: unknown method (listing the valid ones) or unknown/invalid hyperparameter.
    """
    label, base = "", None
    if isinstance(name, MethodConfig):
        if type(name) not in _BY_CONFIG:
            raise ValueError(f"{type(name).__name__} is not a registered method config")
        name, base = _BY_CONFIG[type(name)], name
    elif name in _PRESETS:
        preset = _PRESETS[name]
        label, name, base = name, preset.base, preset.config
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(list_methods())}")
    defn = _REGISTRY[name]
    m = Method(defn, _resolve(defn, hparams, base), model, label)
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
    return _degenerate(m.name, m.config.requirements(), model, params)


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
