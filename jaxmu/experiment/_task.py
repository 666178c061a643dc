"""What one experiment is: the :class:`Task` (data, splits, model, O/R recipe, seed, cache)
and the :class:`Evaluation` of its unlearned model (one model, or a population)."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

from jaxmu._names import AUDIT_EVALS, DATASET_DEFAULTS, EVALS, STRATEGIES


@dataclasses.dataclass(frozen=True)
class Task:
    """One experimental setting: everything a run fixes besides the method.

    Fields left None take the dataset's defaults (:data:`jaxmu.data.DATASET_DEFAULTS`:
    model, epochs, batch size, learning rate, augmentation), so ``Task("digits")`` is the
    ``python -m experiments.digits`` default.

    Attributes:
        dataset: a name of :data:`jaxmu.data.DATASET_DEFAULTS`.
        model: model name (``jaxmu.models.build_model``).
        epochs, batch_size, lr, augment: the O/R training recipe (:attr:`recipe`).
        forget_scenario, forget_fraction, val_fraction, split_seed: the splits
            (:func:`jaxmu.data.scenario_splits`).
        seed: model seed (init, data order, the method's key).
        data_dir: data folder (IDX files or a tfds data dir; None: the default places).
        train_size, test_size: keep a class-stratified subset of the official train /
            test part (None: all).
        cache_dir: cache of trained O/R models and populations (None or ``""``: none).
        classifier_mias: also run the classifier and feature MIAs (the loss MIA always runs).
        progress: progress bars.

    Raises:
        ValueError: an unknown dataset or a value out of range (one line naming the field).
    """

    dataset: str
    model: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    augment: bool | None = None
    forget_scenario: str = "random"
    forget_fraction: float = 0.1
    val_fraction: float = 0.15
    split_seed: int = 123
    seed: int = 0
    data_dir: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    cache_dir: str | None = None
    classifier_mias: bool = True
    progress: bool = False

    def __post_init__(self) -> None:
        if self.dataset not in DATASET_DEFAULTS:
            raise ValueError(f"unknown dataset {self.dataset!r}; valid: "
                             f"{', '.join(DATASET_DEFAULTS)}")
        d = DATASET_DEFAULTS[self.dataset]
        if self.cache_dir == "":
            object.__setattr__(self, "cache_dir", None)
        for name in ("model", "epochs", "batch_size", "lr", "augment"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(d, name))
        for name in ("forget_fraction", "val_fraction"):
            v = getattr(self, name)
            if math.isnan(v) or not 0 < v < 1:
                raise ValueError(f"{name} must lie in (0, 1), got {v}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    @property
    def recipe(self) -> Any:
        """The O/R :class:`jaxmu.train.TrainConfig`."""
        from jaxmu.train import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           augment=self.augment)

    def load(self) -> tuple[Any, Any, Any]:
        """``(dataset, splits, model)`` of the task (loaded once per task and process).

        Raises:
            ValueError: missing data (:class:`jaxmu.data.DataNotFoundError`, one line that
                says how to get it), a bad file or a scenario the data cannot hold.
        """
        return _load(self)

    def setting_flags(self) -> str:
        """The experiment CLI's options of this setting (all but the seed and the method):
        appended to ``python -m experiments.<dataset>`` they rebuild it."""
        flags = (f"--model {self.model} --epochs {self.epochs} --batch-size {self.batch_size} "
                 f"--lr {self.lr} --forget-scenario {self.forget_scenario} --forget-fraction "
                 f"{self.forget_fraction} --val-fraction {self.val_fraction} --split-seed "
                 f"{self.split_seed}")
        for name in ("data_dir", "train_size", "test_size"):
            if getattr(self, name) not in (None, ""):
                flags += f" --{name.replace('_', '-')} {getattr(self, name)}"
        return flags


@functools.cache
def _load(task: Task) -> tuple[Any, Any, Any]:
    from jaxmu.data import load_dataset, scenario_splits
    from jaxmu.models import build_model

    ds = load_dataset(task.dataset, task.data_dir)
    if task.train_size is not None or task.test_size is not None:
        from jaxmu.data import subset_dataset

        ds = subset_dataset(ds, task.train_size, task.test_size, seed=task.split_seed)
    splits = scenario_splits(ds, task.forget_scenario, forget_fraction=task.forget_fraction,
                             val_fraction=task.val_fraction, seed=task.split_seed)
    return ds, splits, build_model(task.model, ds.pool.num_classes, ds.pool.image_shape)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """How the unlearned model is judged beyond the single-model metrics.

    Attributes:
        kind: ``"single"`` (the metrics of one model), ``"fscore"`` (competition F-score
            over ``models`` unlearned and retrained models), ``"ulira"`` (U-LiRA over
            ``shadows`` x ``forget_sets``), or an audit of :data:`AUDIT_EVALS` on one cached
            population (``"all"``: every audit and U-LiRA).
        models, shadows, forget_sets: population sizes.
        ulira_flip, ulira_variant: U-LiRA's flipped views and ``"online"`` / ``"offline"``.
        strategy, chunk: population strategy (results do not depend on it).
        audit: the :class:`jaxmu.audits.AuditConfig` of an audit kind (None: built from
            ``shadows``, ``forget_sets`` and the task's forget fraction and seed).

    Raises:
        ValueError: a value out of range (one line).
    """

    kind: str = "single"
    models: int = 512
    shadows: int = 64
    forget_sets: int = 10
    ulira_flip: bool = False
    ulira_variant: str = "online"
    strategy: str = "auto"
    chunk: int | None = None
    audit: Any = None

    def __post_init__(self) -> None:
        if self.kind not in EVALS:
            raise ValueError(f"unknown evaluation {self.kind!r}; valid: {', '.join(EVALS)}")
        if self.models < 2:
            raise ValueError(f"models must be >= 2, got {self.models}")
        if self.shadows < 4 or self.shadows % 2:
            raise ValueError(f"shadows must be an even number >= 4, got {self.shadows}")
        if self.forget_sets < 1:
            raise ValueError(f"forget_sets must be >= 1, got {self.forget_sets}")
        if self.ulira_variant not in ("online", "offline"):
            raise ValueError(f"ulira_variant must be 'online' or 'offline', got "
                             f"{self.ulira_variant!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; valid: "
                             f"{', '.join(STRATEGIES)}")
        if self.strategy == "chunked" and not (self.chunk and self.chunk >= 1):
            raise ValueError("strategy 'chunked' needs chunk >= 1")

    def audit_flags(self) -> str:
        """The experiment CLI's options that rebuild an audit kind's :attr:`audit` config
        (besides the task's ``--forget-fraction``), every one spelled out: appended to a
        single-method command they reproduce that method's audits of a benchmark study."""
        c = self.audit
        out = [f"--eval {self.kind}", f"--shadows {c.num_shadows}",
               f"--forget-sets {c.num_forget_sets}", f"--seed {c.seed}"]
        if c.num_targets is not None:
            out.append(f"--targets {c.num_targets}")
        out.append(f"--bootstrap {c.n_bootstrap}")
        if c.rmia_offline:
            out.append("--rmia-offline")
        out += [f"--rmia-a {c.rmia_a}", f"--relearn-variant {c.relearn.variant}",
                f"--relearn-steps {c.relearn.steps}", f"--relearn-lr {c.relearn.lr}",
                f"--relearn-runs {c.relearn_runs}", f"--shadow-draws {c.shadow_draws}"]
        return " ".join(out)

    @property
    def audits(self) -> tuple[str, ...]:
        """The audits of an audit kind (``"all"``: every one incl. U-LiRA); else ()."""
        if self.kind not in AUDIT_EVALS:
            return ()
        from jaxmu.audits import AUDITS

        return tuple(AUDITS) if self.kind == "all" else (self.kind,)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A deletion scenario: exact vs approximate unlearning over deletion sizes or over a
    sequence of deletion requests (:func:`jaxmu.experiment.run_scenario`).

    Attributes:
        methods: names compared with retraining (``"retrain"``, ``"sisa"``: the exact
            baselines); ``hparams`` apply to ``method`` when it is among them.
        ratios: deletion ratios of a sweep (fractions in (0, 1)), or None.
        requests: the number of sequential deletion requests (when ``ratios`` is None).
        request_size: rows per request: a count (>= 1) or a fraction of train (< 1).
        sisa_shards: SISA shards.
        method, hparams: the approximate method that ``hparams`` apply to.

    Raises:
        ValueError: one line naming the option (``--deletion-ratios: ...``, ...).
    """

    methods: tuple[str, ...]
    ratios: tuple[float, ...] | None = None
    requests: int | None = None
    request_size: float = 0.05
    sisa_shards: int = 5
    method: str | None = None
    hparams: Any = None

    def __post_init__(self) -> None:
        from jaxmu.scenarios import check_methods, check_ratios

        if (self.ratios is None) == (self.requests is None):
            raise ValueError("a scenario needs deletion ratios or a number of requests")
        if self.ratios is not None:
            try:
                check_ratios(list(self.ratios))
            except ValueError as e:
                raise ValueError(f"--deletion-ratios: {e}") from None
        if self.requests is not None and self.requests < 1:
            raise ValueError(f"--sequential-requests must be >= 1, got {self.requests}")
        if self.sisa_shards < 1:
            raise ValueError(f"--sisa-shards must be >= 1, got {self.sisa_shards}")
        if not self.request_size > 0:
            raise ValueError(f"--request-size must be > 0, got {self.request_size}")
        try:
            check_methods(list(self.methods))
        except ValueError as e:
            raise ValueError(f"--compare-methods: {e}") from None

    def resolved_methods(self) -> list[Any]:
        """The methods, ``method`` carrying ``hparams`` (the exact baselines never do)."""
        from jaxmu.methods import get_method
        from jaxmu.scenarios import EXACT

        return [get_method(m, **self.hparams) if m == self.method and self.hparams
                and m not in EXACT else m for m in self.methods]


_COUNTS = ("trials", "search_seeds", "seeds", "population_size", "trial_batch")


@dataclasses.dataclass(frozen=True)
class Study:
    """A benchmark study's options (:func:`jaxmu.sweep.run_task_benchmark`): the Deep
    Unlearn search, final runs, ranking and report of ``methods`` on one task.

    Attributes:
        methods: registered method names (empty: every method but presets and references).
        trials: complete Optuna trials per method and search seed (DU: 100).
        search_seeds: model seeds ``0 .. search_seeds-1`` searched (DU: 3).
        seeds: final runs per method (DU: 10).
        storage: Optuna storage, a SQLite path or SQLAlchemy URL (None: the study folder's).
        clean: drop the reference's dead search dimensions.
        population_size: NSGA-III generation size. trial_batch: trials evaluated at once.

    Raises:
        ValueError: a count below 1 (``--trials must be >= 1, got 0``) or an unknown method.
    """

    methods: tuple[str, ...] = ()
    trials: int = 100
    search_seeds: int = 3
    seeds: int = 10
    storage: str | None = None
    clean: bool = False
    population_size: int = 50
    trial_batch: int = 1

    def __post_init__(self) -> None:
        for name in _COUNTS:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got "
                                 f"{getattr(self, name)}")
        from jaxmu.methods import get_method

        object.__setattr__(self, "methods", tuple(self.methods))
        for m in self.methods:
            get_method(m)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one experiment invocation does: a single run of ``method`` judged by
    ``evaluation``, a deletion ``scenario``, or a benchmark ``study`` (at most one of the
    last two). Building it checks that the parts go together, before anything trains.

    Raises:
        ValueError: parts that do not combine (one line naming the CLI options), an
            unknown method or bad hyperparameters.
    """

    task: Task
    method: str = "ft"
    hparams: Any = None
    evaluation: Evaluation = dataclasses.field(default_factory=Evaluation)
    scenario: Scenario | None = None
    study: Study | None = None

    def __post_init__(self) -> None:
        ev, study = self.evaluation, self.study
        for bad, msg in (
                (self.scenario is not None and (study is not None or ev.kind != "single"),
                 "deletion scenarios cannot be combined with --benchmark or --eval"),
                (self.scenario is not None and self.scenario.ratios is not None
                 and self.task.forget_scenario != "random",
                 "--deletion-ratios needs --forget-scenario random"),
                (study is not None and ev.kind == "fscore", "--benchmark takes --eval ulira "
                 "or an audit (klom, rmia, relearn, shadow-curve, all) of every method, not "
                 "--eval fscore"),
                (study is not None and (ev.ulira_flip or ev.ulira_variant != "online"),
                 "--ulira-flip and --ulira-variant apply to --eval of one method; "
                 "--benchmark uses the defaults (online, no flip)")):
            if bad:
                raise ValueError(msg)
        from jaxmu.methods import get_method

        get_method(self.method, **(self.hparams or {}))
