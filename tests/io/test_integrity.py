"""Self-checking checkpoints: every kind of damage is detected, moved aside and never used.

In-process tests of :mod:`jaxmu.io._checkpoint` and of the caches built on it
(``cached_fit``, ``cached_fit_population``, ``fit``'s epoch checkpoints); the real
multi-process and CLI runs are in ``test_cache_processes.py``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import assert_tree_bitwise_equal, digits_subset_splits

from jaxmu.io import (
    MANIFEST,
    CorruptCheckpointError,
    CorruptCheckpointWarning,
    IOFault,
    WriteFailedError,
    _checkpoint,
    cache_key,
    latest_step,
    read_meta,
    rebuild_corrupt,
    restore_checkpoint,
    save_checkpoint,
    verify_step,
    write_json,
)
from jaxmu.models import mlp
from jaxmu.train import TrainConfig, cached_fit, fit

TINY = TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False)
MODEL = mlp((8, 8, 1), 10, hidden=(16,))


def _tree(seed=0):
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=(64, 32)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=32), jnp.float32),
            "n": jnp.asarray(seed, jnp.int32)}


def _data_file(step_dir: Path) -> Path:
    """The largest file of a step: the array data."""
    return max((p for p in step_dir.rglob("*") if p.is_file() and p.name != MANIFEST),
               key=lambda p: p.stat().st_size)


def flip_byte(path: Path, at: float = 0.5) -> None:
    b = bytearray(path.read_bytes())
    b[int(len(b) * at)] ^= 0x01
    path.write_bytes(bytes(b))


def _steps(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def _latest_warns(d: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step = latest_step(d)
    return step, [w for w in caught if issubclass(w.category, CorruptCheckpointWarning)]


def _saved(tmp_path, steps=(1, 2, 3)) -> Path:
    d = tmp_path / "ck"
    for s in steps:
        save_checkpoint(d, s, _tree(s), {"step": s}, max_to_keep=None)
    return d


# Each damage is applied to step 3; step 2 must then be the latest.
DAMAGE = {
    "flip a byte of the array data": lambda s: flip_byte(_data_file(s)),
    "flip a byte of the JSON record": lambda s: flip_byte(s / "meta" / "metadata", 0.0),
    "flip a byte of the array index": lambda s: flip_byte(s / "index.json"),
    "truncate the array data": lambda s: os.truncate(_data_file(s), 10),
    "empty the array data": lambda s: os.truncate(_data_file(s), 0),
    "delete the array data": lambda s: _data_file(s).unlink(),
    "add a file": lambda s: (s / "extra").write_bytes(b"x"),
    "delete the checksums (interrupted write)": lambda s: (s / MANIFEST).unlink(),
    "garble the checksums": lambda s: flip_byte(s / MANIFEST, 0.0),
    "checksums of another step": lambda s: (s / MANIFEST).write_text(
        (s.parent / "2" / MANIFEST).read_text()),
}


def test_a_saved_step_carries_checksums_and_reading_it_changes_nothing(tmp_path):
    d = _saved(tmp_path)
    manifest = json.loads((d / "3" / MANIFEST).read_text())
    assert manifest["step"] == 3
    assert sorted(manifest["files"]) == ["arrays.bin", "index.json", "meta/metadata"]
    before = {p: p.read_bytes() for p in (d / "3").rglob("*") if p.is_file()}
    tree, meta = restore_checkpoint(d, _tree())
    assert meta == {"step": 3}
    assert_tree_bitwise_equal(tree, _tree(3))
    assert read_meta(d, 2) == {"step": 2}
    after = {p: p.read_bytes() for p in (d / "3").rglob("*") if p.is_file()}
    assert after == before
    _checkpoint._VERIFIED.clear()
    assert verify_step(d / "3") is None
    assert _steps(d) == ["1", "2", "3"]  # no temporary directories left


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_detected_moved_aside_and_never_used(tmp_path, damage):
    d = _saved(tmp_path)
    DAMAGE[damage](d / "3")
    assert verify_step(d / "3") is not None
    step, caught = _latest_warns(d)
    assert step == 2
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "\n" not in msg and str(d / "3") in msg and "moved aside" in msg
    aside = [n for n in _steps(d) if n.startswith("3.corrupt-")]
    assert len(aside) == 1 and aside[0] in msg
    assert "3" not in _steps(d)
    tree, meta = restore_checkpoint(d, _tree())
    assert meta == {"step": 2}
    assert_tree_bitwise_equal(tree, _tree(2))
    assert _latest_warns(d) == (2, [])  # quiet once set aside


def test_a_corrupt_step_is_detected_even_after_a_verified_read(tmp_path):
    d = _saved(tmp_path)
    restore_checkpoint(d, _tree())  # verified and remembered
    flip_byte(_data_file(d / "3"))  # rewriting the file changes its stat record
    with pytest.warns(CorruptCheckpointWarning):
        assert latest_step(d) == 2


def test_no_rebuild_raises_one_line_and_moves_nothing(tmp_path):
    d = _saved(tmp_path)
    flip_byte(_data_file(d / "3"))
    for call in (lambda: latest_step(d), lambda: restore_checkpoint(d, _tree()),
                 lambda: read_meta(d)):
        with rebuild_corrupt(False), pytest.raises(CorruptCheckpointError) as e:
            call()
        assert "\n" not in str(e.value) and str(d / "3") in str(e.value)
        assert "--no-rebuild" in str(e.value)
        assert isinstance(e.value, IOFault)
    assert _steps(d) == ["1", "2", "3"]
    with rebuild_corrupt(False):
        with rebuild_corrupt(True), pytest.warns(CorruptCheckpointWarning):
            assert latest_step(d) == 2  # nested blocks restore the outer setting after
        flip_byte(_data_file(d / "2"))
        with pytest.raises(CorruptCheckpointError):
            latest_step(d)


def test_an_explicit_corrupt_step_is_refused(tmp_path):
    d = _saved(tmp_path)
    flip_byte(_data_file(d / "2"))
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        restore_checkpoint(d, _tree(), step=2)
    with pytest.raises(FileNotFoundError, match="no checkpoint step 7"):
        read_meta(d, 7)
    assert latest_step(d) == 3  # the newest is intact: step 2 is not even looked at


def test_everything_corrupt_means_no_checkpoint(tmp_path):
    d = _saved(tmp_path, (1, 2))
    for s in ("1", "2"):
        flip_byte(_data_file(d / s))
    step, caught = _latest_warns(d)
    assert step is None and len(caught) == 2
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        restore_checkpoint(d, _tree())


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    d = _saved(tmp_path, (1,))
    host = _checkpoint.socket.gethostname()
    dead = d / f".tmp-2-abcd-{2**22 + 12345}-{host}"  # above pid_max: not a live process
    live = d / f".tmp-2-abcd-{os.getpid()}-{host}"
    for t in (dead, live):
        (t / "step").mkdir(parents=True)
        (t / "step" / "half").write_bytes(b"...")
    assert latest_step(d) == 1  # temporaries are never steps
    save_checkpoint(d, 2, _tree(2))
    # this process's own leftover (of a failed save) goes too; a live writer's stays
    other = d / f".tmp-2-abcd-{os.getppid()}-{host}"
    (other / "step").mkdir(parents=True)
    save_checkpoint(d, 3, _tree(3))
    assert not dead.exists() and not live.exists() and other.exists()


def test_reading_removes_leftovers_of_dead_writers_too(tmp_path):
    # A writer killed after installing its step (or while pruning) leaves a temporary in a
    # directory that a cached entry's later runs only read.
    d = _saved(tmp_path, (1,))
    host = _checkpoint.socket.gethostname()
    dead = d / f".tmp-1-abcd-{2**22 + 12345}-{host}"
    other = d / f".tmp-1-abcd-{os.getppid()}-{host}"  # a live writer's
    for t in (dead, other):
        (t / "replaced").mkdir(parents=True)
    assert latest_step(d) == 1
    assert not dead.exists() and other.exists()
    restore_checkpoint(d, _tree())
    assert _steps(d) == [other.name, "1"]


def _sigint_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler for the test (a process started in the background, e.g.
    under nohup, inherits SIGINT ignored), restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("at", ["_write_manifest", "_install", "_remove_step"])
def test_ctrl_c_during_a_save_lands_after_it_and_leaves_no_temporary(tmp_path, monkeypatch,
                                                                      sigint_raises, at):
    d = _saved(tmp_path, (1, 2))
    real = getattr(_checkpoint, at)

    def interrupted(*args):
        _sigint_self()  # handled at the next bytecode: inside the save
        return real(*args)

    monkeypatch.setattr(_checkpoint, at, interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(d, 3, _tree(3), {"step": 3}, max_to_keep=2)
    assert _steps(d) == ["2", "3"]  # the save finished, old steps pruned, no temporary
    tree, meta = restore_checkpoint(d, _tree())
    assert meta == {"step": 3}
    assert_tree_bitwise_equal(tree, _tree(3))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_interrupts_a_save_at_once(tmp_path, monkeypatch, sigint_raises):
    d = _saved(tmp_path, (1,))
    real = _checkpoint._write_manifest

    def twice(*args):
        _sigint_self()
        _sigint_self()
        return real(*args)

    monkeypatch.setattr(_checkpoint, "_write_manifest", twice)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(d, 2, _tree(2))
    assert _steps(d) == ["1"]  # no step 2, and the failed save's temporary was removed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_outside_a_save_is_not_held_back(sigint_raises):
    from jaxmu.io._interrupt import deferred_interrupt

    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            pass
        _sigint_self()
        for _ in range(1000):  # the handler runs between bytecodes
            pass
    with pytest.raises(ZeroDivisionError):  # an error inside the block is not masked
        with deferred_interrupt():
            _ = 1 / 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored_during_a_save(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        save_checkpoint(tmp_path / "ck", 1, _tree(1))
        _sigint_self()
        save_checkpoint(tmp_path / "ck", 2, _tree(2))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert _steps(tmp_path / "ck") == ["1", "2"]


def test_saving_an_existing_step_replaces_it(tmp_path):
    d = _saved(tmp_path, (1,))
    save_checkpoint(d, 1, _tree(9), {"v": 9})
    tree, meta = restore_checkpoint(d, _tree())
    assert meta == {"v": 9}
    assert_tree_bitwise_equal(tree, _tree(9))
    assert _steps(d) == ["1"]


# -------------------------------------------------------------------------- full disk

def _disk_full_after(monkeypatch, n_bytes: int):
    """Makes writes through ``_checkpoint``'s files fail with ENOSPC once ``n_bytes`` are
    written (the file layer of a full disk)."""
    real_open = open
    written = [0]

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            n = len(memoryview(b).cast("B"))
            if written[0] + n > n_bytes:
                self.f.write(bytes(memoryview(b).cast("B")[: max(n_bytes - written[0], 0)]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written[0] += n
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_open(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        return Full(f) if "w" in mode else f

    monkeypatch.setattr(_checkpoint, "open", full_open, raising=False)


def test_full_disk_during_a_checkpoint_keeps_earlier_steps(tmp_path, monkeypatch):
    d = _saved(tmp_path, (1, 2))
    _disk_full_after(monkeypatch, 1000)  # part of the arrays
    with pytest.raises(WriteFailedError) as e:
        save_checkpoint(d, 3, _tree(3))
    msg = str(e.value)
    assert "\n" not in msg and str(d) in msg and "No space left on device" in msg
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError)
    assert _steps(d) == ["1", "2"]  # nothing half-written, nothing pruned
    assert latest_step(d) == 2


@pytest.mark.parametrize("n_bytes", [0, 8500, 9000, 10_000])
def test_full_disk_at_any_file_of_a_step(tmp_path, monkeypatch, n_bytes):
    """The disk fills up in the arrays (8 KiB + ...), the index, the record or the
    checksums: the same one-line error, and the step is not there."""
    d = _saved(tmp_path, (1,))
    _disk_full_after(monkeypatch, n_bytes)
    with pytest.raises(WriteFailedError, match="No space left on device"):
        save_checkpoint(d, 2, _tree(2), {"x": "y" * 2000})
    assert _steps(d) == ["1"]
    monkeypatch.undo()
    assert latest_step(d) == 1


def test_a_bug_is_not_reported_as_a_disk_fault(tmp_path):
    with pytest.raises(TypeError, match=r"cannot checkpoint leaf \['x'\] of type object"):
        save_checkpoint(tmp_path / "ck", 1, {"x": object()})
    assert list((tmp_path / "ck").iterdir()) == []


def test_full_disk_while_writing_json_keeps_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    write_json(out, {"v": 1})

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(WriteFailedError) as e:
        write_json(out, {"v": 2})
    assert str(out) in str(e.value) and "\n" not in str(e.value)
    assert json.loads(out.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# ------------------------------------------------------------------------- the caches

@pytest.fixture(scope="module")
def tiny():
    s = digits_subset_splits(n=96, n_forget=8, n_val=8, n_test=8)
    return s.pool, np.asarray(s.mask("train"))


def _entry(cache: Path, pool, mask, seed=0) -> Path:
    return cache / cache_key(pool, mask, MODEL, TINY, seed)


def test_cached_fit_rebuilds_a_corrupt_entry_identically(tmp_path, tiny):
    pool, mask = tiny
    p0, s0, m0 = cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False)
    assert m0["cache_hit"] is False
    entry = _entry(tmp_path, pool, mask)
    assert sorted(os.listdir(entry / "epochs")) == ["2", "3"]
    # 1. the final model is corrupt: rebuilt from the last epoch checkpoint
    flip_byte(_data_file(entry / "final" / "0"))
    with pytest.warns(CorruptCheckpointWarning, match="moved aside"):
        p1, s1, m1 = cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False)
    assert m1["cache_hit"] is False
    assert_tree_bitwise_equal((p1, s1), (p0, s0))
    # 2. final and both epoch checkpoints are corrupt: trained from scratch
    for step_dir in (entry / "final" / "0", entry / "epochs" / "3", entry / "epochs" / "2"):
        flip_byte(_data_file(step_dir))
    with pytest.warns(CorruptCheckpointWarning) as rec:
        p2, s2, _ = cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False)
    assert len([w for w in rec if w.category is CorruptCheckpointWarning]) == 3
    assert_tree_bitwise_equal((p2, s2), (p0, s0))
    # 3. now intact: a quiet hit
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCheckpointWarning)
        p3, s3, m3 = cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False)
    assert m3["cache_hit"] is True
    assert_tree_bitwise_equal((p3, s3), (p0, s0))


def test_cached_fit_no_rebuild(tmp_path, tiny):
    pool, mask = tiny
    cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False)
    final = _entry(tmp_path, pool, mask) / "final"
    (final / "0" / MANIFEST).unlink()
    with pytest.raises(CorruptCheckpointError, match="no checksums"):
        cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False, rebuild=False)
    with rebuild_corrupt(False), pytest.raises(CorruptCheckpointError):
        cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False)
    assert os.listdir(final) == ["0"]
    with rebuild_corrupt(False), pytest.warns(CorruptCheckpointWarning):
        cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False, rebuild=True)


def test_cached_fit_sets_aside_an_entry_of_another_run(tmp_path, tiny):
    """An entry whose stored identity differs from the request (a key collision, or files
    copied by hand) is set aside like a corrupt one, not used."""
    pool, mask = tiny
    p0, s0, _ = cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False)
    final = _entry(tmp_path, pool, mask) / "final"
    (tree, meta) = restore_checkpoint(final, (p0, s0))
    save_checkpoint(final, 0, tree, {**meta, "seed": 5})
    with pytest.warns(CorruptCheckpointWarning, match="made by another run: differs in seed"):
        _, _, m = cached_fit(tmp_path, MODEL, pool, mask, 0, TINY, progress=False)
    assert m["cache_hit"] is False and m["seed"] == 0


def test_fit_resumes_from_the_last_intact_epoch(tmp_path, tiny):
    pool, mask = tiny
    ref = fit(MODEL, pool, mask, 0, TINY, progress=False)
    d = tmp_path / "epochs"
    fit(MODEL, pool, mask, 0, TINY, progress=False, checkpoint_dir=str(d), stop_after=2)
    flip_byte(_data_file(d / "2"))
    with pytest.warns(CorruptCheckpointWarning, match=str(d / "2")):
        r = fit(MODEL, pool, mask, 0, TINY, progress=False, checkpoint_dir=str(d))
    assert_tree_bitwise_equal((r.params, r.model_state), (ref.params, ref.model_state))
    assert [h["epoch"] for h in r.history] == [1, 2, 3]


def test_population_cache_rebuilds_a_corrupt_population(tmp_path, tiny):
    from jaxmu.population import cached_fit_population, load_population, save_population

    pool, mask = tiny
    masks = np.stack([mask, mask])
    r0 = cached_fit_population(tmp_path, MODEL, pool, masks, 0, TINY, tag="t",
                               strategy="vmap", progress=False)
    (final,) = tmp_path.glob("t_2_*/final")
    flip_byte(_data_file(final / "0"))
    with pytest.warns(CorruptCheckpointWarning, match=str(final / "0")):
        r1 = cached_fit_population(tmp_path, MODEL, pool, masks, 0, TINY, tag="t",
                                   strategy="vmap", progress=False)
    assert_tree_bitwise_equal((r1.params, r1.model_state), (r0.params, r0.model_state))
    # save_population / load_population check the same way
    save_population(r0, tmp_path / "pop", MODEL)
    flip_byte(_data_file(tmp_path / "pop" / "0"))
    with rebuild_corrupt(False), pytest.raises(CorruptCheckpointError):
        load_population(tmp_path / "pop", MODEL)
    with pytest.warns(CorruptCheckpointWarning), pytest.raises(FileNotFoundError):
        load_population(tmp_path / "pop", MODEL)


def test_population_cache_is_built_once_by_concurrent_callers(tmp_path, tiny, monkeypatch):
    """Two callers needing one population entry: the second waits on the entry's file lock
    (separate open file descriptions, as two processes have) and loads what the first built."""
    import threading

    import jaxmu.population._population as pipelines

    pool, mask = tiny
    masks = np.stack([mask, mask])
    real, calls = pipelines.fit_population, []
    started, release = threading.Event(), threading.Event()

    def slow_fit(*a, **kw):
        calls.append(1)
        started.set()
        assert release.wait(60)
        return real(*a, **kw)

    monkeypatch.setattr(pipelines, "fit_population", slow_fit)
    out = {}

    def worker(name):
        out[name] = pipelines.cached_fit_population(tmp_path, MODEL, pool, masks, 0, TINY,
                                                    tag="t", strategy="vmap", progress=False)

    a = threading.Thread(target=worker, args=("a",))
    a.start()
    assert started.wait(60)
    b = threading.Thread(target=worker, args=("b",))
    b.start()
    b.join(1.0)
    assert b.is_alive()  # waiting on the lock while "a" trains
    release.set()
    a.join(120)
    b.join(120)
    assert len(calls) == 1
    assert_tree_bitwise_equal((out["b"].params, out["b"].model_state),
                              (out["a"].params, out["a"].model_state))
