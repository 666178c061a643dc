"""Conv, pooling and BatchNorm layers that train at full speed inside ``lax.scan`` on CPU.

Every loop in jaxmu (an epoch of :func:`jaxmu.train.train_epoch`, a method's fine-tuning,
a population's ``lax.map``) runs its training steps inside a ``lax.scan``. On XLA:CPU the
gradient ops that jax's own convolution and max-pooling produce fall on slow paths there
(measured: the filter-gradient convolution of a 3x3 conv 256x14x14x32 -> 64 took 2.7 s in a
scan and 0.2 s outside one; at 2x2 and 1x1 feature maps, as in ResNet18 at 32x32, XLA:CPU's
convolutions run at a few percent of the matmul peak in or out of a loop):

* **Dense convolutions** (:func:`conv2d`, ``groups=1``) are computed as im2col matmuls,
  forward and backward: the patches ``[B*H'*W', taps*C_in]`` (one strided view of the padded
  input per kernel tap, concatenated) times the kernel ``[taps*C_in, C_out]``; the kernel
  gradient is ``patches^T @ dy``; the input gradient is ``dy @ kernel^T`` scattered back
  (col2im, one strided pad-and-add per tap). Taps that read only padding for every output
  (e.g. 8 of 9 taps of a 3x3 conv on a 1x1 map) are left out statically. The result equals
  ``lax.conv_general_dilated`` and its gradients to float32 rounding (a different summation
  order; tested on every model).
* **Depthwise convolutions** (TinyViT) keep XLA's forward and input gradient and take the
  kernel gradient as ``kh * kw`` multiply-and-sum passes over shifted views.
* **Max-pool backward.** ``select_and_scatter`` costs about 50x the forward on CPU.
  :func:`max_pool` routes the gradient with an explicit first-maximum one-hot over the
  window positions (the element ``select_and_scatter`` picks: the first maximum in
  row-major window order), adding overlapping windows' contributions in the same order, so
  gradients are bitwise identical to ``flax.linen.max_pool``'s.

Which path runs is decided per backend when the program is lowered
(``lax.platform_dependent``): CPU takes the custom paths above; GPU and TPU take jax's own
ops, which cuDNN and the TPU compiler run in fast forms (GPU timings of the custom paths
were never taken, so they are not used there).

:class:`BatchNorm` is PyTorch's ``BatchNorm2d``: batch statistics in training with the
*unbiased* batch variance folded into the running variance (momentum 0.1), biased variance
for normalising; variable names match ``flax.linen.BatchNorm`` (``scale``, ``bias``;
``batch_stats/mean``, ``batch_stats/var``), so selectors and checkpoints are unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")
Padding = tuple[tuple[int, int], tuple[int, int]]
_MODE = threading.local()


@contextlib.contextmanager
def reference_ops() -> Iterator[None]:
    """Within this context (at trace time), :func:`conv2d` and :func:`max_pool` use jax's own
    ops and their autodiff on every backend: the reference the fast paths are tested against.
    """
    old = getattr(_MODE, "reference", False)
    _MODE.reference = True
    try:
        yield
    finally:
        _MODE.reference = old


def _reference() -> bool:
    return getattr(_MODE, "reference", False)


def _forward(x, w, stride: tuple[int, int], padding: Padding, groups: int):
    return lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=_DN,
                                    feature_group_count=groups)


def _depthwise_input_grad(dy, w, x_shape, stride, padding, groups):
    """Input gradient of a depthwise conv: the transposed convolution of ``dy``."""
    kh, kw = w.shape[:2]
    (pt, _), (pl, _) = padding
    h, wd = x_shape[1], x_shape[2]
    ho, wo = dy.shape[1], dy.shape[2]
    pad = ((kh - 1 - pt, h - (ho - 1) * stride[0] + pt - 1),
           (kw - 1 - pl, wd - (wo - 1) * stride[1] + pl - 1))
    wt = jnp.flip(w, (0, 1))  # depthwise: in/out swap is the identity on [kh, kw, 1, C]
    return lax.conv_general_dilated(dy, wt, (1, 1), pad, lhs_dilation=stride,
                                    dimension_numbers=_DN, feature_group_count=groups)


def _depthwise_filter_grad(x, dy, w_shape, stride, padding):
    """Depthwise kernel gradient as ``kh * kw`` multiply-and-sum passes over shifted views."""
    kh, kw, _, cout = w_shape
    b, _, _, c = x.shape
    ho, wo = dy.shape[1], dy.shape[2]
    xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    taps = []
    for i in range(kh):
        for j in range(kw):
            view = lax.slice(xp, (0, i, j, 0),
                             (b, i + (ho - 1) * stride[0] + 1, j + (wo - 1) * stride[1] + 1, c),
                             (1, stride[0], stride[1], 1))
            taps.append(jnp.sum(view * dy, axis=(0, 1, 2)))
    return jnp.stack(taps).reshape(kh, kw, 1, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_depthwise(x, w, stride, padding, groups):
    return _forward(x, w, stride, padding, groups)


def _conv_depthwise_fwd(x, w, stride, padding, groups):
    return _forward(x, w, stride, padding, groups), (x, w)


def _conv_depthwise_bwd(stride, padding, groups, res, dy):
    x, w = res
    return (_depthwise_input_grad(dy, w, x.shape, stride, padding, groups),
            _depthwise_filter_grad(x, dy, w.shape, stride, padding))


_conv_depthwise.defvjp(_conv_depthwise_fwd, _conv_depthwise_bwd)


def _used_taps(size, k, stride, pad_lo, out):
    """Kernel offsets along one axis that read at least one non-padding input."""
    return [i for i in range(k)
            if any(0 <= o * stride + i - pad_lo < size for o in range(out))]


def _taps(x_shape, w_shape, stride, padding):
    h, wd = x_shape[1], x_shape[2]
    kh, kw = w_shape[:2]
    (pt, pb), (pl, pr) = padding
    ho = (h + pt + pb - kh) // stride[0] + 1
    wo = (wd + pl + pr - kw) // stride[1] + 1
    return ([(i, j) for i in _used_taps(h, kh, stride[0], pt, ho)
             for j in _used_taps(wd, kw, stride[1], pl, wo)], ho, wo)


def _patches(x, taps, ho, wo, stride, padding):
    """im2col: ``[B, H', W', len(taps) * C_in]``, one strided view of the input per tap."""
    b, _, _, c = x.shape
    xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    views = [lax.slice(xp, (0, i, j, 0),
                       (b, i + (ho - 1) * stride[0] + 1, j + (wo - 1) * stride[1] + 1, c),
                       (1, stride[0], stride[1], 1)) for i, j in taps]
    return views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)


def _tap_kernel(w, taps):
    return jnp.concatenate([w[i, j] for i, j in taps], axis=0) if len(taps) > 1 else \
        w[taps[0][0], taps[0][1]]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_mm(x, w, stride, padding):
    taps, ho, wo = _taps(x.shape, w.shape, stride, padding)
    return _patches(x, taps, ho, wo, stride, padding) @ _tap_kernel(w, taps)


def _conv_mm_fwd(x, w, stride, padding):
    return _conv_mm(x, w, stride, padding), (x, w)


def _conv_mm_bwd(stride, padding, res, dy):
    x, w = res
    taps, ho, wo = _taps(x.shape, w.shape, stride, padding)
    b, h, wd, cin = x.shape
    cout = w.shape[3]
    p = _patches(x, taps, ho, wo, stride, padding).reshape(b * ho * wo, -1)
    dy2 = dy.reshape(b * ho * wo, cout)
    dwt = (p.T @ dy2).reshape(len(taps), cin, cout)
    dw = jnp.zeros(w.shape, w.dtype)
    for t, (i, j) in enumerate(taps):
        dw = dw.at[i, j].set(dwt[t])
    dp = (dy2 @ _tap_kernel(w, taps).T).reshape(b, ho, wo, len(taps), cin)
    (pt, pb), (pl, pr) = padding
    hp, wp = h + pt + pb, wd + pl + pr
    zero = jnp.zeros((), dy.dtype)
    dxp = None
    for t, (i, j) in enumerate(taps):
        part = lax.pad(dp[:, :, :, t, :], zero,
                       ((0, 0, 0), (i, hp - i - (ho - 1) * stride[0] - 1, stride[0] - 1),
                        (j, wp - j - (wo - 1) * stride[1] - 1, stride[1] - 1), (0, 0, 0)))
        dxp = part if dxp is None else dxp + part
    return dxp[:, pt:pt + h, pl:pl + wd, :], dw


_conv_mm.defvjp(_conv_mm_fwd, _conv_mm_bwd)


def conv2d(x: jax.Array, w: jax.Array, stride: Sequence[int] = (1, 1),
           padding: Sequence[Sequence[int]] = ((0, 0), (0, 0)), groups: int = 1) -> jax.Array:
    """A 2-d convolution, NHWC input and HWIO kernel, fast to differentiate on CPU.

    Same values and gradients as ``lax.conv_general_dilated`` with the same arguments
    (to float32 rounding: on CPU a dense conv is an im2col matmul, see the module docstring).

    Args:
        x: input ``[B, H, W, C_in]``.
        w: kernel ``[kh, kw, C_in / groups, C_out]``.
        stride: ``(sh, sw)``.
        padding: ``((top, bottom), (left, right))`` explicit zero padding.
        groups: feature groups: 1 (dense) or ``C_in == C_out`` (depthwise).

    Returns:
        The output ``[B, H', W', C_out]``.

    Raises:
        ValueError: for grouped convolutions that are neither dense nor depthwise.
    """
    stride = tuple(int(s) for s in stride)
    padding = tuple((int(a), int(b)) for a, b in padding)
    if groups != 1 and not (w.shape[2] == 1 and x.shape[-1] == groups == w.shape[3]):
        raise ValueError(f"conv2d supports dense or depthwise convs, got groups={groups} "
                         f"for kernel {w.shape} on {x.shape[-1]} channels")
    if _reference():
        return _forward(x, w, stride, padding, groups)
    if groups == 1:
        cpu = lambda x, w: _conv_mm(x, w, stride, padding)  # noqa: E731
    else:
        cpu = lambda x, w: _conv_depthwise(x, w, stride, padding, groups)  # noqa: E731
    return lax.platform_dependent(
        x, w,
        cpu=cpu,
        default=lambda x, w: _forward(x, w, stride, padding, groups),
    )


def _pool_windows(x, window, stride, padding):
    """The ``kh * kw`` strided views of the -inf padded input, one per window position."""
    kh, kw = window
    b, _, _, c = x.shape
    xp = jnp.pad(x, ((0, 0), *padding, (0, 0)), constant_values=-jnp.inf)
    ho = (xp.shape[1] - kh) // stride[0] + 1
    wo = (xp.shape[2] - kw) // stride[1] + 1
    return [lax.slice(xp, (0, i, j, 0),
                      (b, i + (ho - 1) * stride[0] + 1, j + (wo - 1) * stride[1] + 1, c),
                      (1, stride[0], stride[1], 1))
            for i in range(kh) for j in range(kw)]


def _pool_forward(x, window, stride, padding):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *stride, 1),
                             ((0, 0), *padding, (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool_cpu(x, window, stride, padding):
    return _pool_forward(x, window, stride, padding)


def _max_pool_cpu_fwd(x, window, stride, padding):
    return _pool_forward(x, window, stride, padding), x


def _max_pool_cpu_bwd(window, stride, padding, x, g):
    views = _pool_windows(x, window, stride, padding)
    # First maximum in row-major window order (what select_and_scatter with >= selects).
    first = jnp.argmax(jnp.stack(views, axis=-1), axis=-1)
    kh, kw = window
    (pt, pb), (pl, pr) = padding
    hp, wp = x.shape[1] + pt + pb, x.shape[2] + pl + pr
    ho, wo = g.shape[1], g.shape[2]
    zero = jnp.zeros((), g.dtype)
    dxp = jnp.zeros((x.shape[0], hp, wp, x.shape[3]), g.dtype)
    for k in reversed(range(kh * kw)):  # row-major output order, as select_and_scatter adds
        i, j = divmod(k, kw)
        part = jnp.where(first == k, g, zero)
        # Scatter part[h, w] to padded position (h*s + i, w*s + j) with interior padding.
        dxp = dxp + lax.pad(part, zero, ((0, 0, 0),
                                         (i, hp - i - (ho - 1) * stride[0] - 1, stride[0] - 1),
                                         (j, wp - j - (wo - 1) * stride[1] - 1, stride[1] - 1),
                                         (0, 0, 0)))
    return (dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2], :],)


_max_pool_cpu.defvjp(_max_pool_cpu_fwd, _max_pool_cpu_bwd)


def max_pool(x: jax.Array, window: Sequence[int], stride: Sequence[int] | None = None,
             padding: Sequence[Sequence[int]] = ((0, 0), (0, 0))) -> jax.Array:
    """Max pooling over NHWC input with -inf padding, fast to differentiate on CPU.

    Same values and gradients as ``flax.linen.max_pool`` (the gradient goes to the first
    maximum of each window in row-major order, as ``select_and_scatter`` routes it).

    Args:
        x: input ``[B, H, W, C]``.
        window: ``(kh, kw)``.
        stride: ``(sh, sw)``; defaults to the window (non-overlapping).
        padding: ``((top, bottom), (left, right))``.
    """
    window = tuple(int(k) for k in window)
    stride = window if stride is None else tuple(int(s) for s in stride)
    padding = tuple((int(a), int(b)) for a, b in padding)
    if _reference():
        return _pool_forward(x, window, stride, padding)
    return lax.platform_dependent(
        x,
        cpu=lambda x: _max_pool_cpu(x, window, stride, padding),
        default=lambda x: _pool_forward(x, window, stride, padding),
    )


class Conv(nn.Module):
    """Bias-free 2-d convolution (NHWC, HWIO kernel ``kernel``) built on :func:`conv2d`.

    A drop-in for ``flax.linen.Conv(..., use_bias=False)`` with explicit padding: same
    parameter name, shape and initialiser call.

    Attributes:
        features: output channels.
        kernel_size: ``(kh, kw)``.
        strides: ``(sh, sw)``.
        padding: ``((top, bottom), (left, right))``.
        feature_group_count: 1 (dense) or the number of channels (depthwise).
        kernel_init: initialiser ``(key, shape, dtype) -> array``.
    """

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: Padding = ((0, 0), (0, 0))
    feature_group_count: int = 1
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cin = x.shape[-1]
        shape = (*self.kernel_size, cin // self.feature_group_count, self.features)
        kernel = self.param("kernel", self.kernel_init, shape, jnp.float32)
        return conv2d(x, kernel, self.strides, self.padding, self.feature_group_count)


class BatchNorm(nn.Module):
    """PyTorch ``BatchNorm2d`` over the last axis (eps 1e-5, momentum 0.1 by default).

    In training the batch mean and biased batch variance normalise ``x``, and the running
    statistics move towards the batch mean and the *unbiased* batch variance
    (``var * n / (n - 1)``, ``n`` = elements per channel), as PyTorch keeps them; in
    evaluation the running statistics normalise. Variables are named like
    ``flax.linen.BatchNorm``'s. The batch variance is the two-pass ``mean((x - mean)^2)``.

    Attributes:
        use_running_average: evaluation mode.
        momentum: PyTorch's momentum (weight of the new batch statistic).
        epsilon: added to the variance.
        scale_init: initialiser of gamma (``scale``).
    """

    use_running_average: bool
    momentum: float = 0.1
    epsilon: float = 1e-5
    scale_init: Callable = nn.initializers.ones

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        axes = tuple(range(x.ndim - 1))
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        scale = self.param("scale", self.scale_init, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        if self.use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            if not self.is_initializing():
                n = x.size // c
                unbiased = var * (n / max(n - 1, 1))
                m = self.momentum
                ra_mean.value = (1 - m) * ra_mean.value + m * lax.stop_gradient(mean)
                ra_var.value = (1 - m) * ra_var.value + m * lax.stop_gradient(unbiased)
        inv = lax.rsqrt(var + self.epsilon) * scale
        return (x - mean) * inv + bias


__all__ = ["BatchNorm", "Conv", "conv2d", "max_pool", "reference_ops"]
