"""Data-parallel training under ``torchrun``: process group set-up and gradient averaging."""

from __future__ import annotations

import os
from typing import Any

from ..inference.devices import is_cuda, process_device


def distributed(device: str) -> tuple[int, int, str]:
    """Rank, world size and device under ``torchrun`` (or an initialised process group).

    Started by torchrun (WORLD_SIZE > 1), the process group is initialised here: gloo on
    the CPU, nccl on GPUs with one GPU per process (LOCAL_RANK).
    """
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1, device
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1, device
        dist.init_process_group("nccl" if is_cuda(device) else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    return rank, world, process_device(device, rank)


def average_gradients(module: Any, world: int) -> None:
    """Mean of the gradients over processes (what DDP does, by hand for the critic)."""
    import torch.distributed as dist

    for param in module.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad /= world
