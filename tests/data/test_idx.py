"""IDX files: format round trips, corrupt files, the MNIST-layout loader and where
``load_dataset`` finds mnist / fashion_mnist (an explicit folder, the Debian package, tfds)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from jaxmu.data import (
    SYSTEM_IDX_DIRS,
    DataNotFoundError,
    find_idx_files,
    load_dataset,
    load_idx,
    read_idx,
    write_idx,
)
from jaxmu.data._tfds import grey_to_rgb32

FASHION_DIR = SYSTEM_IDX_DIRS["fashion_mnist"][0]
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")

# A hand-written file: magic 0x00000803 (uint8, 3 dims), sizes 2 x 2 x 3, then 12 bytes.
HAND = bytes.fromhex("00000803" "00000002" "00000002" "00000003") + bytes(range(12))


# ----------------------------------------------------------------------------- the format


@pytest.mark.parametrize("gz", [False, True])
def test_read_hand_written_file(tmp_path, gz):
    p = tmp_path / ("a.gz" if gz else "a")
    p.write_bytes(gzip.compress(HAND) if gz else HAND)
    a = read_idx(p)
    assert a.dtype == np.uint8 and a.shape == (2, 2, 3)
    np.testing.assert_array_equal(a, np.arange(12).reshape(2, 2, 3))
    a[0, 0, 0] = 7  # a writable copy, not a view of the file's bytes


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    (tmp_path / "plain.gz").write_bytes(HAND)
    (tmp_path / "packed").write_bytes(gzip.compress(HAND))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), read_idx(tmp_path / "packed"))


@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B),
                                        (np.int32, 0x0C), (np.float32, 0x0D),
                                        (np.float64, 0x0E)])
@pytest.mark.parametrize("name", ["x", "x.gz"])
def test_write_read_round_trip(tmp_path, dtype, code, name):
    a = (np.arange(-6, 18).reshape(2, 3, 4) * 3).astype(dtype)
    p = write_idx(tmp_path / name, a)
    raw = p.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    header = (gzip.decompress(raw) if name.endswith(".gz") else raw)[:16]
    assert header == struct.pack(">HBBIII", 0, code, 3, 2, 3, 4)  # big-endian header
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == (2, 3, 4)
    np.testing.assert_array_equal(b, a)


def test_write_refuses_what_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="^IDX cannot hold dtype int64; valid: uint8"):
        write_idx(tmp_path / "a", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"^IDX cannot hold an array of shape \(\)$"):
        write_idx(tmp_path / "a", np.uint8(3))


@pytest.mark.parametrize("data,match", [
    (HAND[:-1], r"a: truncated: the header declares uint8 \[2, 2, 3\] \(12 bytes of data\), "
                r"the file holds 11$"),
    (HAND + b"\0", r"a: trailing bytes: the header declares uint8 \[2, 2, 3\] \(12 bytes"),
    (HAND[:10], r"a: truncated IDX header \(10 bytes, 3 dimensions need 16\)$"),
    (HAND[:3], "a: 3 bytes is too short for an IDX header$"),
    (b"", "a: 0 bytes is too short"),
    (b"\x01\x00" + HAND[2:], r"a: not an IDX file \(magic number 0x01000803, expected "),
    (b"\x00\x00\x07\x03" + HAND[4:], r"a: unknown IDX data type code 0x07 \(valid: 0x08, "),
    (b"\x00\x00\x08\x00", "a: the IDX header declares 0 dimensions$"),
])
def test_corrupt_files(tmp_path, data, match):
    for p, payload in ((tmp_path / "a", data), (tmp_path / "gz" / "a", gzip.compress(data))):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(payload)
        with pytest.raises(ValueError, match=match) as e:
            read_idx(p)
        assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_corrupt_gzip(tmp_path):
    packed = gzip.compress(HAND)
    cases = {"cut": packed[: len(packed) // 2],                       # truncated stream
             "crc": packed[:-8] + b"\0\0\0\0" + packed[-4:],        # bad CRC
             "junk": packed[:10] + b"\xff" * (len(packed) - 10)}     # garbage deflate data
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="corrupt or truncated gzip data") as e:
            read_idx(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value)
        assert not isinstance(e.value, DataNotFoundError)


def test_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="IDX file .*nope does not exist"):
        read_idx(tmp_path / "nope")


# ----------------------------------------------------------------------------- MNIST layout


def _write_mnist(d: Path, n_train=20, n_test=10, gz=True, seed=0, **override):
    """Four IDX files of random 28x28 images; labels i % 10. ``override``: stem -> array."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {STEMS[0]: rng.integers(0, 256, (n_train, 28, 28), np.uint8),
              STEMS[1]: (np.arange(n_train) % 10).astype(np.uint8),
              STEMS[2]: rng.integers(0, 256, (n_test, 28, 28), np.uint8),
              STEMS[3]: (np.arange(n_test) % 10).astype(np.uint8)}
    arrays.update(override)
    for stem, a in arrays.items():
        write_idx(d / (stem + (".gz" if gz else "")), a)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_round_trip(tmp_path, gz):
    a = _write_mnist(tmp_path, gz=gz)
    ds = load_idx("fashion_mnist", tmp_path)
    p = ds.pool
    assert (ds.name, ds.n_train, ds.n_test, p.num_classes) == ("fashion_mnist", 20, 10, 10)
    assert p.x.shape == (30, 32, 32, 3) and p.x.dtype == jnp.uint8 and p.y.dtype == jnp.int32
    # the tfds loader's preprocessing: resized to 32x32 RGB, fixed stats, flip, no crop
    assert (p.mean, p.std, p.hflip, p.crop_pad) == ((0.2860,) * 3, (0.3530,) * 3, True, 0)
    x = np.concatenate([a[STEMS[0]], a[STEMS[2]]])[..., None]
    np.testing.assert_array_equal(np.asarray(p.x), grey_to_rgb32(x))  # train first, file order
    np.testing.assert_array_equal(np.asarray(p.y), np.r_[np.arange(20) % 10, np.arange(10)])
    assert load_idx("mnist", tmp_path).pool.mean == (0.1307,) * 3


def test_constant_images_survive_the_resize(tmp_path):
    imgs = np.repeat(np.arange(0, 250, 25, dtype=np.uint8)[:, None, None], 28, 1).repeat(28, 2)
    _write_mnist(tmp_path, 10, 10, **{STEMS[0]: imgs, STEMS[2]: imgs})
    x = np.asarray(load_idx("mnist", tmp_path).pool.x)
    assert (x == np.r_[np.arange(0, 250, 25), np.arange(0, 250, 25)][:, None, None, None]).all()


def test_raw_file_preferred_over_gz(tmp_path):
    _write_mnist(tmp_path, gz=True)
    write_idx(tmp_path / STEMS[1], np.full(20, 3, np.uint8))  # raw labels next to the .gz
    assert find_idx_files(tmp_path)[STEMS[1]] == tmp_path / STEMS[1]
    assert find_idx_files(tmp_path)[STEMS[0]] == tmp_path / (STEMS[0] + ".gz")
    assert set(np.asarray(load_idx("mnist", tmp_path).pool.y)[:20]) == {3}


def test_find_idx_files_none_or_partial(tmp_path):
    assert find_idx_files(tmp_path) is None
    write_idx(tmp_path / (STEMS[0] + ".gz"), np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataNotFoundError, match=r"holds only some IDX files: missing "
                                                r"train-labels-idx1-ubyte\[.gz\], t10k-images"):
        find_idx_files(tmp_path)
    with pytest.raises(DataNotFoundError, match="no IDX files in"):
        load_idx("mnist", tmp_path / "empty")


@pytest.mark.parametrize("override,bad,match", [
    ({STEMS[1]: np.r_[np.arange(19) % 10, 10].astype(np.uint8)}, STEMS[1],
     r"labels lie in \[0, 10\]; expected \[0, 9\]$"),
    ({STEMS[3]: np.zeros(9, np.uint8)}, STEMS[3], "has 9 labels for 10 images in .*t10k-images"),
    ({STEMS[2]: np.zeros((10, 32, 32), np.uint8)}, STEMS[2],
     r"has shape \(10, 32, 32, 1\); fashion_mnist images must be 28x28 grey$"),
    ({STEMS[0]: np.full((20, 28, 28), np.nan, np.float32)}, STEMS[0],
     r"has 15680 non-finite values \(NaN or inf\) out of 15680$"),
    ({STEMS[0]: np.linspace(-3, 7, 20 * 28 * 28).reshape(20, 28, 28)}, STEMS[0],
     r"values lie in \[-3, 7\]; images must be uint8"),
    ({STEMS[1]: np.zeros((20, 2), np.uint8)}, STEMS[1], "must be a 1-d array of class labels"),
])
def test_load_idx_invalid_content_names_the_file(tmp_path, override, bad, match):
    _write_mnist(tmp_path, **override)
    with pytest.raises(ValueError, match=match) as e:
        load_idx("fashion_mnist", tmp_path)
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / (bad + ".gz")) + " ") and "\n" not in msg


def test_load_idx_float_images_in_unit_interval_are_scaled(tmp_path):
    x = np.zeros((10, 28, 28), np.float32)
    x[:, :, :] = (np.arange(10) / 9)[:, None, None]
    _write_mnist(tmp_path, 10, 10, **{STEMS[0]: x, STEMS[2]: x})
    got = np.asarray(load_idx("mnist", tmp_path).pool.x)[:10, 5, 5, 0]
    np.testing.assert_array_equal(got, np.round(np.arange(10) / 9 * 255))


def test_load_idx_corrupt_file_names_it(tmp_path):
    _write_mnist(tmp_path)
    p = tmp_path / (STEMS[2] + ".gz")
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        load_dataset("fashion_mnist", str(tmp_path))


def test_load_idx_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="no IDX layout for dataset 'cifar10'; valid: mnist"):
        load_idx("cifar10", tmp_path)


# ----------------------------------------------------------------------------- load_dataset


@pytest.fixture
def no_system_dir(tmp_path, monkeypatch):
    """The Debian package's folder points at an empty folder."""
    empty = tmp_path / "system"
    empty.mkdir()
    monkeypatch.setitem(SYSTEM_IDX_DIRS, "fashion_mnist", (str(empty), "dataset-fashion-mnist"))
    return empty


def test_data_dir_with_idx_files_comes_first(tmp_path, monkeypatch):
    sysdir, mine = tmp_path / "system", tmp_path / "mine"
    _write_mnist(sysdir, 20, 10)
    _write_mnist(mine, 30, 10, gz=False)
    monkeypatch.setitem(SYSTEM_IDX_DIRS, "fashion_mnist", (str(sysdir), "dataset-fashion-mnist"))
    assert load_dataset("fashion_mnist", str(mine)).n_train == 30
    assert load_dataset("fashion_mnist").n_train == 20  # no data_dir: the system folder
    assert load_dataset("mnist", str(mine)).name == "mnist"


def test_missing_everywhere_names_apt_first(no_system_dir, monkeypatch):
    def no_tfds(name, data_dir=None):
        raise DataNotFoundError("not prepared")

    monkeypatch.setattr("jaxmu.data._load.load_tfds", no_tfds)
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("fashion_mnist")
    msg = str(e.value)
    assert msg.startswith("dataset 'fashion_mnist' not found offline: `apt-get install "
                          f"dataset-fashion-mnist` (IDX files in {no_system_dir}), or pass "
                          "--data-dir DIR holding train-images-idx3-ubyte.gz, ")
    assert "tfds build fashion_mnist" in msg and "\n" not in msg


def test_explicit_data_dir_without_data(no_system_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("fashion_mnist", str(empty))
    assert str(e.value).startswith(
        f"dataset 'fashion_mnist' not found in {empty}: `apt-get install dataset-fashion-mnist`"
        " (IDX files in") and "drop --data-dir" in str(e.value)
    _write_mnist(no_system_dir)  # installed: the message points at it instead
    with pytest.raises(DataNotFoundError, match=f"in {empty}: drop --data-dir to use the IDX "
                                                f"files in {no_system_dir}, or put "):
        load_dataset("fashion_mnist", str(empty))
    with pytest.raises(DataNotFoundError, match="nowhere does not exist; dataset 'mnist' not "
                                                "found in .*nowhere: put train-images"):
        load_dataset("mnist", str(tmp_path / "nowhere"))


# ----------------------------------------------------------------------------- the real files

real = pytest.mark.skipif(
    find_idx_files(FASHION_DIR) is None if Path(FASHION_DIR).is_dir() else True,
    reason=f"Fashion-MNIST IDX files not in {FASHION_DIR} (apt-get install "
           "dataset-fashion-mnist)")


@real
def test_real_fashion_mnist_files():
    files = find_idx_files(FASHION_DIR)
    x_tr, y_tr = read_idx(files[STEMS[0]]), read_idx(files[STEMS[1]])
    x_te, y_te = read_idx(files[STEMS[2]]), read_idx(files[STEMS[3]])
    assert x_tr.shape == (60000, 28, 28) and x_te.shape == (10000, 28, 28)
    assert x_tr.dtype == y_tr.dtype == np.uint8 and y_tr.shape == (60000,)
    assert np.bincount(y_tr).tolist() == [6000] * 10
    assert np.bincount(y_te).tolist() == [1000] * 10
    assert y_tr[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # ankle boot, T-shirt, ...
    assert y_te[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    # the dataset's published normalisation constants are the train pixels' mean and std
    assert round(x_tr.mean() / 255, 4) == 0.2860 and round(x_tr.std() / 255, 4) == 0.3530


@real
def test_real_fashion_mnist_dataset():
    ds = load_dataset("fashion_mnist")
    p = ds.pool
    assert (ds.n_train, ds.n_test, p.num_classes, ds.name) == (60000, 10000, 10,
                                                               "fashion_mnist")
    assert p.x.shape == (70000, 32, 32, 3) and p.x.dtype == jnp.uint8
    y = np.asarray(p.y)
    assert np.bincount(y[:60000]).tolist() == [6000] * 10
    assert np.bincount(y[60000:]).tolist() == [1000] * 10
    assert (p.hflip, p.crop_pad) == (True, 0)
