"""Thread discipline: how many threads each process of the study may start, and how they wait.

Why this module exists. Torch's CPU kernels run on an OpenMP pool of (by default) one
thread per core, and OpenMP threads *spin* at the end of every parallel region before they
sleep. Code made of thousands of small tensor operations (the TV-L1 iteration, the small
ConvLSTM heads) opens thousands of parallel regions; beside any other busy process on a
2-core machine the spinning threads fight for the cores and one 320x240 TV-L1 pair went
from 0.7 s to 12.6 s (92 s beside another 2-thread torch process, as inside ``make
test``). Three rules, applied by the helpers below wherever work fans out:

1. **cores / workers threads per worker.** A pool of W workers on C cores gives each
   worker ``max(1, C // W)`` torch and OpenCV threads (:func:`threads_per_worker`,
   :func:`limit_threads`); a process that fans out keeps its own threads for waiting.
2. **Passive waiting.** :func:`passive_wait` sets ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP
   threads sleep at once) in the environment, so every process started afterwards (pool
   workers, notebook kernels, torchrun ranks) inherits it. It must happen before the
   OpenMP runtime starts, i.e. before ``import torch`` in that process: the CLI and the
   notebook runner call it first thing, the Makefile's test target exports it.
3. **No parallel regions too small to pay off.** :func:`small_ops_threads` is a context
   manager that runs a block on one thread when its tensors are small (measured on the
   320x240 TV-L1 pair: one thread 1.07 s idle and 0.91 s beside two busy processes,
   torch's default two spinning threads 0.78 s idle and 2.9 s beside them).

:func:`worker_init` is the one initializer for ``multiprocessing`` pools and DataLoader
workers (``worker_init_fn``); :func:`loader_kwargs` gives DataLoaders the matching
arguments.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

# Variables read by OpenMP / BLAS runtimes at start-up. Children inherit them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
WAIT_VARIABLE = "OMP_WAIT_POLICY"
# Tensors with fewer elements than this run a block on one thread (small_ops_threads):
# a 320x240 TV-L1 batch of one pair is 76,800 pixels per plane.
SMALL_OPS_ELEMENTS = 1 << 20


def cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, *, total: int | None = None) -> int:
    """``cores // workers`` (at least 1): the threads each of ``workers`` processes may use."""
    return max(1, (total or cores()) // max(1, int(workers)))


def passive_wait() -> None:
    """Make idle OpenMP threads sleep instead of spin, in this process's future children and
    (if torch is not imported yet) in this process. An explicit user setting is kept."""
    os.environ.setdefault(WAIT_VARIABLE, "PASSIVE")


def limit_threads(n: int, *, environment: bool = True) -> int:
    """Give this process ``n`` torch intra-op threads and ``n`` OpenCV threads.

    With ``environment`` the OpenMP/BLAS variables are set too, so processes this one
    starts get the same limit. Returns ``n``.
    """
    n = max(1, int(n))
    if environment:
        for var in THREAD_VARIABLES:
            os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(n)
    return n


def worker_init(workers: int = 1, worker_id: int | None = None) -> None:
    """Initializer of a pool / DataLoader worker: passive waiting, cores // workers threads.

    Usable as ``Pool(initializer=worker_init, initargs=(W,))`` and, through
    :func:`loader_kwargs`, as a DataLoader ``worker_init_fn``.
    """
    passive_wait()
    with contextlib.suppress(ImportError):  # every data path uses OpenCV: limit it too
        import cv2  # noqa: F401
    limit_threads(threads_per_worker(workers))


class _LoaderInit:
    """Picklable ``worker_init_fn`` (spawned DataLoader workers cannot pickle a lambda).

    DataLoader workers are *forked* (Linux's default), and a forked child must not start
    parallel regions in the OpenMP runtime its parent has used: GNU OpenMP (torch's CPU
    thread pool) is not fork-safe, and the child waits forever on threads that were not
    copied. PyTorch therefore gives every worker one thread; an earlier version of this
    function raised it to cores // workers and hung the rehearsal (tools/rehearse.py) in a
    worker's ``torch.cat`` of a ten-crop eval batch, right after the first training epoch.
    OpenCV's pool is kept at one thread too (its pthreads pool is copied without its
    threads the same way). Workers use their cores as processes, not threads."""

    def __init__(self, workers: int) -> None:
        self.workers = int(workers)

    def __call__(self, worker_id: int) -> None:
        passive_wait()
        with contextlib.suppress(ImportError):  # every data path uses OpenCV: limit it too
            import cv2  # noqa: F401
        limit_threads(1)


def loader_kwargs(num_workers: int) -> dict:
    """DataLoader keyword arguments that apply the discipline to its worker processes."""
    num_workers = int(num_workers)
    if num_workers <= 0:
        return {"num_workers": 0}
    passive_wait()
    return {"num_workers": num_workers, "worker_init_fn": _LoaderInit(num_workers)}


@contextlib.contextmanager
def threads(n: int) -> Iterator[int]:
    """Run a block with ``n`` torch threads (OpenCV too), restoring the previous counts."""
    torch = sys.modules.get("torch")
    cv2 = sys.modules.get("cv2")
    before_t = torch.get_num_threads() if torch is not None else None
    before_c = cv2.getNumThreads() if cv2 is not None else None
    limit_threads(n, environment=False)
    try:
        yield n
    finally:
        if torch is not None and before_t is not None and torch.get_num_threads() != before_t:
            torch.set_num_threads(before_t)
        if cv2 is not None and before_c is not None:
            cv2.setNumThreads(before_c)


@contextlib.contextmanager
def small_ops_threads(elements: int, *, device: str = "cpu") -> Iterator[int]:
    """One thread for a block of many small CPU tensor operations (``elements`` per tensor
    below :data:`SMALL_OPS_ELEMENTS`); otherwise (or on a GPU) leave the threads alone."""
    import torch

    dev = torch.device(device)
    if dev.type != "cpu" or int(elements) >= SMALL_OPS_ELEMENTS:
        yield torch.get_num_threads()
        return
    with threads(1) as n:
        yield n


def configure_process(workers: int = 1) -> int:
    """For a process that is one of ``workers`` siblings (e.g. a pytest-xdist worker):
    passive waiting and cores // workers threads, inherited by what it starts (kernels)."""
    passive_wait()
    return limit_threads(threads_per_worker(workers))


def flush_denormals() -> bool:
    """Treat subnormal floats as zero on the CPU (FTZ/DAZ) for this process's torch code.

    Saturated LSTM gates multiply numbers like sigmoid(-75) ~ 3e-33 together, and the
    products fall below float32's smallest normal (1.2e-38). x86 CPUs compute on such
    subnormals 10-100x slower, so a head's epochs got slower as its gates saturated
    (1.4 s -> 7.4 s per epoch on a conv3_x head; 1.0-1.3 s with this flag). Values below
    1e-38 carry nothing for learning. Returns whether the CPU supports it.
    """
    import torch

    return bool(torch.set_flush_denormal(True))


__all__ = [
    "configure_process",
    "cores",
    "flush_denormals",
    "limit_threads",
    "loader_kwargs",
    "passive_wait",
    "small_ops_threads",
    "threads",
    "threads_per_worker",
    "worker_init",
]
