"""Data parallelism for the training script: process group set-up and gradient averaging across ranks.

Gradients are averaged with one flat all-reduce per optimizer step (as StyleGAN2-ADA does) rather than
through `DistributedDataParallel`, whose hooks do not support the double backward of the gradient
penalties. Works with NCCL on GPUs and with gloo on CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "init_distributed", "all_reduce_grads", "broadcast_module", "barrier", "any_rank", "gather_objects"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place among the ranks."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group `torchrun` describes in the environment (NCCL on CUDA, gloo otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # before NCCL: one GPU per rank
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(rank=dist.get_rank(), local_rank=int(os.environ.get("LOCAL_RANK", "0")), world_size=dist.get_world_size())


def all_reduce_grads(params: Iterable[nn.Parameter], info: DistInfo) -> None:
    """Average the gradients of `params` over all ranks (parameters without a gradient are skipped alike on every rank)."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Make every rank's parameters and buffers equal to rank 0's."""
    if not info.enabled:
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=0)


def barrier(info: DistInfo) -> None:
    """Wait until every rank gets here (a no-op on one process)."""
    if info.enabled:
        dist.barrier()


def any_rank(value: int, info: DistInfo, device: torch.device) -> int:
    """The largest of `value` over all ranks (a collective: every rank calls it at the same step)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's `obj`, in rank order (a collective; on one process, `[obj]`)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
