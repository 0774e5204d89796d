"""Pure resampling and blending functions used by the growth wrappers and for real images."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from progrow.state import is_power_of_two

if TYPE_CHECKING:
    from progrow.state import GrowthState

__all__ = ["upsample2x", "downsample2x", "fade", "fade_reals", "resize_to"]


def upsample2x(x: Tensor) -> Tensor:
    """Nearest-neighbour 2× upsampling: `[N, C, H, W] -> [N, C, 2H, 2W]` (every pixel copied to a 2×2 block)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def downsample2x(x: Tensor) -> Tensor:
    """2×2 average pooling (box filter): `[N, C, H, W] -> [N, C, H/2, W/2]`."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"downsample2x: expected even height and width, got {tuple(x.shape[-2:])}")
    return F.avg_pool2d(x, kernel_size=2)


def fade(old: Tensor, new: Tensor, alpha: Tensor | float) -> Tensor:
    """Blend `old + alpha·(new − old)` of equal shapes `[N, C, H, W]`.

    Exact at both ends: `alpha = 0` returns `old` bit for bit and `alpha = 1` returns `new` bit for bit
    (`torch.lerp` evaluates `old + w·(new − old)` for `w < 0.5` and `new − (new − old)·(1 − w)` otherwise).
    """
    if isinstance(alpha, Tensor):
        alpha = alpha.to(dtype=new.dtype)
    return torch.lerp(old, new, alpha)


def fade_reals(x: Tensor, state: GrowthState) -> Tensor:
    """Fade real images between two resolutions during a transition: `[N, C, R, R] -> [N, C, R, R]`.

    As in the official code, reals are blended with their 2×2-downsampled-then-upsampled copy, so the
    discriminator sees images whose detail fades in at the same rate as the generator's new block:
    `alpha = 0` gives exactly the previous resolution's image (upsampled), `alpha = 1` the image itself.
    Outside a fade `x` is returned unchanged.
    """
    if x.shape[-1] != state.resolution or x.shape[-2] != state.resolution:
        raise ValueError(
            f"fade_reals: expected images of {state.resolution}×{state.resolution} (the state's resolution), "
            f"got {tuple(x.shape[-2:])}"
        )
    if not state.is_fading:
        return x
    return fade(upsample2x(downsample2x(x)), x, state.alpha)


def resize_to(x: Tensor, resolution: int) -> Tensor:
    """Resize square images by powers of two: `[N, C, R, R] -> [N, C, resolution, resolution]`.

    Downscaling is a box filter (the mean of each block, the same as repeated 2×2 averaging up to float
    rounding); upscaling copies pixels (nearest neighbour).
    """
    if not is_power_of_two(resolution):
        raise ValueError(f"resize_to: expected a power-of-two resolution, got {resolution!r}")
    size = x.shape[-1]
    if x.shape[-2] != size:
        raise ValueError(f"resize_to: expected square images, got {tuple(x.shape[-2:])}")
    if size == resolution:
        return x
    big, small = max(size, resolution), min(size, resolution)
    factor = big // small
    if factor * small != big or factor & (factor - 1):
        raise ValueError(f"resize_to: {size} -> {resolution} is not a power-of-two rescale")
    if resolution < size:
        return F.avg_pool2d(x, kernel_size=factor)
    return F.interpolate(x, scale_factor=float(factor), mode="nearest")
