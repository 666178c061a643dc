"""TinyViT-11M (Microsoft TinyViT, as vendored by Deep Unlearn in ``thirdparty/tiny_vit.py``).

A faithful Linen port of the reference network, with Deep Unlearn's ``vit11m`` settings as
defaults (embed dims 64/128/256/448, depths 2/2/6/2, heads 2/4/8/14, windows 7/7/14/7,
drop-path 0.1, no pretraining):

* ``patch_embed``: Conv2d_BN(3 -> E0/2, 3x3, s2) -> GELU -> Conv2d_BN(E0/2 -> E0, 3x3, s2).
* ``layers_0`` (ConvLayer): MBConv blocks (1x1 expand -> GELU -> 3x3 depthwise -> GELU ->
  1x1 project with BN gamma 0 -> drop-path -> + input -> GELU), then PatchMerging.
* ``layers_1..3`` (BasicLayer): TinyViT blocks (window attention with a learnable relative
  position bias -> residual; 3x3 depthwise Conv2d_BN "local conv" without residual;
  LayerNorm MLP -> residual); every layer except the last ends with PatchMerging
  (1x1 Conv2d_BN -> GELU -> 3x3 stride-2 depthwise Conv2d_BN -> GELU -> 1x1 Conv2d_BN).
* Head: mean over tokens -> ``norm_head`` (LayerNorm) -> ``head`` (Linear).

Reference behaviours kept on purpose:

* Windows that do not divide the token grid are zero-padded bottom/right and the padded
  tokens are **not masked**: they go through the attention LayerNorm (becoming its beta),
  are keys/values for the real tokens, and are cropped afterwards. At 32x32 the grids are
  8 -> 4 -> 2 -> 1 with windows 7/7/14/7, so stages 1-3 attend mostly over padding.
* ``attention_biases`` has shape ``(heads, #distinct (|drow|, |dcol|) offsets)`` (= window**2
  for square windows), initialised to 0, and is gathered with the reference's offset order.
* In eval mode the reference uses a bias table cached under ``torch.no_grad`` when
  ``.eval()`` was called, so methods that *train in eval mode* (NG+, CF-k, EU-k) never update
  ``attention_biases``. Here ``freeze_attention_biases_in_eval=True`` (default) reproduces that
  with ``stop_gradient`` in eval mode (value identical, gradient 0). One difference remains:
  PyTorch optimisers skip a parameter whose grad is ``None`` while an optax weight decay /
  momentum still moves it.
* Stochastic depth (timm ``drop_path``): per-sample keep mask ``floor(keep + U[0, 1))``,
  output ``x / keep * mask``, rates ramping linearly from 0 to ``drop_path_rate`` over all
  blocks (MBConv blocks included), the same rate used for both residual branches of a TinyViT
  block with independent draws. It uses the ``"dropout"`` rng and is active only when
  ``train=True``. **When no ``"dropout"`` rng is supplied in train mode, drop-path is
  skipped** (identity, like eval) instead of raising, so ``FlaxModel.apply(train=True)``
  without a key is a deterministic train-mode pass (BatchNorm still uses batch statistics).

Initialisation as the reference: Linear trunc-normal(std 0.02, absolute bounds +-2) with bias 0,
LayerNorm 1/0, convs the PyTorch default (kaiming-uniform a=sqrt(5); no bias), BatchNorm
gamma = ``bn_weight_init`` (1, or 0 for the last MBConv conv) and beta 0. GELU is the exact
(erf) one, LayerNorm eps 1e-5, BatchNorm momentum 0.1 (flax 0.9) and eps 1e-5.

Tokens are kept on their NHWC grid throughout (the reference flattens them to ``(B, L, C)``
after PatchMerging); LayerNorm/Linear act on the channel axis, so this is the same function.
The cached table also goes stale in the reference if ``attention_biases`` is changed while
the model stays in eval mode; this port always reads the current parameter.

Parameter names mirror the PyTorch ``state_dict`` (``patch_embed/seq_0/c/kernel``,
``layers_1/blocks_0/attn/qkv/kernel``, ``layers_1/downsample/conv2/bn/scale``, ``head/...``).
Every GELU is an activation site (:func:`jaxmu.models.activation`).

References:
    Wu et al., TinyViT: Fast Pretraining Distillation for Small Vision Transformers (ECCV
    2022); Deep Unlearn ``munl/models/vit11m.py`` and ``thirdparty/tiny_vit.py``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmu.models._base import (
    FlaxModel,
    activation,
    flat_normal,
    flat_uniform,
    torch_default_kernel_init,
)
from jaxmu.models._layers import BatchNorm, Conv


def _trunc_normal_002(key, shape, dtype=jnp.float32):
    """timm ``trunc_normal_(std=0.02)``: N(0, 0.02^2) truncated at the *absolute* bounds +-2.

    The bounds sit at +-100 std, so truncation never binds: a clipped normal is the same
    distribution (and avoids the inverse-CDF sampler's +-bound values at u = +-1).
    """
    return jnp.clip(0.02 * flat_normal(key, shape, dtype), -2.0, 2.0)


def _dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=_trunc_normal_002, bias_init=nn.initializers.zeros,
                    name=name)


def _layer_norm(name: str) -> nn.LayerNorm:
    # torch.nn.LayerNorm default eps 1e-5 (flax default is 1e-6).
    return nn.LayerNorm(epsilon=1e-5, name=name)


def _gelu(x):
    return nn.gelu(x, approximate=False)  # torch.nn.GELU() default: exact erf


def _drop_path(module: nn.Module, x: jax.Array, rate: float, train: bool) -> jax.Array:
    """timm stochastic depth; identity unless ``train`` and a ``"dropout"`` rng is present."""
    if rate <= 0.0 or not train or not module.has_rng("dropout"):
        return x
    keep = 1.0 - rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jnp.floor(keep + flat_uniform(module.make_rng("dropout"), shape, x.dtype))
    return x / keep * mask


@functools.cache
def attention_bias_index(window: int) -> tuple[np.ndarray, int]:
    """The reference's bias gather index ``(N, N)`` and the number of distinct offsets.

    Offsets ``(|drow|, |dcol|)`` are numbered in first-seen order over
    ``product(points, points)`` with ``points = product(range(window), range(window))``.
    """
    points = list(itertools.product(range(window), range(window)))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            if off not in offsets:
                offsets[off] = len(offsets)
            idxs.append(offsets[off])
    n = len(points)
    idx = np.asarray(idxs, np.int32).reshape(n, n)
    idx.flags.writeable = False  # cached: shared between calls
    return idx, len(offsets)


def _drop_path_rates(depths: Sequence[int], rate: float) -> list[tuple[float, ...]]:
    """Per-layer stochastic-depth rates: ``torch.linspace(0, rate, sum(depths))`` (float32)."""
    dpr = [float(r) for r in np.linspace(0.0, rate, sum(depths), dtype=np.float32)]
    return [tuple(dpr[sum(depths[:i]):sum(depths[:i + 1])]) for i in range(len(depths))]


class Conv2dBN(nn.Module):
    """Conv (no bias, PyTorch default init) followed by BatchNorm (gamma ``bn_weight_init``)."""

    features: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    bn_weight_init: float = 1.0

    @nn.compact
    def __call__(self, x, train: bool):
        pad = self.kernel // 2  # every Conv2d_BN in TinyViT uses pad = ks // 2
        x = Conv(self.features, (self.kernel, self.kernel), strides=(self.stride, self.stride),
                 padding=((pad, pad), (pad, pad)), feature_group_count=self.groups,
                 kernel_init=torch_default_kernel_init, name="c")(x)
        return BatchNorm(use_running_average=not train,
                         scale_init=nn.initializers.constant(self.bn_weight_init), name="bn")(x)


class PatchEmbed(nn.Module):
    embed_dim: int

    @nn.compact
    def __call__(self, x, train: bool):
        x = Conv2dBN(self.embed_dim // 2, 3, 2, name="seq_0")(x, train)
        x = activation(self, _gelu(x), "act")
        return Conv2dBN(self.embed_dim, 3, 2, name="seq_2")(x, train)


class MBConv(nn.Module):
    dim: int
    expand_ratio: float
    drop_path: float

    @nn.compact
    def __call__(self, x, train: bool):
        hidden = int(self.dim * self.expand_ratio)
        shortcut = x
        x = activation(self, _gelu(Conv2dBN(hidden, 1, name="conv1")(x, train)), "act1")
        x = Conv2dBN(hidden, 3, 1, groups=hidden, name="conv2")(x, train)
        x = activation(self, _gelu(x), "act2")
        x = Conv2dBN(self.dim, 1, bn_weight_init=0.0, name="conv3")(x, train)
        x = _drop_path(self, x, self.drop_path, train) + shortcut
        return activation(self, _gelu(x), "act3")


class PatchMerging(nn.Module):
    out_dim: int

    @nn.compact
    def __call__(self, x, train: bool):
        x = activation(self, _gelu(Conv2dBN(self.out_dim, 1, name="conv1")(x, train)), "act1")
        x = Conv2dBN(self.out_dim, 3, 2, groups=self.out_dim, name="conv2")(x, train)
        x = activation(self, _gelu(x), "act2")
        return Conv2dBN(self.out_dim, 1, name="conv3")(x, train)


class Attention(nn.Module):
    """Multi-head self-attention over windows ``(B', N, C)`` with the LeViT-style bias."""

    num_heads: int
    window: int
    freeze_biases_in_eval: bool = True

    @nn.compact
    def __call__(self, x, train: bool):
        b, n, c = x.shape
        hd = c // self.num_heads
        idx, n_off = attention_bias_index(self.window)
        if n != idx.shape[0]:
            raise ValueError(f"attention over {n} tokens but window {self.window}")
        biases = self.param("attention_biases", nn.initializers.zeros, (self.num_heads, n_off))
        x = _layer_norm("norm")(x)
        qkv = _dense(3 * c, "qkv")(x).reshape(b, n, self.num_heads, 3 * hd)
        q, k, v = jnp.split(qkv, 3, axis=-1)  # per head [q | k | v], as the reference
        if not train and self.freeze_biases_in_eval:
            biases = jax.lax.stop_gradient(biases)  # reference: cached under no_grad at .eval()
        attn = jnp.einsum("bnhd,bmhd->bhnm", q, k) * hd**-0.5
        attn = jax.nn.softmax(attn + biases[:, idx], axis=-1)
        x = jnp.einsum("bhnm,bmhd->bnhd", attn, v).reshape(b, n, c)
        return _dense(c, "proj")(x)


def window_partition(x: jax.Array, window: int) -> tuple[jax.Array, tuple[int, int]]:
    """Zero-pads ``(B, H, W, C)`` bottom/right to multiples of ``window`` and cuts windows.

    Returns ``(B * nH * nW, window**2, C)`` and the padded grid ``(pH, pW)``.
    """
    b, h, w, c = x.shape
    pad_b, pad_r = (-h) % window, (-w) % window
    if pad_b or pad_r:
        x = jnp.pad(x, ((0, 0), (0, pad_b), (0, pad_r), (0, 0)))
    ph, pw = h + pad_b, w + pad_r
    nh, nw = ph // window, pw // window
    x = x.reshape(b, nh, window, nw, window, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b * nh * nw, window * window, c), (ph, pw)


def window_reverse(x: jax.Array, window: int, batch: int, padded: tuple[int, int],
                   grid: tuple[int, int]) -> jax.Array:
    """Inverse of :func:`window_partition`, cropping the padding: ``(B, H, W, C)``."""
    (ph, pw), (h, w) = padded, grid
    nh, nw, c = ph // window, pw // window, x.shape[-1]
    x = x.reshape(batch, nh, nw, window, window, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, ph, pw, c)[:, :h, :w]


class Mlp(nn.Module):
    hidden: int

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = _layer_norm("norm")(x)
        x = activation(self, _gelu(_dense(self.hidden, "fc1")(x)), "act")
        return _dense(c, "fc2")(x)  # dropout rate 0 in the reference config


class TinyViTBlock(nn.Module):
    """Window attention (+res) -> local depthwise Conv2d_BN (no res) -> MLP (+res), on NHWC."""

    num_heads: int
    window: int
    mlp_ratio: float
    drop_path: float
    local_conv_size: int = 3
    freeze_biases_in_eval: bool = True

    @nn.compact
    def __call__(self, x, train: bool):
        b, h, w, c = x.shape
        if c % self.num_heads:
            raise ValueError(f"dim {c} not divisible by num_heads {self.num_heads}")
        windows, padded = window_partition(x, self.window)
        y = Attention(self.num_heads, self.window, self.freeze_biases_in_eval,
                      name="attn")(windows, train)
        y = window_reverse(y, self.window, b, padded, (h, w))
        x = x + _drop_path(self, y, self.drop_path, train)
        x = Conv2dBN(c, self.local_conv_size, 1, groups=c, name="local_conv")(x, train)
        y = Mlp(int(c * self.mlp_ratio), name="mlp")(x)
        return x + _drop_path(self, y, self.drop_path, train)


class ConvLayer(nn.Module):
    depth: int
    expand_ratio: float
    drop_paths: tuple[float, ...]
    out_dim: int | None

    @nn.compact
    def __call__(self, x, train: bool):
        for i in range(self.depth):
            x = MBConv(x.shape[-1], self.expand_ratio, self.drop_paths[i],
                       name=f"blocks_{i}")(x, train)
        if self.out_dim is not None:
            x = PatchMerging(self.out_dim, name="downsample")(x, train)
        return x


class BasicLayer(nn.Module):
    depth: int
    num_heads: int
    window: int
    mlp_ratio: float
    drop_paths: tuple[float, ...]
    local_conv_size: int
    out_dim: int | None
    freeze_biases_in_eval: bool = True

    @nn.compact
    def __call__(self, x, train: bool):
        for i in range(self.depth):
            x = TinyViTBlock(self.num_heads, self.window, self.mlp_ratio, self.drop_paths[i],
                             self.local_conv_size, self.freeze_biases_in_eval,
                             name=f"blocks_{i}")(x, train)
        if self.out_dim is not None:
            x = PatchMerging(self.out_dim, name="downsample")(x, train)
        return x


class TinyViT(nn.Module):
    """The TinyViT network on NHWC images; returns logits ``(B, num_classes)``."""

    num_classes: int
    embed_dims: Sequence[int] = (64, 128, 256, 448)
    depths: Sequence[int] = (2, 2, 6, 2)
    num_heads: Sequence[int] = (2, 4, 8, 14)
    window_sizes: Sequence[int] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    freeze_attention_biases_in_eval: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        dims, depths = tuple(self.embed_dims), tuple(self.depths)
        n_layers = len(depths)
        rates_per_layer = _drop_path_rates(depths, self.drop_path_rate)
        x = PatchEmbed(dims[0], name="patch_embed")(x, train)
        for i in range(n_layers):
            rates = rates_per_layer[i]
            out_dim = dims[i + 1] if i < n_layers - 1 else None
            if i == 0:
                layer = ConvLayer(depths[0], self.mbconv_expand_ratio, rates, out_dim,
                                  name="layers_0")
            else:
                layer = BasicLayer(depths[i], self.num_heads[i], self.window_sizes[i],
                                   self.mlp_ratio, rates, self.local_conv_size, out_dim,
                                   self.freeze_attention_biases_in_eval, name=f"layers_{i}")
            x = layer(x, train)
        x = jnp.mean(x, axis=(1, 2))
        x = _layer_norm("norm_head")(x)
        return _dense(self.num_classes, "head")(x)


_DEFAULT_CFG = ((64, 128, 256, 448), (2, 2, 6, 2), (2, 4, 8, 14), (7, 7, 14, 7), 4.0, 0.1,
                4.0, 3, True)


def tinyvit_11m(
    num_classes: int,
    input_shape: Sequence[int] = (32, 32, 3),
    *,
    embed_dims: Sequence[int] = (64, 128, 256, 448),
    depths: Sequence[int] = (2, 2, 6, 2),
    num_heads: Sequence[int] = (2, 4, 8, 14),
    window_sizes: Sequence[int] = (7, 7, 14, 7),
    mlp_ratio: float = 4.0,
    drop_path_rate: float = 0.1,
    mbconv_expand_ratio: float = 4.0,
    local_conv_size: int = 3,
    freeze_attention_biases_in_eval: bool = True,
) -> FlaxModel:
    """TinyViT-11M behind the ``Model`` protocol (10,552,462 params for 10 classes).

    Args:
        num_classes: number of classes.
        input_shape: one input's shape ``(H, W, C)``; H and W should be multiples of 4
            (32 and 224 are the benchmark sizes).
        embed_dims, depths, num_heads, window_sizes, mlp_ratio, drop_path_rate,
            mbconv_expand_ratio, local_conv_size: the reference's hyperparameters (the
            defaults are Deep Unlearn's ``vit11m``); smaller values give test-size nets.
        freeze_attention_biases_in_eval: stop the gradient to ``attention_biases`` in eval
            mode, reproducing the reference's cached eval-mode bias table.

    Selectors: ``stem`` = the patch-embed convs, ``classifier`` = ``head`` (not
    ``norm_head``), ``blocks`` = the BasicLayers ``layers_1..`` (Deep Unlearn's CF-k / EU-k
    blocks: the first, convolutional stage is not a block).
    """
    lens = {len(embed_dims), len(depths), len(num_heads), len(window_sizes)}
    if len(lens) != 1 or len(depths) < 2:
        raise ValueError("embed_dims, depths, num_heads, window_sizes need one entry per layer")
    module = TinyViT(num_classes, tuple(embed_dims), tuple(depths), tuple(num_heads),
                     tuple(window_sizes), mlp_ratio, drop_path_rate, mbconv_expand_ratio,
                     local_conv_size, freeze_attention_biases_in_eval)
    cfg = (tuple(embed_dims), tuple(depths), tuple(num_heads), tuple(window_sizes),
           float(mlp_ratio), float(drop_path_rate), float(mbconv_expand_ratio),
           int(local_conv_size), bool(freeze_attention_biases_in_eval))
    name = f"tinyvit_11m_img{input_shape[0]}"
    if cfg != _DEFAULT_CFG:  # distinct cache keys for non-reference configurations
        name += "_cfg" + hashlib.sha1(repr(cfg).encode()).hexdigest()[:8]
    return FlaxModel(
        module, tuple(input_shape), num_classes, name,
        stem=r"^patch_embed/", classifier=r"^head/",
        blocks=tuple(rf"^layers_{i}/" for i in range(1, len(depths))),
    )
