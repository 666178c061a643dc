"""Small models for tests, CPU benchmarks and the embedded digits experiment."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxmu.models._base import (
    FlaxModel,
    TorchDense,
    activation,
    kaiming_normal_fan_out,
)
from jaxmu.models._layers import BatchNorm, Conv, max_pool


class _MLP(nn.Module):
    hidden: Sequence[int]
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        for i, h in enumerate(self.hidden):
            x = TorchDense(h, name=f"dense{i}")(x)
            x = activation(self, nn.relu(x), f"relu{i}")
        return TorchDense(self.num_classes, name="head")(x)


class _CNN(nn.Module):
    channels: Sequence[int]
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, c in enumerate(self.channels):
            x = Conv(c, (3, 3), padding=((1, 1), (1, 1)), kernel_init=kaiming_normal_fan_out,
                     name=f"conv{i}")(x)
            x = BatchNorm(use_running_average=not train, name=f"bn{i}")(x)
            x = activation(self, nn.relu(x), f"relu{i}")
            if i < len(self.channels) - 1:
                x = max_pool(x, (2, 2))
        x = jnp.mean(x, axis=(1, 2))
        return TorchDense(self.num_classes, name="head")(x)


def mlp(
    input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (128, 64)
) -> FlaxModel:
    """A ReLU multilayer perceptron on flattened inputs (no BatchNorm, PyTorch init).

    Args:
        input_shape: one input's shape ``(H, W, C)``.
        num_classes: number of classes.
        hidden: hidden layer widths.
    """
    return FlaxModel(
        _MLP(tuple(hidden), num_classes), tuple(input_shape), num_classes, "mlp",
        stem=r"^dense0/", classifier=r"^head/",
        blocks=tuple(rf"^dense{i}/" for i in range(len(hidden))),
    )


def small_cnn(
    input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (16, 32)
) -> FlaxModel:
    """A small conv net: [conv3x3 - BN - ReLU - maxpool] blocks, global average, linear head.

    Args:
        input_shape: one input's shape ``(H, W, C)``.
        num_classes: number of classes.
        channels: conv widths, one block each.
    """
    return FlaxModel(
        _CNN(tuple(channels), num_classes), tuple(input_shape), num_classes, "small_cnn",
        stem=r"^conv0/", classifier=r"^head/",
        blocks=tuple(rf"^(conv|bn){i}/" for i in range(len(channels))),
    )
