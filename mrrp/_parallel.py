"""A map over worker processes that keeps the input order and reports progress.

Generating a synthetic cohort and preparing MRI volumes are CPU-bound per patient, so they run in
processes (threads would share one interpreter lock). ``workers=1`` runs in this process: simpler
tracebacks, and no pool start-up for small jobs and tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

__all__ = ["ProgressFn", "default_workers", "parallel_map"]

T = TypeVar("T")
R = TypeVar("R")

# progress(done, total), called with done = 0 before the first item and after each item
ProgressFn = Callable[[int, int], None]

_MAX_WORKERS = 8  # beyond this the per-patient jobs are limited by disk writes, not CPU


def default_workers(n_items: int | None = None, requested: int | None = None) -> int:
    """``requested``, else the CPU count; at most 8 and at most ``n_items`` (when given); at least 1."""
    n = min(requested or (os.cpu_count() or 1), _MAX_WORKERS)
    if n_items is not None:
        n = min(n, n_items)
    return max(1, n)


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    progress: ProgressFn | None = None,
    chunksize: int = 1,
) -> list[R]:
    """``[fn(x) for x in items]``, in ``workers`` processes when ``workers > 1``; results in input order.

    ``fn`` and the items must be picklable when ``workers > 1`` (a module-level function). An exception
    in ``fn`` propagates to the caller. ``progress(done, total)`` runs in this process.
    """
    jobs = list(items)
    total = len(jobs)
    results: list[R] = []
    if progress:
        progress(0, total)
    if workers <= 1:
        for i, job in enumerate(jobs, 1):
            results.append(fn(job))
            if progress:
                progress(i, total)
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, res in enumerate(pool.map(fn, jobs, chunksize=chunksize), 1):
            results.append(res)
            if progress:
                progress(i, total)
    return results
