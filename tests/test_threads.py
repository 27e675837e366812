"""twostream.core.threads: the thread discipline of forked DataLoader workers.

The rehearsal (tools/rehearse.py) hung after the first training epoch: the per-epoch
validation loader's forked worker ran a large ``torch.cat`` on the two OpenMP threads that
``worker_init_fn`` had given it, in a runtime (GNU OpenMP) whose pool the parent had already
used; the child waited forever on threads that fork does not copy. Workers must keep the
one thread PyTorch gives them.

The check runs in a fresh interpreter, so that the parent's thread pools are in the state a
training process leaves them (used, two threads), not in whatever state the tests that ran
before in this pytest worker left them.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys
import cv2, torch
from twostream.core import threads

class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 2
    def __getitem__(self, i):
        big = torch.cat([torch.ones(1 << 21), torch.zeros(1 << 21)])  # (4M,): over the grain
        return torch.tensor([torch.get_num_threads(), cv2.getNumThreads(), int(big.sum())])

torch.set_num_threads(2)  # the parent's pool is up and used, as after a training epoch
torch.ones(1 << 22).add_(1).sum()
dl = torch.utils.data.DataLoader(Items(), batch_size=1, timeout=60,
                                 **threads.loader_kwargs(int(sys.argv[1])))
print(json.dumps(torch.cat(list(dl)).tolist()))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_forked_loader_workers_keep_one_thread_and_do_not_hang(workers):
    if multiprocessing.get_start_method(allow_none=False) != "fork":
        pytest.skip("DataLoader workers are forked only where fork is the default (Linux)")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(workers)], capture_output=True,
                       text=True, timeout=180)  # fmt: skip
    # a hung worker ends in the loader's 60 s timeout (a RuntimeError, exit status 1)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout.strip().splitlines()[-1])  # (2, 3)
    assert [row[0] for row in rows] == [1, 1], "torch threads in a forked worker"
    assert [row[1] for row in rows] == [1, 1], "OpenCV threads in a forked worker"
    assert [row[2] for row in rows] == [1 << 21] * 2
