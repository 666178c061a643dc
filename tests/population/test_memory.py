"""Memory budgets: exact parameter bytes, optimizer/gradient arithmetic, activation estimate
(linear in the batch), M_max and the chunk for a budget by hand, bad inputs, XLA's memory
analysis of one step, and that the chunk bounds the working memory of ``map_models``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

from jaxmu.models import mlp, resnet18, small_cnn
from jaxmu.population import chunk_for_budget, map_models, max_models, model_bytes

FIELDS = ("params", "model_state", "grads", "optimizer", "activations")


def test_exact_param_bytes_small_models():
    r = model_bytes(mlp((8, 8, 1), 10), 32)
    # 64*128+128 + 128*64+64 + 64*10+10
    assert r["num_params"] == 17_226 and r["params"] == 4 * 17_226
    assert r["model_state"] == 0
    r = model_bytes(small_cnn((8, 8, 1), 10), 32)
    # conv 3*3*1*16 + bn 2*16 + conv 3*3*16*32 + bn 2*32 + head 32*10+10
    assert r["num_params"] == 144 + 32 + 4608 + 64 + 330 == 5_178
    assert r["params"] == 20_712
    assert r["model_state"] == 4 * 2 * (16 + 32)  # BatchNorm mean and var


def test_exact_param_bytes_resnet18():
    # Traced abstractly (eval_shape + make_jaxpr), never compiled.
    imagenet = model_bytes(resnet18(10, (32, 32, 3), stem="imagenet"), 8)
    assert imagenet["num_params"] == 11_181_642  # torchvision resnet18(num_classes=10)
    assert imagenet["params"] == 44_726_568
    cifar = model_bytes(resnet18(10, (32, 32, 3), stem="cifar"), 8)
    # 3x3 stem instead of 7x7: 7*7*3*64 - 3*3*3*64 = 7,680 fewer weights.
    assert cifar["num_params"] == 11_181_642 - 7_680 == 11_173_962
    assert cifar["params"] == 44_695_848
    # 4,800 BatchNorm channels, each with a running mean and variance.
    assert imagenet["model_state"] == cifar["model_state"] == 4 * 2 * 4_800
    # The CIFAR stem keeps 32x32 feature maps in layer1: more activations (2.5x since the
    # CPU conv layers' custom VJP keeps each conv's input, not XLA's per-op residuals).
    assert cifar["activations"] > 2 * imagenet["activations"]


@pytest.mark.parametrize("slots", [0, 1, 2])
def test_grads_optimizer_total_arithmetic(slots):
    r = model_bytes(small_cnn((8, 8, 1), 10), 16, optimizer_slots=slots)
    assert r["grads"] == r["params"]
    assert r["optimizer"] == slots * r["params"]
    assert r["total"] == sum(r[k] for k in FIELDS)
    assert r["resident"] == r["params"] + r["model_state"] + r["optimizer"]
    assert "measured" not in r


def test_dtype_bytes_scales_floats():
    m = small_cnn((8, 8, 1), 10)
    f32, bf16 = model_bytes(m, 16), model_bytes(m, 16, dtype_bytes=2)
    assert bf16["params"] * 2 == f32["params"]
    assert bf16["model_state"] * 2 == f32["model_state"]
    # Booleans (ReLU masks) and int labels keep their size: a bit more than half.
    assert f32["activations"] / 2 < bf16["activations"] < 0.6 * f32["activations"]


@pytest.mark.parametrize("make", [lambda: mlp((8, 8, 1), 10), lambda: small_cnn((8, 8, 1), 10)])
def test_activations_positive_and_linear_in_batch(make):
    m = make()
    a = {b: model_bytes(m, b)["activations"] for b in (16, 32, 64)}
    assert a[16] > 0
    # Input batch 16 * 64 floats at least.
    assert a[16] >= 16 * 64 * 4
    # Affine in the batch: the per-example part doubles with the batch ...
    assert (a[64] - a[32]) == pytest.approx(2 * (a[32] - a[16]), rel=0.01)
    # ... and the batch-independent part is at most the parameters (the conv layers' custom
    # VJP keeps its kernel as a residual, counted here; the MLP has none).
    fixed = 2 * a[16] - a[32]
    assert 0 <= fixed <= model_bytes(m, 16)["params"] + 0.01 * a[16]


def test_max_models_by_hand():
    assert max_models(1000, 100) == 9  # floor(0.9 * 1000 / 100)
    assert max_models(1000, 100, shared_bytes=150) == 7  # floor(750 / 100)
    assert max_models(1000, 100, headroom=1.0) == 10
    assert max_models(1000, 101, headroom=1.0) == 9
    assert max_models(1000, {"total": 300, "params": 1}) == 3
    assert max_models(100, 1000) == 0
    assert max_models(1000, 100, shared_bytes=2000) == 0
    gib = 2**30
    assert max_models(80 * gib, 1_193_082_364, shared_bytes=184_560_000) == math.floor(
        (0.9 * 80 * gib - 184_560_000) / 1_193_082_364)


def test_chunk_for_budget_by_hand():
    per = {"total": 100, "resident": 10}
    kw = dict(headroom=1.0, per_model=per)
    m = small_cnn((8, 8, 1), 10)
    # Population 2 * 20 * 10 = 400 bytes; (2000 - 400) / 100 = 16 models in flight.
    assert chunk_for_budget(m, 8, 2000, num_models=20, **kw) == 16
    # (2000 - 2 * 5 * 10) / 100 = 19 > 5 models: the whole population at once.
    assert chunk_for_budget(m, 8, 2000, num_models=5, **kw) == 5
    # Shared bytes and headroom: (0.9 * 2000 - 400 - 300) / 100 = 11.
    assert chunk_for_budget(m, 8, 2000, num_models=20, per_model=per, shared_bytes=300) == 11
    assert chunk_for_budget(m, 8, 2000, num_models=20, population_copies=0, **kw) == 20
    assert chunk_for_budget(m, 8, 500, num_models=20, **kw) == 1
    with pytest.raises(ValueError, match="do not fit") as e:
        chunk_for_budget(m, 8, 450, num_models=20, **kw)
    assert "\n" not in str(e.value)


def test_chunk_for_budget_from_model_bytes():
    m = small_cnn((8, 8, 1), 10)
    r = model_bytes(m, 32)
    budget = 2 * 8 * r["resident"] + 3 * r["total"]
    assert chunk_for_budget(m, 32, budget, num_models=8, headroom=1.0) == 3
    assert chunk_for_budget(m, 32, budget - 1, num_models=8, headroom=1.0) == 2
    assert chunk_for_budget(m, 32, 100 * budget, num_models=8) == 8


@pytest.mark.parametrize("call", [
    lambda m: model_bytes(m, 0),
    lambda m: model_bytes(m, -4),
    lambda m: model_bytes(m, 1.5),
    lambda m: model_bytes(m, True),
    lambda m: model_bytes(m, 8, optimizer_slots=-1),
    lambda m: model_bytes(m, 8, dtype_bytes=0),
    lambda m: model_bytes(object(), 8),
    lambda m: max_models(0, 100),
    lambda m: max_models(1000, 0),
    lambda m: max_models(1000, -5),
    lambda m: max_models(1000, {"params": 4}),
    lambda m: max_models(1000, 100, shared_bytes=-1),
    lambda m: max_models(1000, 100, headroom=0),
    lambda m: max_models(1000, 100, headroom=1.5),
    lambda m: max_models(1000, 100, headroom=float("nan")),
    lambda m: chunk_for_budget(m, 8, 10**9, num_models=0),
    lambda m: chunk_for_budget(m, 0, 10**9, num_models=4),
    lambda m: chunk_for_budget(m, 8, 10**9, num_models=4, headroom=2.0),
    lambda m: chunk_for_budget(m, 8, 10**9, num_models=4, population_copies=-1),
    lambda m: chunk_for_budget(m, 8, 10**9, num_models=4, per_model={"total": 5}),
])
def test_bad_inputs_raise(call):
    with pytest.raises(ValueError):
        call(mlp((8, 8, 1), 10))


def test_measure_small_cnn_memory_analysis():
    m = small_cnn((8, 8, 1), 10)
    r = model_bytes(m, 64, measure=True)
    ma = r["measured"]
    if ma is None:
        pytest.skip(f"no compiled.memory_analysis() on backend {jax.default_backend()}")
    assert set(ma) == {"argument", "output", "alias", "temp", "peak"}
    assert ma["peak"] == ma["argument"] + ma["output"] - ma["alias"] + ma["temp"]
    # Arguments: params, BN state, momentum (all donated, so aliased) and the batch.
    assert ma["argument"] >= r["resident"] + 64 * 64 * 4
    assert ma["alias"] == r["resident"]
    # Same order as the estimate (XLA:CPU measured 1.9x: max-pool gradient index buffers).
    assert 0.5 * r["total"] < ma["peak"] < 4 * r["total"]


def test_chunk_bounds_working_memory():
    """The premise of chunk_for_budget: XLA's temporaries grow with the models in flight
    (chunk), not with the population."""

    def f(w, x):
        return jax.grad(lambda v: jnp.sum(jnp.tanh(jnp.tanh(x @ v) @ v.T @ v) ** 2))(w)

    w = jax.ShapeDtypeStruct((8, 64, 256), jnp.float32)
    x = jax.ShapeDtypeStruct((512, 64), jnp.float32)

    def temp(strategy, chunk=None):
        c = jax.jit(map_models(f, strategy, chunk, in_axes=(0, None))).lower(w, x).compile()
        ma = c.memory_analysis()
        if ma is None:
            pytest.skip(f"no compiled.memory_analysis() on backend {jax.default_backend()}")
        return ma.temp_size_in_bytes

    t2, t4, t8 = temp("chunked", 2), temp("chunked", 4), temp("vmap")
    assert t4 == pytest.approx(2 * t2, rel=0.2)
    assert t8 == pytest.approx(4 * t2, rel=0.3)
