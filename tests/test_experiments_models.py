"""Named model variants and per-dataset defaults (library data the experiment CLI shows),
and the Fashion-MNIST default."""

from __future__ import annotations

import pytest

from experiments._cli import build_parser
from jaxmu.data import DATASET_DEFAULTS, DatasetDefaults
from jaxmu.models import MODEL_VARIANTS, MODELS, ModelVariant, build_model


def test_fashion_mnist_defaults_to_the_wide_small_cnn():
    a = build_parser("fashion_mnist").parse_args([])
    assert (a.model, a.epochs, a.batch_size) == ("small_cnn_c32_64_128", 15, 256)
    assert DATASET_DEFAULTS["fashion_mnist"].model in MODEL_VARIANTS
    # The paper's setting stays available.
    assert build_parser("fashion_mnist").parse_args(["--model", "resnet18"]).model == "resnet18"


def test_variant_builds_its_base_with_its_kwargs_under_its_own_name():
    m = build_model("small_cnn_c32_64_128", 10, (32, 32, 3))
    assert m.name == "small_cnn_c32_64_128"
    assert tuple(m.module.channels) == (32, 64, 128)
    assert build_model("small_cnn", 10, (32, 32, 3)).name == "small_cnn"
    assert not set(MODEL_VARIANTS) & set(MODELS)


def test_parser_defaults_are_the_library_defaults():
    for dataset, d in DATASET_DEFAULTS.items():
        a = build_parser(dataset).parse_args([])
        assert (a.model, a.epochs, a.batch_size, a.lr) == (d.model, d.epochs, d.batch_size, d.lr)
    # digits: the small MLP setting, lr 0.05, no augmentation; the image datasets augment
    assert DATASET_DEFAULTS["digits"] == DatasetDefaults("mlp", 30, 64, 0.05, False)
    assert DATASET_DEFAULTS["cifar10"] == DatasetDefaults("resnet18", 182, 256, 0.1, True)


def test_defaults_and_variants_are_read_only_and_validated():
    with pytest.raises(TypeError):
        DATASET_DEFAULTS["svhn"] = DATASET_DEFAULTS["mnist"]
    with pytest.raises(TypeError):
        MODEL_VARIANTS["small_cnn_c32_64_128"].kwargs["channels"] = (8,)
    with pytest.raises(ValueError, match="model: unknown model 'vgg'"):
        DatasetDefaults("vgg", 1, 1)
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1"):
        DatasetDefaults("mlp", 0, 1)
    with pytest.raises(ValueError, match="lr: expected a finite number > 0"):
        DatasetDefaults("mlp", 1, 1, lr=float("nan"))
    with pytest.raises(ValueError, match="base: unknown model"):
        ModelVariant("vgg")
    with pytest.raises(ValueError, match="unknown model 'small_cnn_c1'"):
        build_model("small_cnn_c1", 10, (32, 32, 3))


def test_unknown_model_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser("fashion_mnist").parse_args(["--model", "small_cnn_c1"])
    assert e.value.code == 2
