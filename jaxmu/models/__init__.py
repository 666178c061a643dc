"""Models behind the :class:`jaxmu.types.Model` protocol, and parameter selectors.

References:
    Deep Unlearn's networks (``munl/models``): torchvision's ResNet18, used with its
    ImageNet stem even on 32x32 images, and TinyViT-11M (Wu et al. 2022);
    docs/evaluation.md#the-deep-unlearn-setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from jaxmu._names import MODEL_VARIANTS, MODELS, ModelVariant
from jaxmu.models._base import (
    FlaxModel,
    activation,
    flat_normal,
    flat_uniform,
    torch_default_kernel_init,
)
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


def build_model(name: str, num_classes: int, input_shape: Sequence[int]) -> FlaxModel:
    """Builds a model by the name a command line takes: one of :data:`MODELS` or of
    :data:`MODEL_VARIANTS`.

    A name of :data:`MODELS` is :func:`get_model` with its default arguments. A variant is
    :func:`get_model` of its base with the variant's keyword arguments, and the model is
    named after the variant, so results and cache entries tell the variants apart.

    Args:
        name: a name of :data:`MODELS` or :data:`MODEL_VARIANTS`.
        num_classes: number of classes.
        input_shape: one input's shape ``(H, W, C)``.

    Raises:
        ValueError: unknown name.
    """
    if name in MODEL_VARIANTS:
        variant = MODEL_VARIANTS[name]
        model = get_model(variant.base, num_classes, input_shape, **variant.kwargs)
        return dataclasses.replace(model, name=name)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: "
                         f"{', '.join((*MODELS, *MODEL_VARIANTS))}")
    return get_model(name, num_classes, input_shape)


__all__ = [
    "ALL",
    "BatchNorm",
    "Conv",
    "FlaxModel",
    "MODELS",
    "MODEL_VARIANTS",
    "ModelVariant",
    "Selector",
    "activation",
    "build_model",
    "classifier",
    "conv2d",
    "conv_kernels",
    "flat_normal",
    "flat_uniform",
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
    "torch_default_kernel_init",
    "weights",
]
