"""The test harness itself: under pytest-xdist each worker computes on OMP_NUM_THREADS threads, one unless the
caller set it (tests/conftest.py), so that N workers share N cores instead of each spinning BLAS threads on all of
them."""

import os

import pytest


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="only under pytest -n (a pytest-xdist worker)")
def test_an_xdist_worker_computes_on_the_threads_omp_num_threads_gives():
    import numpy  # noqa: F401  (its BLAS: already loaded by a plugin, or loaded now, after conftest)
    from threadpoolctl import threadpool_info

    threads = int(os.environ["OMP_NUM_THREADS"])                           # conftest's default: 1
    pools = threadpool_info()
    assert pools and all(p["num_threads"] == threads for p in pools), pools  # NumPy's BLAS, loaded before conftest
    try:
        import torch
    except ImportError:
        return
    assert torch.get_num_threads() == threads
