"""`StageAnchor`: hold a new stage's picture, seen at the previous resolution, to what the previous stage drew.

When a stage begins, the layers every stage shares start training on the new resolution's game, and the
coarse picture they drew at the previous stage end drifts. It drifts most late in the fade, when the old
and new paths have become complements that only their blend at the current alpha makes good
(benchmarks/README.md, "level traces"): on a small budget a stage can lose most of what the previous one
learned. The anchor keeps a frozen copy of the generator (usually its EMA) from the first step of each
stage and adds to the generator's loss

    weight · Σ_r MSE(box_r(G(z)), box_r(G_prev(z)))

over r = R/2 (with `levels="previous"`) or every resolution from R/2 down to the first stage's (`"all"`):
the new image, box-filtered to r, against the previous stage's image for the same latent, box-filtered to
r. `"all"` weighs the coarse layout more than `"previous"` does, whose MSE at R/2 is mostly detail. The
previous stage's image comes from the frozen copy at R/2 (alpha = 1), so no gradient reaches it, and the
term costs one forward of the previous stage under `no_grad` per generator step.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from progrow.blend import downsample2x
from progrow.state import GrowthState

__all__ = ["StageAnchor", "AnchorLevels"]

AnchorLevels = Literal["previous", "all"]


class StageAnchor:
    """The previous stage's generator, frozen at the first step of each stage, and the loss that holds G to it.

    Usage, in the generator step (`source` is what the snapshot copies, e.g. `ema.module`)::

        fakes = G(z, state)                                     # [N, C, R, R]
        g_loss = g_loss_fn(D(fakes, state)).loss + anchor(fakes, z, state, source=ema.module)

    The first call in a stage other than the first copies `source` (deep copy, eval mode, no gradients);
    the calls of a stage compare against that copy. In the first stage, or with `weight` 0, the term is a
    zero tensor. `state_dict()` / `load_state_dict()` carry the copy through a checkpoint, so a resumed
    run anchors to the same weights as an uninterrupted one.

    The stage is `state.stage`, as the scheduler fills it in: a `GrowthState` built by hand must set it.
    `start_resolution` is the first stage's resolution, where `levels="all"` stops. The copy is in eval
    mode, so a generator with BatchNorm draws its previous picture with the running statistics.
    """

    def __init__(self, *, weight: float, levels: AnchorLevels = "previous", start_resolution: int = 4) -> None:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 or weight == float("inf"):
            raise ValueError(f"StageAnchor.weight: expected a finite number ≥ 0, got {weight!r}")
        if levels not in ("previous", "all"):
            raise ValueError(f"StageAnchor.levels: expected 'previous' or 'all', got {levels!r}")
        if isinstance(start_resolution, bool) or not isinstance(start_resolution, int) or start_resolution < 1:
            raise ValueError(f"StageAnchor.start_resolution: expected an int ≥ 1, got {start_resolution!r}")
        self.weight = float(weight)
        self.levels: AnchorLevels = levels
        self.start_resolution = start_resolution
        self.stage: int | None = None  # the stage the snapshot belongs to (None: none taken yet)
        self.snapshot: nn.Module | None = None  # the generator as the previous stage left it
        self._pending: dict[str, Tensor] | None = None  # weights loaded from a checkpoint, copied in at the next call

    def __repr__(self) -> str:
        return f"StageAnchor(weight={self.weight}, levels={self.levels!r}, stage={self.stage})"

    def __call__(self, fakes: Tensor, z: Tensor, state: GrowthState, *, source: nn.Module, **kwargs: Any) -> Tensor:
        """The anchor term (a scalar tensor) for `fakes` `[N, C, R, R]` = G(`z` `[N, latent]`, `state`); `kwargs` go to G."""
        if self.weight == 0:
            return fakes.new_zeros(())
        self.follow(state, source)
        if self.snapshot is None:
            return fakes.new_zeros(())
        previous = state.resolution // 2
        with torch.no_grad():
            target = self.snapshot(z, GrowthState(previous), **kwargs)
        image = downsample2x(fakes)
        if image.shape != target.shape:
            raise ValueError(
                f"StageAnchor: G's image box-filtered to {previous}² is {tuple(image.shape)}, the previous stage's "
                f"image is {tuple(target.shape)}; expected equal shapes"
            )
        total = F.mse_loss(image.float(), target.float())
        if self.levels == "all":
            while image.shape[-1] > self.start_resolution:
                image, target = downsample2x(image), downsample2x(target)
                total = total + F.mse_loss(image.float(), target.float())
        return self.weight * total

    def follow(self, state: GrowthState, source: nn.Module) -> None:
        """Copy `source` when `state` is in a stage other than the snapshot's (none in the first stage)."""
        if self.stage != state.stage:
            self.stage, self._pending = state.stage, None
            self.snapshot = _frozen_copy(source) if state.stage > 0 else None
        elif self._pending is not None:  # loaded from a checkpoint of this stage: the saved weights in a copy of source
            self.snapshot = _frozen_copy(source)
            self.snapshot.load_state_dict(self._pending)
            self._pending = None

    def state_dict(self) -> dict[str, Any]:
        """The stage of the snapshot and its weights (None before any, or in the first stage)."""
        if self._pending is not None:
            return {"stage": self.stage, "snapshot": self._pending}
        return {"stage": self.stage, "snapshot": None if self.snapshot is None else self.snapshot.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved; the weights are copied into a copy of `source` at the next call."""
        if not isinstance(state, dict) or "stage" not in state or "snapshot" not in state:
            got = type(state).__name__
            raise ValueError(f"StageAnchor.load_state_dict: expected a dict with 'stage' and 'snapshot', got {got}")
        self.stage = state["stage"]
        self.snapshot = None
        self._pending = state["snapshot"]


def _frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of `module` in eval mode without gradients; its tensors are cloned by tensor ops, so a module of
    fake tensors (the memory planner's) is copied into the same fake mode, and no `.grad` is copied."""
    memo: dict[int, Any] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(p.detach().clone(), requires_grad=False)
    for b in module.buffers():
        memo[id(b)] = b.detach().clone()
    copied = copy.deepcopy(module, memo)
    copied.eval()
    return copied
