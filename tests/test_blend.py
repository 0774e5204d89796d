"""Tests for progrow.blend: resampling, fading and real-image resizing."""

from __future__ import annotations

import pytest
import torch

from progrow import GrowthState
from progrow.blend import downsample2x, fade, fade_reals, resize_to, upsample2x


def _block_mean_loop(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each k×k block, with plain python loops."""
    n, c, h, w = x.shape
    out = torch.empty(n, c, h // k, w // k, dtype=x.dtype)
    for a in range(n):
        for b in range(c):
            for i in range(h // k):
                for j in range(w // k):
                    total = 0.0
                    for di in range(k):
                        for dj in range(k):
                            total += x[a, b, i * k + di, j * k + dj].item()
                    out[a, b, i, j] = total / (k * k)
    return out


def _nearest(x: torch.Tensor, k: int) -> torch.Tensor:
    return x.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)


# --------------------------------------------------------------------------------------------------
# upsample2x / downsample2x
# --------------------------------------------------------------------------------------------------


def test_upsample2x_is_nearest():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5)
    out = upsample2x(x)
    assert out.shape == (2, 3, 8, 10)
    assert torch.equal(out, _nearest(x, 2))
    for i in range(4):
        for j in range(5):
            block = out[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            assert torch.equal(block, x[:, :, i : i + 1, j : j + 1].expand(2, 3, 2, 2))


def test_downsample2x_is_2x2_mean():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 6, 4, dtype=torch.float64)
    out = downsample2x(x)
    assert out.shape == (2, 3, 3, 2)
    torch.testing.assert_close(out, _block_mean_loop(x, 2), rtol=1e-12, atol=1e-12)


def test_downsample_of_upsample_is_identity():
    torch.manual_seed(2)
    x = torch.randn(1, 2, 3, 3)
    assert torch.equal(downsample2x(upsample2x(x)), x)


@pytest.mark.parametrize("hw", [(5, 4), (4, 5), (3, 3)])
def test_downsample2x_odd_size_raises(hw):
    with pytest.raises(ValueError, match="even"):
        downsample2x(torch.zeros(1, 1, *hw))


# --------------------------------------------------------------------------------------------------
# fade
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_fade_exact_at_endpoints(dtype, as_tensor):
    torch.manual_seed(3)
    old = (torch.randn(2, 3, 4, 4) * 100).to(dtype)
    new = (torch.randn(2, 3, 4, 4) * 1e-3).to(dtype)
    zero = torch.tensor(0.0) if as_tensor else 0.0
    one = torch.tensor(1.0) if as_tensor else 1.0
    a, b = fade(old, new, zero), fade(old, new, one)
    assert a.dtype == dtype and b.dtype == dtype
    assert torch.equal(a, old)
    assert torch.equal(b, new)


def test_fade_midpoint_values():
    torch.manual_seed(4)
    old = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    new = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    for alpha in (0.25, 0.5, 0.9):
        expected = (1 - alpha) * old + alpha * new
        torch.testing.assert_close(fade(old, new, alpha), expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(fade(old, new, torch.tensor(alpha)), expected, rtol=1e-6, atol=1e-6)


def test_fade_bf16_with_float32_tensor_alpha():
    old = torch.full((1, 1, 2, 2), 2.0, dtype=torch.bfloat16)
    new = torch.full((1, 1, 2, 2), 4.0, dtype=torch.bfloat16)
    out = fade(old, new, torch.tensor(0.5))
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, torch.full((1, 1, 2, 2), 3.0, dtype=torch.bfloat16))


# --------------------------------------------------------------------------------------------------
# fade_reals
# --------------------------------------------------------------------------------------------------


def test_fade_reals_alpha_zero_is_previous_resolution_upsampled():
    torch.manual_seed(5)
    x = torch.randn(2, 3, 8, 8)
    out = fade_reals(x, GrowthState(resolution=8, alpha=0.0))
    assert torch.equal(out, upsample2x(downsample2x(x)))
    torch.testing.assert_close(out, _nearest(_block_mean_loop(x, 2), 2), rtol=1e-6, atol=1e-6)


def test_fade_reals_alpha_one_returns_input():
    x = torch.randn(2, 3, 8, 8)
    assert fade_reals(x, GrowthState(resolution=8, alpha=1.0)) is x
    assert fade_reals(x, GrowthState(resolution=8)) is x


@pytest.mark.parametrize("alpha", [0.25, 0.75])
def test_fade_reals_mid_fade_is_lerp(alpha):
    torch.manual_seed(6)
    x = torch.randn(2, 3, 8, 8)
    low = _nearest(_block_mean_loop(x, 2), 2)
    expected = low + alpha * (x - low)
    out = fade_reals(x, GrowthState(resolution=8, alpha=alpha))
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (1, 3, 4, 4), (1, 3, 8, 16), (1, 3, 16, 8)])
def test_fade_reals_wrong_resolution_raises(shape):
    with pytest.raises(ValueError, match=r"8\s*[×x]\s*8"):
        fade_reals(torch.zeros(shape), GrowthState(resolution=8, alpha=0.5))


# --------------------------------------------------------------------------------------------------
# resize_to
# --------------------------------------------------------------------------------------------------


def test_resize_to_down_by_four_is_block_mean():
    torch.manual_seed(7)
    x = torch.randn(2, 3, 16, 16)
    out = resize_to(x, 4)
    assert out.shape == (2, 3, 4, 4)
    torch.testing.assert_close(out, _block_mean_loop(x, 4), rtol=0, atol=1e-6)
    torch.testing.assert_close(out, downsample2x(downsample2x(x)), rtol=0, atol=1e-6)


def test_resize_to_down_by_two_and_eight():
    torch.manual_seed(8)
    x = torch.randn(1, 2, 16, 16)
    torch.testing.assert_close(resize_to(x, 8), _block_mean_loop(x, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(resize_to(x, 2), _block_mean_loop(x, 8), rtol=0, atol=1e-6)


@pytest.mark.parametrize("factor", [2, 4])
def test_resize_to_up_is_nearest(factor):
    torch.manual_seed(9)
    x = torch.randn(2, 3, 4, 4)
    out = resize_to(x, 4 * factor)
    assert out.shape == (2, 3, 4 * factor, 4 * factor)
    assert torch.equal(out, _nearest(x, factor))


def test_resize_to_same_size_returns_input():
    x = torch.randn(1, 3, 8, 8)
    assert resize_to(x, 8) is x


@pytest.mark.parametrize(("size", "target"), [(12, 4), (4, 12), (16, 6), (6, 16), (16, 5)])
def test_resize_to_non_power_of_two_factor_raises(size, target):
    with pytest.raises(ValueError, match="power-of-two"):
        resize_to(torch.zeros(1, 1, size, size), target)


def test_resize_to_non_square_raises():
    with pytest.raises(ValueError, match="square"):
        resize_to(torch.zeros(1, 1, 8, 4), 4)


def test_resize_to_zero_resolution_raises_value_error():
    with pytest.raises(ValueError, match="resize_to: expected a power-of-two resolution, got 0"):
        resize_to(torch.zeros(1, 1, 4, 4), 0)
