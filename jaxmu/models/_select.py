"""Structural parameter selectors: which leaves of a params pytree a stage may touch.

A selector is static (key path, regex, ndim), hashable and comparable by value, so it can
be a field of a frozen method definition. ``select(model, params)`` returns a pytree of
Python bools with the structure of ``params``; a selector that matches nothing raises
``ValueError`` (coverage assert, as in big_vision). Elementwise selection is an array mask in
``aux`` instead (docs/design.md#selectors); never mix the two.

For ResNet18 and TinyViT the model's ``blocks`` and ``classifier`` follow Deep Unlearn's
code: the blocks of CF-k / EU-k are ResNet's ``layer1..4`` and TinyViT's BasicLayers (not
its first, convolutional stage), the classifier is ``fc`` / ``head`` (not TinyViT's
``norm_head``); :data:`conv_kernels`, MSG's "every conv", includes the stem, the shortcuts
and TinyViT's convs.

References:
    big_vision's path/regex parameter selectors with coverage asserts; Deep Unlearn's
    ``select_last_k_blocks`` (CF-k / EU-k) and its MSG (Masked Small Gradients) code, which
    edits every ``Conv2d``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax


def path_str(path: tuple) -> str:
    """``('layer1_0', 'conv1', 'kernel')`` -> ``'layer1_0/conv1/kernel'``."""
    parts = []
    for k in path:
        parts.append(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))))
    return "/".join(parts)


@dataclasses.dataclass(frozen=True)
class Selector:
    """A static predicate on ``(path, leaf)``; combine with ``|``, ``&`` and ``~``."""

    kind: str
    arg: Any = None
    children: tuple = ()

    def matches(self, model: Any, path: str, leaf: Any) -> bool:
        k = self.kind
        if k == "all":
            return True
        if k == "regex":
            return re.search(self.arg, path) is not None
        if k == "conv":
            return path.endswith("kernel") and getattr(leaf, "ndim", 0) == 4
        if k == "stem":
            return re.search(model.stem, path) is not None
        if k == "classifier":
            return re.search(model.classifier, path) is not None
        if k == "last_k":
            blocks = model.blocks[-self.arg :] if self.arg > 0 else ()
            return any(re.search(b, path) for b in blocks)
        if k == "ndim":
            return getattr(leaf, "ndim", 0) in self.arg
        if k == "or":
            return any(c.matches(model, path, leaf) for c in self.children)
        if k == "and":
            return all(c.matches(model, path, leaf) for c in self.children)
        if k == "not":
            return not self.children[0].matches(model, path, leaf)
        raise ValueError(f"unknown selector kind {k!r}")

    def __or__(self, other: Selector) -> Selector:
        return Selector("or", children=(self, other))

    def __and__(self, other: Selector) -> Selector:
        return Selector("and", children=(self, other))

    def __invert__(self) -> Selector:
        return Selector("not", children=(self,))

    def __call__(self, model: Any, params: Any, *, allow_empty: bool = False) -> Any:
        """Returns a pytree of bools (True = selected) shaped like ``params``."""
        flags = jax.tree_util.tree_map_with_path(
            lambda p, leaf: self.matches(model, path_str(p), leaf), params
        )
        if not allow_empty and not any(jax.tree.leaves(flags)):
            raise ValueError(f"selector {self.describe()} matches no parameter of {model.name}")
        return flags

    def describe(self) -> str:
        if self.kind in ("or", "and"):
            op = " | " if self.kind == "or" else " & "
            return "(" + op.join(c.describe() for c in self.children) + ")"
        if self.kind == "not":
            return "~" + self.children[0].describe()
        return self.kind if self.arg is None else f"{self.kind}({self.arg!r})"


ALL = Selector("all")
"""Every parameter."""
conv_kernels = Selector("conv")
"""Every 2-D convolution kernel (4-D ``kernel`` leaves), stem and shortcuts included."""
stem_conv = Selector("stem")
"""The first conv layer (the model's ``stem`` regex)."""
classifier = Selector("classifier")
"""The classification head (the model's ``classifier`` regex)."""
weights = Selector("ndim", (2, 4))
"""Dense and conv kernels (no biases, no norm scales)."""


def last_k_blocks(k: int, with_classifier: bool = True) -> Selector:
    """The last ``k`` blocks (all if ``k`` exceeds their number), plus the classifier."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    sel = Selector("last_k", int(k))
    return sel | classifier if with_classifier else sel


def regex(pattern: str) -> Selector:
    """Leaves whose ``/``-joined path matches ``pattern`` (``re.search``)."""
    re.compile(pattern)
    return Selector("regex", pattern)

