"""Every audit from one cached design population (jaxmu.audits.run_audits) and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxmu.audits import AUDITS, AuditConfig, RelearnConfig, run_audits
from jaxmu.evaluation import design_logits, ulira_design, ulira_pipeline
from jaxmu.methods import get_method
from jaxmu.metrics import klom_report, margins, rmia_signal, u_rmia
from jaxmu.models import mlp
from jaxmu.train import TrainConfig
from jaxmu.types import Pool, Splits

RECIPE = TrainConfig(epochs=3, batch_size=16, lr=0.05, weight_decay=0.0, augment=False)
CFG = AuditConfig(num_shadows=8, num_forget_sets=2, forget_fraction=0.25, num_targets=2,
                  n_bootstrap=10, n_permutations=10, shadow_draws=2, relearn_runs=3,
                  relearn=RelearnConfig(steps=4, eval_every=2, batch_size=8))


def _splits(n=72, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    x = (rng.normal(0, 40, (n, 4, 4, 1)) + 60 * y[:, None, None, None] + 60).clip(0, 255)
    pool = Pool(x.astype(np.uint8), y, num_classes=3, mean=(0.5,), std=(0.25,),
                name="tiny_audit", hflip=False, crop_pad=0)
    return Splits.build(pool, forget=np.arange(6), retain=np.arange(6, 60),
                        val=np.arange(60, n))


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    splits = _splits()
    model = mlp((4, 4, 1), 3, hidden=(16,))
    cache = str(tmp_path_factory.mktemp("audit_cache"))
    method = get_method("ft", epochs=1, lr=0.01).bind(model)
    oracle = get_method("retrain", epochs=3, batch_size=16, lr=0.05, weight_decay=0.0,
                        augment=False).bind(model)
    return splits, model, cache, method, oracle


@pytest.fixture(scope="module")
def first(setting, tmp_path_factory):
    splits, model, cache, method, oracle = setting
    plots = tmp_path_factory.mktemp("plots")
    rep = run_audits(model, splits, method, AUDITS, oracle_method=oracle, config=CFG,
                     recipe=RECIPE, strategy="vmap", cache_dir=cache, plot_dir=plots,
                     progress=False)
    return rep, plots


def test_every_audit_reports(first):
    rep, plots = first
    assert set(AUDITS) <= set(rep)
    pop = rep["population"]
    assert pop["num_shadows"] == 8 and pop["num_targets"] == 2 and pop["candidates"] == 60
    assert pop["forget_size"] == 8  # 25% of each original's 30 members, rounded
    assert not any(pop["from_store"].values())
    for k in ("forget_p95", "retain_p95", "unseen_p95"):
        assert np.isfinite(rep["klom"][k]) and rep["klom"][k] >= 0
    assert 0 <= rep["rmia"]["unlearning"]["auc"] <= 1
    assert 0 <= rep["rmia"]["membership"]["auc"] <= 1
    assert rep["relearn"]["runs"] == 3 and len(rep["relearn"]["steps"]) == 3
    counts = rep["shadow-curve"]["table"]["urmia"]["shadows"]
    assert counts == [1, 2, 4, 6]
    for name in ("roc", "klom", "relearn", "shadow_curve"):
        path = rep["plots"][name]
        assert path.startswith(str(plots)) and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    json.dumps(rep, allow_nan=True)  # JSON-ready


def test_second_run_reuses_the_population(setting, first):
    splits, model, cache, method, oracle = setting
    rep, _ = first
    again = run_audits(model, splits, method, ("klom", "rmia", "ulira"), oracle_method=oracle,
                       config=CFG, recipe=RECIPE, strategy="vmap", cache_dir=cache,
                       progress=False)
    assert all(again["population"]["from_store"].values())
    for k in ("forget_p95", "retain_p95", "unseen_p95"):
        assert again["klom"][k] == rep["klom"][k]
    assert again["rmia"]["unlearning"]["auc"] == rep["rmia"]["unlearning"]["auc"]
    assert again["ulira"]["ulira_accuracy"] == rep["ulira"]["ulira_accuracy"]


def test_ulira_equals_the_ulira_pipeline(setting, first):
    splits, model, cache, method, _ = setting
    rep, _ = first
    u = ulira_pipeline(model, splits, method, num_shadows=8, num_forget_sets=2,
                       forget_fraction=0.25, num_targets=2, seed=0, config=RECIPE,
                       strategy="vmap", cache_dir=cache, n_bootstrap=10, progress=False)
    assert u["timings"]["from_store"]  # --eval ulira reads the audits' population
    for k in ("ulira_accuracy", "auc", "tpr_at_1fpr", "ulira_accuracy_ci"):
        assert u[k] == rep["ulira"][k] or list(u[k]) == list(rep["ulira"][k])


def test_klom_and_urmia_equal_the_metrics_on_the_stored_logits(setting, first):
    splits, model, cache, method, oracle = setting
    rep, _ = first
    design = ulira_design(splits, 8, 2, 0.25, seed=0)
    kw = dict(seed=0, config=RECIPE, strategy="vmap", cache_dir=cache, progress=False)
    runs = design_logits(model, splits, design, method, keep_params=(12, 13, 14), **kw)
    orc = design_logits(model, splits, design, oracle, stream=1, keep_params=(12, 13, 14),
                        **kw)
    assert runs.timings["from_store"] and orc.timings["from_store"]
    masks = lambda r: {"forget": r.forget, "retain": r.retain, "unseen": r.unseen}  # noqa
    k = klom_report(margins(runs.logits, runs.y), margins(orc.logits, orc.y),
                    unlearned_masks=masks(runs), oracle_masks=masks(orc),
                    unlearned_groups=runs.groups, oracle_groups=orc.groups, n_bootstrap=10,
                    n_permutations=10, seed=0)
    assert k["forget_p95"] == rep["klom"]["forget_p95"]
    assert list(k["forget_p95_ci"]) == list(rep["klom"]["forget_p95_ci"])
    p = rmia_signal(runs.logits, runs.y)
    n_sh = 12  # 6 shadow originals x 2 forget sets
    from jaxmu.evaluation import target_pairs

    tm = target_pairs(runs, n_sh, 0)
    u = u_rmia(p[:n_sh], runs.forget[:n_sh], runs.unseen[:n_sh], p[n_sh:],
               runs.forget[n_sh:] & tm, runs.unseen[n_sh:] & tm, z_mask=runs.unseen[n_sh:],
               target_groups=runs.groups[n_sh:], shadow_groups=runs.groups[:n_sh],
               n_bootstrap=10, seed=0)
    assert u["auc"] == rep["rmia"]["unlearning"]["auc"]
    assert u["urmia_accuracy"] == rep["rmia"]["unlearning"]["urmia_accuracy"]


def test_bad_audit_inputs(setting):
    splits, model, cache, method, oracle = setting
    with pytest.raises(ValueError, match="audits must be"):
        run_audits(model, splits, method, ("klom", "nope"), oracle_method=oracle, config=CFG,
                   recipe=RECIPE, cache_dir=None, progress=False)
    with pytest.raises(ValueError, match="audits must be"):
        run_audits(model, splits, method, ("klom", "klom"), oracle_method=oracle, config=CFG,
                   recipe=RECIPE, cache_dir=None, progress=False)
    for bad in (dict(num_shadows=2), dict(num_forget_sets=0), dict(forget_fraction=1.0),
                dict(num_targets=7), dict(shadow_draws=0), dict(relearn_runs=0),
                dict(n_bootstrap=-1), dict(shadow_counts=(0,)), dict(shadow_counts=(7,))):
        with pytest.raises(ValueError):
            AuditConfig(**{"num_shadows": 8, "num_targets": 2, **bad})
    assert AuditConfig(num_shadows=64).counts() == (1, 2, 4, 8, 16, 32, 56)
    assert AuditConfig(num_shadows=64).targets == 8


def test_rmia_few_references_and_offline(setting, first):
    import dataclasses

    splits, model, cache, method, oracle = setting
    cfg = dataclasses.replace(CFG, rmia_references=2, rmia_offline=True, rmia_a=0.5)
    rep = run_audits(model, splits, method, ("rmia",), oracle_method=oracle, config=cfg,
                     recipe=RECIPE, strategy="vmap", cache_dir=cache, progress=False)
    r = rep["rmia"]
    assert r["references"] == 2 and not r["online"] and r["offline_a"] == 0.5
    assert 0 <= r["unlearning"]["auc"] <= 1
    assert rep["population"]["from_store"]["method"]
    with pytest.raises(ValueError, match="rmia_references"):
        dataclasses.replace(CFG, rmia_references=7)


@pytest.mark.parametrize("args", [
    ["--eval", "klom", "--relearn-steps", "0"],
    ["--eval", "rmia", "--rmia-references", "0"],
    ["--eval", "all", "--shadow-draws", "0"],
    ["--eval", "relearn", "--relearn-runs", "0"],
    ["--eval", "klom", "--shadows", "8", "--targets", "7"],
    ["--eval", "relearn", "--relearn-variant", "nope"],
])
def test_cli_bad_audit_options_exit_2(args, capsys, tmp_path):
    from experiments._cli import main

    assert main("digits", args + ["--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m experiments.digits: error: "), err
    assert not any(tmp_path.rglob("*"))


def test_cli_eval_klom_writes_numbers_and_plot(tmp_path, capsys):
    from experiments._cli import main

    args = ["--method", "ft", "--hp", "epochs=1", "--eval", "klom", "--shadows", "8",
            "--forget-sets", "2", "--epochs", "2", "--bootstrap", "5", "--no-mia", "--quiet",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    assert main("digits", args) == 0
    out = capsys.readouterr().out
    assert "KLoM         forget P95" in out and "audit population: 8 shadow originals" in out
    rec = json.loads((tmp_path / "out" / "digits" / "ft_seed0_klom.json").read_text())
    k = rec["klom"]["klom"]
    assert k["forget_n"] > 0 and len(k["forget_p95_ci"]) == 2 and "forget_p95_pvalue" in k
    png = tmp_path / "out" / "digits" / "ft_seed0_klom" / "klom_margins.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    # the same command again: the population comes from the store
    assert main("digits", args) == 0
    rec2 = json.loads((tmp_path / "out" / "digits" / "ft_seed0_klom.json").read_text())
    assert all(rec2["klom"]["population"]["from_store"].values())
    assert rec2["klom"]["klom"]["forget_p95"] == k["forget_p95"]


def test_cli_relearn_evaluation_grid_divides_any_budget():
    from experiments._audit_cli import _eval_every

    for steps in (1, 5, 20, 25, 97, 100, 120):
        e = _eval_every(steps)
        assert steps % e == 0 and steps // e >= min(10, steps)
    assert (_eval_every(100), _eval_every(25)) == (10, 1)
