"""Binding: keep growth wrappers and optimizers in step with a scheduler, so a training loop can call `G(z)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer

from progrow.optim import reset_optimizer, set_lr
from progrow.scheduler import ProgressiveScheduler
from progrow.state import GrowthState

__all__ = ["bind"]


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
