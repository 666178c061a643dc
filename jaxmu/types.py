"""Core types: the contracts shared by data, models, methods, populations and metrics.

* :class:`Pool` is the whole dataset on device (uint8 images, int32 labels), shared by every
  model of a population.
* :class:`Splits` holds boolean membership masks over a pool (forget, retain, val, test)
  with their sizes as static fields, so batch shapes are static and a whole population of
  models with different masks (but equal sizes) can be vmapped.
* :class:`Model` is the protocol every network satisfies; :class:`UnlearnState` is what
  stages pass along; a :data:`Stage` maps ``(state, splits, key) -> state``.

PRNG keys are typed keys (``jax.random.key``); a raw ``uint32[2]`` key is accepted and
wrapped by :func:`as_key`.

References:
    docs/design.md#core-types (the types, and the rules that keep methods jittable and
    vmappable over a population).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
Params = Mapping[str, Any]
ModelState = Mapping[str, Any]

SPLIT_NAMES = ("forget", "retain", "val", "test")


def as_key(key: Any) -> jax.Array:
    """Returns a typed PRNG key; an int seed or a raw uint32 key are converted."""
    if isinstance(key, int):
        return jax.random.key(key)
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        return jax.random.wrap_key_data(key)
    raise ValueError(f"expected a PRNG key or an int seed, got dtype {key.dtype}")


def _is_concrete(x: Any) -> bool:
    return isinstance(x, np.ndarray) or (
        isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)
    )


@dataclasses.dataclass(frozen=True)
class Pool:
    """A dataset held on device: images as uint8 NHWC and int32 labels.

    Attributes:
        x: uint8 images ``[N, H, W, C]``.
        y: int32 labels ``[N]``.
        num_classes: number of classes (static).
        mean: per-channel normalisation mean in [0, 1] units (static).
        std: per-channel normalisation std (static).
        name: dataset name (static), used in cache keys and result files.
        hflip: whether training augmentation flips horizontally (static).
        crop_pad: padding of the random-crop augmentation, 0 disables it (static).
    """

    x: jax.Array
    y: jax.Array
    num_classes: int = dataclasses.field(metadata=dict(static=True), default=10)
    mean: tuple[float, ...] = dataclasses.field(metadata=dict(static=True), default=(0.5,))
    std: tuple[float, ...] = dataclasses.field(metadata=dict(static=True), default=(0.5,))
    name: str = dataclasses.field(metadata=dict(static=True), default="pool")
    hflip: bool = dataclasses.field(metadata=dict(static=True), default=True)
    crop_pad: int = dataclasses.field(metadata=dict(static=True), default=4)

    @property
    def size(self) -> int:
        return int(self.y.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    def normalize(self, x: jax.Array) -> jax.Array:
        """uint8 images -> float32, scaled to [0, 1] then standardised per channel."""
        mean = jnp.asarray(self.mean, jnp.float32)
        std = jnp.asarray(self.std, jnp.float32)
        return (x.astype(jnp.float32) / 255.0 - mean) / std

    def validate(self) -> Pool:
        """Checks shapes, dtypes and label range; returns self or raises ValueError."""
        x, y = self.x, self.y
        if x.ndim != 4:
            raise ValueError(f"Pool.x must be [N, H, W, C], got shape {tuple(x.shape)}")
        if x.dtype != jnp.uint8:
            raise ValueError(f"Pool.x must be uint8, got {x.dtype}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"Pool.y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        if len(self.mean) != x.shape[-1] or len(self.std) != x.shape[-1]:
            raise ValueError(
                f"mean/std need {x.shape[-1]} channel values, got {len(self.mean)}/{len(self.std)}"
            )
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if _is_concrete(y):
            yn = np.asarray(y)
            if yn.size and (yn.min() < 0 or yn.max() >= self.num_classes):
                raise ValueError(
                    f"labels must lie in [0, {self.num_classes - 1}], "
                    f"found range [{yn.min()}, {yn.max()}]"
                )
        return self


jax.tree_util.register_dataclass(Pool)


@dataclasses.dataclass(frozen=True)
class Splits:
    """Boolean membership masks over a :class:`Pool`, with static sizes.

    Construct with :meth:`Splits.build`, which validates; the plain constructor is used by
    JAX when un-flattening and does not validate.

    Attributes:
        pool: the shared dataset.
        forget, retain, val, test: bool masks ``[N]`` (or ``[M, N]`` inside a population).
        n_forget, n_retain, n_val, n_test: static member counts.
    """

    pool: Pool
    forget: jax.Array
    retain: jax.Array
    val: jax.Array
    test: jax.Array
    n_forget: int = dataclasses.field(metadata=dict(static=True), default=0)
    n_retain: int = dataclasses.field(metadata=dict(static=True), default=0)
    n_val: int = dataclasses.field(metadata=dict(static=True), default=0)
    n_test: int = dataclasses.field(metadata=dict(static=True), default=0)

    @classmethod
    def build(
        cls,
        pool: Pool,
        *,
        forget: Any,
        retain: Any,
        val: Any = None,
        test: Any = None,
    ) -> Splits:
        """Validates masks (or index arrays) and returns Splits.

        Each argument is a bool mask of length ``pool.size`` or an integer index array.
        ``val``/``test`` may be ``None`` (empty). Raises ``ValueError`` naming the problem:
        masks that overlap, an empty forget or retain set, wrong lengths, bad labels.
        """
        pool.validate()
        n = pool.size
        masks = {}
        for name, m in dict(forget=forget, retain=retain, val=val, test=test).items():
            masks[name] = _to_mask(name, m, n)
        for name in ("forget", "retain"):
            if not masks[name].any():
                raise ValueError(f"the {name} set is empty")
        names = list(masks)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                both = int(np.sum(masks[a] & masks[b]))
                if both:
                    raise ValueError(f"{a} and {b} overlap in {both} examples")
        sizes = {f"n_{k}": int(v.sum()) for k, v in masks.items()}
        return cls(pool=pool, **{k: jnp.asarray(v) for k, v in masks.items()}, **sizes)

    def mask(self, name: str) -> jax.Array:
        """The membership mask of a split: forget, retain, val, test or train."""
        if name == "train":
            return self.forget | self.retain
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; valid: {SPLIT_NAMES + ('train',)}")
        return getattr(self, name)

    def size(self, name: str) -> int:
        """Static member count of a split (``train`` = forget + retain)."""
        if name == "train":
            return self.n_forget + self.n_retain
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; valid: {SPLIT_NAMES + ('train',)}")
        return getattr(self, f"n_{name}")

    def indices(self, name: str) -> jax.Array:
        """Member indices of a split in pool order (static length, jittable)."""
        return jnp.nonzero(self.mask(name), size=self.size(name), fill_value=0)[0]

    def sizes(self) -> dict[str, int]:
        return {k: self.size(k) for k in SPLIT_NAMES}


jax.tree_util.register_dataclass(Splits)


def _to_mask(name: str, m: Any, n: int) -> np.ndarray:
    if m is None:
        return np.zeros(n, bool)
    a = np.asarray(m)
    if a.dtype == bool:
        if a.shape != (n,):
            raise ValueError(f"{name} mask must have shape ({n},), got {a.shape}")
        return a
    if not np.issubdtype(a.dtype, np.integer) or a.ndim != 1:
        raise ValueError(f"{name} must be a bool mask or a 1-D integer index array")
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"{name} indices must lie in [0, {n - 1}]")
    if np.unique(a).size != a.size:
        raise ValueError(f"{name} indices contain duplicates")
    out = np.zeros(n, bool)
    out[a] = True
    return out


@runtime_checkable
class Model(Protocol):
    """A classifier: frozen, hashable, with params and model state as plain nested dicts.

    ``model_state`` holds BatchNorm statistics under ``"batch_stats"`` and, when activation
    pruning was applied, fixed activation masks under ``"act_masks"``.
    """

    name: str
    num_classes: int

    def init(self, key: jax.Array) -> tuple[Params, ModelState]: ...

    def apply(
        self,
        params: Params,
        model_state: ModelState,
        x: jax.Array,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[jax.Array, ModelState]: ...


@dataclasses.dataclass(frozen=True)
class UnlearnState:
    """What stages pass along.

    Attributes:
        params: model parameters.
        model_state: BatchNorm statistics and activation masks.
        aux: named intermediates (teacher snapshot, gradients, masks, projection bases).
        model: the model (static), so stages can run forward passes.
    """

    params: PyTree
    model_state: PyTree
    aux: dict = dataclasses.field(default_factory=dict)
    model: Any = dataclasses.field(default=None, metadata=dict(static=True))

    def replace(self, **kw: Any) -> UnlearnState:
        return dataclasses.replace(self, **kw)

    def with_aux(self, **entries: Any) -> UnlearnState:
        return dataclasses.replace(self, aux={**self.aux, **entries})


jax.tree_util.register_dataclass(UnlearnState)

Stage = Callable[[UnlearnState, Splits, jax.Array], UnlearnState]
"""A pure step of a method: ``(state, splits, key) -> state``."""
