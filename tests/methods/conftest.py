"""Keeps the conformance suite's CNN half to the methods with conv/BatchNorm-specific code in
the default run; the other methods' CNN checks are marked ``slow`` (``pytest -m slow``, run by
CI after the default run). Every method is checked on the MLP by default."""

from __future__ import annotations

import pytest

CNN_BY_DEFAULT = {"ct", "cfw", "prmq", "eu_k", "cf_k", "kde", "rni", "activation_pruning",
                  "scrub", "salun"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (item.module.__name__.endswith("test_conformance")
                and params.get("population") == "cnn"
                and params.get("run") not in CNN_BY_DEFAULT):
            item.add_marker(pytest.mark.slow)
