"""SSIM and MS-SSIM (Wang et al. 2003), and MS-SSIM over random pairs of generated images as a diversity measure.

Standard settings: an 11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, 'valid' filtering (no
padding), statistics per channel averaged over channels and positions, 2×2 average pooling between
scales, and the scale weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). MS-SSIM multiplies the
contrast-structure term of every scale but the coarsest and the full SSIM of the coarsest, each clipped
at 0 and raised to its weight. Small images: as many scales are used as keep the coarsest side ≥ the
window (64² → 3 scales, 128² → 4, ≥ 176² → 5), with the first weights renormalized to sum to 1; images
smaller than the window use one scale with the window shrunk to the largest odd size that fits (8² → 7×7).
Paper (Odena et al. 2017; Karras et al. 2018, Table 1): the mean MS-SSIM of random pairs of generated
images — lower means more diverse.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ssim", "ms_ssim", "ms_ssim_diversity", "MS_SSIM_WEIGHTS"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2 = 0.01, 0.03


def _window(size: int, sigma: float, x: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).to(device=x.device, dtype=x.dtype)


def _filter(x: Tensor, w: Tensor) -> Tensor:
    """Separable 'valid' filtering of `[N, C, H, W]` by the 1-D window `w` along both axes."""
    c, k = x.shape[1], len(w)
    x = F.conv2d(x, w.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, w.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def _ssim_cs(a: Tensor, b: Tensor, window: Tensor, data_range: float) -> tuple[Tensor, Tensor]:
    """Per-image SSIM and contrast-structure term `[N]` of float images `[N, C, H, W]`."""
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mu_a, mu_b = _filter(a, window), _filter(b, window)
    var_a = _filter(a * a, window) - mu_a * mu_a
    var_b = _filter(b * b, window) - mu_b * mu_b
    cov = _filter(a * b, window) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    luminance = (2 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
    return (luminance * cs).mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def _prepare(a: Tensor, b: Tensor, name: str) -> tuple[Tensor, Tensor]:
    for label, x in (("a", a), ("b", b)):
        if not isinstance(x, Tensor) or x.dim() != 4:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name}: {label} expected images [N, C, H, W], got {got}")
    if a.shape != b.shape:
        raise ValueError(f"{name}: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    dtype = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    return a.to(dtype), b.to(dtype)


def _window_size(side: int, window_size: int) -> int:
    return window_size if side >= window_size else max(1, side - (side + 1) % 2)


def ssim(a: Tensor, b: Tensor, *, data_range: float = 255.0, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Single-scale SSIM of image pairs `[N, C, H, W]` → `[N]` (uint8 images: `data_range` 255; [-1, 1]: 2)."""
    a, b = _prepare(a, b, "ssim")
    size = _window_size(min(a.shape[-2:]), window_size)
    return _ssim_cs(a, b, _window(size, sigma, a), data_range)[0]


def ms_ssim(
    a: Tensor,
    b: Tensor,
    *,
    data_range: float = 255.0,
    window_size: int = 11,
    sigma: float = 1.5,
    max_scales: int = len(MS_SSIM_WEIGHTS),
) -> Tensor:
    """MS-SSIM of image pairs `[N, C, H, W]` → `[N]`, with as many of `max_scales` scales as fit (module docstring)."""
    a, b = _prepare(a, b, "ms_ssim")
    if isinstance(max_scales, bool) or not isinstance(max_scales, int) or not 1 <= max_scales <= len(MS_SSIM_WEIGHTS):
        raise ValueError(f"ms_ssim: max_scales expected an int in [1, {len(MS_SSIM_WEIGHTS)}], got {max_scales!r}")
    side = min(a.shape[-2:])
    scales = 1
    while scales < max_scales and side // 2**scales >= window_size:
        scales += 1
    weights = MS_SSIM_WEIGHTS[:scales]
    if scales < len(MS_SSIM_WEIGHTS):
        weights = tuple(w / math.fsum(weights) for w in weights)
    window = _window(_window_size(side, window_size), sigma, a)
    result = torch.ones(a.shape[0], dtype=a.dtype, device=a.device)
    for j, weight in enumerate(weights):
        full, cs = _ssim_cs(a, b, window, data_range)
        term = full if j == scales - 1 else cs
        result = result * term.clamp_min(0.0) ** weight
        if j < scales - 1:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return result


def ms_ssim_diversity(
    images: Tensor,
    *,
    num_pairs: int = 10_000,
    seed: int = 0,
    batch_size: int = 256,
    data_range: float = 255.0,
) -> float:
    """Mean MS-SSIM over `num_pairs` random pairs (i ≠ j, drawn with replacement, seeded) of images `[N, C, H, W]`."""
    if not isinstance(images, Tensor) or images.dim() != 4 or len(images) < 2:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"ms_ssim_diversity: images expected [N ≥ 2, C, H, W], got {got}")
    for name, value in (("num_pairs", num_pairs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"ms_ssim_diversity: {name} expected an int ≥ 1, got {value!r}")
    rng = torch.Generator().manual_seed(seed)
    n = len(images)
    first = torch.randint(n, (num_pairs,), generator=rng)
    second = (first + torch.randint(1, n, (num_pairs,), generator=rng)) % n  # never equal to `first`
    total = 0.0
    for start in range(0, num_pairs, batch_size):
        i, j = first[start : start + batch_size], second[start : start + batch_size]
        total += float(ms_ssim(images[i], images[j], data_range=data_range).double().sum())
    return total / num_pairs
