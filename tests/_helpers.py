"""Small shared test helpers (plain functions, no global state).

Imported by tests as ``from _helpers import ...`` (``tests/`` is on ``sys.path`` because
it holds ``conftest.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmu.data import load_digits, make_dataset
from jaxmu.types import Pool, Splits


def tiny_dataset(n_train=40, n_test=10, hw=4, c=3, k=4, seed=0, **kw):
    """A random uint8 dataset with every class present in train and test."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_test, hw, hw, c), dtype=np.uint8)
    y = np.concatenate([np.arange(n_train) % k, np.arange(n_test) % k])
    return make_dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], name="tiny",
                        num_classes=k, **kw)


def digits_subset_splits(n=64, n_forget=8, n_val=8, n_test=8, seed=0) -> Splits:
    """A Pool of ``n`` digits examples (8x8x1) with fixed forget/retain/val/test splits."""
    ds = load_digits()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(ds.pool.size, n, replace=False))
    pool = Pool(ds.pool.x[idx], ds.pool.y[idx], num_classes=10, mean=ds.pool.mean,
                std=ds.pool.std, name="digits64", hflip=False, crop_pad=1)
    perm = rng.permutation(n)
    f, v, t = n_forget, n_forget + n_val, n_forget + n_val + n_test
    return Splits.build(pool, forget=np.sort(perm[:f]), val=np.sort(perm[f:v]),
                        test=np.sort(perm[v:t]), retain=np.sort(perm[t:]))


def tree_bitwise_equal(a, b) -> bool:
    """Same structure, shapes, dtypes and bits."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    if ta != tb:
        return False
    return all(
        np.asarray(x).dtype == np.asarray(y).dtype
        and np.asarray(x).shape == np.asarray(y).shape
        and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(la, lb, strict=True)
    )


def assert_tree_bitwise_equal(a, b, what=""):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb, f"{what}: structures differ:\n{ta}\n{tb}"
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(a)[0]]
    for p, x, y in zip(paths, la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}{p}: {x.dtype}{x.shape} vs " \
                                                          f"{y.dtype}{y.shape}"
        assert np.array_equal(x, y), f"{what}{p}: values differ (max |d| = " \
                                     f"{np.max(np.abs(x.astype(np.float64) - y)):.3g})"


def flat_paths(tree) -> dict[str, jax.Array]:
    """``{"a/b/kernel": leaf}`` for a nested dict pytree."""
    from jaxmu.models import path_str

    return {path_str(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def randn_like_tree(key, tree):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef, [jax.random.normal(k, x.shape, jnp.float32) for k, x in zip(keys, leaves,
                                                                            strict=True)])


def fake_tfds_builder(base, shape, n_train, n_test):
    """A tfds builder class named like ``base`` (e.g. ``cifar.Cifar10``) that writes tiny
    deterministic data offline: example ``i`` of split ``s`` (train 0, test 1) is the
    constant image ``10 * i + s`` with label ``i % 10``."""
    import tensorflow_datasets as tfds  # noqa: F401

    class Fake(base, skip_registration=True):
        def _split_generators(self, dl_manager):
            return {"train": self._gen(n_train, 0), "test": self._gen(n_test, 1)}

        def _gen(self, n, s):
            extra = "id" in self.info.features
            for i in range(n):
                ex = {"image": np.full(shape, 10 * i + s, np.uint8), "label": i % 10}
                yield i, ({**ex, "id": f"{s}_{i}"} if extra else ex)

    Fake.name = base.name
    return Fake


def prepare_fake_tfds(data_dir, builders, n_train, n_test):
    """Prepares ``fake_tfds_builder(base, shape, n_train, n_test)`` for each ``(base, shape)``
    under ``data_dir`` without any download."""
    import tensorflow_datasets as tfds

    from jaxmu.data._tfds import scratch_tempdir

    cfg = tfds.download.DownloadConfig(try_download_gcs=False)
    for base, shape in builders:
        with scratch_tempdir():
            builder = fake_tfds_builder(base, shape, n_train, n_test)(data_dir=str(data_dir))
            builder.download_and_prepare(download_config=cfg)
