"""Helpers of the progrow.data tests, independent of the implementation: Pillow calls written out, python loops."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from progrow.data.cli import main

REPO = Path(__file__).resolve().parents[1]
LANCZOS = Image.Resampling.LANCZOS


def box_loop(x: np.ndarray) -> np.ndarray:
    """Integer 2×2 box filter rounding half up, with python loops: uint8 `[N, C, H, W] -> [N, C, H/2, W/2]`."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, h // 2, w // 2), dtype=np.uint8)
    for a in range(n):
        for b in range(c):
            for i in range(h // 2):
                for j in range(w // 2):
                    s = sum(int(x[a, b, 2 * i + di, 2 * j + dj]) for di in (0, 1) for dj in (0, 1))
                    out[a, b, i, j] = (s + 2) // 4
    return out


def expected_8bit(image: Image.Image) -> Image.Image:
    """The documented mode rule, written independently with float arithmetic."""
    if image.mode == "I;16":
        values = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.floor(values / 257.0 + 0.5).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA" if image.mode != "LA" else "LA")).astype(np.float64)
        alpha = rgba[..., -1:] / 255.0
        out = np.floor(rgba[..., :-1] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
        return Image.fromarray(out[..., 0], "L") if out.shape[-1] == 1 else Image.fromarray(out, "RGB")
    if image.mode in ("L", "RGB"):
        return image.copy()
    return image.convert("RGB")


def expected_top(path: Path, resolution: int, *, channels: int) -> np.ndarray:
    """Open, EXIF-rotate, apply the mode rule, centre-crop, LANCZOS-resize: uint8 `[C, R, R]`."""
    with Image.open(path) as image:
        image = expected_8bit(ImageOps.exif_transpose(image))
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != resolution:
        image = image.resize((resolution, resolution), LANCZOS)
    if channels == 3:
        image = image.convert("RGB")
    array = np.asarray(image)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def rng_image(seed: int, h: int, w: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def write_folder(root: Path, images: dict[str, Image.Image], **save_kwargs: dict) -> Path:
    for name, image in images.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, **save_kwargs.get(name, {}))
    return root


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# A folder of mixed sizes and modes.
MIXED = [
    "a_rgb.png",
    "b_rgba.png",
    "c_gray.png",
    "d_palette.png",
    "e_gray16.png",
    "f_wide.JPG",
    "sub/g_nested.png",
    "sub/h_lossless.webp",
]


def make_mixed_folder(root: Path) -> Path:
    """A folder of the `MIXED` images (mixed sizes and modes, two of them nested) and two files that are not images."""
    rgba = rng_image(2, 32, 32, 4)
    gray16 = np.random.default_rng(5).integers(0, 65536, size=(32, 32)).astype(np.uint16)
    images = {
        "a_rgb.png": Image.fromarray(rng_image(1, 40, 40, 3), "RGB"),
        "b_rgba.png": Image.fromarray(rgba, "RGBA"),
        "c_gray.png": Image.fromarray(rng_image(3, 36, 36, 1), "L"),
        "d_palette.png": Image.fromarray(rng_image(4, 32, 32, 3), "RGB").quantize(16),
        "e_gray16.png": Image.fromarray(gray16),
        "f_wide.JPG": Image.fromarray(rng_image(6, 32, 48, 3), "RGB"),
        "sub/g_nested.png": Image.fromarray(rng_image(7, 64, 64, 3), "RGB"),
        "sub/h_lossless.webp": Image.fromarray(rng_image(8, 20, 20, 3), "RGB"),
    }
    write_folder(root, images, **{"sub/h_lossless.webp": {"lossless": True}, "f_wide.JPG": {"quality": 90}})
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "readme.md").write_text("not an image either")
    with Image.open(root / "e_gray16.png") as gray16_image, Image.open(root / "d_palette.png") as palette_image:
        assert (gray16_image.mode, palette_image.mode) == ("I;16", "P")
    return root
