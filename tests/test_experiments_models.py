"""Named model variants of the experiment CLI and the Fashion-MNIST default."""

from __future__ import annotations

import pytest

from experiments._cli import DEFAULTS, MODEL_VARIANTS, build_model, build_parser
from jaxmu.models import MODELS


def test_fashion_mnist_defaults_to_the_wide_small_cnn():
    a = build_parser("fashion_mnist").parse_args([])
    assert (a.model, a.epochs, a.batch_size) == ("small_cnn_c32_64_128", 15, 256)
    assert DEFAULTS["fashion_mnist"][0] in MODEL_VARIANTS
    # The paper's setting stays available.
    assert build_parser("fashion_mnist").parse_args(["--model", "resnet18"]).model == "resnet18"


def test_variant_builds_its_base_with_its_kwargs_under_its_own_name():
    m = build_model("small_cnn_c32_64_128", 10, (32, 32, 3))
    assert m.name == "small_cnn_c32_64_128"
    assert tuple(m.module.channels) == (32, 64, 128)
    assert build_model("small_cnn", 10, (32, 32, 3)).name == "small_cnn"
    assert not set(MODEL_VARIANTS) & set(MODELS)


def test_unknown_model_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser("fashion_mnist").parse_args(["--model", "small_cnn_c1"])
    assert e.value.code == 2
