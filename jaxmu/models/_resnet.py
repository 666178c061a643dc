"""ResNet18 (torchvision layout) with the ImageNet stem or the CIFAR stem.

The ImageNet stem (conv 7x7 stride 2, max-pool 3x3 stride 2) is what Deep Unlearn (and the
NeurIPS-2023 competition) uses even at 32x32, kept for comparability: Deep Unlearn builds
torchvision's ``resnet18`` and never uses the CIFAR ResNet in its repository. The CIFAR stem
(conv 3x3 stride 1, no max-pool) is offered for the usual CIFAR accuracy. Initialisation
follows torchvision: convs kaiming-normal (fan_out, relu), BN gamma 1 / beta 0, Linear the
PyTorch default. Parameter names mirror torchvision (``conv1``, ``bn1``, ``layer1..4``,
``downsample``, ``fc``) so selectors read like the reference.

References:
    He et al., Deep Residual Learning (2016); torchvision ``resnet18``; Deep Unlearn
    ``munl/models/__init__.py::get_model``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxmu.models._base import FlaxModel, TorchDense, activation, kaiming_normal_fan_out
from jaxmu.models._layers import BatchNorm, Conv, max_pool


def _bn(train: bool, name: str, scale_init=nn.initializers.ones):
    # PyTorch BatchNorm2d: momentum 0.1, eps 1e-5, unbiased running variance.
    return BatchNorm(use_running_average=not train, scale_init=scale_init, name=name)


def _conv(features: int, k: int, stride: int, name: str):
    pad = (k - 1) // 2
    return Conv(features, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                kernel_init=kaiming_normal_fan_out, name=name)


class BasicBlock(nn.Module):
    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x, train: bool):
        residual = x
        y = _conv(self.features, 3, self.stride, "conv1")(x)
        y = activation(self, nn.relu(_bn(train, "bn1")(y)), "relu1")
        y = _conv(self.features, 3, 1, "conv2")(y)
        y = _bn(train, "bn2")(y)
        if self.stride != 1 or x.shape[-1] != self.features:
            residual = _conv(self.features, 1, self.stride, "downsample_conv")(x)
            residual = _bn(train, "downsample_bn")(residual)
        return activation(self, nn.relu(y + residual), "relu2")


class _ResNet(nn.Module):
    stage_sizes: Sequence[int]
    num_classes: int
    stem: str = "imagenet"
    width: int = 64

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.stem == "imagenet":
            x = _conv(self.width, 7, 2, "conv1")(x)
        else:
            x = _conv(self.width, 3, 1, "conv1")(x)
        x = activation(self, nn.relu(_bn(train, "bn1")(x)), "relu")
        if self.stem == "imagenet":
            x = max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
        for i, n in enumerate(self.stage_sizes):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                x = BasicBlock(self.width * 2**i, stride, name=f"layer{i + 1}_{j}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return TorchDense(self.num_classes, name="fc")(x)


def resnet18(
    num_classes: int,
    input_shape: Sequence[int] = (32, 32, 3),
    stem: str = "imagenet",
    width: int = 64,
) -> FlaxModel:
    """ResNet18 behind the ``Model`` protocol (about 11.2M params for 10 classes).

    Args:
        num_classes: number of classes.
        input_shape: one input's shape ``(H, W, C)``.
        stem: ``"imagenet"`` (torchvision, what Deep Unlearn used) or ``"cifar"``.
        width: channels of the first stage (64 for the standard net; smaller for tests).
    """
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    return FlaxModel(
        _ResNet((2, 2, 2, 2), num_classes, stem, width), tuple(input_shape), num_classes,
        f"resnet18_{stem}" + ("" if width == 64 else f"_w{width}"),
        stem=r"^conv1/", classifier=r"^fc/",
        blocks=tuple(rf"^layer{i}_" for i in range(1, 5)),
    )
