"""Methods that cannot act on a model say so: registry needs and degenerate_reason."""

from __future__ import annotations

import jax
import pytest

from jaxmu.methods import Need, degenerate_reason, get_method, list_methods
from jaxmu.models import mlp, regex, resnet18, small_cnn
from jaxmu.sweep._benchmark import ranking_rows, study_ranking

MLP = mlp((8, 8, 1), 10)
CNN = small_cnn((8, 8, 1), 10, channels=(8, 16))


def test_mlp_reasons_name_method_need_and_fallback():
    assert degenerate_reason("ct", None, MLP) == (
        "ct needs conv kernels; on mlp it is fine-tuning (FT)")
    assert degenerate_reason("rotate", None, MLP) == (
        "rotate needs conv kernels; on mlp it is fine-tuning (FT)")
    assert degenerate_reason("pseudo_label", None, MLP) == (
        "pseudo_label needs conv kernels for its rotate step; on mlp it is pseudo-labelling "
        "without the rotation")
    # dense0, dense1, head: kernel + bias each = 6 tensors <= 9 picks.
    assert degenerate_reason("rni", None, MLP) == (
        "rni needs more than layer_select=9 non-BatchNorm tensors (mlp has 6); on mlp it is "
        "head reset + fine-tuning (FT), without noise")


def test_only_the_declared_methods_degenerate_on_the_mlp():
    got = {m for m in list_methods() if degenerate_reason(m, None, MLP)}
    assert got == {"ct", "rotate", "pseudo_label", "rni"}


@pytest.mark.parametrize("name", ["ct", "rotate", "pseudo_label"])
def test_conv_methods_act_on_the_small_cnn(name):
    assert degenerate_reason(name, None, CNN) is None


def test_rni_depends_on_tensor_count_and_hyperparameters():
    # small_cnn (8, 16): conv0, conv1 kernels + head kernel, bias = 4 non-BN tensors.
    assert "(small_cnn has 4)" in degenerate_reason("rni", None, CNN)
    assert degenerate_reason("rni", {"layer_select": 3}, CNN) is None
    assert degenerate_reason("rni", {"layer_select": 5}, MLP) is None
    # Noise from the first epoch on: newly picked tensors get noise, not degenerate.
    assert degenerate_reason("rni", {"reset_epochs": 0}, MLP) is None
    assert degenerate_reason("rni", None, resnet18(10, (32, 32, 3), stem="cifar")) is None


def test_real_params_agree_with_shapes_and_bound_method():
    params, _ = MLP.init(jax.random.key(1))
    assert degenerate_reason("ct", None, MLP, params) == degenerate_reason("ct", None, MLP)
    m = get_method("ct")
    assert m.bind(MLP).degenerate_reason() == degenerate_reason("ct", None, MLP)
    assert m.degenerate_reason(CNN) is None
    with pytest.raises(ValueError, match="not bound"):
        m.degenerate_reason()
    with pytest.raises(ValueError, match="unknown method"):
        degenerate_reason("nope", None, MLP)


def test_need_counts_selected_tensors():
    bn = Need("BatchNorm", "no BatchNorm", select=regex(r"(^|/)bn\d*/"))
    assert bn.missing(MLP, MLP.init(jax.random.key(0))[0]) == "needs BatchNorm"
    assert bn.missing(CNN, CNN.init(jax.random.key(0))[0]) is None
    two = Need("two BN layers' scales", "x", select=regex(r"bn\d/scale"), at_least=3)
    assert two.missing(CNN, CNN.init(jax.random.key(0))[0]) == (
        "needs two BN layers' scales (small_cnn has 2)")


def _study(methods):
    run = {"seed": 0, "usable": True, "metrics": {"retdev": 0.1, "indisc_test": 0.5}}
    return {"dataset": "digits", "model": "mlp",
            "methods": {m: {"runs": [dict(run, metrics={"retdev": v, "indisc_test": v})],
                            "degenerate": why} for m, (v, why) in methods.items()}}


def test_study_ranking_marks_degenerate_rows():
    why = "ct needs conv kernels; on mlp it is fine-tuning (FT)"
    study = _study({"ft": (0.1, None), "ct": (0.1, why), "ga": (0.9, None)})
    rows = ranking_rows(study)
    assert {r["method"]: r["degenerate"] for r in rows} == {"ft": None, "ct": why, "ga": None}
    ranking = study_ranking(rows, 1)
    for side in ("retdev", "indisc"):
        assert {t["method"]: t.get("degenerate") for t in ranking[side]} == {
            "ft": None, "ct": why, "ga": None}
        assert [set(t) - {"method", "rank", "G1", "G2", "G3", "F"} for t in ranking[side]
                if t["method"] != "ct"] == [set(), set()]
    # A study written before the field existed still ranks, unmarked.
    old = _study({"ft": (0.1, None), "ga": (0.9, None)})
    for v in old["methods"].values():
        del v["degenerate"]
    assert all("degenerate" not in t for t in study_ranking(ranking_rows(old), 1)["retdev"])
