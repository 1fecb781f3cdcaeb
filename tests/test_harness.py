"""The test harness itself: under pytest-xdist each worker computes on one thread (tests/conftest.py), so that N
workers share N cores instead of each spinning BLAS threads on all of them."""

import os

import pytest


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="only under pytest -n (a pytest-xdist worker)")
def test_an_xdist_worker_computes_on_one_thread():
    from threadpoolctl import threadpool_info

    assert os.environ["OMP_NUM_THREADS"] == "1"
    pools = threadpool_info()
    assert pools and all(p["num_threads"] == 1 for p in pools), pools       # NumPy's BLAS, loaded before conftest
    try:
        import torch
    except ImportError:
        return
    assert torch.get_num_threads() == 1
