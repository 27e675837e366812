"""The worker pool of ``twostream prepare``: spawned processes with the thread discipline of
:mod:`twostream.core.threads`, a dead worker isolated instead of hanging the run."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable

from twostream.core import threads
from twostream.core.threads import passive_wait


def init_worker(parent_pid: int) -> None:
    """Pool initializer: the thread discipline of ``twostream.core.threads``, and die with the parent.

    After a ``kill -9`` of the parent, an orphaned worker would keep writing into a video
    folder that the rerun is clearing; PR_SET_PDEATHSIG makes the kernel kill it instead.
    """

    threads.worker_init(threads.cores())  # one thread per worker, whatever the pool size
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(
                1, int(signal.SIGKILL)
            )  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


CRASH = ("the worker process died while working on it (a crash in a decoder or library, "
         "or the out-of-memory killer); it died again when retried alone")  # fmt: skip


def map_tasks(fn, tasks: list, *, workers: int, crashed=None) -> Iterable:
    """``fn(task)`` for every task, in completion order: in-process for one worker, otherwise
    on ``workers`` spawned processes (fork + OpenCV threads can deadlock).

    ``concurrent.futures`` rather than ``multiprocessing.Pool``: a Pool whose worker dies
    (a segfault in a decoder, the OOM killer) waits forever for the lost task, and its
    worker-handler thread wakes up on every result (at benchmarks/prepare_scale.py's rate
    the parent spent 3.0-3.7 s of CPU per 3,000 tiny videos with it, 2.4-2.7 s with this).
    Here a dead worker breaks the pool: the tasks in flight are run again one at a time in a fresh process, and one that
    kills that process too goes to ``crashed(task, reason)`` (default: raise), so one bad
    video cannot stop the other 13,000. At most 2 x workers tasks are submitted at a time.
    """
    if not tasks:
        return
    if workers == 1 or len(tasks) == 1:
        with threads.threads(1):  # the in-process path uses a worker's thread settings
            for task in tasks:
                yield fn(task)
        return
    import itertools
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    passive_wait()  # inherited by the spawned workers before they import torch
    ctx = mp.get_context("spawn")
    n = min(workers, len(tasks))

    def pool(size: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(size, mp_context=ctx, initializer=init_worker,
                                   initargs=(os.getpid(),))  # fmt: skip

    def one_by_one(lost: list):
        """The tasks of a broken pool, one at a time in a fresh process: the one that kills
        that process is the culprit; the others share one process."""
        single = None
        try:
            for task in lost:
                single = single or pool(1)
                try:
                    yield single.submit(fn, task).result()
                except BrokenProcessPool:
                    single.shutdown(wait=True)
                    single = None
                    if crashed is None:
                        raise RuntimeError(f"a worker process died on {task!r}: {CRASH}") from None
                    yield crashed(task, CRASH)
        finally:
            if single is not None:
                single.shutdown(wait=True)

    todo = iter(tasks)
    executor = pool(n)
    try:
        running = {executor.submit(fn, t): t for t in itertools.islice(todo, 2 * n)}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            lost = []
            for fut in done:
                task = running.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    lost.append(task)
                    continue
                yield result
            if lost:  # every task in flight died with the pool: retry each alone
                lost += running.values()
                running.clear()
                executor.shutdown(wait=True, cancel_futures=True)
                yield from one_by_one(lost)
                executor = pool(n)
            for t in itertools.islice(todo, 2 * n - len(running)):
                running[executor.submit(fn, t)] = t
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
