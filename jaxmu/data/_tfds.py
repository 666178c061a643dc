"""Loaders for tfds datasets (mnist, fashion_mnist, cifar10, cifar100) and user ``.npz`` files.

Images go to the pool as uint8; normalisation and augmentation follow Deep Unlearn: CIFAR
random crop (pad 4) + flip; MNIST/FashionMNIST are replicated to RGB, resized 28 -> 32 and
(as in the reference) horizontally flipped during training, with no random crop.
Nothing is downloaded: tfds is called with ``download=False``; missing data raises
:class:`DataNotFoundError` with a one-line recipe.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from jaxmu.data._dataset import DataNotFoundError, Dataset, make_dataset
from jaxmu.data._validate import as_images, as_labels

# name: (num_classes, mean, std, hflip, crop_pad, grey_to_rgb_32)
TFDS_SPECS = {
    "cifar10": (10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), True, 4, False),
    "cifar100": (100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True, 4, False),
    "mnist": (10, (0.1307,) * 3, (0.3081,) * 3, True, 0, True),
    "fashion_mnist": (10, (0.2860,) * 3, (0.3530,) * 3, True, 0, True),
}


def _howto(name: str, data_dir: str | None) -> str:
    where = data_dir or "~/tensorflow_datasets"
    return (
        f"dataset {name!r} is not prepared in {where}: on a machine with internet run "
        f"`tfds build {name} --data_dir {where}` (pip install 'jaxmu[tfds]') and copy the "
        f"folder here, pass --data-dir DIR, or export it to an .npz (x, y, x_test, y_test)"
    )


def grey_to_rgb32(x: np.ndarray) -> np.ndarray:
    """[N, 28, 28, 1] uint8 -> [N, 32, 32, 3] uint8, bilinear (torchvision Resize(32))."""
    import jax
    import jax.numpy as jnp

    out = []
    for i in range(0, len(x), 8192):
        chunk = jnp.asarray(x[i : i + 8192], jnp.float32)
        r = jax.image.resize(chunk, (chunk.shape[0], 32, 32, chunk.shape[-1]), "linear",
                             antialias=True)
        out.append(np.asarray(jnp.clip(jnp.round(r), 0, 255)).astype(np.uint8))
    x32 = np.concatenate(out) if out else np.zeros((0, 32, 32, 1), np.uint8)
    return np.repeat(x32, 3, axis=-1)


@contextlib.contextmanager
def scratch_tempdir():
    """Points :mod:`tempfile` at a private directory removed on exit.

    tfds leaves an empty ``<tmp>/tmp*tfds`` directory behind whenever a builder looks up its
    metadata on GCS (``DatasetInfo.initialize_from_bucket``, also offline); inside this
    context those land in the private directory instead.
    """
    old = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="jaxmu-tfds-") as d:
        tempfile.tempdir = d
        try:
            yield d
        finally:
            tempfile.tempdir = old


def load_tfds(name: str, data_dir: str | None = None) -> Dataset:
    """Loads a prepared tfds dataset (train + test) without downloading.

    Raises:
        DataNotFoundError: tfds is not installed or the data is not prepared.
        ValueError: unknown name.
    """
    if name not in TFDS_SPECS:
        raise ValueError(f"unknown tfds dataset {name!r}; valid: {', '.join(TFDS_SPECS)}")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataNotFoundError(f"--data-dir {data_dir} does not exist; " + _howto(name, data_dir))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow_datasets as tfds
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError as e:  # pragma: no cover - depends on the install
        raise DataNotFoundError(
            f"tensorflow-datasets is not installed ({e.name}); " + _howto(name, data_dir)
        ) from None
    try:
        with scratch_tempdir():
            builder = tfds.builder(name, data_dir=data_dir)
            if not builder.is_prepared():
                raise DataNotFoundError(_howto(name, data_dir))
            parts = tfds.as_numpy(
                builder.as_dataset(split=["train", "test"], batch_size=-1, as_supervised=True)
            )
    except DataNotFoundError:
        raise
    except Exception as e:  # tfds raises many types when files are missing
        raise DataNotFoundError(f"{_howto(name, data_dir)} ({type(e).__name__})") from None
    (x_tr, y_tr), (x_te, y_te) = parts
    num_classes, mean, std, hflip, crop_pad, grey = TFDS_SPECS[name]
    if grey:
        x_tr, x_te = grey_to_rgb32(x_tr), grey_to_rgb32(x_te)
    return make_dataset(
        x_tr, y_tr, x_te, y_te, name=name, num_classes=num_classes, mean=mean, std=std,
        hflip=hflip, crop_pad=crop_pad,
        source=f"tfds {name} in {data_dir or '~/tensorflow_datasets'}",
    )


def _read_npz(p: Path) -> tuple[np.ndarray, ...]:
    """Reads x, y (and x_test, y_test or None) from an .npz; unreadable files -> ValueError."""
    try:
        f = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{p} is not a readable .npz archive ({type(e).__name__}: {e})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{p} is a single .npy array, not an .npz archive with 'x' and 'y'")
    with f:
        keys = set(f.files)
        if not {"x", "y"} <= keys:
            raise ValueError(f"{p} must contain arrays 'x' and 'y' (found {sorted(keys)})")
        names = ("x", "y", "x_test", "y_test") if {"x_test", "y_test"} <= keys else ("x", "y")
        try:
            arrays = [f[k] for k in names]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise ValueError(f"{p} is not a readable .npz archive ({type(e).__name__}: {e})"
                             ) from None
    return (*arrays, None, None) if len(arrays) == 2 else tuple(arrays)


def load_npz(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    num_classes: int | None = None,
    test_fraction: float = 0.2,
    hflip: bool = True,
    crop_pad: int = 4,
) -> Dataset:
    """Loads a user ``.npz`` with ``x``, ``y`` and optionally ``x_test``, ``y_test``.

    ``x`` is ``[N, H, W]`` (grayscale) or ``[N, H, W, C]``: uint8, integers in [0, 255], or
    finite floats in [0, 1] (scaled by 255) or [0, 255], rounded to uint8. ``y`` holds one
    integer label in ``[0, num_classes)`` per image. Without a test part, a stratified
    ``test_fraction`` of the data (seed 0) becomes the test set. Use this for air-gapped
    machines and for datasets tfds does not ship (UTKFace, CelebA, FER).

    Raises:
        DataNotFoundError: the file does not exist.
        ValueError: an unreadable file or invalid arrays (unequal lengths, NaN, values out
            of range, labels out of range, an empty part); the one-line message names the
            file and the problem, and nothing is loaded.
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"npz file {p} does not exist")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    x, y, x_te, y_te = _read_npz(p)
    x = as_images(x, f"{p}: x")
    y = as_labels(y, len(x), num_classes, f"{p}: y", "x")
    if x_te is not None:
        x_te = as_images(x_te, f"{p}: x_test")
        y_te = as_labels(y_te, len(x_te), num_classes, f"{p}: y_test", "x_test")
    else:
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(y))
        try:
            tr, te = train_test_split(idx, test_size=test_fraction, random_state=0, stratify=y)
        except ValueError as e:
            raise ValueError(f"{p}: cannot split off a stratified test part of "
                             f"{test_fraction} from {len(y)} examples ({' '.join(str(e).split())})"
                             ) from None
        tr, te = np.sort(tr), np.sort(te)
        x, y, x_te, y_te = x[tr], y[tr], x[te], y[te]
    return make_dataset(
        x, y, x_te, y_te, name=name or p.stem, num_classes=num_classes, hflip=hflip,
        crop_pad=crop_pad, source=str(p),
    )
