"""The paper's networks (Table 2; official defaults `fmap_base=8192, fmap_decay=1.0, fmap_max=512`), to the protocol.

Both networks speak progrow's protocol directly; `progrow.ProgressiveGenerator` / `ProgressiveDiscriminator`
add the toRGB (linear, gain 1) / fromRGB (LeakyReLU 0.2) layers, the resampling and the fade-in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from progrow import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm, upsample2x
from progrow.layers import PaddingMode

__all__ = ["ProGANGenerator", "ProGANDiscriminator", "feature_maps"]

_LRELU = 0.2


def feature_maps(resolution: int, *, fmap_base: int = 8192, fmap_decay: float = 1.0, fmap_max: int = 512) -> int:
    """Feature maps at `resolution`: `min(fmap_base / 2^(log2(res) − 1)·decay, fmap_max)` — 512 up to 32², then halving."""
    stage = int(math.log2(resolution)) - 1
    return min(int(fmap_base / 2.0 ** (stage * fmap_decay)), fmap_max)


def _resolutions(resolution: int) -> tuple[int, ...]:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution: expected a power of two ≥ 4, got {resolution!r}")
    return tuple(2**k for k in range(2, int(math.log2(resolution)) + 1))


class _ConvAct(nn.Sequential):
    """Equalized 3×3 conv, LeakyReLU(0.2), then PixelNorm when asked: `[N, C_in, H, W] -> [N, C_out, H, W]`."""

    def __init__(self, c_in: int, c_out: int, *, pixelnorm: bool, padding_mode: PaddingMode = "zeros") -> None:
        super().__init__(EqualizedConv2d(c_in, c_out, 3, padding_mode=padding_mode), nn.LeakyReLU(_LRELU))
        if pixelnorm:
            self.append(PixelNorm())


class ProGANGenerator(nn.Module):
    """The paper's generator: latent (+ one-hot label) → 4×4 → … → `resolution`, features per resolution.

    4×4 block: PixelNorm on the latent, dense to 4·4·C (gain √2/4, as the official code), LeakyReLU,
    PixelNorm, 3×3 conv. Each later block: 2× nearest upsample, two 3×3 convs. LeakyReLU 0.2 and PixelNorm
    after every conv; equalized learning rate everywhere. `features(z, until=R)` yields `[N, C(r), r, r]`.
    `padding_mode` pads the 3×3 convs (the paper: "zeros"; see `EqualizedConv2d`).
    """

    def __init__(
        self,
        *,
        resolution: int = 1024,
        latent_dim: int = 512,
        num_classes: int = 0,
        fmap_base: int = 8192,
        fmap_decay: float = 1.0,
        fmap_max: int = 512,
        normalize_latents: bool = True,
        pixelnorm: bool = True,
        padding_mode: PaddingMode = "zeros",
    ) -> None:
        super().__init__()
        self.resolutions = _resolutions(resolution)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        conv = partial(_ConvAct, pixelnorm=pixelnorm, padding_mode=padding_mode)
        self._fmaps = {
            r: feature_maps(r, fmap_base=fmap_base, fmap_decay=fmap_decay, fmap_max=fmap_max) for r in self.resolutions
        }
        c4 = self._fmaps[4]
        self.latent_norm = PixelNorm() if normalize_latents else nn.Identity()
        self.dense = EqualizedLinear(latent_dim + num_classes, c4 * 16, gain=math.sqrt(2) / 4)
        self.dense_norm = PixelNorm() if pixelnorm else nn.Identity()
        blocks: dict[str, nn.Module] = {"4": conv(c4, c4)}
        for r in self.resolutions[1:]:
            c_prev, c = self._fmaps[r // 2], self._fmaps[r]
            blocks[str(r)] = nn.Sequential(conv(c_prev, c), conv(c, c))
        self.blocks = nn.ModuleDict(blocks)

    def channels(self, resolution: int) -> int:
        """Feature maps produced at `resolution`."""
        return self._fmaps[resolution]

    def features(self, z: Tensor, *, until: int, labels: Tensor | None = None) -> Iterator[tuple[int, Tensor]]:
        """Yield `(r, [N, C(r), r, r])` for r = 4 … `until` from latents `[N, latent_dim]` (labels `[N]` if conditional)."""
        x = z
        if self.num_classes:
            if labels is None:
                raise ValueError("ProGANGenerator: a conditional generator needs labels=[N] class indices")
            x = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        h = self.dense(self.latent_norm(x)).view(-1, self._fmaps[4], 4, 4)
        h = self.blocks["4"](self.dense_norm(F.leaky_relu(h, _LRELU)))
        yield 4, h
        for r in self.resolutions[1:]:
            if r > until:
                return
            h = self.blocks[str(r)](upsample2x(h))
            yield r, h


class ProGANDiscriminator(nn.Module):
    """The paper's discriminator: blocks of two 3×3 convs then 2×2 average pooling, and the 4×4 head.

    `block(R)`: conv C(R)→C(R), conv C(R)→C(R/2), downsample; LeakyReLU 0.2 after each conv. Head:
    MinibatchStdDev (group 4), 3×3 conv, dense over 4×4 → C(2) (512), dense → 1 score (+ one logit per
    class when conditional, as the official code's auxiliary classifier). Scores `[N, 1 + num_classes]`.
    """

    def __init__(
        self,
        *,
        resolution: int = 1024,
        num_classes: int = 0,
        fmap_base: int = 8192,
        fmap_decay: float = 1.0,
        fmap_max: int = 512,
        mbstd_group_size: int = 4,
    ) -> None:
        super().__init__()
        self.resolutions = _resolutions(resolution)
        self.num_classes = num_classes
        nf = {r: feature_maps(r, fmap_base=fmap_base, fmap_decay=fmap_decay, fmap_max=fmap_max) for r in (2, *self.resolutions)}
        self._fmaps = nf
        self.blocks = nn.ModuleDict(
            {
                str(r): nn.Sequential(
                    _ConvAct(nf[r], nf[r], pixelnorm=False), _ConvAct(nf[r], nf[r // 2], pixelnorm=False), nn.AvgPool2d(2)
                )
                for r in self.resolutions[1:]
            }
        )
        mbstd = MinibatchStdDev(group_size=mbstd_group_size) if mbstd_group_size > 1 else None
        extra = 1 if mbstd is not None else 0
        self.final = nn.Sequential(
            *([mbstd] if mbstd is not None else []),
            _ConvAct(nf[4] + extra, nf[4], pixelnorm=False),
            nn.Flatten(),
            EqualizedLinear(nf[4] * 16, nf[2]),
            nn.LeakyReLU(_LRELU),
            EqualizedLinear(nf[2], 1 + num_classes, gain=1.0),
        )

    def channels(self, resolution: int) -> int:
        """Feature maps consumed at `resolution`."""
        return self._fmaps[resolution]

    def block(self, resolution: int) -> nn.Module:
        """`[N, C(R), R, R] -> [N, C(R/2), R/2, R/2]`."""
        return self.blocks[str(resolution)]

    def head(self, x: Tensor) -> Tensor:
        """Scores `[N, 1 + num_classes]` from 4×4 features `[N, C(4), 4, 4]`."""
        return self.final(x)
