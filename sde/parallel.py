"""Independent blocks of Monte Carlo work on several threads, with results that do not depend on the thread count.

NumPy releases the GIL inside its array loops, matrix products and random fills, so threads share the cores
without copying paths between processes. Two pools:

- `map_tasks` runs independent *tasks* (a curve's step size, an SDE, a sweep point), each of which may
- `map_blocks` split its paths into fixed-size *blocks* (seeded from the task's seed and the block's index).

A block never depends on which thread runs it and results are combined in the blocks' fixed order, so a study
is bit-identical whatever the number of workers (tests/test_sde_parallel.py). Tasks wait on blocks, never the
other way round, so the two pools cannot deadlock. Outside `workers(n)` everything runs serially in the caller.

Inside `workers(n)` BLAS runs one thread per call (threadpoolctl): the workers are the parallelism. With BLAS's
own threads on top, 2 workers on 2 cores were no faster than 1 (measured on the noise study's softmax panel:
44 s and 46 s; with one BLAS thread, 40 s and 22 s).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

_pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None


class Scratch:
    """Scratch arrays by (name, shape), one set per thread: an object stepped from several worker threads never
    shares a buffer between them, and a thread's buffers are freed when the thread ends (threading.local)."""

    def __init__(self):
        self._local = threading.local()

    def get(self, name: str, shape) -> np.ndarray:
        bufs = self._local.__dict__.setdefault("bufs", {})
        key = (name, tuple(shape))
        buf = bufs.get(key)
        if buf is None:
            buf = bufs[key] = np.empty(shape)
        return buf


def default_workers() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                                   # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def workers(n: int | None = None) -> Iterator[int]:
    """Within this block, map_tasks / map_blocks use n threads each (n = 1: serial)."""
    from threadpoolctl import threadpool_limits

    global _pools
    n = default_workers() if n is None else int(n)
    if n < 1:
        raise ValueError(f"workers must be >= 1, got {n}")
    if _pools is not None:                                   # nested: the outer pools serve
        yield n
        return
    with threadpool_limits(limits=1, user_api="blas"):
        if n == 1:
            yield n
            return
        _pools = (ThreadPoolExecutor(n, thread_name_prefix="sde-task"),
                  ThreadPoolExecutor(n, thread_name_prefix="sde-block"))
        try:
            yield n
        finally:
            pools, _pools = _pools, None
            for p in pools:                                  # task pool first: tasks wait on blocks
                p.shutdown(wait=True, cancel_futures=True)


def _map(pool: ThreadPoolExecutor | None, fn: Callable[[T], R], items: Sequence[T],
         on_done: Callable[[int, R], None] | None) -> list[R]:
    if pool is None:
        out = []
        for i, it in enumerate(items):
            out.append(fn(it))
            if on_done is not None:
                on_done(i, out[-1])
        return out
    futures = [pool.submit(fn, it) for it in items]
    out = []
    try:
        for i, f in enumerate(futures):                      # in order: results (and their merging) are fixed
            out.append(f.result())
            if on_done is not None:
                on_done(i, out[-1])
    except BaseException:                                    # a failure or Ctrl-C: drop the queued work at once
        for f in futures:
            f.cancel()
        raise
    return out


def map_tasks(fn: Callable[[T], R], items: Iterable[T], on_done: Callable[[int, R], None] | None = None) -> list[R]:
    """[fn(item) for item in items], run on the task pool; on_done(i, result) in item order."""
    return _map(_pools[0] if _pools else None, fn, list(items), on_done)


def map_blocks(fn: Callable[[T], R], items: Iterable[T], on_done: Callable[[int, R], None] | None = None) -> list[R]:
    """[fn(item) for item in items], run on the block pool; on_done(i, result) in item order."""
    return _map(_pools[1] if _pools else None, fn, list(items), on_done)


__all__ = ["workers", "map_tasks", "map_blocks", "default_workers"]
