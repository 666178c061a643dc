"""jaxmu.score: task and submission files, score_logits, the CLI and the round trip.

The round trip exports a digits task, builds a submission from jaxmu's own unlearned
population (the one ``fscore_pipeline`` unlearns: same original, same keys), scores it
through ``python -m jaxmu.score`` (in-process ``main``) and checks the scores against
``score_logits`` on the same arrays and against ``fscore_pipeline`` on the same setting.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxmu.io import to_json
from jaxmu.score import (
    AUDITS,
    RELEARN_NOTE,
    ROLES,
    export_task,
    load_submission,
    load_task,
    make_submission,
    reference_counts,
    score_logits,
)
from jaxmu.score.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


# --- synthetic populations -------------------------------------------------------------------


def _pops(seed, m=8, r=8, nf=30, nr=10, nt=30, k=4, shift=0.0):
    """Logits of m unlearned and r retrained models drawn alike: per-example class means
    (true class +2), unit noise per logit and a per-model offset; the unlearned models'
    forget rows get ``shift`` added to the true-class logit (imperfect forgetting)."""
    rng = np.random.default_rng(seed)
    n = nf + nr + nt
    y = rng.integers(0, k, n)
    mu = rng.normal(0, 1.5, (n, k))
    mu[np.arange(n), y] += 2.0

    def draw(count, sh):
        z = mu[None] + rng.normal(0, 1.0, (count, n, k)) + rng.normal(0, 0.3, (count, 1, 1))
        z[:, np.arange(nf), y[:nf]] += sh
        return z

    role = np.array([0] * nf + [1] * nr + [2] * nt)
    return draw(m, shift), draw(r, 0.0), y, role


def _close(a, b):
    """Equal JSON-like values, NaN equal to NaN (exact otherwise)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, z) for x, z in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def test_score_logits_planted_signal_is_found():
    # forget rows of the unlearned models keep a +4 true-class logit: every audit sees it
    u, r, y, role = _pops(0, shift=4.0)
    res = score_logits(u, r, y, role, n_bootstrap=20, n_permutations=20)
    assert res["ulira"]["auc"] > 0.95 and res["urmia"]["auc"] > 0.9
    for a in ("ulira", "urmia"):
        lo, hi = res[a]["auc_ci"]
        assert 0.5 < lo <= res[a]["auc"] <= hi
    assert res["fscore"]["forget_quality"] < 0.1
    k = res["klom"]
    assert k["roles"] == ["forget", "retain", "test"]
    assert k["forget_p95"] > k["forget_p95_null_range"][1]  # forget: beyond every permutation
    assert k["forget_p95_pvalue"] == pytest.approx(1 / 21)
    assert k["forget_mean"] > k["test_mean"] and k["forget_mean"] > k["retain_mean"]
    assert res["relearn"] == RELEARN_NOTE == "needs model weights; not available from logits"
    assert res["rows"] == {"forget": 30, "retain": 10, "test": 30}
    json.dumps(res)  # JSON-ready


def test_score_logits_null_is_near_half():
    u, r, y, role = _pops(1)
    res = score_logits(u, r, y, role, audits=("ulira", "urmia"), n_bootstrap=50)
    for a in ("ulira", "urmia"):
        lo, hi = res[a]["auc_ci"]
        assert lo <= 0.5 <= hi
        assert abs(res[a]["auc"] - 0.5) < 0.1
    assert set(res) >= {"ulira", "urmia"} and "fscore" not in res


def test_attacks_are_the_metrics_with_the_documented_masks():
    """Independent transcription: offline U-LiRA / U-RMIA on ALL rows with masks (targets =
    unlearned models, references = retrained models, positives = forget rows, negatives =
    test rows, references never saw either) give score_logits' numbers."""
    from jaxmu.metrics import membership_statistic, rmia_signal, u_rmia, ulira

    u, r, y, role = _pops(2, shift=1.0)
    res = score_logits(u, r, y, role, audits=("fscore", "ulira", "urmia"), n_bootstrap=0)
    forget, test = role == 0, role == 2
    rows = np.broadcast_to(forget | test, u.shape[:2])
    ref_rows = np.broadcast_to(forget | test, r.shape[:2])
    ul = ulira(None, membership_statistic(r, y), membership_statistic(u, y),
               np.broadcast_to(forget, u.shape[:2]), shadow_retrained_mask=ref_rows,
               target_mask=rows, online=False)
    ur = u_rmia(rmia_signal(r, y), np.zeros(r.shape[:2], bool), ref_rows, rmia_signal(u, y),
                np.broadcast_to(forget, u.shape[:2]), np.broadcast_to(test, u.shape[:2]),
                online=False, offline_a=0.3)
    for key in ("auc", "tpr_at_1fpr", "balanced_accuracy", "best_accuracy"):
        assert res["ulira"][key] == pytest.approx(ul[key], abs=1e-12)
        assert res["urmia"][key] == pytest.approx(ur[key], abs=1e-12)
    # F-score: the official F of the logit-scaled forget confidences
    from jaxmu.metrics import forget_quality

    f, _ = forget_quality(membership_statistic(u[:, forget], y[forget]),
                          membership_statistic(r[:, forget], y[forget]))
    assert res["fscore"]["forget_quality"] == f


def test_score_logits_roles_by_name_and_unequal_populations():
    u, r, y, role = _pops(3, m=6, r=4)
    names = np.asarray(ROLES)[role]
    a = score_logits(u, r, y, role, audits=("fscore", "urmia"), n_bootstrap=0)
    b = score_logits(u, r, y, names, audits=("fscore", "urmia"), n_bootstrap=0)
    assert _close({k: a[k] for k in ("fscore", "urmia")}, {k: b[k] for k in ("fscore", "urmia")})
    assert a["fscore"]["num_models"] == 4 and "first 4" in a["fscore"]["models_used"]
    assert a["num_unlearned"] == 6 and a["num_retrained"] == 4


def test_attack_power_table():
    u, r, y, role = _pops(4, shift=4.0)
    res = score_logits(u, r, y, role, audits=("attack_power",), draws=3)
    ap = res["attack_power"]
    assert ap["counts"] == [1, 2, 4, 8] == list(reference_counts(8))
    ul, ur = ap["table"]["ulira"], ap["table"]["urmia"]
    assert ul["draws"] == [3, 3, 3, 1]
    assert ul["failed"][0] == 3 and math.isnan(ul["auc"][0])  # one reference: no Gaussian fit
    assert ur["failed"] == [0, 0, 0, 0]
    assert all(a > 0.85 for a in ul["auc"][1:] + ur["auc"])
    for (lo, hi), a in zip(ur["auc_range"], ur["auc"], strict=True):
        assert lo <= a <= hi
    assert reference_counts(5) == (1, 2, 4, 5) and reference_counts(1) == (1,)


@pytest.mark.parametrize("change, match", [
    (lambda u, r, y, role: (u[:1], r, y, role), "at least 2 models"),
    (lambda u, r, y, role: (u, r[:, :-1], y, role), "rows and classes"),
    (lambda u, r, y, role: (np.where(np.arange(u.shape[1])[None, :, None] == 3, np.nan, u),
                            r, y, role), "non-finite"),
    (lambda u, r, y, role: (u.astype(np.int32), r, y, role), "float"),
    (lambda u, r, y, role: (u, r, y + 10, role), "labels"),
    (lambda u, r, y, role: (u, r, y, np.where(role == 2, 1, role)), "no test rows"),
    (lambda u, r, y, role: (u, r, y, np.where(role == 0, 7, role)), "roles"),
    (lambda u, r, y, role: (u, r, y, np.array(["nope"] * role.size)), "unknown role"),
])
def test_score_logits_rejects_bad_inputs(change, match):
    args = change(*_pops(5, m=3, r=3, nf=5, nr=3, nt=5))
    with pytest.raises(ValueError, match=match):
        score_logits(*args, n_bootstrap=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(audits=("nope",)), "audits"), (dict(audits=()), "audits"),
    (dict(n_bootstrap=-1), "n_bootstrap"), (dict(confidence=1.0), "confidence"),
    (dict(counts=(0, 2)), "counts"), (dict(draws=0), "draws"),
])
def test_score_logits_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        score_logits(*_pops(5, m=3, r=3, nf=5, nr=3, nt=5), **kwargs)


def _null_coverage(studies, n_bootstrap):
    hits = {"ulira": 0, "urmia": 0}
    for s in range(studies):
        res = score_logits(*_pops(s), audits=("ulira", "urmia"), n_bootstrap=n_bootstrap,
                           seed=s)
        for a in hits:
            lo, hi = res[a]["auc_ci"]
            hits[a] += lo <= 0.5 <= hi
    return hits


def test_attack_interval_null_coverage_fast():
    """95% two-way intervals of the AUC under perfect unlearning (8 + 8 models, 30 forget
    and 30 test rows) cover 0.5: measured 20/20 (U-LiRA) and 18/20 (U-RMIA). With targets
    and references resampled but the rows held fixed, U-RMIA's offline intervals covered
    0.5 in only 25 of 40 such studies (per-example difficulty enters its score)."""
    hits = _null_coverage(20, 50)
    assert hits["ulira"] >= 18 and hits["urmia"] >= 17, hits


@pytest.mark.slow  # 100 studies x 100 resamples: ~40 s on 2 CPU cores
def test_attack_interval_null_coverage():
    """100 null studies, 100 resamples each: the 95% AUC intervals covered 0.5 in 100
    (U-LiRA, conservative) and 95 (U-RMIA) studies; with a +1 true-class shift of the forget
    logits they covered the expected AUC (0.697 / 0.663, from 300 fresh studies) in 99 and
    97 studies."""
    hits = _null_coverage(100, 100)
    assert hits["ulira"] >= 90 and hits["urmia"] >= 88, hits


# --- task and submission files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    d = tmp_path_factory.mktemp("score_task")
    return export_task("digits", d / "task.npz", epochs=1, batch_size=64, num_models=4)


def test_task_file_contents(task):
    t = load_task(task.path)
    assert t.task_hash == task.task_hash and len(t.task_hash) == 64
    nf, nr, nt = (t.rows(r).size for r in ROLES)
    assert (nf, nr, nt) == (t.forget_index.size, t.retain_index.size, t.test_index.size)
    assert np.array_equal(t.eval_index, np.concatenate([t.forget_index, t.retain_index,
                                                        t.test_index]))
    assert np.array_equal(t.eval_role, np.repeat([0, 1, 2], [nf, nr, nt]))
    from jaxmu.data import load_digits

    pool = load_digits().pool
    assert np.array_equal(t.eval_images, np.asarray(pool.x)[t.eval_index])
    assert np.array_equal(t.eval_labels, np.asarray(pool.y)[t.eval_index])
    x = np.asarray(pool.normalize(pool.x[t.eval_index]))
    np.testing.assert_allclose(t.normalized_images(), x, rtol=1e-6, atol=1e-6)
    assert t.model == "mlp" and t.recipe["epochs"] == 1 and t.recipe["augment"] is False
    assert t.recipe["lr"] == 0.05 and t.num_models == 4 and t.seed == 0
    assert (t.split_seed, t.val_fraction, t.retain_sample) == (123, 0.15, -1)


def test_task_hash_is_the_documented_sha256(task):
    # docs/scoring.md: SHA-256 over the keys in sorted order, each as name, NUL, dtype
    # string, NUL, shape tuple, NUL, then the raw C-order bytes
    with np.load(task.path) as z:
        arrays = {k: z[k] for k in z.files if k != "task_hash"}
        stored = str(z["task_hash"])
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode() + b"\0" + a.dtype.str.encode() + b"\0" + str(a.shape).encode()
                 + b"\0" + a.tobytes())
    assert h.hexdigest() == stored == task.task_hash


def test_retain_sample(tmp_path, task):
    t = export_task("digits", tmp_path / "t.npz", epochs=1, batch_size=64, num_models=4,
                    retain_sample=50)
    again = export_task("digits", tmp_path / "t2.npz", epochs=1, batch_size=64, num_models=4,
                        retain_sample=50)
    kept = t.eval_index[t.rows("retain")]
    assert kept.size == 50 == t.retain_sample
    assert np.all(np.diff(kept) > 0) and np.isin(kept, t.retain_index).all()
    assert np.array_equal(kept, again.eval_index[again.rows("retain")])
    assert t.task_hash == again.task_hash != task.task_hash
    assert t.num_rows == t.forget_index.size + 50 + t.test_index.size


def test_task_retrained_logits_picks_the_eval_rows(monkeypatch, tmp_path):
    # the retrained population's logits on whole splits, rows marked by their pool index
    import jaxmu.evaluation
    from jaxmu.score import task_retrained_logits, task_splits

    t = export_task("digits", tmp_path / "t.npz", epochs=1, batch_size=64, num_models=4,
                    retain_sample=40)
    seen = {}

    def fake(model, splits, *, num_models, seed, config, **kw):
        seen.update(num_models=num_models, seed=seed, epochs=config.epochs, model=model.name)
        out = {}
        for sp in ROLES:
            idx = np.asarray(splits.indices(sp))
            out[sp] = np.broadcast_to(idx[None, :, None].astype(np.float32),
                                      (num_models, idx.size, 10)).copy()
        return out, {"from_store": True, "retrain_s": 0.0, "wall_s": 0.0}

    monkeypatch.setattr(jaxmu.evaluation, "retrained_population_logits", fake)
    logits, info = task_retrained_logits(t, task_splits(t))
    assert logits.shape == (4, t.num_rows, 10) and info["from_store"]
    assert np.array_equal(logits[0, :, 0], t.eval_index.astype(np.float32))
    assert seen == {"num_models": 4, "seed": 0, "epochs": 1, "model": "mlp"}


def test_make_and_load_submission(tmp_path, task):
    logits = np.random.default_rng(0).normal(size=(3, task.num_rows, 10)).astype(np.float32)
    path = make_submission(tmp_path / "s.npz", logits, task.path)
    got = load_submission(path, task)
    assert got.dtype == np.float32 and np.array_equal(got, logits)
    with np.load(path) as z:
        assert sorted(z.files) == ["format", "logits", "task_hash"]
        assert str(z["task_hash"]) == task.task_hash
    with pytest.raises(ValueError, match="at least 2"):
        make_submission(tmp_path / "bad.npz", logits[:1], task)
    assert not (tmp_path / "bad.npz").exists()


def _bad_submissions(d: Path, task) -> dict[str, tuple[Path, str]]:
    n = task.num_rows
    good = np.zeros((3, n, 10), np.float32)
    h = np.asarray(task.task_hash)
    cases = {}

    def save(name, **arrays):
        p = d / f"{name}.npz"
        np.savez(p, **arrays)
        return p

    cases["missing"] = (d / "nope.npz", "no such submission file")
    (d / "text.npz").write_text("not a zip archive\n")
    cases["not_npz"] = (d / "text.npz", "not a submission .npz")
    np.save(d / "array.npy", good)
    cases["npy"] = (d / "array.npy", "not a submission .npz")
    cases["no_logits"] = (save("no_logits", task_hash=h), "missing key(s) ['logits']")
    cases["no_hash"] = (save("no_hash", logits=good), "missing key(s) ['task_hash']")
    cases["ndim"] = (save("ndim", logits=good[0], task_hash=h), "must be [M, N, K]")
    cases["rows"] = (save("rows", logits=good[:, :-1], task_hash=h), f"the task has {n}")
    cases["classes"] = (save("classes", logits=np.zeros((3, n, 9), np.float32), task_hash=h),
                        "9 classes")
    cases["one_model"] = (save("one_model", logits=good[:1], task_hash=h), "at least 2")
    nan = good.copy()
    nan[1, 5, 2] = np.nan
    cases["nan"] = (save("nan", logits=nan, task_hash=h), "model 1, row 5")
    cases["ints"] = (save("ints", logits=good.astype(np.int32), task_hash=h), "floats")
    cases["hash"] = (save("hash", logits=good, task_hash=np.asarray("0" * 64)),
                     "not this task's")
    return cases


def test_cli_rejects_bad_submissions(tmp_path, task, capsys):
    out = tmp_path / "result.json"
    for name, (path, msg) in _bad_submissions(tmp_path, task).items():
        rc = main([str(path), "--task", task.path, "--out", str(out), "--cache-dir",
                   str(tmp_path / "cache"), "--quiet"])
        cap = capsys.readouterr()
        assert rc == 2, name
        lines = cap.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("python -m jaxmu.score: error: "), name
        assert msg in lines[0] and str(path) in lines[0], (name, lines[0])
        assert cap.out == "", name
        assert not out.exists() and not (tmp_path / "cache").exists(), name


def test_cli_rejects_bad_task_files(tmp_path, task, capsys):
    sub = make_submission(tmp_path / "s.npz", np.zeros((2, task.num_rows, 10), np.float32),
                          task)
    with np.load(task.path) as z:
        arrays = {k: z[k] for k in z.files}
    tampered = dict(arrays, seed=np.asarray(1, np.int64))  # hash kept: a modified file
    np.savez(tmp_path / "tampered.npz", **tampered)
    np.savez(tmp_path / "other.npz", logits=np.zeros(3))
    cases = {"missing": (tmp_path / "none.npz", "no such task file"),
             "tampered": (tmp_path / "tampered.npz", "modified or damaged"),
             "not_a_task": (tmp_path / "other.npz", "not a jaxmu task file")}
    for name, (path, msg) in cases.items():
        rc = main([str(sub), "--task", str(path), "--out", str(tmp_path / "r.json")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and msg in err[0], (name, err)
        assert not (tmp_path / "r.json").exists()
    assert main([str(sub), "--task", task.path, "--bootstrap", "-1"]) == 2
    assert "--bootstrap must be >= 0" in capsys.readouterr().err


def test_export_cli(tmp_path, task, capsys):
    out = tmp_path / "t.npz"
    assert main(["export", "digits", "--out", str(out), "--epochs", "1", "--batch-size", "64",
                 "--models", "4"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert load_task(out).task_hash == task.task_hash  # same settings, same task
    for argv, msg in ((["export", "nope", "--out", str(tmp_path / "x.npz")], "unknown dataset"),
                      (["export", "digits", "--out", str(tmp_path / "x.npz"), "--models", "1"],
                       "num_models"),
                      (["export", "digits", "--out", str(tmp_path / "x.npz"),
                        "--forget-scenario", "nope"], "forget scenario"),
                      (["export", "digits"], "--out")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
        assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("argv", [["--help"], ["export", "--help"]])
def test_help_does_not_import_jax(argv):
    code = (
        "import contextlib, io, json, runpy, sys\n"
        f"sys.argv = ['jaxmu/score/__main__.py', *{argv!r}]\n"
        "buf = io.StringIO()\n"
        "try:\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        runpy.run_module('jaxmu.score', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'jaxlib', 'flax', "
        "'optax', 'scipy', 'sklearn'})\n"
        "print(json.dumps({'code': code, 'help': buf.getvalue(), 'loaded': loaded}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       check=False)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["code"] == 0 and out["loaded"] == [], out["loaded"]
    assert out["help"].startswith("usage: python -m jaxmu.score")


# --- the round trip --------------------------------------------------------------------------


def test_round_trip_equals_in_process_and_fscore_pipeline(tmp_path, task):
    """A submission of jaxmu's own unlearned population scores, through the CLI, exactly as
    score_logits does in-process and, for the F-score, exactly as fscore_pipeline does (the
    retrained population read from the same store entry, not trained again)."""
    from jaxmu.evaluation import fscore_pipeline
    from jaxmu.methods import get_method
    from jaxmu.score import jaxmu_unlearned_logits, task_retrained_logits, task_splits
    from jaxmu.score._task import reference_model, reference_recipe
    from jaxmu.train import cached_fit

    cache = str(tmp_path / "cache")
    method = get_method("ga", epochs=1, batch_size=64)
    splits = task_splits(task)
    model, recipe = reference_model(task), reference_recipe(task)
    po, so, _ = cached_fit(cache, model, splits.pool, splits.mask("train"), task.seed, recipe,
                           progress=False)
    fs = fscore_pipeline(model, splits, (po, so), method.bind(model), num_models=4,
                         seed=task.seed, config=recipe, cache_dir=cache, n_bootstrap=20,
                         strategy="vmap", progress=False)
    logits = jaxmu_unlearned_logits(task, method, cache_dir=cache, strategy="vmap")
    assert logits.shape == (4, task.num_rows, 10) and logits.dtype == np.float32
    sub = make_submission(tmp_path / "submission.npz", logits, task)
    out = tmp_path / "result.json"
    assert main([str(sub), "--task", task.path, "--cache-dir", cache, "--out", str(out),
                 "--bootstrap", "20", "--permutations", "10", "--strategy", "vmap",
                 "--quiet"]) == 0
    rec = json.loads(out.read_text())
    assert rec["retrained"]["from_store"] is True  # fscore_pipeline's population
    assert rec["task_hash"] == task.task_hash and rec["relearn"] == RELEARN_NOTE
    assert rec["provenance"]["versions"]["jaxmu"]
    assert {"total_s", "retrained_s", *AUDITS} <= set(rec["timings"])
    assert rec["config"]["bootstrap"] == 20

    # (a) the in-process computation on the same arrays
    rlog, info = task_retrained_logits(task, splits, cache_dir=cache, strategy="vmap")
    assert info["from_store"]
    mine = score_logits(load_submission(sub, task), rlog, task.eval_labels, task.eval_role,
                        n_bootstrap=20, n_permutations=10, seed=task.seed)
    for a in AUDITS:
        assert _close(rec[a], to_json(mine[a])), a  # the file: NaN as null

    # (b) fscore_pipeline on the same setting: exactly equal
    for key in ("forget_quality", "score", "forget_quality_ci", "score_ci", "eps",
                "unlearned_ra", "unlearned_ta", "retrained_ra", "retrained_ta", "num_models",
                "forget_size"):
        assert _close(rec["fscore"][key], json.loads(json.dumps(fs[key]))), key
