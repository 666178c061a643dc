"""``ulira_pipeline``'s flip augmentation and online/offline variants (evaluation-spec §2.6):
the defaults are the explicit ``flip=False, variant="online"``; ``flip=True`` adds a second
view (the mirrored images) along the metric's augmentation axis; ``variant="offline"``
scores against the never-seen world only. A tiny design: 4 shadows x 2 forget sets on 96
digits examples, the shadow originals trained once (shared cache)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import digits_subset_splits

import jaxmu.evaluation._pipelines as pipelines
from jaxmu.evaluation import ulira_pipeline
from jaxmu.methods import get_method
from jaxmu.models import mlp
from jaxmu.train import TrainConfig

MODEL = mlp((8, 8, 1), 10, hidden=(16,))
RECIPE = TrainConfig(epochs=1, batch_size=32, lr=0.05, augment=False)
DESIGN = dict(num_shadows=4, num_forget_sets=2, forget_fraction=0.25, n_bootstrap=20)
CASES = {"none": {}, "explicit": {"flip": False, "variant": "online"},
         "flip": {"flip": True}, "offline": {"variant": "offline"}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """case -> (report, what the metric received: stats shapes/values, online, scores)."""
    splits = digits_subset_splits(n=96, n_forget=8, n_val=8, n_test=8)
    method = get_method("original").bind(MODEL)  # the no-op: nothing to compile per call
    cache = str(tmp_path_factory.mktemp("ulira_options"))
    seen, real = {}, pipelines.ulira_metric

    def spy(u, r, t, truth, **kw):
        out = real(u, r, t, truth, **kw)
        seen.update(target=np.asarray(t), online=kw.get("online", True),
                    scores=np.asarray(out["scores"]))
        return out

    res = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipelines, "ulira_metric", spy)
        for name, kw in CASES.items():
            rep = ulira_pipeline(MODEL, splits, method, **DESIGN, **kw, config=RECIPE,
                                 strategy="vmap", cache_dir=cache, progress=False)
            res[name] = (rep, dict(seen))
    return res


def _in_unit_interval(rep):
    for k in ("ulira_accuracy", "ulira_best_acc", "auc", "tpr_at_1fpr"):
        assert 0.0 <= rep[k] <= 1.0, (k, rep[k])
    lo, hi = rep["ulira_accuracy_ci"]
    assert 0.0 <= lo <= hi <= 1.0


def test_defaults_are_online_without_flip(runs):
    (a, sa), (b, sb) = runs["none"], runs["explicit"]
    assert (a["flip"], a["variant"]) == (b["flip"], b["variant"]) == (False, "online")
    assert set(a) == set(b)
    for k in a:
        if k != "timings":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert sa["online"] and sa["target"].ndim == 2  # no augmentation axis
    np.testing.assert_array_equal(sa["scores"], sb["scores"])


def test_flip_adds_the_mirrored_view(runs):
    (rep, s), (_, s0) = runs["flip"], runs["none"]
    assert rep["flip"] is True and rep["variant"] == "online"
    assert s["target"].shape == (*s0["target"].shape, 2)
    np.testing.assert_array_equal(s["target"][..., 0], s0["target"])  # view 0: as is
    assert not np.array_equal(s["target"][..., 1], s0["target"])  # view 1: mirrored
    assert not np.array_equal(s["scores"], s0["scores"], equal_nan=True)
    _in_unit_interval(rep)


def test_offline_differs_from_online(runs):
    (rep, s), (_, s0) = runs["offline"], runs["none"]
    assert rep["variant"] == "offline" and rep["flip"] is False and s["online"] is False
    np.testing.assert_array_equal(s["target"], s0["target"])  # same statistics
    assert not np.array_equal(s["scores"], s0["scores"], equal_nan=True)
    _in_unit_interval(rep)


@pytest.mark.parametrize("variant", ["nope", "Online", None])
def test_bad_variant_raises_before_any_training(variant):
    with pytest.raises(ValueError, match="variant: expected 'online' or 'offline'"):
        ulira_pipeline(MODEL, digits_subset_splits(), get_method("ft").bind(MODEL),
                       num_shadows=4, num_forget_sets=1, variant=variant, progress=False)
