"""`SyntheticShapes`: procedural images (shapes on a gradient) that render at any power-of-two resolution."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from progrow.state import is_power_of_two

__all__ = ["SyntheticShapes"]

_MIN_RESOLUTION = 4
_MAX_RESOLUTION = 1024
_MIN_GRID = 64  # coverage is computed on a grid of at least this side, then block-averaged
_KINDS = ("circle", "rectangle", "triangle")


@dataclass(frozen=True)
class _Shape:
    kind: str
    colour: np.ndarray  # [C] in 0..255
    params: tuple[float, ...]  # normalized [0, 1] geometry, meaning depends on `kind`


@dataclass(frozen=True)
class _Scene:
    colour0: np.ndarray  # [C] background colour at one end of the gradient
    colour1: np.ndarray  # [C] background colour at the other end
    angle: float  # direction of the gradient, radians
    shapes: tuple[_Shape, ...]


class SyntheticShapes:
    """A dataset of `num_images` procedural images: a two-colour background gradient and 1–3 shapes.

    Shapes are filled circles, axis-aligned rectangles (some nearly square) and triangles with random
    colours, sizes and positions, painted in order. Image `index` depends on `(seed, index)` alone
    (`np.random.default_rng([seed, index])`) and its geometry lives in normalized [0, 1] coordinates, so
    every resolution from 4² to 1024² depicts the same picture. Edges are anti-aliased: coverage is
    computed with analytic soft edges (signed distance, one pixel wide) on a grid of side
    `max(64, 2·R)`, then averaged over blocks, so a 4² render is a close box downscale of the 1024² one.
    """

    def __init__(self, *, seed: int = 0, num_images: int = 10_000, num_channels: int = 3) -> None:
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"SyntheticShapes.seed: expected an int ≥ 0, got {seed!r}")
        if not _is_int(num_images) or num_images < 1:
            raise ValueError(f"SyntheticShapes.num_images: expected an int ≥ 1, got {num_images!r}")
        if num_channels not in (1, 3) or not _is_int(num_channels):
            raise ValueError(f"SyntheticShapes.num_channels: expected 1 or 3, got {num_channels!r}")
        self.seed = seed
        self.num_images = num_images
        self.num_channels = num_channels

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        return f"SyntheticShapes(seed={self.seed}, num_images={self.num_images}, num_channels={self.num_channels})"

    def render(self, index: int, resolution: int) -> np.ndarray:
        """Image `index` at `resolution`: uint8 `[C, R, R]` (C = `num_channels`), the same bytes on every call."""
        if not _is_int(index) or not 0 <= index < self.num_images:
            raise IndexError(f"SyntheticShapes.render: index expected an int in [0, {self.num_images}), got {index!r}")
        if not is_power_of_two(resolution) or not _MIN_RESOLUTION <= resolution <= _MAX_RESOLUTION:
            raise ValueError(
                f"SyntheticShapes.render: resolution expected a power of two in "
                f"{_MIN_RESOLUTION}..{_MAX_RESOLUTION}, got {resolution!r}"
            )
        scene = self._scene(index)
        grid = max(_MIN_GRID, 2 * resolution)
        t = (np.arange(grid, dtype=np.float32) + 0.5) / grid  # pixel centres in [0, 1]
        x, y = t[None, :], t[:, None]  # broadcast to [grid, grid]
        c0 = scene.colour0.astype(np.float32)[:, None, None]
        c1 = scene.colour1.astype(np.float32)[:, None, None]
        u = (x - 0.5) * math.cos(scene.angle) + (y - 0.5) * math.sin(scene.angle)  # in [-0.71, 0.71]
        weight = np.clip(u * (1.0 / math.sqrt(2.0)) + 0.5, 0.0, 1.0)
        image = c0 + (c1 - c0) * weight[None]  # [C, grid, grid]
        for shape in scene.shapes:  # painted in order, each only inside its bounding box (+1 pixel)
            lo_x, lo_y, hi_x, hi_y = _bounds(shape)
            i0, i1 = max(0, math.floor(lo_y * grid) - 1), min(grid, math.ceil(hi_y * grid) + 1)
            j0, j1 = max(0, math.floor(lo_x * grid) - 1), min(grid, math.ceil(hi_x * grid) + 1)
            if i0 >= i1 or j0 >= j1:
                continue
            distance = _signed_distance(shape, x[:, j0:j1], y[i0:i1])  # negative inside, normalized units
            coverage = np.clip(0.5 - distance * grid, 0.0, 1.0)
            region = image[:, i0:i1, j0:j1]
            region += (shape.colour.astype(np.float32)[:, None, None] - region) * coverage[None]
        factor = grid // resolution
        image = image.reshape(self.num_channels, resolution, factor, resolution, factor).mean(axis=(2, 4))
        return np.clip(image + 0.5, 0.0, 255.0).astype(np.uint8)  # round half up

    def _scene(self, index: int) -> _Scene:
        """Draw the scene of image `index`; the draws never depend on the resolution."""
        rng = np.random.default_rng([self.seed, index])
        c = self.num_channels
        colour0, colour1 = rng.uniform(16.0, 224.0, size=(2, c))
        angle = float(rng.uniform(0.0, 2.0 * math.pi))
        shapes = []
        for _ in range(int(rng.integers(1, 4))):
            kind = _KINDS[int(rng.integers(0, len(_KINDS)))]
            colour = rng.uniform(0.0, 255.0, size=c)
            cx, cy = rng.uniform(0.2, 0.8, size=2)
            size = float(rng.uniform(0.08, 0.3))
            extra = rng.uniform(0.0, 1.0, size=4)  # the same number of draws for every kind
            shapes.append(_make_shape(kind, colour, float(cx), float(cy), size, extra))
        return _Scene(colour0, colour1, angle, tuple(shapes))


def _make_shape(kind: str, colour: np.ndarray, cx: float, cy: float, size: float, extra: np.ndarray) -> _Shape:
    """A shape of `kind` centred at `(cx, cy)` with radius `size`; `extra` (4 uniform draws) sets its aspect or turn."""
    if kind == "circle":
        params: tuple[float, ...] = (cx, cy, size)
    elif kind == "rectangle":
        aspect = 0.5 * 4.0 ** extra[0] if extra[1] < 0.75 else 1.0  # a quarter are squares
        params = (cx, cy, size * math.sqrt(aspect), size / math.sqrt(aspect))
    else:
        turn = 2.0 * math.pi * extra[0]
        angles = turn + np.array([0.0, 2.0, 4.0]) * math.pi / 3.0 + (extra[1:4] - 0.5) * 0.8
        radius = 1.25 * size
        params = tuple(float(v) for a in angles for v in (cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return _Shape(kind, colour, tuple(float(p) for p in params))


def _bounds(shape: _Shape) -> tuple[float, float, float, float]:
    """The shape's bounding box `(x0, y0, x1, y1)` in normalized coordinates."""
    p = shape.params
    if shape.kind == "circle":
        cx, cy, r = p
        return cx - r, cy - r, cx + r, cy + r
    if shape.kind == "rectangle":
        cx, cy, hw, hh = p
        return cx - hw, cy - hh, cx + hw, cy + hh
    xs, ys = p[0::2], p[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _signed_distance(shape: _Shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance (normalized units, negative inside) from pixel centres `x [1, W]`, `y [H, 1]` to the shape: `[H, W]`."""
    p = shape.params
    if shape.kind == "circle":
        cx, cy, r = p
        return np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r
    if shape.kind == "rectangle":
        cx, cy, hw, hh = p
        return np.maximum(np.abs(x - cx) - hw, np.abs(y - cy) - hh)
    v = np.asarray(p).reshape(3, 2)
    if (v[1, 0] - v[0, 0]) * (v[2, 1] - v[0, 1]) - (v[1, 1] - v[0, 1]) * (v[2, 0] - v[0, 0]) < 0:
        v = v[::-1]  # counter-clockwise in (x, y), so every edge's outward normal is (ey, −ex)
    out = None
    for i in range(3):
        (ax, ay), (bx, by) = v[i], v[(i + 1) % 3]
        ex, ey = bx - ax, by - ay
        length = math.hypot(ex, ey)
        d = ((x - ax) * ey - (y - ay) * ex) / length  # distance to the edge's line, positive outside
        out = d if out is None else np.maximum(out, d)
    assert out is not None
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
