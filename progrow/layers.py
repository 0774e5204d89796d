"""The paper's building blocks: equalized learning rate, pixelwise normalization, minibatch stddev, toRGB/fromRGB."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import Tensor, nn

__all__ = [
    "EqualizedConv2d",
    "EqualizedLinear",
    "PixelNorm",
    "MinibatchStdDev",
    "ToRGB",
    "FromRGB",
]

_SQRT2 = math.sqrt(2.0)

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
_PADDING_MODES: tuple[str, ...] = get_args(PaddingMode)


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _check_positive_float(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")


class EqualizedConv2d(nn.Module):
    """Conv2d with equalized learning rate: `[N, C_in, H, W] -> [N, C_out, H', W']`.

    Weights are drawn from N(0, 1) and scaled at run time by the He constant
    `gain / sqrt(fan_in)` (paper §4.1), so every weight learns at the same speed under Adam.
    `lr_multiplier` scales the effective learning rate of this layer (1 in ProGAN). `padding_mode` is
    `nn.Conv2d`'s: "zeros" (the paper's) or "reflect" / "replicate" / "circular", which pad with image
    content instead, so the border of an image is not a place the generator has to learn apart.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
        gain: float = _SQRT2,
        lr_multiplier: float = 1.0,
        padding_mode: PaddingMode = "zeros",
    ) -> None:
        super().__init__()
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"EqualizedConv2d.padding_mode: expected one of {', '.join(_PADDING_MODES)}, got {padding_mode!r}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("kernel_size", kernel_size)):
            _check_positive_int(f"EqualizedConv2d.{name}", value)
        _check_positive_float("EqualizedConv2d.lr_multiplier", lr_multiplier)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.padding_mode = padding_mode
        self.gain = gain
        self.lr_multiplier = lr_multiplier
        fan_in = in_channels * kernel_size * kernel_size
        self.weight_scale = gain / math.sqrt(fan_in) * lr_multiplier
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """Convolve `[N, C_in, H, W]` with the run-time scaled weight."""
        bias = None if self.bias is None else self.bias * self.lr_multiplier
        padding = self.padding
        if self.padding_mode != "zeros" and padding:
            x, padding = F.pad(x, (padding,) * 4, mode=self.padding_mode), 0
        return F.conv2d(x, self.weight * self.weight_scale, bias, stride=self.stride, padding=padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}, gain={self.gain:.4g}"
            + ("" if self.padding_mode == "zeros" else f", padding_mode={self.padding_mode}")
        )


class EqualizedLinear(nn.Module):
    """Linear layer with equalized learning rate: `[N, in_features] -> [N, out_features]`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        gain: float = _SQRT2,
        lr_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        _check_positive_int("EqualizedLinear.in_features", in_features)
        _check_positive_int("EqualizedLinear.out_features", out_features)
        _check_positive_float("EqualizedLinear.lr_multiplier", lr_multiplier)
        self.in_features = in_features
        self.out_features = out_features
        self.gain = gain
        self.lr_multiplier = lr_multiplier
        self.weight_scale = gain / math.sqrt(in_features) * lr_multiplier
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """Apply `x @ (weight * scale).T + bias` to `[N, in_features]`."""
        bias = None if self.bias is None else self.bias * self.lr_multiplier
        return F.linear(x, self.weight * self.weight_scale, bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, gain={self.gain:.4g}"


class PixelNorm(nn.Module):
    """Pixelwise feature vector normalization (paper §4.2): `[N, C, ...] -> [N, C, ...]`.

    `b = a / sqrt(mean_c(a²) + eps)` with `eps = 1e-8`, over the channel dimension (dim 1).
    """

    def __init__(self, *, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalize each feature vector of `[N, C, ...]` to unit RMS over `C`."""
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation (paper §3): `[N, C, H, W] -> [N, C + num_channels, H, W]`.

    For every group of samples, the standard deviation of each feature at each pixel is taken over the
    group (population statistics, `sqrt(var + eps)`), averaged over features and pixels into one value per
    group, and appended to each of the group's samples as a constant feature map.

    Grouping follows the official code: with `M = ceil(N / group_size)` groups, sample `n` belongs to group
    `n mod M` (a strided split). When `group_size` divides `N` every group has exactly `group_size` samples,
    as in the paper; otherwise the groups differ in size by at most one (e.g. N=10, G=4 gives groups of
    4, 3 and 3), and `N < group_size` makes one group of all `N` samples. A group of one sample has
    standard deviation `sqrt(eps)`.

    `num_channels > 1` splits the features into that many equal parts, each giving its own map
    (StyleGAN2's generalisation; ProGAN uses 1).
    """

    def __init__(self, *, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        _check_positive_int("MinibatchStdDev.group_size", group_size)
        _check_positive_int("MinibatchStdDev.num_channels", num_channels)
        self.group_size = group_size
        self.num_channels = num_channels
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Append the group statistics to `[N, C, H, W]` as `num_channels` extra feature maps."""
        n, c, h, w = x.shape
        f = self.num_channels
        if c % f != 0:
            raise ValueError(f"MinibatchStdDev: {c} channels cannot be split into num_channels={f} equal parts")
        m = -(-n // self.group_size)  # number of groups, ceil(N / G)
        y = x if x.dtype in (torch.float32, torch.float64) else x.float()  # statistics in fp32 under autocast
        y = rearrange(y, "n (f c) h w -> n f c h w", f=f)
        if n % m == 0:
            y = rearrange(y, "(g m) f c h w -> g m f c h w", m=m)
            var = (y - y.mean(dim=0)).square().mean(dim=0)  # [M, F, C/F, H, W]
        else:
            var = self._ragged_variance(y, m)
        std = torch.sqrt(var + self.eps)
        stat = reduce(std, "m f c h w -> m f", "mean")  # [M, F]
        stat = stat[torch.arange(n, device=x.device) % m]  # [N, F]: each sample gets its group's value
        maps = stat[:, :, None, None].expand(n, f, h, w).to(x.dtype)
        return torch.cat([x, maps], dim=1)

    @staticmethod
    def _ragged_variance(y: Tensor, m: int) -> Tensor:
        """Population variance per strided group when groups differ in size: `[N, ...] -> [M, ...]`."""
        n = y.shape[0]
        s = -(-n // m)  # samples in the largest group
        padded = torch.cat([y, y.new_zeros((s * m - n, *y.shape[1:]))])
        padded = rearrange(padded, "(s m) ... -> s m ...", m=m)
        mask = (torch.arange(s * m, device=y.device) < n).to(y.dtype)
        mask = rearrange(mask, "(s m) -> s m", m=m).reshape(s, m, *([1] * (y.dim() - 1)))
        count = mask.sum(dim=0)
        mean = (padded * mask).sum(dim=0) / count
        return ((padded - mean).square() * mask).sum(dim=0) / count

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class ToRGB(EqualizedConv2d):
    """The paper's toRGB: a linear equalized 1×1 conv, `[N, C, H, W] -> [N, img_channels, H, W]` (gain 1)."""

    def __init__(self, in_channels: int, out_channels: int = 3, *, gain: float = 1.0) -> None:
        super().__init__(in_channels, out_channels, 1, gain=gain)


class FromRGB(EqualizedConv2d):
    """The paper's fromRGB: equalized 1×1 conv + LeakyReLU(0.2), `[N, img_channels, H, W] -> [N, C, H, W]`."""

    def __init__(self, in_channels: int, out_channels: int, *, negative_slope: float = 0.2) -> None:
        super().__init__(in_channels, out_channels, 1)
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        """Project `[N, img_channels, H, W]` to features and apply the leaky ReLU."""
        return F.leaky_relu(super().forward(x), self.negative_slope)
