"""twostream.core.threads: the thread discipline of forked DataLoader workers.

The rehearsal (tools/rehearse.py) hung after the first training epoch: the per-epoch
validation loader's forked worker ran a large ``torch.cat`` on the two OpenMP threads that
``worker_init_fn`` had given it, in a runtime (GNU OpenMP) whose pool the parent had already
used; the child waited forever on threads that fork does not copy. Workers must keep the
one thread PyTorch gives them.
"""

from __future__ import annotations

import multiprocessing

import cv2
import pytest
import torch

from twostream.core import threads


class _Threads(torch.utils.data.Dataset):
    """Each item: the worker's torch and OpenCV thread counts, after a large parallel op."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        big = torch.cat([torch.ones(1 << 21), torch.zeros(1 << 21)])  # (4M,) over the grain
        return torch.tensor([torch.get_num_threads(), cv2.getNumThreads(), int(big.sum())])


@pytest.mark.parametrize("workers", [1, 2])
def test_forked_loader_workers_keep_one_thread_and_do_not_hang(workers):
    if multiprocessing.get_start_method(allow_none=False) != "fork":
        pytest.skip("DataLoader workers are forked only where fork is the default (Linux)")
    torch.set_num_threads(max(2, threads.cores()))  # the parent's pool is up and used
    torch.ones(1 << 22).add_(1).sum()
    dl = torch.utils.data.DataLoader(
        _Threads(), batch_size=1, timeout=60, **threads.loader_kwargs(workers)
    )
    rows = torch.cat(list(dl))  # (2, 3); a hung worker ends in the loader's 60 s timeout
    assert rows[:, 0].tolist() == [1, 1], "torch threads in a forked worker"
    assert rows[:, 1].tolist() == [1, 1], "OpenCV threads in a forked worker"
    assert rows[:, 2].tolist() == [1 << 21] * 2
