"""Population engine: strategy/chunk/device invariance, fold_in(root, id) keys, balanced
masks, resume after a kill, block merge, bad inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.data import make_dataset
from jaxmu.methods import get_method
from jaxmu.models import mlp, small_cnn
from jaxmu.population import (
    auto_strategy,
    balanced_masks,
    fit_population,
    load_population,
    map_models,
    merge_blocks,
    model_keys,
    padding,
    predict_population,
    splits_axes,
    stack_splits,
    unlearn_population,
)
from jaxmu.train import TrainConfig, fit
from jaxmu.types import Splits

CFG = TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=True)


@pytest.fixture(scope="module")
def tiny(digits):
    x = np.asarray(digits.pool.x)[:96]
    y = np.asarray(digits.pool.y)[:96]
    ds = make_dataset(x[:64], y[:64], x[64:], y[64:], name="tiny", num_classes=10,
                      mean=(0.3,), std=(0.38,), hflip=False, crop_pad=1)
    return ds


def _maxdiff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_balanced_masks_exact_halves():
    cand = np.ones(11, bool)
    cand[3] = False
    m = balanced_masks(0, 6, cand)
    assert m.shape == (6, 11)
    assert not m[:, 3].any()
    assert len(set(m.sum(1).tolist())) == 1 and m.sum(1)[0] == 5  # floor(10 / 2)
    per_example = m[:, cand].sum(0)
    assert set(per_example.tolist()) <= {3}  # exactly M/2 = 3 for each candidate
    assert np.array_equal(m, balanced_masks(0, 6, cand))
    assert not np.array_equal(m, balanced_masks(1, 6, cand))
    with pytest.raises(ValueError, match="even"):
        balanced_masks(0, 5, cand)


@pytest.mark.parametrize("model_fn", [lambda: mlp((8, 8, 1), 10, hidden=(16,)),
                                      lambda: small_cnn((8, 8, 1), 10, channels=(4,))])
def test_fit_population_strategy_invariance_and_single_model_rerun(tiny, model_fn):
    model = model_fn()
    masks = balanced_masks(3, 4, np.arange(tiny.pool.size) < tiny.n_train)
    runs = {
        (s, c): fit_population(model, tiny.pool, masks, 7, CFG, strategy=s, chunk=c,
                               progress=False)
        for s, c in [("vmap", None), ("sequential", None), ("chunked", 3), ("sharded", None)]
    }
    assert jax.device_count() == 4  # set by conftest: sharded really uses 4 devices
    base = runs[("sequential", None)]
    for r in runs.values():
        assert _maxdiff(r.params, base.params) < 1e-5
    # Model 2 re-run alone with fold_in(root, 2) equals its slot in the population.
    alone = fit(model, tiny.pool, masks[2], jax.random.fold_in(jax.random.key(7), 2), CFG,
                progress=False)
    assert _maxdiff(jax.tree.map(lambda x: x[2], base.params), alone.params) == 0.0


def test_blocks_merge_equals_one_run_and_resume(tiny, tmp_path):
    model = mlp((8, 8, 1), 10, hidden=(16,))
    masks = balanced_masks(0, 4, np.arange(tiny.pool.size) < tiny.n_train)
    full = fit_population(model, tiny.pool, masks, 1, CFG, strategy="vmap", progress=False)
    a = fit_population(model, tiny.pool, masks[2:], 1, CFG, ids=[2, 3], strategy="vmap",
                       progress=False)
    b = fit_population(model, tiny.pool, masks[:2], 1, CFG, ids=[0, 1], strategy="vmap",
                       progress=False)
    merged = merge_blocks([a, b])
    assert merged.ids == [0, 1, 2, 3]
    assert _maxdiff(merged.params, full.params) == 0.0
    # Kill after one epoch, resume: identical to the uninterrupted run.
    ck = str(tmp_path / "pop")
    fit_population(model, tiny.pool, masks, 1, CFG, strategy="vmap", checkpoint_dir=ck,
                   stop_after=1, progress=False)
    resumed = fit_population(model, tiny.pool, masks, 1, CFG, strategy="vmap",
                             checkpoint_dir=ck, progress=False)
    assert _maxdiff(resumed.params, full.params) == 0.0
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    with pytest.raises(ValueError, match="another run .*config"):
        fit_population(model, tiny.pool, masks, 1, TrainConfig(epochs=3, batch_size=16),
                       strategy="vmap", checkpoint_dir=ck, progress=False)
    with pytest.raises(ValueError, match=r"another run \(differs in key\)"):
        fit_population(model, tiny.pool, masks, 2, CFG, strategy="vmap", checkpoint_dir=ck,
                       progress=False)
    with pytest.raises(ValueError, match=r"another run \(differs in masks_sha256\)"):
        fit_population(model, tiny.pool, masks[::-1], 1, CFG, strategy="vmap",
                       checkpoint_dir=ck, progress=False)


@pytest.mark.slow
def test_blocks_from_separate_processes_merge_to_the_one_process_run(tmp_path):
    # Multi-host without coordination: each process trains and saves its block of ids;
    # merging the saved blocks equals training all models in one process.
    import dataclasses
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import _block_worker as w

    worker = str(Path(__file__).parent / "_block_worker.py")
    blocks = [(0, 4), (4, 6)]
    procs = [subprocess.Popen([sys.executable, worker, str(tmp_path / f"b{a}"), str(a), str(b)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for a, b in blocks]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out.decode()[-2000:]
    loaded = [load_population(tmp_path / f"b{a}", w.MODEL) for a, _ in reversed(blocks)]
    merged = merge_blocks(loaded)
    pool, masks = w.design()
    full = fit_population(w.MODEL, pool, masks, w.ROOT, w.CFG, strategy="vmap", progress=False)
    assert merged.ids == list(range(w.M))
    assert _maxdiff(merged.params, full.params) == 0.0
    assert jax.tree.structure(merged.model_state) == jax.tree.structure(full.model_state)
    with pytest.raises(ValueError, match="population of 'mlp'"):
        load_population(tmp_path / "b0", dataclasses.replace(w.MODEL, name="other"))
    with pytest.raises(FileNotFoundError):
        load_population(tmp_path / "nothing", w.MODEL)


def test_unlearn_population_per_model_splits_and_strategies(tiny):
    model = mlp((8, 8, 1), 10, hidden=(16,))
    n = tiny.pool.size
    train = np.arange(n) < tiny.n_train
    rng = np.random.default_rng(0)
    forget = np.zeros((4, n), bool)
    for i in range(4):
        forget[i, rng.choice(np.flatnonzero(train), 8, replace=False)] = True
    retain = train[None] & ~forget
    splits = stack_splits(tiny.pool, forget, retain, test=~train)
    assert splits.forget.shape == (4, n) and splits.n_forget == 8
    pop = fit_population(model, tiny.pool, np.broadcast_to(train, (4, n)), 0,
                         TrainConfig(epochs=1, batch_size=16), strategy="vmap", progress=False)
    meth = get_method("ft", epochs=1, batch_size=16).bind(model)
    keys = model_keys(5, range(4))
    outs = {s: unlearn_population(meth, pop.params, pop.model_state, splits, keys,
                                  strategy=s, chunk=2)[0]
            for s in ("vmap", "sequential", "chunked", "sharded")}
    one = Splits.build(tiny.pool, forget=forget[1], retain=retain[1], test=~train)
    ref = meth(jax.tree.map(lambda x: x[1], pop.params),
               jax.tree.map(lambda x: x[1], pop.model_state), one, keys[1])[0]
    for p in outs.values():
        assert _maxdiff(jax.tree.map(lambda x: x[1], p), ref) < 1e-5
    logits = predict_population(model, outs["vmap"], pop.model_state, tiny.pool, ~train)
    assert logits.shape == (4, n - tiny.n_train, 10)


def test_sharded_pads_to_the_device_count_records_it_and_matches_vmap(tiny):
    # 5 models on 4 devices (conftest): 3 filler models, dropped after; they never change
    # the real models' results.
    m = 5
    assert jax.device_count() == 4
    model = mlp((8, 8, 1), 10, hidden=(16,))
    n = tiny.pool.size
    train = np.arange(n) < tiny.n_train
    rng = np.random.default_rng(m)
    forget = np.zeros((m, n), bool)
    for i in range(m):
        forget[i, rng.choice(np.flatnonzero(train), 8, replace=False)] = True
    splits = stack_splits(tiny.pool, forget, train[None] & ~forget, test=~train)
    masks = np.broadcast_to(train, (m, n))
    fits = {s: fit_population(model, tiny.pool, masks, 0, TrainConfig(epochs=1, batch_size=16),
                              strategy=s, progress=False) for s in ("vmap", "sharded")}
    assert fits["sharded"].padded_models == (-m) % 4 and fits["vmap"].padded_models == 0
    assert jax.tree.leaves(fits["sharded"].params)[0].shape[0] == m
    assert _maxdiff(fits["sharded"].params, fits["vmap"].params) < 1e-5
    meth = get_method("ft", epochs=1, batch_size=16).bind(model)
    pop = fits["vmap"]
    out = {s: unlearn_population(meth, pop.params, pop.model_state, splits,
                                 model_keys(5, range(m)), strategy=s) for s in ("vmap", "sharded")}
    assert out["sharded"][2]["padded_models"] == (-m) % 4 and out["vmap"][2]["padded_models"] == 0
    assert _maxdiff(out["sharded"][0], out["vmap"][0]) < 1e-5
    assert padding("sharded", m, jax.devices()[:2]) == 1
    assert [padding("sharded", k) for k in (1, 3, 4, 6, 8)] == [3, 1, 0, 2, 0]
    assert padding("vmap", 3) == 0


def test_splits_axes_and_bad_inputs(tiny):
    n = tiny.pool.size
    f = np.zeros((2, n), bool)
    f[0, :3] = True
    f[1, 3:7] = True
    with pytest.raises(ValueError, match="equal across models"):
        stack_splits(tiny.pool, f, ~f)
    with pytest.raises(ValueError, match="same non-zero member count"):
        fit_population(mlp((8, 8, 1), 10), tiny.pool, f, 0, CFG, progress=False)
    with pytest.raises(ValueError, match="unknown strategy"):
        map_models(lambda x: x, "warp")
    with pytest.raises(ValueError, match="chunk"):
        map_models(lambda x: x, "chunked")
    f[1] = f[0]
    ax = splits_axes(stack_splits(tiny.pool, f, ~f))
    assert ax.pool is None and ax.forget == 0


def test_auto_strategy_rule():
    assert auto_strategy("cpu", True, 64, 1) == "sequential"
    assert auto_strategy("cpu", False, 64, 1) == "sequential"
    assert auto_strategy("cpu", False, 256, 1) == "vmap"
    assert auto_strategy("cpu", True, 256, 1) == "sequential"
    assert auto_strategy("gpu", True, 64, 1) == "vmap"
    assert auto_strategy("cpu", True, 64, 4) == "sharded"


def test_has_conv_single_and_stacked():
    import jax.numpy as jnp

    from jaxmu.population import has_conv

    conv = {"k": jnp.zeros((3, 3, 1, 4)), "b": jnp.zeros(4)}
    dense = {"k": jnp.zeros((8, 4)), "b": jnp.zeros(4)}
    assert has_conv(conv) and not has_conv(dense)
    stack = lambda t: {k: jnp.zeros((2, *v.shape)) for k, v in t.items()}  # noqa: E731
    assert has_conv(stack(conv), stacked=True) and not has_conv(stack(dense), stacked=True)
    assert not has_conv(stack(conv))  # 5-D is not a single model's conv kernel


class _FakeProgram:
    """Stands in for ``jax.jit(...)``: ``lower(*args).compile()`` gives a program whose
    memory analysis reports ``peak`` bytes."""

    def __init__(self, peak):
        self.peak, self.calls = peak, []

    def lower(self, *args):
        return self

    def compile(self):
        return self

    def memory_analysis(self):
        return type("MA", (), dict(argument_size_in_bytes=self.peak, output_size_in_bytes=0,
                                   alias_size_in_bytes=0, temp_size_in_bytes=0))()


def test_auto_vmap_halves_the_chunk_until_the_program_fits():
    from jaxmu.population._population import _compile_within_memory

    built = []

    def build(s, c):  # 100 bytes per model in flight + 50 shared
        built.append((s, c))
        return _FakeProgram(50 + 100 * (8 if c is None else c))

    # vmap needs 850 > 0.9 x 500; chunk 4: 450 > 450? no (450 <= 450): fits.
    _, s, c = _compile_within_memory(build, (), 8, True, "vmap", None, 500)
    assert (s, c) == ("chunked", 4) and built == [("vmap", None), ("chunked", 4)]
    built.clear()
    _, s, c = _compile_within_memory(build, (), 8, True, "vmap", None, 200)  # 150 <= 180
    assert (s, c) == ("chunked", 1) and built[-1] == ("chunked", 1) and len(built) == 4
    built.clear()
    # A program that fits, an explicit strategy, or no known limit: compiled once, as asked.
    for auto, strategy, limit in [(True, "vmap", 10_000), (False, "vmap", 200),
                                  (True, "sequential", 200)]:
        _, s, c = _compile_within_memory(build, (), 8, auto, strategy, None, limit)
        assert (s, c) == (strategy, None) and len(built) == 1
        built.clear()
    with pytest.raises(ValueError, match="memory_bytes must be a positive integer"):
        _compile_within_memory(build, (), 8, True, "vmap", None, 0)


def test_fit_and_unlearn_population_fall_back_to_chunks_under_a_memory_budget(tiny,
                                                                              monkeypatch):
    """auto on an accelerator picks vmap; with a budget smaller than XLA's analysis of the
    vmapped program the population runs chunked instead, with the same result."""
    import jaxmu.population._population as pop_mod

    model = mlp((8, 8, 1), 10, hidden=(16,))
    n = tiny.pool.size
    train = np.arange(n) < tiny.n_train
    masks = balanced_masks(3, 4, train)
    ref = fit_population(model, tiny.pool, masks, 7, CFG, strategy="vmap", progress=False)
    monkeypatch.setattr(pop_mod, "resolve_strategy",  # the accelerator rule on CPU
                        lambda s, p, m: "vmap" if s == "auto" else s)
    fitted = fit_population(model, tiny.pool, masks, 7, CFG, progress=False,
                            memory_bytes=1 << 20)
    assert fitted.strategy == "vmap"  # 1 MiB holds this population
    small = fit_population(model, tiny.pool, masks, 7, CFG, progress=False, memory_bytes=1)
    assert small.strategy == "chunked"
    assert _maxdiff(small.params, ref.params) < 1e-5
    forget = masks & (np.cumsum(masks, axis=1) <= 8)  # each model's first 8 members
    splits = stack_splits(tiny.pool, forget, masks & ~forget, test=~train)
    meth = get_method("ft", epochs=1, batch_size=16).bind(model)
    keys = model_keys(5, range(4))
    p_v = unlearn_population(meth, ref.params, ref.model_state, splits, keys,
                             strategy="vmap")[0]
    p_c, _, t = unlearn_population(meth, ref.params, ref.model_state, splits, keys,
                                   memory_bytes=1)
    assert (t["strategy"], t["chunk"]) == ("chunked", 1)
    assert _maxdiff(p_c, p_v) < 1e-5
