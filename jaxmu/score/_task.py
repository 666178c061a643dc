"""Task and submission files of :mod:`jaxmu.score`: what jaxmu exports, what a user sends back.

A *task* fixes everything a submission is scored against: the dataset and its split (which
pool rows are forget, retain, val and test), the *eval rows* a submission must predict, in
order (forget, then retain, then test), with their labels and uint8 images, the
normalisation, and the reference setting of jaxmu's retrained population (model, training
recipe, number of models, seed). A *submission* is the logits of the user's unlearned
models on those rows plus the task's hash. Both are ``.npz`` files written atomically;
``docs/scoring.md`` lists every key.

Nothing here imports jax at module level; the functions that need the dataset or a model
import what they use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "jaxmu-score-task/1"
SUBMISSION_FORMAT = "jaxmu-score-submission/1"
ROLES = ("forget", "retain", "test")

# key -> (kind, ndim); kind "str", "int", "float" (scalars) or a numpy dtype (arrays)
_TASK_KEYS: dict[str, tuple[str, int]] = {
    "format": ("str", 0),
    "dataset": ("str", 0),
    "forget_scenario": ("str", 0),
    "forget_fraction": ("float", 0),
    "val_fraction": ("float", 0),
    "split_seed": ("int", 0),
    "pool_size": ("int", 0),
    "pool_digest": ("str", 0),
    "forget_index": ("int64", 1),
    "retain_index": ("int64", 1),
    "val_index": ("int64", 1),
    "test_index": ("int64", 1),
    "retain_sample": ("int", 0),
    "eval_index": ("int64", 1),
    "eval_role": ("int8", 1),
    "eval_labels": ("int32", 1),
    "eval_images": ("uint8", 4),
    "num_classes": ("int", 0),
    "mean": ("float64", 1),
    "std": ("float64", 1),
    "model": ("str", 0),
    "recipe": ("str", 0),
    "num_models": ("int", 0),
    "seed": ("int", 0),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A loaded task file (see :func:`export_task`; ``docs/scoring.md`` lists the keys).

    Attributes:
        dataset: the dataset name (:func:`jaxmu.data.load_dataset`).
        forget_scenario, forget_fraction, val_fraction, split_seed: the split
            (:func:`jaxmu.data.scenario_splits`).
        pool_size: rows of the dataset's pool (official train then test rows).
        pool_digest: content hash of the pool (images, labels, normalisation), so a
            different copy of the dataset is detected before anything is trained.
        forget_index, retain_index, val_index, test_index: ``[n]`` int64 pool indices of
            each split, ascending.
        retain_sample: retain rows among the eval rows (-1: all of them).
        eval_index: ``[N]`` int64 pool index of each eval row: the forget rows, then the
            retain rows (all, or the seeded sample), then the test rows, each ascending.
        eval_role: ``[N]`` int8 role of each eval row, an index into :data:`ROLES`
            (0 forget, 1 retain, 2 test).
        eval_labels: ``[N]`` int32 labels.
        eval_images: ``[N, H, W, C]`` uint8 images.
        num_classes: K, the classes of the dataset.
        mean, std: ``[C]`` float64 per-channel normalisation: a model sees
            ``(image / 255 - mean) / std``.
        model: the model of jaxmu's retrained population (a ``--model`` name of the
            experiment CLIs).
        recipe: its training recipe (:class:`jaxmu.train.TrainConfig` fields).
        num_models: models in jaxmu's retrained population.
        seed: the population seed (retrained models use keys ``fold_in(seed + 1000, i)``).
        task_hash: SHA-256 (hex) of every other key's name, dtype, shape and bytes.
        path: the file it was loaded from (None for a task built in memory).
    """

    dataset: str
    forget_scenario: str
    forget_fraction: float
    val_fraction: float
    split_seed: int
    pool_size: int
    pool_digest: str
    forget_index: np.ndarray
    retain_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    retain_sample: int
    eval_index: np.ndarray
    eval_role: np.ndarray
    eval_labels: np.ndarray
    eval_images: np.ndarray
    num_classes: int
    mean: np.ndarray
    std: np.ndarray
    model: str
    recipe: dict[str, Any]
    num_models: int
    seed: int
    task_hash: str
    path: str | None = None

    @property
    def num_rows(self) -> int:
        """N, the eval rows a submission predicts."""
        return int(self.eval_index.size)

    def rows(self, role: str) -> np.ndarray:
        """Positions (into the eval rows) of the rows of one role."""
        if role not in ROLES:
            raise ValueError(f"role: expected one of {list(ROLES)}, got {role!r}")
        return np.flatnonzero(self.eval_role == ROLES.index(role))

    def role_names(self) -> np.ndarray:
        """``[N]`` role names of the eval rows ("forget", "retain" or "test")."""
        return np.asarray(ROLES)[self.eval_role]

    def normalized_images(self) -> np.ndarray:
        """``[N, H, W, C]`` float32 model inputs, ``(image / 255 - mean) / std`` (NHWC;
        PyTorch models usually want ``.transpose(0, 3, 1, 2)``)."""
        x = self.eval_images.astype(np.float32) / np.float32(255.0)
        return ((x - self.mean.astype(np.float32)) / self.std.astype(np.float32)).astype(
            np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """The file's arrays (every key but ``task_hash``)."""
        return _task_arrays(self)


def _scalar(kind: str, value: Any) -> np.ndarray:
    if kind == "str":
        return np.asarray(str(value))
    if kind == "int":
        return np.asarray(int(value), np.int64)
    return np.asarray(float(value), np.float64)


def _task_arrays(t: Task) -> dict[str, np.ndarray]:
    out = {}
    for key, (kind, ndim) in _TASK_KEYS.items():
        if key == "format":
            out[key] = np.asarray(FORMAT)
        elif key == "recipe":
            out[key] = np.asarray(json.dumps(t.recipe, sort_keys=True))
        elif ndim == 0:
            out[key] = _scalar(kind, getattr(t, key))
        else:
            out[key] = np.ascontiguousarray(np.asarray(getattr(t, key), np.dtype(kind)))
    return out


def task_hash(arrays: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the task arrays: for every key but ``task_hash``, in sorted order,
    its name, dtype, shape and raw bytes."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        if key == "task_hash":
            continue
        a = np.ascontiguousarray(np.asarray(arrays[key]))
        h.update(f"{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.view(np.uint8).reshape(-1).data if a.size else b"")
    return h.hexdigest()


def _write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], what: str) -> Path:
    """Writes an uncompressed ``.npz`` atomically: a temporary file beside ``path``,
    flushed to disk and renamed over it (readers see the old file or the new one)."""
    from jaxmu.io import as_write_error

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        err = as_write_error(e, path, what)
        if err is e:
            raise
        raise err from e
    return path


def _read_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles), or a one-line ValueError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such {what} file")
    try:
        z = np.load(p, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"{p}: not a {what} .npz file ({' '.join(str(e).split())})") from None


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _reference_defaults(dataset: str, model: str | None, epochs: int | None,
                        batch_size: int | None, lr: float | None) -> tuple[str, int, int, float,
                                                                          bool]:
    """The dataset's defaults (:data:`jaxmu.data.DATASET_DEFAULTS`, the experiment CLI's)
    where an argument is None: model, epochs, batch size, learning rate and augmentation.
    A dataset without defaults (an ``.npz`` file) needs model, epochs and batch size; its
    learning rate defaults to 0.1 and it is augmented."""
    from jaxmu.data import DATASET_DEFAULTS, DATASETS

    if dataset not in DATASETS and not str(dataset).endswith(".npz"):
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)} or a "
                         f".npz path")
    d = DATASET_DEFAULTS.get(dataset)
    if d is None:
        if None in (model, epochs, batch_size):
            raise ValueError(f"dataset {dataset!r} has no default model: give model, epochs "
                             f"and batch_size")
        return model, epochs, batch_size, 0.1 if lr is None else lr, True
    return (model or d.model, d.epochs if epochs is None else epochs,
            d.batch_size if batch_size is None else batch_size, d.lr if lr is None else lr,
            d.augment)


def export_task(
    dataset: str,
    path: str | os.PathLike,
    *,
    forget_scenario: str = "random",
    forget_fraction: float = 0.1,
    val_fraction: float = 0.15,
    split_seed: int = 123,
    data_dir: str | None = None,
    model: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    num_models: int = 512,
    seed: int = 0,
    retain_sample: int | None = None,
) -> Task:
    """Writes a task file: the split, the eval rows a submission predicts, and the
    reference setting of jaxmu's retrained population.

    The split is :func:`jaxmu.data.scenario_splits` of the dataset with these parameters,
    exactly as ``python -m experiments.<dataset>`` builds it (the defaults are that CLI's),
    so a task scores against the same retrained population that ``--eval fscore`` with
    the same settings trains and caches. The eval rows are the forget rows, then the retain
    rows (all of them, or ``retain_sample`` of them drawn without replacement with
    ``numpy.random.default_rng([split_seed, 1])`` for large datasets), then the test rows,
    each in ascending pool order. Their uint8 images and labels are in the file, so a user
    of another framework predicts them without reproducing jaxmu's pool ordering. The
    user's original model must have been trained on the task's forget and retain rows
    (its train split) and never on its val or test rows.

    The reference setting (model, recipe, ``num_models``, ``seed``) defaults to the
    experiment CLI's per-dataset choice, :data:`jaxmu.data.DATASET_DEFAULTS` (model,
    epochs, batch size, lr 0.05 on digits and 0.1 otherwise, augmentation on all but
    digits).

    Args:
        dataset: ``digits``, a tfds/IDX dataset name or an ``.npz`` path
            (:func:`jaxmu.data.load_dataset`).
        path: the task file to write (``.npz``; written atomically).
        forget_scenario: ``random``, ``classwise:3``, ``red:525``, ``label_skew:0``.
        forget_fraction, val_fraction, split_seed: the split's parameters.
        data_dir: where the dataset's files are (not stored in the task).
        model: the reference model (a name of :data:`jaxmu.models.MODELS` or
            :data:`jaxmu.models.MODEL_VARIANTS`; default per dataset).
        epochs, batch_size, lr: the reference recipe (defaults per dataset).
        num_models: models of the retrained population (at least 2; the F-score compares
            populations of equal size, see :func:`jaxmu.score.score_logits`).
        seed: the population seed.
        retain_sample: retain rows kept among the eval rows (None: all).

    Returns:
        The written :class:`Task`.

    Raises:
        ValueError: on a bad argument, an unknown dataset or scenario, or missing data.
    """
    from jaxmu.data import load_dataset, scenario_splits
    from jaxmu.population import pool_digest
    from jaxmu.train import TrainConfig

    num_models = _check_int("num_models", num_models, 2)
    seed = _check_int("seed", seed, 0)
    split_seed = _check_int("split_seed", split_seed, 0)
    if retain_sample is not None:
        retain_sample = _check_int("retain_sample", retain_sample, 1)
    for name, v in (("forget_fraction", forget_fraction), ("val_fraction", val_fraction)):
        if not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {v!r}")
    m_name, epochs, batch_size, lr, augment = _reference_defaults(dataset, model, epochs,
                                                                  batch_size, lr)
    epochs = _check_int("epochs", epochs, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    if not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    from jaxmu.models import MODEL_VARIANTS, MODELS

    if m_name not in (*MODELS, *MODEL_VARIANTS):
        raise ValueError(f"unknown model {m_name!r}; valid: "
                         f"{', '.join((*MODELS, *MODEL_VARIANTS))}")
    recipe = TrainConfig(epochs=epochs, batch_size=batch_size, lr=float(lr), augment=augment)
    ds = load_dataset(dataset, data_dir)
    splits = scenario_splits(ds, forget_scenario, forget_fraction=forget_fraction,
                             val_fraction=val_fraction, seed=split_seed)
    pool = splits.pool
    idx = {sp: np.asarray(splits.indices(sp), np.int64) for sp in ("forget", "retain", "val",
                                                                    "test")}
    retain_rows = idx["retain"]
    if retain_sample is not None and retain_sample < retain_rows.size:
        rng = np.random.default_rng([split_seed, 1])
        retain_rows = np.sort(rng.choice(retain_rows, retain_sample, replace=False))
    eval_index = np.concatenate([idx["forget"], retain_rows, idx["test"]])
    role = np.concatenate([np.full(idx["forget"].size, 0), np.full(retain_rows.size, 1),
                           np.full(idx["test"].size, 2)]).astype(np.int8)
    x, y = np.asarray(pool.x), np.asarray(pool.y)
    fields = dict(
        dataset=dataset, forget_scenario=forget_scenario,
        forget_fraction=float(forget_fraction), val_fraction=float(val_fraction),
        split_seed=split_seed, pool_size=int(pool.size), pool_digest=pool_digest(pool),
        forget_index=idx["forget"], retain_index=idx["retain"], val_index=idx["val"],
        test_index=idx["test"],
        retain_sample=-1 if retain_rows.size == idx["retain"].size else int(retain_rows.size),
        eval_index=eval_index, eval_role=role, eval_labels=y[eval_index].astype(np.int32),
        eval_images=x[eval_index].astype(np.uint8), num_classes=int(pool.num_classes),
        mean=np.asarray(pool.mean, np.float64), std=np.asarray(pool.std, np.float64),
        model=m_name, recipe=recipe.to_dict(), num_models=num_models, seed=seed)
    task = Task(task_hash="", **fields)
    arrays = task.arrays()
    h = task_hash(arrays)
    _write_npz(path, {**arrays, "task_hash": np.asarray(h)}, "task file")
    return dataclasses.replace(task, task_hash=h, path=str(path))


def _get(arrays: Mapping[str, np.ndarray], key: str, kind: str, ndim: int, where: str) -> Any:
    a = arrays[key]
    if a.ndim != ndim:
        raise ValueError(f"{where}: {key} must have {ndim} dimension(s), got shape {a.shape}")
    if kind == "str":
        if a.dtype.kind != "U":
            raise ValueError(f"{where}: {key} must be a string, got dtype {a.dtype}")
        return str(a)
    if kind == "int":
        if a.dtype.kind not in "iu":
            raise ValueError(f"{where}: {key} must be an integer, got dtype {a.dtype}")
        return int(a)
    if kind == "float":
        if a.dtype.kind != "f":
            raise ValueError(f"{where}: {key} must be a float, got dtype {a.dtype}")
        return float(a)
    if a.dtype != np.dtype(kind):
        raise ValueError(f"{where}: {key} must have dtype {kind}, got {a.dtype}")
    return a


def load_task(path: str | os.PathLike) -> Task:
    """Reads and checks a task file written by :func:`export_task`.

    Raises:
        ValueError: one line naming the file: missing, not an ``.npz``, not a task file,
            a missing key, a key of the wrong dtype or shape, inconsistent rows, or a
            ``task_hash`` that does not match the content (an edited or damaged file).
    """
    where = str(path)
    arrays = _read_npz(path, "task")
    if "format" not in arrays or arrays["format"].dtype.kind != "U" or \
            str(arrays["format"]) != FORMAT:
        got = str(arrays["format"]) if "format" in arrays else "no format key"
        raise ValueError(f"{where}: not a jaxmu task file (format: {got}; expected "
                         f"{FORMAT})")
    missing = [k for k in (*_TASK_KEYS, "task_hash") if k not in arrays]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    vals = {k: _get(arrays, k, kind, ndim, where) for k, (kind, ndim) in _TASK_KEYS.items()}
    stored = _get(arrays, "task_hash", "str", 0, where)
    actual = task_hash({k: arrays[k] for k in _TASK_KEYS})
    if stored != actual:
        raise ValueError(f"{where}: task_hash {stored[:16]}... does not match the file's "
                         f"content ({actual[:16]}...): the task file was modified or damaged")
    n = vals["eval_index"].size
    for key in ("eval_role", "eval_labels"):
        if vals[key].shape != (n,):
            raise ValueError(f"{where}: {key} must have shape ({n},), got {vals[key].shape}")
    if vals["eval_images"].shape[0] != n:
        raise ValueError(f"{where}: eval_images has {vals['eval_images'].shape[0]} rows, "
                         f"eval_index {n}")
    if np.any((vals["eval_role"] < 0) | (vals["eval_role"] >= len(ROLES))):
        raise ValueError(f"{where}: eval_role values must lie in [0, {len(ROLES) - 1}]")
    for role in ("forget", "test"):
        if not np.any(vals["eval_role"] == ROLES.index(role)):
            raise ValueError(f"{where}: the task has no {role} rows")
    try:
        recipe = json.loads(vals["recipe"])
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: recipe is not JSON ({e})") from None
    del vals["format"]
    vals["recipe"] = recipe
    return Task(task_hash=stored, path=where, **vals)


def as_task(task: Task | str | os.PathLike) -> Task:
    """A :class:`Task`, loading it if given a path."""
    return task if isinstance(task, Task) else load_task(task)


def check_logits(logits: Any, task: Task, where: str = "logits") -> np.ndarray:
    """Checks the logits of a submission against its task.

    Args:
        logits: ``[M, N, K]`` floats: M >= 2 unlearned models, the task's N eval rows in
            order, K = the task's classes.
        task: the task.
        where: the name used in error messages (e.g. the submission file).

    Returns:
        The logits as a floating NumPy array (dtype kept).

    Raises:
        ValueError: one line: not a float array, wrong number of dimensions, rows or
            classes, fewer than 2 models, or non-finite values.
    """
    a = np.asarray(logits)
    if a.dtype.kind != "f":
        raise ValueError(f"{where}: logits must be floats, got dtype {a.dtype}")
    if a.ndim != 3:
        raise ValueError(f"{where}: logits must be [M, N, K] (models, eval rows, classes), "
                         f"got shape {a.shape}")
    m, n, k = a.shape
    if n != task.num_rows:
        raise ValueError(f"{where}: logits has {n} rows, the task has {task.num_rows} eval "
                         f"rows (forget, retain, test in the task's order)")
    if k != task.num_classes:
        raise ValueError(f"{where}: logits has {k} classes, the task's dataset has "
                         f"{task.num_classes}")
    if m < 2:
        raise ValueError(f"{where}: need at least 2 unlearned models, got {m}")
    bad = ~np.isfinite(a)
    if bad.any():
        first = np.argwhere(bad)[0]
        raise ValueError(f"{where}: logits has {int(bad.sum())} non-finite value(s) (NaN or "
                         f"inf; first at model {first[0]}, row {first[1]})")
    return a


def make_submission(path: str | os.PathLike, logits: Any,
                    task: Task | str | os.PathLike) -> Path:
    """Writes a submission file (atomically): ``logits`` and the task's ``task_hash``.

    Args:
        path: the ``.npz`` to write.
        logits: ``[M, N, K]`` floats (:func:`check_logits`); their dtype is kept.
        task: the task (or its file).

    Returns:
        The path written.

    Raises:
        ValueError: on logits the task rejects (nothing is written).
    """
    t = as_task(task)
    a = check_logits(logits, t)
    return _write_npz(path, {"format": np.asarray(SUBMISSION_FORMAT), "logits": a,
                             "task_hash": np.asarray(t.task_hash)}, "submission file")


def load_submission(path: str | os.PathLike, task: Task | str | os.PathLike) -> np.ndarray:
    """Reads and checks a submission file against its task.

    Raises:
        ValueError: one line naming the file: missing, not an ``.npz``, no ``logits`` or
            ``task_hash``, a ``task_hash`` other than the task's, or logits that
            :func:`check_logits` rejects.
    """
    t = as_task(task)
    where = str(path)
    arrays = _read_npz(path, "submission")
    missing = [k for k in ("logits", "task_hash") if k not in arrays]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing} (a submission holds logits "
                         f"[M, N, K] and the task's task_hash)")
    h = arrays["task_hash"]
    if h.ndim != 0 or h.dtype.kind != "U":
        raise ValueError(f"{where}: task_hash must be a string, got dtype {h.dtype} shape "
                         f"{h.shape}")
    if str(h) != t.task_hash:
        raise ValueError(f"{where}: task_hash {str(h)[:16]}... is not this task's "
                         f"({t.task_hash[:16]}...): a submission for another task")
    return check_logits(arrays["logits"], t, where)


def task_splits(task: Task, data_dir: str | None = None) -> Any:
    """Rebuilds the task's :class:`~jaxmu.types.Splits` from the dataset and checks that
    they are the task's.

    Raises:
        ValueError: one line: the dataset is missing, its content differs from the one the
            task was exported from, or a split differs.
    """
    from jaxmu.data import DataNotFoundError, load_dataset, scenario_splits
    from jaxmu.population import pool_digest

    where = task.path or "task"
    try:
        ds = load_dataset(task.dataset, data_dir)
    except DataNotFoundError as e:
        raise ValueError(f"{where}: {' '.join(str(e).split())}") from None
    splits = scenario_splits(ds, task.forget_scenario, forget_fraction=task.forget_fraction,
                             val_fraction=task.val_fraction, seed=task.split_seed)
    digest = pool_digest(splits.pool)
    if splits.pool.size != task.pool_size or digest != task.pool_digest:
        raise ValueError(f"{where}: the {task.dataset!r} data found here (pool of "
                         f"{splits.pool.size} rows, content hash {digest}) is not the one the "
                         f"task was exported from ({task.pool_size} rows, {task.pool_digest})")
    for sp in ("forget", "retain", "val", "test"):
        if not np.array_equal(np.asarray(splits.indices(sp)), getattr(task, f"{sp}_index")):
            raise ValueError(f"{where}: the rebuilt {sp} split differs from the task's (another "
                             f"jaxmu version's split rules?)")
    return splits


def reference_model(task: Task) -> Any:
    """The model of jaxmu's retrained population (:func:`jaxmu.models.build_model`)."""
    from jaxmu.models import build_model

    shape = tuple(int(s) for s in task.eval_images.shape[1:])
    return build_model(task.model, task.num_classes, shape)


def reference_recipe(task: Task) -> Any:
    """The task's training recipe as a :class:`jaxmu.train.TrainConfig`."""
    from jaxmu.train import TrainConfig

    return TrainConfig(**task.recipe)


def _describe(task: Task) -> str:
    """One line: the task's dataset, split and rows."""
    n = {r: task.rows(r).size for r in ROLES}
    return (f"{task.dataset} ({task.forget_scenario}, forget {task.forget_fraction:g}, val "
            f"{task.val_fraction:g}, split seed {task.split_seed}): {n['forget']} forget + "
            f"{n['retain']} retain + {n['test']} test rows, {task.num_classes} classes")

