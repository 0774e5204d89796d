"""The mode rule: any Pillow image becomes 8-bit grayscale (`L`) or `RGB`, alpha composited over white.

| Pillow mode | result |
|---|---|
| `L`, `1` | `L` |
| `I;16`, `I;16L`, `I;16B`, `I;16N`, `I` (16-bit grayscale) | `L`: value / 257, rounded half up (65535 → 255, 32768 → 128) |
| `F` (float grayscale) | `L`: values taken as 0..255, rounded and clipped |
| `LA`, `La`, or `L` with a transparent colour | `L`, alpha composited over white |
| `RGB`, `RGBX`, `CMYK`, `YCbCr`, `HSV`, `P` (any palette), other colour modes | `RGB` (Pillow's conversion) |
| `RGBA`, `RGBa`, `PA`, or `RGB` / `P` with a transparent colour | `RGB`, alpha composited over white |

Compositing is exact integer arithmetic: `out = round((c·a + 255·(255 − a)) / 255)`. Mode `I` values outside
0..65535 are clipped to that range before the division. 16-bit colour PNGs are read by Pillow as 8-bit
`RGB` / `RGBA` (it keeps the high byte), so only grayscale keeps its 16 bits here.
Animated images (GIF, WebP) contribute their first frame.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["GRAY_MODES", "mode_channels", "to_8bit"]

# Pillow modes whose images are grayscale (→ 1 channel under channels="keep").
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_GRAY16_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def mode_channels(mode: str) -> int:
    """Channels (1 or 3) an image of Pillow `mode` has after `to_8bit`."""
    return 1 if mode in GRAY_MODES else 3


def to_8bit(image: Image.Image) -> Image.Image:
    """Convert `image` to mode `L` (grayscale modes) or `RGB` (all others) by the module's rule."""
    mode = image.mode
    transparent = "transparency" in image.info
    if mode in _GRAY16_MODES:
        values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        return Image.fromarray(((2 * values + 257) // 514).astype(np.uint8), "L")  # round(v / 257), half up
    if mode == "F":
        values = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255)
        return Image.fromarray(values.astype(np.uint8), "L")
    if mode in ("1", "L"):
        return _over_white(image.convert("LA")) if transparent else image.convert("L")
    if mode in ("LA", "La"):
        return _over_white(image.convert("LA"))
    if "A" in mode or "a" in mode or transparent:
        return _over_white(image.convert("RGBA"))
    return image if mode == "RGB" else image.convert("RGB")


def _over_white(image: Image.Image) -> Image.Image:
    """Composite an `LA` or `RGBA` image over white: `L` or `RGB`."""
    array = np.asarray(image).astype(np.uint32)
    colour, alpha = array[..., :-1], array[..., -1:]
    out = (colour * alpha + 255 * (255 - alpha) + 127) // 255  # exact rounding: the numerator over 255 is never x.5
    out = out.astype(np.uint8)
    if out.shape[-1] == 1:
        return Image.fromarray(out[..., 0], "L")
    return Image.fromarray(out, "RGB")
