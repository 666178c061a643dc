"""Datasets (digits, npz, tfds offline), split builders and Splits validation."""

from __future__ import annotations

import math
import os
import tempfile

import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import prepare_fake_tfds, tiny_dataset
from sklearn.datasets import load_digits as sk_digits
from sklearn.model_selection import train_test_split

from jaxmu.data import (
    DEFAULT_SPLIT_SEED,
    DataNotFoundError,
    classwise_splits,
    label_skewed_splits,
    load_dataset,
    load_digits,
    load_npz,
    load_tfds,
    make_dataset,
    random_splits,
    red_dominance,
    scenario_splits,
    targeted_splits,
)
from jaxmu.types import SPLIT_NAMES, Pool, Splits


def _idx(s: Splits, name: str) -> np.ndarray:
    return np.flatnonzero(np.asarray(s.mask(name)))


def _check_partition(ds, s: Splits):
    """forget/retain/val partition the official train part; test is the official test part."""
    masks = {k: np.asarray(s.mask(k)) for k in SPLIT_NAMES}
    total = sum(m.astype(int) for m in masks.values())
    assert total.max() == 1, "splits overlap"
    train_part = np.arange(ds.pool.size) < ds.n_train
    np.testing.assert_array_equal(masks["forget"] | masks["retain"] | masks["val"], train_part)
    np.testing.assert_array_equal(masks["test"], ~train_part)
    for k in SPLIT_NAMES:
        assert s.size(k) == int(masks[k].sum())


def _same(a: Splits, b: Splits) -> bool:
    return all(np.array_equal(a.mask(k), b.mask(k)) for k in SPLIT_NAMES)


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_metadata(digits):
    p = digits.pool
    assert p.x.shape == (1797, 8, 8, 1) and p.x.dtype == jnp.uint8
    assert p.y.shape == (1797,) and p.y.dtype == jnp.int32
    assert digits.n_train == 1437 and digits.n_test == 360  # ceil(0.2 * 1797) = 360
    assert p.num_classes == 10 and p.name == digits.name == "digits"
    assert (p.hflip, p.crop_pad) == (False, 1)
    assert int(p.x.min()) == 0 and int(p.x.max()) == 255
    assert p.mean == (0.3053,) and p.std == (0.3759,)


def test_digits_fixed_test_split_matches_sklearn(digits):
    d = sk_digits()
    tr, te = train_test_split(np.arange(1797), test_size=0.2, random_state=0, stratify=d.target)
    tr, te = np.sort(tr), np.sort(te)
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    np.testing.assert_array_equal(np.asarray(digits.pool.x), np.concatenate([x[tr], x[te]]))
    np.testing.assert_array_equal(np.asarray(digits.pool.y),
                                  np.concatenate([d.target[tr], d.target[te]]))
    # stratified: every class in the test part in proportion
    counts = np.bincount(np.asarray(digits.pool.y)[digits.n_train:], minlength=10)
    assert counts.min() >= 35
    # deterministic across calls
    again = load_digits()
    np.testing.assert_array_equal(again.pool.x, digits.pool.x)
    assert load_dataset("digits").n_train == digits.n_train


# ----------------------------------------------------------------------------- random splits


def test_random_splits_deep_unlearn_sizes(digits):
    s = random_splits(digits)
    n = digits.n_train
    n_val = math.ceil(0.15 * n)  # sklearn rounds the test part up
    n_forget = math.ceil(0.10 * (n - n_val))
    assert s.sizes() == {"forget": n_forget, "retain": n - n_val - n_forget, "val": n_val,
                         "test": digits.n_test}
    assert s.sizes() == {"forget": 123, "retain": 1098, "val": 216, "test": 360}
    _check_partition(digits, s)


@pytest.mark.parametrize("ff,vf,n", [(0.1, 0.15, 1000), (0.25, 0.1, 37), (0.05, 0.3, 101),
                                     (0.5, 0.5, 9)])
def test_random_splits_size_formula(ff, vf, n):
    ds = tiny_dataset(n_train=n, n_test=5, k=3)
    s = random_splits(ds, ff, vf, seed=7)
    n_val = math.ceil(vf * n)
    assert s.n_val == n_val
    assert s.n_forget == math.ceil(ff * (n - n_val))
    assert s.n_retain == n - n_val - s.n_forget and s.n_test == 5
    _check_partition(ds, s)


def test_random_splits_match_sklearn_and_seeds(digits):
    s = random_splits(digits)
    train, val = train_test_split(np.arange(digits.n_train), test_size=0.15,
                                  random_state=DEFAULT_SPLIT_SEED)
    _, forget = train_test_split(np.sort(train), test_size=0.1, random_state=DEFAULT_SPLIT_SEED)
    np.testing.assert_array_equal(_idx(s, "val"), np.sort(val))
    np.testing.assert_array_equal(_idx(s, "forget"), np.sort(forget))
    assert _same(s, random_splits(digits, seed=DEFAULT_SPLIT_SEED))
    other = random_splits(digits, seed=1)
    assert other.sizes() == s.sizes()
    assert not np.array_equal(other.forget, s.forget)
    assert not np.array_equal(other.val, s.val)


@pytest.mark.parametrize("kw", [dict(forget_fraction=0.0), dict(forget_fraction=1.0),
                                dict(val_fraction=0.0), dict(val_fraction=1.5)])
def test_random_splits_bad_fractions(digits, kw):
    with pytest.raises(ValueError, match="fraction must lie in"):
        random_splits(digits, **kw)


# ----------------------------------------------------------------------------- class-wise


def test_classwise_splits_full_classes(digits):
    s = classwise_splits(digits, [3, 5])
    _check_partition(digits, s)
    y = np.asarray(digits.pool.y)
    f = _idx(s, "forget")
    assert set(y[f]) == {3, 5}
    non_val_train = np.setdiff1d(np.arange(digits.n_train), _idx(s, "val"))
    expect = non_val_train[np.isin(y[non_val_train], [3, 5])]
    np.testing.assert_array_equal(f, expect)  # fraction 1: every non-val member
    assert not np.isin(y[_idx(s, "retain")], [3, 5]).any()
    assert _same(s, classwise_splits(digits, [3, 5]))


def test_classwise_splits_fraction_and_seed(digits):
    s = classwise_splits(digits, [2], fraction=0.3)
    y = np.asarray(digits.pool.y)
    non_val = np.setdiff1d(np.arange(digits.n_train), _idx(s, "val"))
    members = int(np.sum(y[non_val] == 2))
    assert s.n_forget == math.ceil(0.3 * members)
    assert set(y[_idx(s, "forget")]) == {2}
    assert np.sum(y[_idx(s, "retain")] == 2) == members - s.n_forget
    a, b = classwise_splits(digits, [2], 0.3, seed=1), classwise_splits(digits, [2], 0.3, seed=2)
    assert _same(a, classwise_splits(digits, [2], 0.3, seed=1)) and not _same(a, b)


@pytest.mark.parametrize("classes", [[], [10], [-1], [1, 12]])
def test_classwise_splits_bad_classes(digits, classes):
    with pytest.raises(ValueError, match=r"classes must be in \[0, 9\]"):
        classwise_splits(digits, classes)


def test_classwise_bad_fraction(digits):
    with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\]"):
        classwise_splits(digits, [1], fraction=0.0)


# ----------------------------------------------------------------------------- targeted


def test_targeted_splits_top_scores(digits):
    score = lambda x, y: x.astype(np.float64).mean(axis=(1, 2, 3))  # brightness
    s = targeted_splits(digits, score, 50)
    _check_partition(digits, s)
    assert s.n_forget == 50
    x = np.asarray(digits.pool.x).astype(np.float64).mean(axis=(1, 2, 3))
    f, r = _idx(s, "forget"), _idx(s, "retain")
    assert x[f].min() >= x[r].max()  # the 50 brightest non-val train images
    s2 = targeted_splits(digits, score, 0.1)  # a fraction of the non-val train set
    assert s2.n_forget == round(0.1 * (s2.n_forget + s2.n_retain))


def test_targeted_splits_predicate_with_seeded_tiebreak(digits):
    pred = lambda x, y: y == 7
    a = targeted_splits(digits, pred, 20, seed=1)
    b = targeted_splits(digits, pred, 20, seed=2)
    y = np.asarray(digits.pool.y)
    assert set(y[_idx(a, "forget")]) == {7} and set(y[_idx(b, "forget")]) == {7}
    assert _same(a, targeted_splits(digits, pred, 20, seed=1))
    assert not np.array_equal(a.forget, b.forget)


@pytest.mark.parametrize("size", [0, 10_000])
def test_targeted_splits_bad_size(digits, size):
    with pytest.raises(ValueError, match="targeted forget size"):
        targeted_splits(digits, lambda x, y: y, size)


def test_targeted_splits_bad_score_shape(digits):
    with pytest.raises(ValueError, match="one value per example"):
        targeted_splits(digits, lambda x, y: np.zeros(3), 5)


def test_red_dominance_hand_values():
    x = np.zeros((2, 1, 2, 3), np.uint8)
    x[0, 0, 0] = (200, 100, 0)  # 200 - 50 = 150
    x[0, 0, 1] = (0, 40, 40)  # 0 - 40 = -40
    x[1] = (10, 10, 10)  # 0
    np.testing.assert_allclose(red_dominance(x), [(150 - 40) / 2, 0.0])
    with pytest.raises(ValueError, match="RGB"):
        red_dominance(np.zeros((1, 2, 2, 1), np.uint8))


# ----------------------------------------------------------------------------- label-skewed


def test_label_skewed_splits_composition(digits):
    s = label_skewed_splits(digits, forget_fraction=0.1, skew_class=4, skew=0.3)
    _check_partition(digits, s)
    n_train = s.n_forget + s.n_retain
    n = round(0.1 * n_train)
    assert s.n_forget == n
    y = np.asarray(digits.pool.y)[_idx(s, "forget")]
    assert int(np.sum(y == 4)) == round(0.3 * n)
    assert _same(s, label_skewed_splits(digits, 0.1, 4, 0.3))
    assert not np.array_equal(s.forget, label_skewed_splits(digits, 0.1, 4, 0.3, seed=5).forget)


def test_label_skewed_bad_class(digits):
    with pytest.raises(ValueError, match="skew_class"):
        label_skewed_splits(digits, skew_class=10)


# ----------------------------------------------------------------------------- scenarios


def test_scenario_splits_dispatch(digits):
    assert _same(scenario_splits(digits, "random"), random_splits(digits))
    assert _same(scenario_splits(digits, "classwise:3,5"), classwise_splits(digits, [3, 5]))
    assert _same(scenario_splits(digits, "label_skew:2"),
                 label_skewed_splits(digits, 0.1, 2, 0.3))
    s = scenario_splits(digits, "random", forget_fraction=0.2, seed=3)
    assert _same(s, random_splits(digits, 0.2, 0.15, 3))


def test_scenario_red_on_rgb():
    ds = tiny_dataset(n_train=60, n_test=6, c=3)
    a = scenario_splits(ds, "red:5")
    assert _same(a, targeted_splits(ds, red_dominance, 5))
    b = scenario_splits(ds, "red:0.2")
    assert b.n_forget == round(0.2 * (b.n_forget + b.n_retain))


@pytest.mark.parametrize("scenario,match", [
    ("bogus", "unknown forget scenario 'bogus'; valid: random"),
    ("random:3", "unknown forget scenario"),
    ("classwise:x", "bad forget scenario 'classwise:x'"),
    ("red:abc", "bad forget scenario"),
])
def test_scenario_splits_errors(digits, scenario, match):
    with pytest.raises(ValueError, match=match):
        scenario_splits(digits, scenario)


# ----------------------------------------------------------------------------- Splits.build


@pytest.fixture
def pool():
    return Pool(jnp.zeros((6, 2, 2, 1), jnp.uint8), jnp.asarray([0, 1, 2, 0, 1, 2], jnp.int32),
                num_classes=3)


def test_build_overlap(pool):
    with pytest.raises(ValueError, match="forget and retain overlap in 1 examples"):
        Splits.build(pool, forget=[0, 1], retain=[1, 2])
    with pytest.raises(ValueError, match="retain and test overlap in 2 examples"):
        Splits.build(pool, forget=[0], retain=[1, 2, 3], test=[2, 3])


@pytest.mark.parametrize("which", ["forget", "retain"])
def test_build_empty(pool, which):
    kw = dict(forget=[0], retain=[1, 2])
    kw[which] = np.zeros(6, bool)
    with pytest.raises(ValueError, match=f"the {which} set is empty"):
        Splits.build(pool, **kw)
    kw[which] = None
    with pytest.raises(ValueError, match=f"the {which} set is empty"):
        Splits.build(pool, **kw)


def test_build_wrong_length(pool):
    with pytest.raises(ValueError, match=r"val mask must have shape \(6,\)"):
        Splits.build(pool, forget=[0], retain=[1], val=np.ones(5, bool))


@pytest.mark.parametrize("bad,match", [
    (np.array([0, 6]), r"forget indices must lie in \[0, 5\]"),
    (np.array([-1]), "forget indices must lie"),
    (np.array([1, 1]), "forget indices contain duplicates"),
    (np.array([0.5]), "forget must be a bool mask or a 1-D integer index array"),
    (np.array([[0]]), "forget must be a bool mask or a 1-D integer index array"),
])
def test_build_bad_indices(pool, bad, match):
    with pytest.raises(ValueError, match=match):
        Splits.build(pool, forget=bad, retain=[2, 3])


def test_build_labels_out_of_range():
    p = Pool(jnp.zeros((4, 2, 2, 1), jnp.uint8), jnp.asarray([0, 1, 3, 0], jnp.int32),
             num_classes=3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], found range \[0, 3\]"):
        Splits.build(p, forget=[0], retain=[1])


def test_build_is_not_a_trace_error(pool):
    """Validation happens on the host, with numpy inputs or jax arrays alike."""
    s = Splits.build(pool, forget=jnp.asarray([True, False, False, False, False, False]),
                     retain=jnp.asarray([1, 2]))
    assert s.sizes() == {"forget": 1, "retain": 2, "val": 0, "test": 0}


# ----------------------------------------------------------------------------- make_dataset / npz


def test_make_dataset_nhw_floats_and_stats():
    x = np.array([[[0.0, 1.0]], [[0.5, 0.25]]])  # [2, 1, 2] floats in [0, 1]
    ds = make_dataset(x, [0, 1], x[:1], [1], name="f")
    assert ds.pool.x.shape == (3, 1, 2, 1) and ds.pool.x.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(ds.pool.x)[:2, 0, :, 0], [[0, 255], [128, 64]])
    assert ds.n_train == 2 and ds.n_test == 1 and ds.pool.num_classes == 2
    f = np.array([0, 255, 128, 64]) / 255.0
    np.testing.assert_allclose(ds.pool.mean, [f.mean()])
    np.testing.assert_allclose(ds.pool.std, [f.std()])


@pytest.mark.parametrize("kw,match", [
    (dict(x_train=np.zeros((2, 3), np.uint8)), r"x_train must be \[N, H, W\]"),
    (dict(x_test=np.zeros((1, 3, 2, 1), np.uint8)), "train/test image shapes differ"),
    (dict(x_train=np.full((2, 2, 2), 300.0)), r"^x_train values lie in \[300, 300\]; images "),
    (dict(x_train=np.full((2, 2, 2), -0.5)), r"^x_train values lie in \[-0.5, -0.5\]"),
    (dict(y_train=[0, 1, 1]), r"^y_train has 3 labels for 2 images in x_train$"),
    (dict(x_train=np.zeros((0, 2, 2), np.uint8), y_train=[]), "^the train set is empty$"),
    (dict(x_test=np.zeros((0, 2, 2), np.uint8), y_test=[]), "^the test set is empty$"),
    (dict(x_train=np.zeros((2, 2, 2), bool)), "^x_train has dtype bool; images must be"),
    (dict(y_train=[0.0, 1.5]), "^y_train must hold integer class labels, got non-integer"),
    (dict(y_test=[-1]), r"^y_test labels lie in \[-1, -1\]; expected \[0, inf\)$"),
    (dict(y_train=np.zeros((2, 2), int)), r"^y_train must be a 1-d array of class labels"),
])
def test_make_dataset_errors(kw, match):
    base = dict(x_train=np.zeros((2, 2, 2), np.uint8), y_train=[0, 1],
                x_test=np.zeros((1, 2, 2), np.uint8), y_test=[1])
    base.update(kw)
    with pytest.raises(ValueError, match=match):
        make_dataset(**base, name="e")


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_load_npz_with_test_part(tmp_path):
    rng = np.random.default_rng(0)
    x, xt = rng.integers(0, 256, (12, 5, 5, 3), np.uint8), rng.integers(0, 256, (4, 5, 5, 3),
                                                                        np.uint8)
    y, yt = np.arange(12) % 3, np.arange(4) % 3
    p = _save(tmp_path / "faces.npz", x=x, y=y, x_test=xt, y_test=yt)
    ds = load_npz(p, crop_pad=0, hflip=False)
    assert ds.name == "faces" and ds.n_train == 12 and ds.n_test == 4
    np.testing.assert_array_equal(np.asarray(ds.pool.x), np.concatenate([x, xt]))
    np.testing.assert_array_equal(np.asarray(ds.pool.y), np.concatenate([y, yt]))
    assert ds.pool.num_classes == 3 and (ds.pool.crop_pad, ds.pool.hflip) == (0, False)
    assert load_dataset(str(p)).n_train == 12
    assert load_npz(p, name="other", num_classes=5).pool.num_classes == 5


def test_load_npz_without_test_part_is_stratified(tmp_path):
    x = np.arange(20 * 4 * 4, dtype=np.int64).reshape(20, 4, 4) % 256
    y = np.arange(20) % 2
    p = _save(tmp_path / "d.npz", x=x.astype(np.uint8), y=y)
    ds = load_npz(p, test_fraction=0.2)
    tr, te = train_test_split(np.arange(20), test_size=0.2, random_state=0, stratify=y)
    assert ds.n_train == 16 and ds.n_test == 4
    np.testing.assert_array_equal(np.asarray(ds.pool.y), np.concatenate([y[np.sort(tr)],
                                                                          y[np.sort(te)]]))
    np.testing.assert_array_equal(np.asarray(ds.pool.x)[..., 0],
                                  x[np.concatenate([np.sort(tr), np.sort(te)])])
    assert np.bincount(np.asarray(ds.pool.y)[16:]).tolist() == [2, 2]
    with pytest.raises(ValueError, match="test_fraction"):
        load_npz(p, test_fraction=1.0)


def test_load_npz_floats_in_unit_interval(tmp_path):
    x = np.linspace(0, 1, 10 * 2 * 2).reshape(10, 2, 2).astype(np.float32)
    p = _save(tmp_path / "f.npz", x=x, y=np.arange(10) % 2, x_test=x[:2], y_test=[0, 1])
    ds = load_npz(p)
    assert ds.pool.x.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(ds.pool.x)[:10, ..., 0], np.round(x * 255))


def test_load_npz_bad_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")
    p = _save(tmp_path / "nox.npz", images=np.zeros((2, 2, 2)), y=[0, 1])
    with pytest.raises(ValueError, match=r"must contain arrays 'x' and 'y' \(found \['images'"):
        load_npz(p)
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_npz(tmp_path / "text.npz")
    good = _save(tmp_path / "t.npz", x=np.zeros((10, 4, 4), np.uint8), y=np.arange(10) % 2)
    raw = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_npz(tmp_path / "trunc.npz")
    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        load_npz(tmp_path / "arr.npy")
    bad = _save(tmp_path / "neg.npz", x=-np.ones((10, 2, 2)), y=np.arange(10) % 2)
    with pytest.raises(ValueError, match=r"neg.npz: x values lie in \[-1, -1\]; images"):
        load_npz(bad)


def test_load_dataset_unknown():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; valid: digits, cifar10"):
        load_dataset("svhn")


# ----------------------------------------------------------------------------- tfds (offline)


N_TR, N_TE = 12, 5


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.image_classification import cifar, mnist

    d = tmp_path_factory.mktemp("tfds")
    # fake_tfds_builder: example i of split s is the constant image 10 * i + s, label i % 10
    prepare_fake_tfds(d, ((cifar.Cifar10, (32, 32, 3)), (mnist.MNIST, (28, 28, 1))),
                      N_TR, N_TE)
    return str(d)


def _check_tfds_content(ds):
    x, y = np.asarray(ds.pool.x), np.asarray(ds.pool.y)
    assert ds.n_train == N_TR and ds.n_test == N_TE
    # every image is constant; recover (split, i) from its value and check the label
    v = x[:, 0, 0, 0].astype(int)
    assert (x == v[:, None, None, None]).all()
    split = v % 10
    np.testing.assert_array_equal(split, [0] * N_TR + [1] * N_TE)
    np.testing.assert_array_equal(y, (v // 10) % 10)
    assert sorted(v[:N_TR] // 10) == list(range(N_TR))
    assert sorted(v[N_TR:] // 10) == list(range(N_TE))


def test_load_tfds_cifar10_offline(tfds_dir):
    ds = load_tfds("cifar10", tfds_dir)
    assert ds.pool.x.shape == (N_TR + N_TE, 32, 32, 3) and ds.pool.x.dtype == jnp.uint8
    assert ds.pool.y.dtype == jnp.int32 and ds.pool.num_classes == 10
    assert ds.pool.mean == (0.4914, 0.4822, 0.4465) and ds.pool.std == (0.2023, 0.1994, 0.2010)
    assert (ds.pool.hflip, ds.pool.crop_pad, ds.name) == (True, 4, "cifar10")
    _check_tfds_content(ds)
    assert load_dataset("cifar10", tfds_dir).n_train == N_TR


def test_load_tfds_mnist_is_32x32_rgb(tfds_dir):
    ds = load_tfds("mnist", tfds_dir)
    assert ds.pool.x.shape == (N_TR + N_TE, 32, 32, 3) and ds.pool.x.dtype == jnp.uint8
    assert ds.pool.mean == (0.1307,) * 3 and (ds.pool.hflip, ds.pool.crop_pad) == (True, 0)
    _check_tfds_content(ds)  # a constant 28x28 image resizes to the same constant
    assert load_dataset("mnist", tfds_dir).n_train == N_TR  # no IDX files there: tfds


def test_load_tfds_missing_dataset(tfds_dir, tmp_path):
    for name, data_dir in (("cifar100", tfds_dir), ("fashion_mnist", str(tmp_path))):
        with pytest.raises(DataNotFoundError) as e:
            load_tfds(name, data_dir)
        msg = str(e.value)
        assert "\n" not in msg and f"tfds build {name}" in msg and data_dir in msg
    with pytest.raises(DataNotFoundError, match="does not exist.*tfds build cifar10"):
        load_tfds("cifar10", str(tmp_path / "nowhere"))
    assert issubclass(DataNotFoundError, ValueError)


def test_load_tfds_leaves_no_temporary_directories(tfds_dir, tmp_path, monkeypatch):
    # tfds' GCS metadata lookup makes an empty tmp*tfds directory per builder; load_tfds
    # confines those to a private directory it removes (here: inside tmp_path).
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    load_tfds("cifar10", tfds_dir)
    with pytest.raises(DataNotFoundError):
        load_tfds("fashion_mnist", str(tmp_path))
    assert list(scratch.iterdir()) == []
    assert tempfile.tempdir == str(scratch)


def test_load_tfds_unknown_name():
    with pytest.raises(ValueError, match="unknown tfds dataset 'svhn'; valid: cifar10"):
        load_tfds("svhn")
