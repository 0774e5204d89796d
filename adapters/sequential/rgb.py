"""RGB layers in the style of the user's own network, for Sequentials whose RGB layer progrow left out."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from .trace import _fresh_copy

__all__ = ["UserStyleRGB"]


class UserStyleRGB:
    """An `RGBFactory` of 1×1 `nn.Conv2d` layers like the user's dropped RGB layer: `[N, C_in, R, R] -> [N, C_out, R, R]`.

    progrow's default toRGB / fromRGB are equalized-learning-rate convs: right for networks that use the
    paper's equalized learning rate, but in a plain network (DCGAN weights N(0, 0.02), Adam 2e-4) they
    change, relative to their size, about 50 times (1 / 0.02) slower per Adam step than the user's layers.
    This factory builds plain convs instead: weights drawn with the standard deviation the user's RGB layer
    has when the factory is called (after the user's own initialisation), zero bias when it had a bias, and
    fresh copies of the layers that followed it (the generator's Tanh, the discriminator's LeakyReLU).
    """

    def __init__(self, layer: nn.Module, following: Sequence[nn.Module] = ()) -> None:
        self._layer = layer  # kept by reference: read at call time, never called or registered
        self._following = tuple(following)

    def __call__(self, in_channels: int, out_channels: int) -> nn.Module:
        weight = getattr(self._layer, "weight", None)
        bias = getattr(self._layer, "bias", None) is not None
        conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        if weight is not None and not weight.is_meta:
            conv.to(device=weight.device, dtype=weight.dtype)
            std = float(weight.detach().float().std()) if weight.numel() > 1 else 0.0
            if math.isfinite(std) and std > 0:
                nn.init.normal_(conv.weight, 0.0, std)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)
        return nn.Sequential(conv, *(_fresh_copy(m) for m in self._following))

    def __repr__(self) -> str:
        after = ", ".join(type(m).__name__ for m in self._following)
        return f"UserStyleRGB(like={type(self._layer).__name__}{', then ' + after if after else ''})"
