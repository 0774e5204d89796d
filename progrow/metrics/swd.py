"""Sliced Wasserstein distance between Laplacian-pyramid patch distributions (Karras et al. 2018, section 5, appendix D).

Written from the paper's text. Each image is decomposed into a Laplacian pyramid (Burt & Adelson 1983)
from its full resolution down to 16²: with the 5-tap binomial kernel `k = [1, 4, 6, 4, 1] / 16` (separable,
mirror padding), `G₀ = image`, `G_{i+1} = (k ∗ G_i)` at even pixels, `L_i = G_i − k' ∗ zero_upsample(G_{i+1})`
with `k' = 4·k⊗k`, and the last level is the Gaussian level `G` at 16² itself. From every level, 128
random 7×7 neighbourhoods per image give descriptors of 7·7·3 = 147 values. Each set of descriptors is
normalized per colour channel by its own mean and standard deviation (over all its descriptors and
pixels), and the two sets are compared by the sliced Wasserstein distance (Rabin et al. 2011) over 512
random unit directions: the mean, over directions, of the mean absolute difference between the sorted
projections of the two sets. Values are reported ×10³ per level and averaged, as in the paper's tables.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["swd", "laplacian_pyramid", "sliced_wasserstein"]

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _blur(x: Tensor, gain: float = 1.0) -> Tensor:
    """Separable 5-tap binomial filter with mirror (reflect) padding: `[N, C, H, W] -> [N, C, H, W]`."""
    k = torch.tensor(_BINOMIAL, dtype=x.dtype, device=x.device) / 16.0 * gain
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def _pyr_down(x: Tensor) -> Tensor:
    return _blur(x)[:, :, ::2, ::2]


def _pyr_up(x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=2.0)  # 2 per dimension: 4·(k⊗k) restores the mean after zero insertion


def laplacian_pyramid(images: Tensor, *, min_resolution: int = 16) -> list[Tensor]:
    """Laplacian pyramid of float images `[N, C, R, R]`, finest first: `[L_R, L_R/2, …, G_min]`.

    The last entry is the Gaussian level at `min(min_resolution, R)`; images of side ≤ `min_resolution`
    give one level, the image itself.
    """
    levels = []
    current = images
    while current.shape[-1] > min_resolution:
        smaller = _pyr_down(current)
        levels.append(current - _pyr_up(smaller))
        current = smaller
    levels.append(current)
    return levels


def _normalize(desc: Tensor, channels: int) -> Tensor:
    """Descriptors `[M, C·P·P]` normalized per colour channel by the set's own mean and std (population)."""
    d = desc.view(desc.shape[0], channels, -1)
    mean = d.mean(dim=(0, 2), keepdim=True)
    std = d.std(dim=(0, 2), keepdim=True, unbiased=False).clamp_min(1e-8)
    return ((d - mean) / std).view_as(desc)


def sliced_wasserstein(a: Tensor, b: Tensor, directions: Tensor) -> Tensor:
    """SWD of descriptor sets `a`, `b` `[M, D]` along unit `directions` `[D, P]`: mean over P of mean |sorted diff|."""
    pa, pb = (directions.T @ a.T, directions.T @ b.T)  # [P, M]
    if pa.device.type == "cpu":  # numpy's vectorized sort is about twice as fast as torch's on CPU
        sa, sb = np.sort(pa.numpy(), axis=1), np.sort(pb.numpy(), axis=1)
        return torch.tensor(float(np.abs(sa - sb).mean(dtype=np.float64)))
    return (torch.sort(pa, dim=1).values - torch.sort(pb, dim=1).values).abs().mean()


def swd(
    images_a: Tensor,
    images_b: Tensor,
    *,
    descriptors_per_image: int = 128,
    patch_size: int = 7,
    num_projections: int = 512,
    num_repeats: int = 4,
    min_resolution: int = 16,
    seed: int = 0,
) -> dict[str, float]:
    """SWD between two sets of uint8 images `[N, C, R, R]` (same shape): `{"swd_R": …, …, "swd_16": …, "swd": mean}`.

    Values are ×10³. Deterministic for a `seed`, with one CPU `torch.Generator(seed)` drawn in this order,
    per level from the finest: patch corners `y` then `x`, each `randint(0, S − patch_size + 1, (N,
    descriptors_per_image))` (the same positions in both sets), then `num_repeats` direction batches
    `randn(C·patch_size², num_projections / num_repeats)`, each column scaled to unit length; descriptors
    are flattened as `[C, patch_size, patch_size]`. `num_repeats` only splits the directions into batches
    to bound memory (per level: 2·N·descriptors_per_image·(C·patch_size² + num_projections/num_repeats)
    float32 values); the result is the mean over all `num_projections`. The pyramid stops at
    `min(min_resolution, R)`, which must be at least `patch_size`; images smaller than `patch_size` (4² in
    a growing run's first stage) use whole-image descriptors, so every stage has an SWD. Computed on
    the images' device in float32 (sorting on the CPU through numpy).
    """
    _check_images("images_a", images_a)
    _check_images("images_b", images_b)
    if images_a.shape != images_b.shape:
        raise ValueError(
            f"swd: images_a and images_b must have the same shape [N, C, R, R], got {tuple(images_a.shape)} "
            f"and {tuple(images_b.shape)}"
        )
    for name, value in (
        ("descriptors_per_image", descriptors_per_image),
        ("patch_size", patch_size),
        ("num_projections", num_projections),
        ("num_repeats", num_repeats),
        ("min_resolution", min_resolution),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"swd: {name} expected an int ≥ 1, got {value!r}")
    if num_projections % num_repeats:
        raise ValueError(f"swd: num_projections ({num_projections}) must be a multiple of num_repeats ({num_repeats})")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"swd: seed expected an int, got {seed!r}")
    n, c, size, _ = images_a.shape
    patch_size = min(patch_size, size)  # images smaller than a patch (4² in early stages): whole-image descriptors
    if min(size, min_resolution) < patch_size:
        raise ValueError(f"swd: min_resolution {min_resolution} smaller than patch_size {patch_size}")

    rng = torch.Generator().manual_seed(seed)
    pyramids = [laplacian_pyramid(x.float(), min_resolution=min_resolution) for x in (images_a, images_b)]
    out: dict[str, float] = {}
    for level_a, level_b in zip(*pyramids, strict=True):
        s = level_a.shape[-1]
        ys = torch.randint(0, s - patch_size + 1, (n, descriptors_per_image), generator=rng)
        xs = torch.randint(0, s - patch_size + 1, (n, descriptors_per_image), generator=rng)
        desc_a = _normalize(_patches(level_a, ys, xs, patch_size), c)
        desc_b = _normalize(_patches(level_b, ys, xs, patch_size), c)
        total = 0.0
        for _ in range(num_repeats):
            dirs = torch.randn(c * patch_size * patch_size, num_projections // num_repeats, generator=rng)
            dirs = (dirs / dirs.norm(dim=0, keepdim=True)).to(desc_a.device)
            total += float(sliced_wasserstein(desc_a, desc_b, dirs))
        out[f"swd_{s}"] = total / num_repeats * 1e3
    out["swd"] = sum(out.values()) / len(out)
    return out


def _check_images(name: str, images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = f"{images.dtype} of shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"swd: {name} expected uint8 images [N, C, R, R], got {got}")
    if images.shape[-1] != images.shape[-2] or len(images) == 0:
        raise ValueError(f"swd: {name} expected a non-empty set of square images, got shape {tuple(images.shape)}")


def _patches(level: Tensor, ys: Tensor, xs: Tensor, size: int) -> Tensor:
    """Descriptors `[N·K, C·size·size]` of the `size`×`size` patches with top-left corners `(ys, xs)` `[N, K]`."""
    n, c = level.shape[:2]
    offsets = torch.arange(size)
    rows = (ys[:, :, None] + offsets)[:, :, :, None].to(level.device)  # [N, K, size, 1]
    cols = (xs[:, :, None] + offsets)[:, :, None, :].to(level.device)  # [N, K, 1, size]
    idx = torch.arange(n, device=level.device)[:, None, None, None]
    patches = level.permute(0, 2, 3, 1)[idx, rows, cols]  # [N, K, size, size, C]
    return patches.permute(0, 1, 4, 2, 3).reshape(n * ys.shape[1], c * size * size)
