"""Optimizer helpers driven by the growth state: learning rate per stage and state reset at a new stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer

from progrow.scheduler import ProgressiveScheduler
from progrow.state import GrowthState

__all__ = ["set_lr", "reset_optimizer", "bind"]


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def reset_optimizer(optimizer: Optimizer) -> None:
    """Forget the optimizer's running statistics (Adam moments, step counts); keep its parameter groups."""
    optimizer.state.clear()


def bind(scheduler: ProgressiveScheduler, *targets: Any) -> Callable[[], None]:
    """Keep modules and optimizers in step with `scheduler`, for loops that call `G(z)` without a state.

    Growth wrappers (anything with `set_state`, e.g. `ProgressiveGenerator`, an EMA's module) get every
    new state. Optimizers get the state's learning rate, and their state is cleared when the schedule's
    `reset_optimizers` policy says so (never when the position merely jumps, e.g. on `load_state_dict`).
    The targets are brought to the scheduler's current state at once. Returns a function that unbinds.
    """
    for t in targets:
        if not (isinstance(t, Optimizer) or callable(getattr(t, "set_state", None))):
            raise TypeError(
                f"progrow.bind: cannot bind {type(t).__name__}; expected a growth wrapper (with set_state) "
                "or a torch.optim.Optimizer"
            )

    def listener(prev: GrowthState | None, new: GrowthState) -> None:
        reset = prev is not None and scheduler.optimizer_reset_due(prev, new)
        for t in targets:
            if isinstance(t, Optimizer):
                if reset:
                    reset_optimizer(t)
                if new.lr is not None:
                    set_lr(t, new.lr)
            else:
                t.set_state(new)

    return scheduler.add_listener(listener)
