"""`GrowthState`: one frozen value that tells every component where training is."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["GrowthState", "Phase", "is_power_of_two"]

Phase = Literal["fade", "stable"]


def is_power_of_two(value: object) -> bool:
    """True for ints 1, 2, 4, 8, … (bools excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0 and value & (value - 1) == 0


@dataclass(frozen=True)
class GrowthState:
    """Where training is: the resolution being trained and the weight `alpha` of its newest block.

    `alpha` rises from 0 to 1 during a fade and is exactly 1 in a stable phase, so the phase is derived
    from it (`phase == "fade"` iff `alpha < 1`). The scheduler fills in every field; for inference
    `GrowthState(resolution)` (stable) or `GrowthState(resolution, alpha=0.3)` (mid-fade) is enough.
    """

    resolution: int  # side of the images produced / consumed now (a power of two)
    alpha: float = 1.0  # weight of the newest block: [0, 1) during a fade, 1.0 when stable
    stage: int = 0  # index of the stage: stage k trains at start_resolution · 2^k
    nimg: int = 0  # images shown so far
    batch_size: int | None = None  # minibatch size for the next step (scheduler-driven)
    lr: float | None = None  # learning rate for the next step (scheduler-driven)

    def __post_init__(self) -> None:
        if not is_power_of_two(self.resolution):
            raise ValueError(f"GrowthState.resolution: expected a power of two, got {self.resolution!r}")
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"GrowthState.alpha: expected a number in [0, 1], got {alpha!r}")
        object.__setattr__(self, "alpha", float(alpha))
        if self.alpha < 1.0 and self.resolution < 2:
            raise ValueError("GrowthState: a fade needs a previous resolution, resolution 1 has none")

    @property
    def phase(self) -> Phase:
        """`"fade"` while the newest block fades in (alpha < 1), else `"stable"`."""
        return "fade" if self.alpha < 1.0 else "stable"

    @property
    def is_fading(self) -> bool:
        """True during a fade (alpha < 1)."""
        return self.alpha < 1.0

    @property
    def prev_resolution(self) -> int | None:
        """The resolution being faded out (`resolution // 2`) during a fade, else None."""
        return self.resolution // 2 if self.is_fading else None

    @property
    def kimg(self) -> float:
        """Images shown so far, in thousands."""
        return self.nimg / 1000.0

    def lod(self, final_resolution: int) -> float:
        """The official code's level of detail: `log2(final / resolution) + (1 − alpha)`."""
        return math.log2(final_resolution / self.resolution) + (1.0 - self.alpha)
