"""The population store and the cached design populations behind every audit."""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxmu.evaluation import design_logits, ulira_design
from jaxmu.io import CorruptCheckpointWarning
from jaxmu.methods import get_method
from jaxmu.models import mlp
from jaxmu.population import PopulationStore, array_digest, method_identity
from jaxmu.train import TrainConfig
from jaxmu.types import Pool, Splits

RECIPE = TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=False)


def _splits(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)
    y = rng.integers(0, 3, n).astype(np.int32)
    pool = Pool(x, y, num_classes=3, mean=(0.5,), std=(0.25,), name="tiny", hflip=False,
                crop_pad=0)
    return Splits.build(pool, forget=np.arange(4), retain=np.arange(4, 40),
                        val=np.arange(40, n))


def test_store_round_trip_and_identity(tmp_path):
    store = PopulationStore(tmp_path)
    ident = {"a": 1, "b": [1.5, "x"]}
    arrays = {"logits": np.arange(12, dtype=np.float32).reshape(2, 3, 2),
              "mask": np.array([True, False])}
    calls = []

    def build():
        calls.append(1)
        return arrays, {"run_s": 3.0}

    got, info = store.get_or_build("runs", ident, build)
    assert not info["from_store"] and info["run_s"] == 3.0 and len(calls) == 1
    got2, info2 = store.get_or_build("runs", ident, build)
    assert info2["from_store"] and info2["run_s"] == 3.0 and len(calls) == 1
    for k in arrays:
        np.testing.assert_array_equal(got2[k], arrays[k])
        assert got2[k].dtype == arrays[k].dtype
    # another identity is another entry; key order does not matter
    assert store.key("runs", {"b": [1.5, "x"], "a": 1}) == store.key("runs", ident)
    assert store.key("runs", {"a": 2, "b": [1.5, "x"]}) != store.key("runs", ident)
    assert store.load("runs", {"a": 2}) is None


def test_store_without_root_builds_every_time():
    store = PopulationStore(None)
    n = []
    for _ in range(2):
        _, info = store.get_or_build("runs", {"a": 1}, lambda: (n.append(1) or
                                                               ({"x": np.zeros(2)}, {})))
        assert not info["from_store"]
    assert len(n) == 2


def test_store_corrupt_and_foreign_entries_are_set_aside(tmp_path, monkeypatch):
    store = PopulationStore(tmp_path)
    ident = {"a": 1}
    store.save("runs", ident, {"x": np.arange(1000, dtype=np.float32)})
    path = store.path("runs", ident)
    data = next(p for p in (path / "0").rglob("*") if p.is_file() and p.stat().st_size >= 4000)
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert store.load("runs", ident) is None
    assert any(issubclass(x.category, CorruptCheckpointWarning) for x in w)
    assert list(path.glob("0.corrupt-*"))
    # an intact entry that answers another request (a hash collision, a hand-copied
    # directory): its stored identity differs -> set aside, never reused
    store.save("runs", {"a": 2}, {"x": np.ones(3)})
    monkeypatch.setattr(PopulationStore, "key", lambda self, kind, ident: "runs_same")
    store.save("runs", {"a": 2}, {"x": np.ones(3)})
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert store.load("runs", ident) is None
    assert any("identity" in str(x.message) for x in w)
    assert list((tmp_path / "populations" / "runs_same").glob("0.corrupt-*"))
    assert store.load("runs", {"a": 2}) is None  # moved aside: gone for everyone


def test_array_digest_and_method_identity():
    a = np.arange(6, dtype=np.int32)
    assert array_digest(a) == array_digest(a.copy())
    assert array_digest(a) != array_digest(a.astype(np.int64))
    assert array_digest(a) != array_digest(a.reshape(2, 3))
    m = get_method("ft", epochs=1)
    ident = method_identity(m)
    assert ident["name"] == "ft" and ident["hparams"]["epochs"] == 1
    assert method_identity(m.with_hparams(epochs=2)) != ident
    assert method_identity(None) == {"name": None}


@pytest.fixture(scope="module")
def setting():
    splits = _splits()
    model = mlp((4, 4, 1), 3, hidden=(8,))
    design = ulira_design(splits, 4, 2, 0.25, seed=0)
    return splits, model, design


def test_design_logits_cached_and_identical(setting, tmp_path):
    splits, model, design = setting
    method = get_method("ft", epochs=1, lr=0.01).bind(model)
    kw = dict(seed=0, config=RECIPE, strategy="vmap", cache_dir=str(tmp_path),
              progress=False)
    a = design_logits(model, splits, design, method, keep_params=(1, 5), **kw)
    assert a.logits.shape == (8, int(design.candidates.sum()), 3)
    assert not a.timings["from_store"]
    b = design_logits(model, splits, design, method, keep_params=(1, 5), **kw)
    assert b.timings["from_store"] and b.timings["originals_s"] == a.timings["originals_s"]
    np.testing.assert_array_equal(a.logits, b.logits)
    for x, y in zip(jax.tree.leaves((a.params, a.model_state)),
                    jax.tree.leaves((b.params, b.model_state)), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert jax.tree.structure(a.params) == jax.tree.structure(b.params)
    # roles: run r = (m, k) forgot design.forget[m, k]; members are the original's IN half
    cand = design.candidates
    np.testing.assert_array_equal(a.forget[3], design.forget[1, 1][cand])
    np.testing.assert_array_equal(a.member[3], design.in_masks[1][cand])
    assert (a.groups == np.repeat(np.arange(4), 2)).all()
    assert not (a.forget & ~a.member).any() and (a.retain | a.forget | a.unseen).all()
    # no cache: the same numbers, built again
    c = design_logits(model, splits, design, method, seed=0, config=RECIPE, strategy="vmap",
                      cache_dir=None, progress=False)
    np.testing.assert_array_equal(a.logits, c.logits)
    # another stream is another (independent) population, originals are shared
    d = design_logits(model, splits, design, method, stream=1, **kw)
    assert not d.timings["from_store"]
    assert not np.array_equal(a.logits, d.logits) or method.definition.name == "original"


def test_design_logits_originals(setting, tmp_path):
    splits, model, design = setting
    o = design_logits(model, splits, design, None, seed=0, config=RECIPE, strategy="vmap",
                      cache_dir=str(tmp_path), progress=False)
    assert o.logits.shape[0] == 4 and not o.forget.any()
    np.testing.assert_array_equal(o.member, design.in_masks[:, design.candidates])
    assert (o.groups == np.arange(4)).all()
    with pytest.raises(ValueError, match="keep_params"):
        design_logits(model, splits, design, None, seed=0, config=RECIPE, keep_params=(4,),
                      cache_dir=None, progress=False)


def test_store_entries_live_under_populations(setting, tmp_path):
    splits, model, design = setting
    design_logits(model, splits, design, None, seed=0, config=RECIPE, strategy="vmap",
                  cache_dir=str(tmp_path), progress=False)
    assert list(Path(tmp_path, "populations").glob("originals_*"))
