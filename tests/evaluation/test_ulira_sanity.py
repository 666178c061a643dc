"""U-LiRA sanity: the original model is clearly attackable, the retrained one is at chance.

A setting on digits that overfits on purpose, so the original's membership signal is strong:
256 train candidates (each shadow original trains on a balanced half, 128 examples), a wide
MLP (one hidden layer of 256), 50 epochs, no weight decay, no augmentation. 128 shadow
originals x 4 forget sets (25% of each original's members) give 512 unlearning runs per
method; the last 16 originals (64 runs) are the held-out targets. The "original" method is
the no-op (U = O), so its U-LiRA accuracy is plain LiRA membership inference on the forget
set; "retrain" retrains every run from scratch on its retain set with the same recipe, so
forgotten and never-seen examples are exchangeable and the accuracy must be 0.5 up to noise.

Measured on the 2-core CPU (seed 0) with the earlier bootstrap over target runs: original
0.713 [0.701, 0.725], retrain 0.503 [0.487, 0.523]. Seeds 1-3 gave original 0.703-0.714 and
retrain 0.500-0.506, every retrain CI containing 0.5. With 16 shadows (the CLI's --shadows 16
--forget-sets 4) the retrain point estimates stayed within 0.5 +- 0.06 but that CI missed 0.5
for 2 of 5 seeds: it resampled target runs as independent rows and held the shadow fits
fixed. The pipeline now resamples whole original models, targets and shadows, refitting the
Gaussians in every resample (see tests/metrics/test_metrics_ulira_coverage.py for its
coverage on simulated studies). Seed 0 with it: original 0.713 [0.693, 0.729], retrain 0.503
[0.477, 0.526] (target originals only, fits fixed: [0.698, 0.731] and [0.486, 0.523]). The
retrain's per-example accuracies (256 examples, about 8 + 8 pairs each) have mean 0.503 and
SD 0.145, against 0.132 expected from pair sampling alone (per_example_accuracy_null_sd);
the original's have mean 0.709 and SD 0.212.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxmu.data import load_digits
from jaxmu.evaluation import ulira_pipeline
from jaxmu.methods import get_method
from jaxmu.models import mlp
from jaxmu.train import TrainConfig
from jaxmu.types import Pool, Splits

N_CANDIDATES, N_VAL = 256, 16
EPOCHS, BATCH, LR = 50, 32, 0.05
RECIPE = TrainConfig(epochs=EPOCHS, batch_size=BATCH, lr=LR, weight_decay=0.0,
                     augment=False)
SHADOWS, FORGET_SETS, FORGET_FRACTION, SEED = 128, 4, 0.25, 0

pytestmark = pytest.mark.slow


def _splits() -> Splits:
    """256 candidates (forget and retain: U-LiRA only uses their union) and 16 val examples,
    drawn with a fixed seed from the official digits train part."""
    ds = load_digits()
    idx = np.sort(np.random.default_rng(0).choice(ds.n_train, N_CANDIDATES + N_VAL,
                                                  replace=False))
    pool = Pool(ds.pool.x[idx], ds.pool.y[idx], num_classes=10, mean=ds.pool.mean,
                std=ds.pool.std, name=f"digits{idx.size}", hflip=False, crop_pad=1)
    return Splits.build(pool, forget=np.arange(8), retain=np.arange(8, N_CANDIDATES),
                        val=np.arange(N_CANDIDATES, idx.size))


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    splits = _splits()
    model = mlp((8, 8, 1), 10, hidden=(256,))
    cache = str(tmp_path_factory.mktemp("ulira_cache"))  # the shadow originals, trained once
    methods = {
        "original": get_method("original"),
        "retrain": get_method("retrain", epochs=EPOCHS, batch_size=BATCH, lr=LR,
                              weight_decay=0.0, augment=False),  # the originals' recipe
    }
    return {name: ulira_pipeline(model, splits, m.bind(model), num_shadows=SHADOWS,
                                 num_forget_sets=FORGET_SETS, forget_fraction=FORGET_FRACTION,
                                 seed=SEED, config=RECIPE, strategy="vmap", cache_dir=cache,
                                 progress=False)
            for name, m in methods.items()}


def _summary(rep) -> str:
    lo, hi = rep["ulira_accuracy_ci"]
    return f"{rep['ulira_accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"


def test_design(reports):
    for rep in reports.values():
        assert (rep["num_shadows"], rep["num_forget_sets"], rep["num_targets"]) == (128, 4, 16)
        assert rep["forget_size"] == 32 and rep["n_unscored"] == 0
        assert rep["n_positive"] == rep["n_negative"] == 16 * 4 * 32


def test_original_is_clearly_attackable(reports):
    rep = reports["original"]
    lo, hi = rep["ulira_accuracy_ci"]
    assert rep["ulira_accuracy"] > 0.6 and lo > 0.55, _summary(rep)
    assert lo <= rep["ulira_accuracy"] <= hi
    assert rep["auc"] > 0.7, rep["auc"]


def test_retrain_is_at_chance(reports):
    rep = reports["retrain"]
    lo, hi = rep["ulira_accuracy_ci"]
    assert abs(rep["ulira_accuracy"] - 0.5) < 0.05, _summary(rep)
    assert lo < 0.5 < hi, _summary(rep)
    assert abs(rep["auc"] - 0.5) < 0.05, rep["auc"]
    # Per-example accuracies at chance: their SD is close to the pair-sampling floor.
    assert rep["per_example_single_class"] == 0 and rep["per_example_n"] == 256
    floor = rep["per_example_accuracy_null_sd"]
    assert 0.1 < floor < 0.16 and rep["per_example_accuracy_std"] < 1.25 * floor
