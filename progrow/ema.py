"""Exponential moving average of the generator's weights (the paper's G EMA, β = 0.999)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor, nn

__all__ = ["EMA"]

M = TypeVar("M", bound=nn.Module)


class EMA(Generic[M]):
    """A shadow copy of a module whose weights follow `ema = β·ema + (1 − β)·param` after each `update`.

    The update is computed as `torch.lerp(ema, param, 1 − β)` = `ema + (1 − β)·(param − ema)`: one fused
    pass over the weights, and a weight that equals its shadow (e.g. a block that has not started
    training yet) keeps it bit for bit, where `β·ema + (1 − β)·param` would drift in the last bits.

    Give either `beta` (per update; the paper uses 0.999) or `half_life_kimg` (β chosen per update so the
    weights' half-life is that many thousand images: `β = 0.5 ** (batch_size / (1000·half_life_kimg))`,
    as in StyleGAN2-ADA). Buffers (e.g. BatchNorm statistics) are copied, not averaged. The shadow
    (`ema.module`) is in eval mode with gradients off; use it like the model, e.g. `ema.module(z, state)`.
    """

    def __init__(self, model: M, *, beta: float | None = None, half_life_kimg: float | None = None) -> None:
        if (beta is None) == (half_life_kimg is None):
            raise ValueError("EMA: give exactly one of beta (e.g. 0.999) or half_life_kimg (e.g. 10.0)")
        if beta is not None and not 0.0 <= beta <= 1.0:
            raise ValueError(f"EMA.beta: expected a number in [0, 1], got {beta!r}")
        if half_life_kimg is not None and not half_life_kimg > 0:
            raise ValueError(f"EMA.half_life_kimg: expected a number > 0, got {half_life_kimg!r}")
        self.beta = beta
        self.half_life_kimg = half_life_kimg
        self.num_updates = 0
        self.module: M = copy.deepcopy(model).eval().requires_grad_(False)
        # Persistent buffers only: non-persistent ones (e.g. a growth wrapper's alpha) are run-time state.
        persistent = model.state_dict().keys()
        self._buffer_names = [name for name, _ in model.named_buffers() if name in persistent]

    def beta_for(self, batch_size: int | None = None) -> float:
        """The β of one update that showed `batch_size` images (needed with `half_life_kimg`)."""
        if self.beta is not None:
            return self.beta
        if batch_size is None:
            raise ValueError("EMA.update: batch_size is required when the EMA is configured by half_life_kimg")
        assert self.half_life_kimg is not None
        return 0.5 ** (batch_size / (1000.0 * self.half_life_kimg))

    @torch.no_grad()
    def update(self, model: nn.Module, *, batch_size: int | None = None) -> None:
        """Move the shadow weights toward `model`'s: `ema = torch.lerp(ema, param, 1 − β)`, bit for bit."""
        beta = self.beta_for(batch_size)
        ema_params: list[Tensor] = list(self.module.parameters())
        params: list[Tensor] = [p.detach() for p in model.parameters()]
        if len(ema_params) != len(params):
            raise ValueError(
                f"EMA.update: the model has {len(params)} parameters, the shadow {len(ema_params)}; "
                "update with the module the EMA was created from"
            )
        params = [p.to(e.dtype) for e, p in zip(ema_params, params, strict=True)]
        torch._foreach_lerp_(ema_params, params, 1.0 - beta)
        if self._buffer_names:
            ema_buffers, buffers = dict(self.module.named_buffers()), dict(model.named_buffers())
            for name in self._buffer_names:
                ema_buffers[name].copy_(buffers[name])
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The shadow weights and the EMA's settings, for checkpoints."""
        return {
            "module": self.module.state_dict(),
            "beta": self.beta,
            "half_life_kimg": self.half_life_kimg,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the shadow weights and update count saved by `state_dict()`."""
        missing = [k for k in ("module", "num_updates") if k not in state_dict]
        if missing:
            raise ValueError(f"EMA.load_state_dict: missing key(s) {', '.join(missing)}")
        self.module.load_state_dict(state_dict["module"])
        self.num_updates = int(state_dict["num_updates"])

    def __repr__(self) -> str:
        how = f"beta={self.beta}" if self.beta is not None else f"half_life_kimg={self.half_life_kimg}"
        return f"EMA({how}, num_updates={self.num_updates}, module={type(self.module).__name__})"
