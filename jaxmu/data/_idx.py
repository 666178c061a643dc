"""IDX files (the MNIST / Fashion-MNIST format): reading, writing, and datasets made of them.

An IDX file is a 4-byte magic number ``0x0000TTNN`` (``TT`` the data type code, ``NN`` the
number of dimensions), ``NN`` big-endian uint32 sizes, then the values, big-endian, in C
order. Files may be gzip-compressed (recognised by content, not by name).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from jaxmu.data._dataset import DataNotFoundError, Dataset, make_dataset
from jaxmu.data._tfds import TFDS_SPECS, grey_to_rgb32
from jaxmu.data._validate import as_images, as_labels

# data type code -> big-endian numpy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# part -> (images, labels) file names, without the optional ".gz"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_DATASETS = ("mnist", "fashion_mnist")
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file, raw or gzip-compressed, into a native-endian numpy array.

    Args:
        path: the file.

    Returns:
        The array, with the shape and dtype the header declares.

    Raises:
        DataNotFoundError: the file does not exist.
        ValueError: the file is unreadable, not IDX, corrupt or truncated (the one-line
            message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"IDX file {p} does not exist")
    try:
        data = p.read_bytes()
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{p}: corrupt or truncated gzip data ({reason})") from None
    if len(data) < 4:
        raise ValueError(f"{p}: {len(data)} bytes is too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise ValueError(f"{p}: not an IDX file (magic number 0x{data[:4].hex()}, expected "
                         "0x0000TTNN)")
    if code not in IDX_DTYPES:
        valid = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise ValueError(f"{p}: unknown IDX data type code 0x{code:02x} (valid: {valid})")
    if ndim == 0:
        raise ValueError(f"{p}: the IDX header declares 0 dimensions")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise ValueError(f"{p}: truncated IDX header ({len(data)} bytes, {ndim} dimensions "
                         f"need {start})")
    shape = struct.unpack(f">{ndim}I", data[4:start])
    dtype = np.dtype(IDX_DTYPES[code])
    expected, found = math.prod(shape) * dtype.itemsize, len(data) - start
    if found != expected:
        problem = "truncated" if found < expected else "trailing bytes"
        raise ValueError(f"{p}: {problem}: the header declares {dtype.newbyteorder('=')} "
                         f"{list(shape)} ({expected} bytes of data), the file holds {found}")
    return np.frombuffer(data, dtype, offset=start).reshape(shape).astype(
        dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array, *, compress: bool | None = None) -> Path:
    """Writes an array as an IDX file (gzip-compressed when the name ends in ``.gz``).

    Args:
        path: the file to write.
        array: uint8, int8, int16, int32, float32 or float64 array with 1 to 255 dimensions.
        compress: force (True) or prevent (False) gzip compression; default: by the name.

    Returns:
        The path written.

    Raises:
        ValueError: a dtype or shape the format cannot hold.
    """
    a = np.asarray(array)
    codes = {np.dtype(t).newbyteorder("="): c for c, t in IDX_DTYPES.items()}
    code = codes.get(a.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {a.dtype}; valid: uint8, int8, int16, int32, "
                         "float32, float64")
    if not 1 <= a.ndim <= 255 or max(a.shape) >= 2**32:
        raise ValueError(f"IDX cannot hold an array of shape {a.shape}")
    data = (struct.pack(f">HBB{a.ndim}I", 0, code, a.ndim, *a.shape)
            + a.astype(IDX_DTYPES[code]).tobytes())
    p = Path(path)
    if compress if compress is not None else p.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    p.write_bytes(data)
    return p


def _idx_names() -> str:
    return ", ".join(f"{n}[.gz]" for pair in IDX_FILES.values() for n in pair)


def find_idx_files(directory: str | os.PathLike) -> dict[str, Path] | None:
    """The four MNIST-layout IDX files in ``directory``: ``{"train-images-idx3-ubyte": path, ...}``.

    Each file may be raw or end in ``.gz``; when both exist the raw one is used.

    Returns:
        The paths, or None when ``directory`` holds none of the four files.

    Raises:
        DataNotFoundError: some but not all of the four files are there.
    """
    d = Path(directory)
    found, missing = {}, []
    for stem in (n for pair in IDX_FILES.values() for n in pair):
        hit = next((d / f for f in (stem, f"{stem}.gz") if (d / f).is_file()), None)
        if hit is None:
            missing.append(stem)
        else:
            found[stem] = hit
    if not found:
        return None
    if missing:
        raise DataNotFoundError(f"{d} holds only some IDX files: missing "
                                + ", ".join(f"{m}[.gz]" for m in missing))
    return found


def load_idx(name: str, directory: str | os.PathLike) -> Dataset:
    """Loads MNIST or Fashion-MNIST from the four IDX files in ``directory``.

    The pool is the train file's examples in file order, then the test file's (the official
    train part first, as everywhere in jaxmu). Preprocessing is the one of the tfds loader
    (Deep Unlearn's): 28x28 grey images resized to 32x32 and replicated to RGB, the
    dataset's fixed mean/std, random horizontal flip and no random crop during training.

    Args:
        name: ``"mnist"`` or ``"fashion_mnist"``.
        directory: folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each raw or ``.gz``).

    Raises:
        DataNotFoundError: the files are not there.
        ValueError: unknown name, or a corrupt, truncated or inconsistent file (the one-line
            message names the file).
    """
    if name not in IDX_DATASETS:
        raise ValueError(f"no IDX layout for dataset {name!r}; valid: {', '.join(IDX_DATASETS)}")
    files = find_idx_files(directory)
    if files is None:
        raise DataNotFoundError(f"no IDX files in {directory} (expected {_idx_names()})")
    num_classes, mean, std, hflip, crop_pad, _ = TFDS_SPECS[name]
    parts = []
    for image_name, label_name in IDX_FILES.values():
        xp, yp = files[image_name], files[label_name]
        x = as_images(read_idx(xp), str(xp))
        if x.shape[1:] != (28, 28, 1):
            raise ValueError(f"{xp} has shape {x.shape}; {name} images must be 28x28 grey")
        y = as_labels(read_idx(yp), len(x), num_classes, str(yp), str(xp))
        parts += [grey_to_rgb32(x), y]
    return make_dataset(*parts, name=name, num_classes=num_classes, mean=mean, std=std,
                        hflip=hflip, crop_pad=crop_pad, source=str(directory))
