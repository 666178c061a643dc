"""``load_dataset``: a dataset by name, from the first place that has it."""

from __future__ import annotations

from pathlib import Path

from jaxmu.data._dataset import DataNotFoundError, Dataset, load_digits
from jaxmu.data._idx import IDX_DATASETS, IDX_FILES, find_idx_files, load_idx
from jaxmu.data._tfds import TFDS_SPECS, load_npz, load_tfds

DATASETS = ("digits", *TFDS_SPECS)
# dataset -> (folder of a system package's IDX files, the Debian package that installs them)
SYSTEM_IDX_DIRS = {
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist"),
}


def _has_idx_files(directory: str) -> bool:
    """Whether ``directory`` holds all four IDX files (never raises)."""
    try:
        return Path(directory).is_dir() and find_idx_files(directory) is not None
    except DataNotFoundError:
        return False


def _idx_howto(name: str, data_dir: str | None) -> str:
    """One line: where ``name`` was looked for and each way to provide it."""
    files = ", ".join(f"{n}.gz" for pair in IDX_FILES.values() for n in pair)
    system = SYSTEM_IDX_DIRS.get(name)
    steps = []
    if system and not _has_idx_files(system[0]):
        steps.append(f"`apt-get install {system[1]}` (IDX files in {system[0]})"
                     + (" and drop --data-dir" if data_dir else ""))
    elif system and data_dir:
        steps.append(f"drop --data-dir to use the IDX files in {system[0]}")
    steps.append(f"put {files} in {data_dir}" if data_dir
                 else f"pass --data-dir DIR holding {files}")
    steps.append(f"prepare it with `tfds build {name} --data_dir {data_dir or 'DIR'}` on a "
                 "machine with internet")
    where = f"in {data_dir}" if data_dir else "offline"
    return f"dataset {name!r} not found {where}: " + ", or ".join(steps)


def _load_idx_or_tfds(name: str, data_dir: str | None) -> Dataset:
    """MNIST / Fashion-MNIST from the first source that has it (see :func:`load_dataset`)."""
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise DataNotFoundError(f"--data-dir {data_dir} does not exist; "
                                    + _idx_howto(name, data_dir))
        if find_idx_files(data_dir) is not None:
            return load_idx(name, data_dir)
    else:
        system = SYSTEM_IDX_DIRS.get(name)
        if system and Path(system[0]).is_dir() and find_idx_files(system[0]) is not None:
            return load_idx(name, system[0])
    try:
        return load_tfds(name, data_dir)
    except DataNotFoundError:
        raise DataNotFoundError(_idx_howto(name, data_dir)) from None


def load_dataset(name: str, data_dir: str | None = None) -> Dataset:
    """Loads a dataset by name: ``digits`` (embedded), a tfds name, or a path to an ``.npz``.

    ``mnist`` and ``fashion_mnist`` are read from the first of: the four IDX files
    (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each raw or ``.gz``) in ``data_dir``; prepared tfds data in
    ``data_dir``; and, without ``data_dir``, the IDX files of a system package
    (``/usr/share/datasets/fashion-mnist`` from the Debian package ``dataset-fashion-mnist``)
    then tfds' default folder. An explicit ``data_dir`` is never replaced by another source.
    The other tfds datasets come from tfds (in ``data_dir`` or its default folder). Nothing
    is downloaded.

    Args:
        name: ``digits``, one of :data:`TFDS_SPECS`, or a path ending in ``.npz``.
        data_dir: folder with the data (IDX files or a tfds data dir); None for the defaults.

    Raises:
        DataNotFoundError: the data is nowhere; the one-line message says how to get it.
        ValueError: unknown name, or invalid data (the message names the file).
    """
    if name == "digits":
        return load_digits()
    if name in IDX_DATASETS:
        return _load_idx_or_tfds(name, data_dir)
    if name in TFDS_SPECS:
        return load_tfds(name, data_dir)
    if name.endswith(".npz"):
        return load_npz(name)
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)} or a .npz path")
