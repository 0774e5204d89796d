"""The crop/resize policy that turns an image of any size into a square of the target resolution.

- `crop="center"`: crop the largest centred square (`side = min(w, h)`, offset `((w − side) // 2, (h − side) // 2)`);
  `crop="none"`: every image must already be square — a non-square image is an error naming it and its size.
- The square is then resized to `R×R` with Pillow's LANCZOS filter, whatever the factor (power of two or not).
  An image already `R×R` is kept as is.
- An image whose square is smaller than `R` is an error naming it and its size, unless `upscale=True`
  (then it is enlarged with LANCZOS as well).
"""

from __future__ import annotations

from typing import Literal

from PIL import Image

from progrow.data.errors import DataError

__all__ = ["Crop", "CROP_POLICIES", "SIZE_HINTS", "check_crop", "size_issue", "size_problem", "fit_square"]

Crop = Literal["center", "none"]
CROP_POLICIES = ("center", "none")


def check_crop(crop: object) -> None:
    """Raise `DataError` unless `crop` is one of `CROP_POLICIES`."""
    if crop not in CROP_POLICIES:
        raise DataError(f"crop (--crop): expected one of {', '.join(map(repr, CROP_POLICIES))}, got {crop!r}")


SIZE_HINTS = {
    "not square": "--crop center crops the largest centred square",
    "too small": "--upscale enlarges them, or choose a lower target resolution",
}


def size_issue(name: str, size: tuple[int, int], resolution: int, *, crop: Crop, upscale: bool) -> tuple[str, str] | None:
    """`(kind, text)` when image `name` of `size = (w, h)` cannot become `resolution²` (kind a key of `SIZE_HINTS`), else None."""
    w, h = size
    if crop == "none" and w != h:
        return "not square", f"{name} is {w}×{h}, not square (--crop none keeps only square images)"
    side = min(w, h)
    if side < resolution and not upscale:
        cropped = f" (its centred square is {side}×{side})" if w != h else ""
        return "too small", f"{name} is {w}×{h}{cropped}, smaller than the target {resolution}×{resolution}"
    return None


def size_problem(name: str, size: tuple[int, int], resolution: int, *, crop: Crop, upscale: bool) -> str | None:
    """Why an image `name` of `size = (w, h)` cannot become `resolution²` under the policy, with the fix; None if it can."""
    issue = size_issue(name, size, resolution, crop=crop, upscale=upscale)
    return None if issue is None else f"{issue[1]}; {SIZE_HINTS[issue[0]]}"


def fit_square(image: Image.Image, resolution: int, *, crop: Crop, upscale: bool, name: str) -> Image.Image:
    """Crop (`crop="center"`) and resize (LANCZOS) `image` to `resolution×resolution`; `name` is used in errors."""
    problem = size_problem(name, image.size, resolution, crop=crop, upscale=upscale)
    if problem:
        raise DataError(problem)
    w, h = image.size
    side = min(w, h)
    if (w, h) != (side, side):
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return image
