"""The quality benchmark's data: rendered digits, the datasets' caches, the fixed real subsets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


def render_digits(out: Path, *, num_images: int, resolution: int, seed: int = 0) -> Path:
    """Write `num_images` MNIST-like digit PNGs (`R×R`, RGB) and their labels (`dataset.json`) to `out`."""
    from PIL import Image, ImageDraw, ImageFont

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    big = 4 * resolution  # drawn at 4× and reduced with LANCZOS: anti-aliased strokes
    labels = []
    for i in range(num_images):
        digit = int(rng.integers(10))
        size = int(big * rng.uniform(0.55, 0.85))
        font = ImageFont.load_default(size=size)
        ink = tuple(int(v) for v in rng.uniform(170, 255, size=3))  # light, slightly tinted strokes
        ground = tuple(int(v) for v in rng.uniform(0, 50, size=3))  # on a dark ground
        glyph = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(glyph)
        stroke = int(rng.integers(0, max(2, size // 14)))
        draw.text((big / 2, big / 2), str(digit), fill=255, font=font, anchor="mm", stroke_width=stroke, stroke_fill=255)
        glyph = glyph.rotate(
            float(rng.uniform(-15, 15)),
            resample=Image.BICUBIC,
            translate=tuple(float(v) for v in rng.uniform(-0.08, 0.08, size=2) * big),
        )
        image = Image.composite(Image.new("RGB", (big, big), ink), Image.new("RGB", (big, big), ground), glyph)
        name = f"{i:06d}.png"
        image.resize((resolution, resolution), Image.LANCZOS).save(out / name)
        labels.append([name, digit])
    (out / "dataset.json").write_text(json.dumps({"labels": labels}))
    return out


def prepare_data(name: str, root: Path, *, resolution: int, num_images: int) -> Path:
    """The multi-resolution cache of dataset `name` under `root` (built once)."""
    from progrow.data import build_cache

    cache = root / f"{name}-{resolution}-{num_images}"
    if (cache / "meta.json").is_file():
        return cache
    if name == "shapes":
        source: Any = f"synthetic:0:{num_images}"
    else:
        folder = root / f"{name}-png-{resolution}-{num_images}"
        if folder.exists():
            shutil.rmtree(folder)
        source = render_digits(folder, num_images=num_images, resolution=resolution)
    build_cache(source, cache, resolution=resolution)
    return cache


def real_halves(num_images: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint sets of `n` real images (a fixed permutation): the reference set and the floor's."""
    order = np.random.default_rng(12345).permutation(num_images)
    return np.sort(order[:n]), np.sort(order[n : 2 * n])


def real_images(cache: Path, resolution: int, index: np.ndarray) -> Tensor:
    """The real images `index` of the cache's level `resolution` as uint8 `[n, 3, R, R]`."""
    from progrow.data import MultiResDataset

    images = torch.from_numpy(np.ascontiguousarray(MultiResDataset(cache).level(resolution)[index]))
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images
