"""Worker processes for training that die with the process that started them.

joblib's loky workers outlive a killed parent (measured: still running, holding the
training data, after the parent got SIGKILL), and its memmapping leaves temporary folders
behind. Training and retraining run their folds here instead: a plain process pool whose
workers ask Linux to kill them when their parent dies (PR_SET_PDEATHSIG), run one BLAS
thread each, and are shut down when the map ends, so a run killed at any point leaves no
process and no temporary file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
PR_SET_PDEATHSIG = 1
_limits: Any = None  # keeps the worker's thread limit alive
DEFAULT_TRAIN_JOBS = 2  # training's worker processes unless told (TRIAGE_TRAIN_JOBS): this machine's two cores


def _die_with_parent(parent: int) -> None:
    """Worker initializer: SIGKILL this process when the parent dies; one BLAS/OpenMP thread."""
    global _limits
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    from threadpoolctl import threadpool_limits

    _limits = threadpool_limits(1)


def parallel_map(fn: Callable[..., T], tasks: Iterable[tuple[Any, ...]], n_jobs: int = DEFAULT_TRAIN_JOBS) -> list[T]:
    """[fn(*task) for task in tasks], in `n_jobs` worker processes (in this process if n_jobs <= 1).

    `fn` must be a module-level function and the arguments picklable.
    """
    tasks = list(tasks)
    if n_jobs <= 1 or len(tasks) <= 1:
        return [fn(*task) for task in tasks]
    context = multiprocessing.get_context("spawn")  # no fork of a threaded process
    pool = ProcessPoolExecutor(
        max_workers=min(n_jobs, len(tasks)), mp_context=context, initializer=_die_with_parent, initargs=(os.getpid(),)
    )
    try:
        futures = [pool.submit(fn, *task) for task in tasks]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
