"""Models behind the :class:`jaxmu.types.Model` protocol, and parameter selectors.

References:
    Deep Unlearn's networks (``munl/models``): torchvision's ResNet18, used with its
    ImageNet stem even on 32x32 images, and TinyViT-11M (Wu et al. 2022);
    docs/evaluation.md#the-deep-unlearn-setting.
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxmu._names import MODELS
from jaxmu.models._base import FlaxModel, activation
from jaxmu.models._layers import BatchNorm, Conv, conv2d, max_pool, reference_ops
from jaxmu.models._resnet import resnet18
from jaxmu.models._select import (
    ALL,
    Selector,
    classifier,
    conv_kernels,
    last_k_blocks,
    path_str,
    regex,
    stem_conv,
    weights,
)
from jaxmu.models._small import mlp, small_cnn
from jaxmu.models._tinyvit import tinyvit_11m


def get_model(name: str, num_classes: int, input_shape: Sequence[int], **kwargs) -> FlaxModel:
    """Builds a model by name: one of :data:`MODELS`.

    Args:
        name: model name.
        num_classes: number of classes.
        input_shape: one input's shape ``(H, W, C)``.
        **kwargs: passed to the factory (e.g. ``hidden`` for mlp, ``width`` for resnet18).

    Raises:
        ValueError: unknown name.
    """
    if name == "mlp":
        return mlp(input_shape, num_classes, **kwargs)
    if name == "small_cnn":
        return small_cnn(input_shape, num_classes, **kwargs)
    if name == "resnet18":
        return resnet18(num_classes, input_shape, stem="imagenet", **kwargs)
    if name == "resnet18_cifar":
        return resnet18(num_classes, input_shape, stem="cifar", **kwargs)
    if name == "tinyvit":
        return tinyvit_11m(num_classes, input_shape, **kwargs)
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")


__all__ = [
    "ALL",
    "BatchNorm",
    "Conv",
    "FlaxModel",
    "MODELS",
    "Selector",
    "activation",
    "classifier",
    "conv2d",
    "conv_kernels",
    "get_model",
    "last_k_blocks",
    "max_pool",
    "mlp",
    "path_str",
    "reference_ops",
    "regex",
    "resnet18",
    "small_cnn",
    "stem_conv",
    "tinyvit_11m",
    "weights",
]
