"""Metric tests run scikit-learn single-threaded: tiny fits, and no OpenMP oversubscription
when pytest-xdist or other jobs share the cores."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _single_threaded_blas_and_openmp():
    with threadpool_limits(limits=1):
        yield
