"""The experiment CLI says when the chosen method degenerates on the chosen model."""

from __future__ import annotations

import json

import pytest

import jaxmu.train
from experiments._cli import main

FAST = ["--epochs", "2", "--no-mia", "--quiet", "--cache-dir", ""]
WHY = "ct needs conv kernels; on mlp it is fine-tuning (FT)"


def _stop_before_training(monkeypatch):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxmu.train, "cached_fit", stop)


@pytest.mark.parametrize("model, warned", [("mlp", True), ("small_cnn", False)])
def test_warning_line_comes_before_training(model, warned, monkeypatch, tmp_path, capsys):
    _stop_before_training(monkeypatch)
    assert main("digits", ["--method", "ct", "--model", model, "--out", str(tmp_path)]
                + FAST) == 130
    err = capsys.readouterr().err.splitlines()
    assert err.count(f"warning: {WHY}") == int(warned)
    assert sum("needs" in line for line in err) == int(warned)


@pytest.mark.slow
def test_degenerate_method_warns_once_and_records_it(tmp_path, capsys):
    assert main("digits", ["--method", "ct", "--hp", "epochs=1", "--out", str(tmp_path)]
                + FAST) == 0
    err = capsys.readouterr().err.splitlines()
    assert err.count(f"warning: {WHY}") == 1
    assert sum("needs" in line for line in err) == 1
    rec = json.loads((tmp_path / "digits" / "ct_seed0.json").read_text())
    assert rec["degenerate"] == WHY


@pytest.mark.slow
def test_method_that_acts_records_none(tmp_path, capsys):
    assert main("digits", ["--method", "ct", "--hp", "epochs=1", "--model", "small_cnn",
                           "--out", str(tmp_path)] + FAST) == 0
    assert "needs" not in capsys.readouterr().err
    rec = json.loads((tmp_path / "digits" / "ct_seed0.json").read_text())
    assert rec["degenerate"] is None
