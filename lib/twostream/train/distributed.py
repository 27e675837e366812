"""torchrun / DistributedDataParallel plumbing, nothing home-made.

Under ``torchrun`` the environment carries RANK, WORLD_SIZE and LOCAL_RANK; without it
every helper here degrades to the single-process case, so the same training code runs
on a laptop, one GPU, or many.
"""

from __future__ import annotations

import os


def is_distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def init_distributed(device_type: str = "cpu") -> tuple[int, int, int]:
    """Initialise the process group when launched by torchrun. Returns (rank, world, local_rank)."""
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    return dist.get_rank(), dist.get_world_size(), local_rank


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    import torch.distributed as dist

    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor):
    """Sum a tensor across ranks in place (no-op single-process); returns it."""
    import torch.distributed as dist

    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(obj) -> list:
    """Gather a picklable object from every rank (a one-element list single-process)."""
    import torch.distributed as dist

    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def cleanup() -> None:
    import torch.distributed as dist

    if is_distributed():
        dist.destroy_process_group()
