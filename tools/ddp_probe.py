"""What a torchrun stage pays before its work, and nothing else: the imports of a
``twostream train-convlstm`` worker, then (under torchrun) the process group's rendezvous
and a DistributedDataParallel wrap of a tiny model, then exit.

    python tools/ddp_probe.py                                           # the imports only
    python -m torch.distributed.run --nproc_per_node 2 tools/ddp_probe.py   # + gloo + DDP

tools/rehearse.py's calibration times both (:func:`rehearse.calibrate_startup`): the
difference is what a torchrun launch adds to its workers' own start-up, the plan's
``torchrun_s`` (lib/twostream/study/cost_model.py).
"""

from __future__ import annotations

import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel

import twostream.cli.train_convlstm  # noqa: F401 - what the real stage's worker imports
from twostream.train.distributed import init_distributed


def main() -> int:
    _, world, _ = init_distributed("cpu")  # gloo, as the rehearsal's ConvLSTM stage
    if world > 1:
        DistributedDataParallel(torch.nn.Linear(8, 2))  # broadcasts rank 0's parameters
        torch_dist.barrier()
        torch_dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
