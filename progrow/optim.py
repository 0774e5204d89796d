"""Optimizer helpers driven by the growth state: learning rate per stage and state reset at a new stage."""

from __future__ import annotations

from torch.optim import Optimizer

__all__ = ["set_lr", "reset_optimizer"]


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def reset_optimizer(optimizer: Optimizer) -> None:
    """Forget the optimizer's running statistics (Adam moments, step counts); keep its parameter groups."""
    optimizer.state.clear()
