"""Data-parallel meta-training under ``torchrun`` (PyTorch's ``torch.distributed``).

Each process samples different episodes of the same outer step (episode indices are
interleaved by rank, so ``world_size`` processes see exactly the episodes one process
would see with a ``world_size`` times larger meta-batch), and the meta-gradients are
averaged with an all-reduce before every optimiser step, which is what
``DistributedDataParallel`` does for a module's ``forward``; the episode objectives here
are not one ``forward`` call, so the reduction is explicit. Weights, validation and early
stopping therefore stay identical on every rank; only rank 0 writes files.
Backends: gloo on the CPU, nccl on CUDA. Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in
the environment) nothing here does anything.
"""

from __future__ import annotations

import os
from typing import Iterable

import torch
import torch.distributed as dist


def init_from_environment(device: torch.device) -> bool:
    """Join the process group that ``torchrun`` describes in the environment; False when alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def rank_and_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Mean of every process's gradients, in place (a missing gradient counts as zero)."""
    rank, size = rank_and_size()
    if size == 1:
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
        parameter.grad /= size


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
