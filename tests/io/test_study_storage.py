"""Study database faults: unreachable or locked storage fails in one line naming it; a worker
that loses the database mid-study retries with backoff, stops cleanly, and a rerun resumes.
"""

from __future__ import annotations

import sqlite3

import optuna
import pytest
from _helpers import digits_subset_splits

from jaxmu.io import IOFault
from jaxmu.models import mlp
from jaxmu.sweep import completed, open_storage, prepare_task, run_study, storage_url
from jaxmu.sweep._study import StorageError
from jaxmu.train import TrainConfig


def _one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text and isinstance(e, IOFault)
    return text


def test_a_path_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    bad = tmp_path / "file" / "sub" / "study.db"
    with pytest.raises(StorageError) as e:
        open_storage(bad)
    text = _one_line(e.value)
    assert str(bad) in text and "cannot create" in text and "--storage" in text
    with pytest.raises(StorageError):
        storage_url(bad)


@pytest.mark.parametrize("url,expect", [
    ("sqlite:///{tmp}/no/such/dir/study.db", "unable to open database file"),
    ("nosuchdialect://host/db", "nosuchdialect"),
    ("postgresql://jaxmu:secret@127.0.0.1:1/study", "127.0.0.1:1"),  # no driver or refused
])
def test_unreachable_urls_fail_fast_in_one_line(tmp_path, url, expect):
    url = url.format(tmp=tmp_path)
    with pytest.raises(StorageError) as e:
        open_storage(url, attempts=1, timeout_s=1)
    text = _one_line(e.value)
    assert text.startswith("cannot open study storage ") and expect in text
    assert "secret" not in text  # passwords are not shown


def test_a_locked_database_fails_in_one_line(tmp_path):
    db = tmp_path / "study.db"
    open_storage(db)  # creates the schema
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    try:
        with pytest.raises(StorageError) as e:
            open_storage(db, attempts=2, timeout_s=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    text = _one_line(e.value)
    assert str(db) in text and "database is locked" in text
    assert "another program holds a lock" in text
    open_storage(db, timeout_s=1)  # free again


@pytest.fixture(scope="module")
def small_task():
    s = digits_subset_splits(n=160, n_forget=16, n_val=24, n_test=24)
    return prepare_task(mlp((8, 8, 1), 10, hidden=(16,)), s.pool, s, 0,
                        TrainConfig(epochs=5, batch_size=32, lr=0.05, augment=False),
                        name="tiny")


@pytest.mark.parametrize("batch", [1, 2])
def test_losing_the_database_mid_study_retries_stops_cleanly_and_resumes(tmp_path,
                                                                         small_task, batch):
    db = tmp_path / "study.db"
    holder = sqlite3.connect(db, isolation_level=None, timeout=30)
    lock = {"held": False}

    def lose_database_after_two(study, trial):
        if not lock["held"] and len(completed(study)) >= 2:
            holder.execute("BEGIN EXCLUSIVE")  # every later access of the worker fails
            lock["held"] = True

    store = open_storage(db, timeout_s=0.2)
    with pytest.raises(StorageError) as e:
        run_study(small_task, "ft", n_trials=5, storage=store, batch=batch,
                  callbacks=[lose_database_after_two], storage_retries=2,
                  storage_backoff_s=0.05)
    text = _one_line(e.value)
    assert "lost the study database" in text and str(db) in text
    assert "database is locked" in text and "after 2 retries" in text
    holder.execute("ROLLBACK")  # the database is back
    holder.close()
    kept = {t.number: t.params for t in completed(
        optuna.load_study(study_name="tiny-ft-seed0", storage=open_storage(db)))}
    assert len(kept) >= 2
    study = run_study(small_task, "ft", n_trials=5, storage=open_storage(db), batch=batch)
    done = {t.number: t.params for t in completed(study)}
    assert len(done) >= 5
    assert all(done[k] == v for k, v in kept.items())  # nothing lost or redone
