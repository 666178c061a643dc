"""The :class:`Dataset` record and the embedded scikit-learn digits dataset."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxmu.data._validate import as_images, as_labels
from jaxmu.types import Pool


class DataNotFoundError(ValueError):
    """Raised when a dataset is not available offline; the message says how to get it."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A pool plus where the official test set starts.

    Indices ``0 .. n_train - 1`` of the pool are the official train set, the rest the official
    test set (as in Deep Unlearn, which concatenates the official train and test sets).
    """

    pool: Pool
    n_train: int

    @property
    def n_test(self) -> int:
        return self.pool.size - self.n_train

    @property
    def name(self) -> str:
        return self.pool.name


def make_dataset(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    name: str,
    num_classes: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    hflip: bool = True,
    crop_pad: int = 4,
    source: str | None = None,
) -> Dataset:
    """Builds a validated :class:`Dataset`: the train part first, then the test part.

    Images are ``[N, H, W]`` (grayscale) or ``[N, H, W, C]``: uint8, integers in [0, 255],
    or finite floats in [0, 1] (scaled by 255) or [0, 255], converted to uint8 by rounding.
    Labels are integers in ``[0, num_classes)``, one per image. Both parts must be
    non-empty and share the image shape.

    Args:
        x_train, y_train, x_test, y_test: the official train and test parts.
        name: dataset name (``Pool.name``).
        num_classes: number of classes; default: the largest label + 1.
        mean, std: per-channel normalisation; default: the train images' statistics.
        hflip, crop_pad: training augmentation (see :func:`jaxmu.data.augment`).
        source: where the arrays come from (a file or folder); error messages start with it.

    Raises:
        ValueError: invalid arrays; the one-line message names ``source`` and the problem.
    """
    at = f"{source}: " if source else ""
    x_train = as_images(x_train, f"{at}x_train")
    x_test = as_images(x_test, f"{at}x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{at}train/test image shapes differ: {x_train.shape[1:]} vs "
                         f"{x_test.shape[1:]}")
    y_train = as_labels(y_train, len(x_train), num_classes, f"{at}y_train", "x_train")
    y_test = as_labels(y_test, len(x_test), num_classes, f"{at}y_test", "x_test")
    for part, x in (("train", x_train), ("test", x_test)):
        if len(x) == 0:
            raise ValueError(f"{at}the {part} set is empty")
    if num_classes is None:
        num_classes = int(max(y_train.max(), y_test.max())) + 1
    if mean is None or std is None:
        f = x_train.astype(np.float64) / 255.0
        mean = tuple(float(v) for v in f.mean(axis=(0, 1, 2)))
        std = tuple(float(max(v, 1e-3)) for v in f.std(axis=(0, 1, 2)))
    try:
        pool = Pool(
            x=jnp.asarray(np.concatenate([x_train, x_test])),
            y=jnp.asarray(np.concatenate([y_train, y_test]).astype(np.int32)),
            num_classes=int(num_classes),
            mean=tuple(mean),
            std=tuple(std),
            name=name,
            hflip=hflip,
            crop_pad=crop_pad,
        ).validate()
    except ValueError as e:
        raise ValueError(f"{at}{e}") from None
    return Dataset(pool=pool, n_train=len(x_train))


DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, 10 classes), embedded: no download.

    The official test split does not exist for digits; jaxmu fixes one: a stratified 20%
    (``train_test_split(test_size=0.2, random_state=0, stratify=y)``). Pixel values 0..16 are
    mapped to uint8 0..255. Augmentation: random crop with 1 pixel of padding, no flip
    (flipped digits are other digits).
    """
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    d = _sk_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    idx = np.arange(len(x))
    tr, te = train_test_split(
        idx, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_TEST_SEED, stratify=d.target
    )
    tr, te = np.sort(tr), np.sort(te)
    return make_dataset(
        x[tr], d.target[tr], x[te], d.target[te], name="digits", num_classes=10,
        mean=(0.3053,), std=(0.3759,), hflip=False, crop_pad=1,
    )
