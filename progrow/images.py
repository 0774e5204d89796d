"""Generator images to pixels: `[-1, 1]` floats to uint8 (rounding half up) and one image to a PIL image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["to_uint8", "to_pil"]


def to_uint8(images: Tensor) -> Tensor:
    """Map images in [-1, 1] (any shape, e.g. `[N, C, H, W]`) to uint8: `round(127.5·x + 127.5)` clamped to 0..255.

    Half-way values round up (127.5·x + 127.5 = k + 0.5 gives k + 1), so this is the inverse of
    `progrow.data.to_float` (`u / 127.5 − 1`) on every uint8 value. Computed in float64 for float64 input,
    float32 otherwise; non-finite values must be checked for by the caller (their result is unspecified).
    """
    x = images.detach()
    if x.dtype != torch.float64:
        x = x.float()
    return (x * 127.5 + 128.0).floor_().clamp_(0.0, 255.0).to(torch.uint8)


def to_pil(image: Tensor) -> Image.Image:
    """One uint8 image `[C, H, W]` (C = 1: grayscale "L", C = 3: "RGB") as a PIL image."""
    from PIL import Image

    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"to_pil: expected a uint8 image [1 or 3, H, W], got {image.dtype} of shape {tuple(image.shape)}")
    array = image.detach().cpu().permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array[:, :, 0], mode="L") if image.shape[0] == 1 else Image.fromarray(array, mode="RGB")
