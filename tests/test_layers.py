"""Tests for progrow.layers: equalized learning rate, PixelNorm, MinibatchStdDev, ToRGB, FromRGB."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from progrow.layers import EqualizedConv2d, EqualizedLinear, FromRGB, MinibatchStdDev, PixelNorm, ToRGB

# --------------------------------------------------------------------------------------------------
# Equalized learning rate
# --------------------------------------------------------------------------------------------------


def test_equalized_conv_weights_stored_standard_normal():
    torch.manual_seed(0)
    layer = EqualizedConv2d(128, 128, 3)  # 147 456 weights
    w = layer.weight.detach()
    assert w.shape == (128, 128, 3, 3)
    assert abs(w.mean().item()) < 0.01
    assert abs(w.std().item() - 1.0) < 0.01
    assert torch.equal(layer.bias.detach(), torch.zeros(128))


def test_equalized_linear_weights_stored_standard_normal():
    torch.manual_seed(1)
    layer = EqualizedLinear(512, 256)
    w = layer.weight.detach()
    assert w.shape == (256, 512)
    assert abs(w.mean().item()) < 0.01
    assert abs(w.std().item() - 1.0) < 0.01
    assert torch.equal(layer.bias.detach(), torch.zeros(256))


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_equalized_conv_forward_matches_he_scaled_conv(kernel_size):
    torch.manual_seed(2)
    layer = EqualizedConv2d(5, 7, kernel_size)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 5, 6, 6)
    fan_in = 5 * kernel_size * kernel_size
    w = layer.weight.detach() * (math.sqrt(2.0) / math.sqrt(fan_in))
    expected = F.conv2d(x, w, layer.bias.detach(), padding=kernel_size // 2)
    out = layer(x)
    assert out.shape == (2, 7, 6, 6)  # "same" padding by default
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_equalized_conv_runtime_scaling_not_baked_into_weight():
    # Changing the stored weight changes the output by the run-time He factor, not by 1.
    torch.manual_seed(3)
    layer = EqualizedConv2d(4, 3, 3, bias=False)
    x = torch.randn(1, 4, 5, 5)
    base = layer(x).detach()
    with torch.no_grad():
        layer.weight.mul_(2.0)
    torch.testing.assert_close(layer(x), 2.0 * base, rtol=1e-6, atol=1e-6)
    assert layer.bias is None


def test_equalized_conv_stride_and_padding():
    torch.manual_seed(4)
    layer = EqualizedConv2d(3, 2, 3, stride=2, padding=0)
    x = torch.randn(2, 3, 9, 9)
    w = layer.weight.detach() * (math.sqrt(2.0) / math.sqrt(27))
    expected = F.conv2d(x, w, layer.bias.detach(), stride=2, padding=0)
    out = layer(x)
    assert out.shape == (2, 2, 4, 4)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_equalized_conv_padding_mode_matches_nn_conv2d_bit_for_bit(mode):
    torch.manual_seed(5)
    layer = EqualizedConv2d(3, 5, 3, padding_mode=mode)
    ref = torch.nn.Conv2d(3, 5, 3, padding=1, padding_mode=mode)
    with torch.no_grad():
        layer.bias.normal_()
        ref.weight.copy_(layer.weight * layer.weight_scale)
        ref.bias.copy_(layer.bias)
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(layer(x), ref(x))


def test_equalized_conv_reflect_padding_changes_only_the_border():
    torch.manual_seed(6)
    zeros, reflect = EqualizedConv2d(2, 2, 3), EqualizedConv2d(2, 2, 3, padding_mode="reflect")
    reflect.load_state_dict(zeros.state_dict())  # the same parameters: padding is not a parameter
    x = torch.randn(1, 2, 6, 6)
    diff = (zeros(x) - reflect(x)).abs()[0].amax(0)
    assert diff[1:-1, 1:-1].max() == 0  # interior pixels never see the padding
    assert diff[0].min() > 0 and diff[-1].min() > 0 and diff[:, 0].min() > 0 and diff[:, -1].min() > 0
    assert "padding_mode=reflect" in repr(reflect) and "padding_mode" not in repr(zeros)


def test_equalized_conv_unknown_padding_mode_names_the_choices():
    with pytest.raises(ValueError, match="padding_mode: expected one of zeros, reflect, replicate, circular, got 'mirror'"):
        EqualizedConv2d(3, 3, 3, padding_mode="mirror")  # type: ignore[arg-type]


def test_equalized_linear_forward_matches_he_scaled_linear():
    torch.manual_seed(5)
    layer = EqualizedLinear(9, 4)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, 9)
    w = layer.weight.detach() * (math.sqrt(2.0) / 3.0)  # sqrt(fan_in) = 3
    expected = x @ w.t() + layer.bias.detach()
    torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)


def test_equalized_linear_custom_gain():
    torch.manual_seed(6)
    layer = EqualizedLinear(16, 2, gain=1.0, bias=False)
    x = torch.randn(4, 16)
    expected = F.linear(x, layer.weight.detach() / 4.0)
    torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)


def test_equalized_weight_gradient_is_scaled_by_he_constant():
    # d out / d stored_weight = He constant * d out / d effective_weight.
    torch.manual_seed(7)
    layer = EqualizedLinear(8, 3)
    x = torch.randn(5, 8)
    layer(x).square().sum().backward()
    w_eff = (layer.weight.detach() * (math.sqrt(2.0) / math.sqrt(8))).requires_grad_(True)
    F.linear(x, w_eff, layer.bias.detach()).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, w_eff.grad * (math.sqrt(2.0) / math.sqrt(8)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", ["conv", "linear"])
def test_lr_multiplier_keeps_effective_init_and_scales_parameters(cls):
    lr_mult = 0.01
    torch.manual_seed(8)
    ref = EqualizedConv2d(4, 3, 3) if cls == "conv" else EqualizedLinear(12, 3)
    torch.manual_seed(8)
    slow = EqualizedConv2d(4, 3, 3, lr_multiplier=lr_mult) if cls == "conv" else EqualizedLinear(12, 3, lr_multiplier=lr_mult)
    # Stored weight is N(0, 1) / lr_multiplier, so the effective (forward) weight is the same at init.
    torch.testing.assert_close(slow.weight.detach(), ref.weight.detach() / lr_mult)
    x = torch.randn(2, 4, 5, 5) if cls == "conv" else torch.randn(2, 12)
    torch.testing.assert_close(slow(x), ref(x), rtol=1e-5, atol=1e-5)
    # The bias is multiplied by lr_multiplier at run time.
    with torch.no_grad():
        slow.bias.fill_(3.0)
        ref.bias.fill_(3.0 * lr_mult)
    torch.testing.assert_close(slow(x), ref(x), rtol=1e-5, atol=1e-5)


def test_lr_multiplier_scales_effective_adam_step():
    # Under Adam the stored parameters move by ~lr per step, so the effective weights and bias
    # move by ~lr * He constant * lr_multiplier and ~lr * lr_multiplier respectively.
    lr, lr_mult = 1e-3, 0.1
    deltas = {}
    for mult in (1.0, lr_mult):
        torch.manual_seed(9)
        layer = EqualizedLinear(6, 4, lr_multiplier=mult).double()  # float64: no rounding of the tiny steps
        x = torch.randn(8, 6, dtype=torch.float64)
        target = torch.randn(8, 4, dtype=torch.float64)
        opt = torch.optim.Adam(layer.parameters(), lr=lr, eps=1e-30)
        w0 = layer.weight.detach().clone() * layer.weight_scale
        b0 = layer.bias.detach().clone() * mult
        (layer(x) - target).square().sum().backward()
        opt.step()
        deltas[mult] = (
            (layer.weight.detach() * layer.weight_scale - w0).abs(),
            (layer.bias.detach() * mult - b0).abs(),
        )
    he = math.sqrt(2.0) / math.sqrt(6)
    torch.testing.assert_close(deltas[1.0][0], torch.full((4, 6), lr * he, dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(deltas[lr_mult][0], torch.full((4, 6), lr * he * lr_mult, dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(deltas[1.0][1], torch.full((4,), lr, dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(deltas[lr_mult][1], torch.full((4,), lr * lr_mult, dtype=torch.float64), rtol=1e-6, atol=0)


# --------------------------------------------------------------------------------------------------
# ToRGB / FromRGB
# --------------------------------------------------------------------------------------------------


def test_to_rgb_is_linear_1x1_conv_with_gain_one():
    torch.manual_seed(10)
    layer = ToRGB(16)
    with torch.no_grad():
        layer.bias.normal_()
    assert layer.weight.shape == (3, 16, 1, 1)
    x = torch.randn(2, 16, 4, 4)
    w = layer.weight.detach()[:, :, 0, 0] / 4.0  # gain 1 / sqrt(16)
    b = layer.bias.detach()
    expected = torch.einsum("oc,nchw->nohw", w, x) + b[None, :, None, None]
    out = layer(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    # Linear (no activation): outputs go negative, and the map is odd up to the bias.
    assert (out < -0.1).any()
    torch.testing.assert_close(layer(-x) - b[None, :, None, None], -(out - b[None, :, None, None]), rtol=1e-5, atol=1e-6)


def test_to_rgb_custom_out_channels():
    layer = ToRGB(8, 1)
    assert layer(torch.randn(1, 8, 2, 2)).shape == (1, 1, 2, 2)


def test_from_rgb_is_1x1_conv_plus_leaky_relu_02():
    torch.manual_seed(11)
    layer = FromRGB(3, 6)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 4, 4)
    w = layer.weight.detach()[:, :, 0, 0] * (math.sqrt(2.0) / math.sqrt(3))
    pre = torch.einsum("oc,nchw->nohw", w, x) + layer.bias.detach()[None, :, None, None]
    expected = torch.where(pre >= 0, pre, 0.2 * pre)
    out = layer(x)
    assert out.shape == (2, 6, 4, 4)
    assert (pre < 0).any() and (pre > 0).any()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# PixelNorm
# --------------------------------------------------------------------------------------------------


def test_pixel_norm_matches_per_pixel_loop():
    torch.manual_seed(12)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64) * 3.0
    out = PixelNorm()(x)
    expected = torch.empty_like(x)
    for n in range(2):
        for i in range(3):
            for j in range(4):
                v = [x[n, c, i, j].item() for c in range(5)]
                denom = math.sqrt(sum(t * t for t in v) / 5 + 1e-8)
                for c in range(5):
                    expected[n, c, i, j] = v[c] / denom
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_pixel_norm_on_2d_input():
    torch.manual_seed(13)
    x = torch.randn(4, 6, dtype=torch.float64)
    out = PixelNorm()(x)
    for n in range(4):
        v = x[n].tolist()
        denom = math.sqrt(sum(t * t for t in v) / 6 + 1e-8)
        torch.testing.assert_close(out[n], torch.tensor([t / denom for t in v], dtype=torch.float64), rtol=1e-12, atol=1e-12)
    # Unit RMS over channels.
    torch.testing.assert_close(out.square().mean(dim=1), torch.ones(4, dtype=torch.float64), rtol=1e-7, atol=0)


def test_pixel_norm_eps_is_1e_minus_8():
    x = torch.full((1, 4, 1, 1), 1e-4, dtype=torch.float64)
    out = PixelNorm()(x)
    # mean(x²) = 1e-8, so the denominator is sqrt(2e-8) and each value is 1e-4 / sqrt(2e-8) = 1/sqrt(2).
    torch.testing.assert_close(out, torch.full_like(x, 1 / math.sqrt(2.0)), rtol=1e-12, atol=0)
    zeros = torch.zeros(1, 3, 2, 2)
    assert torch.equal(PixelNorm()(zeros), zeros)


# --------------------------------------------------------------------------------------------------
# MinibatchStdDev
# --------------------------------------------------------------------------------------------------


def _mbstd_reference(x: torch.Tensor, group_size: int, num_channels: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Plain-python version of the documented behaviour, in float64."""
    n, c, h, w = x.shape
    m = math.ceil(n / group_size)
    cf = c // num_channels
    xd = x.double()
    groups = [[s for s in range(n) if s % m == g] for g in range(m)]
    values = [[0.0] * num_channels for _ in range(m)]
    for g, members in enumerate(groups):
        for f in range(num_channels):
            total = 0.0
            for ch in range(f * cf, (f + 1) * cf):
                for i in range(h):
                    for j in range(w):
                        samples = [xd[s, ch, i, j].item() for s in members]
                        mu = sum(samples) / len(samples)
                        var = sum((t - mu) ** 2 for t in samples) / len(samples)
                        total += math.sqrt(var + eps)
            values[g][f] = total / (cf * h * w)
    maps = torch.empty(n, num_channels, h, w, dtype=torch.float64)
    for s in range(n):
        for f in range(num_channels):
            maps[s, f] = values[s % m][f]
    return torch.cat([xd, maps], dim=1)


def _mbstd_official(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """The official ProGAN grouping (TF: reshape to [G, -1, ...], tile), for N divisible by G."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    y = x.double().reshape(g, -1, c, h, w)
    y = y - y.mean(dim=0, keepdim=True)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()
    y = y.mean(dim=(1, 2, 3))  # [M]
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)  # [N, 1, H, W]
    return torch.cat([x.double(), y], dim=1)


def test_mbstd_divisible_batch_matches_reference_and_official_grouping():
    torch.manual_seed(14)
    x = torch.randn(8, 3, 2, 2)
    # Give the two groups (samples 0,2,4,6 and 1,3,5,7) clearly different spreads.
    x[1::2] *= 5.0
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (8, 4, 2, 2)
    assert torch.equal(out[:, :3], x)
    ref = _mbstd_reference(x, 4)
    official = _mbstd_official(x, 4)
    torch.testing.assert_close(ref, official, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)
    # Strided grouping: even samples share a value, odd samples share another.
    assert out[0, 3, 0, 0] != out[1, 3, 0, 0]
    assert torch.equal(out[0, 3], out[6, 3]) and torch.equal(out[1, 3], out[7, 3])


def test_mbstd_ragged_batch_groups_of_4_3_3():
    torch.manual_seed(15)
    x = torch.randn(10, 2, 3, 3)
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (10, 3, 3, 3)
    assert torch.equal(out[:, :2], x)
    torch.testing.assert_close(out.double(), _mbstd_reference(x, 4), rtol=1e-6, atol=1e-6)
    # Three groups: {0,3,6,9}, {1,4,7}, {2,5,8}; each map is constant over H, W.
    stat = out[:, 2]
    assert torch.equal(stat, stat[:, :1, :1].expand_as(stat))
    assert torch.equal(stat[0], stat[9]) and torch.equal(stat[1], stat[7]) and torch.equal(stat[2], stat[8])


def test_mbstd_batch_smaller_than_group_is_one_group():
    torch.manual_seed(16)
    x = torch.randn(3, 4, 2, 2)
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (3, 5, 2, 2)
    ref = _mbstd_reference(x, 4)
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.double(), _mbstd_official(x, 4), rtol=1e-6, atol=1e-6)
    assert torch.equal(out[0, 4], out[1, 4]) and torch.equal(out[0, 4], out[2, 4])


def test_mbstd_single_sample_gives_sqrt_eps():
    torch.manual_seed(17)
    x = torch.randn(1, 3, 2, 2)
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (1, 4, 2, 2)
    torch.testing.assert_close(out[0, 3], torch.full((2, 2), math.sqrt(1e-8)), rtol=1e-6, atol=0)


def test_mbstd_group_size_one_gives_sqrt_eps_everywhere():
    x = torch.randn(4, 2, 2, 2)
    out = MinibatchStdDev(group_size=1)(x)
    torch.testing.assert_close(out[:, 2], torch.full((4, 2, 2), math.sqrt(1e-8)), rtol=1e-6, atol=0)


def test_mbstd_num_channels_two():
    torch.manual_seed(18)
    x = torch.randn(8, 4, 2, 2)
    x[:, 2:] *= 10.0  # second half of the features has a much larger spread
    out = MinibatchStdDev(group_size=4, num_channels=2)(x)
    assert out.shape == (8, 6, 2, 2)
    assert torch.equal(out[:, :4], x)
    torch.testing.assert_close(out.double(), _mbstd_reference(x, 4, num_channels=2), rtol=1e-6, atol=1e-6)
    assert (out[:, 5] > 3 * out[:, 4]).all()


def test_mbstd_num_channels_ragged():
    torch.manual_seed(19)
    x = torch.randn(6, 4, 2, 3)
    out = MinibatchStdDev(group_size=4, num_channels=2)(x)
    torch.testing.assert_close(out.double(), _mbstd_reference(x, 4, num_channels=2), rtol=1e-6, atol=1e-6)


def test_mbstd_channels_not_divisible_by_num_channels_raises():
    with pytest.raises(ValueError, match="num_channels"):
        MinibatchStdDev(num_channels=2)(torch.randn(4, 3, 2, 2))


@pytest.mark.parametrize("n", [8, 10])
def test_mbstd_gradients_flow(n):
    torch.manual_seed(20)
    x = torch.randn(n, 3, 2, 2, requires_grad=True)
    out = MinibatchStdDev(group_size=4)(x)
    out[:, 3].sum().backward()  # only through the statistics channel
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    # Compare with autograd through the float64 reference written with plain torch ops.
    x64 = x.detach().double().requires_grad_(True)
    m = math.ceil(n / 4)
    total = 0
    for g in range(m):
        members = x64[g::m]
        std = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        total = total + std * members.shape[0] * 2 * 2
    total.backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-6)


def test_mbstd_bf16_input_returns_bf16():
    torch.manual_seed(21)
    x = torch.randn(8, 3, 2, 2).to(torch.bfloat16)
    out = MinibatchStdDev(group_size=4)(x)
    assert out.dtype == torch.bfloat16
    assert out.shape == (8, 4, 2, 2)
    assert torch.equal(out[:, :3], x)
    ref = _mbstd_reference(x.float(), 4)[:, 3]
    torch.testing.assert_close(out[:, 3].double(), ref, rtol=1e-2, atol=0)


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda: EqualizedConv2d(0, 4, 3), "in_channels"),
        (lambda: EqualizedConv2d(4, 0, 3), "out_channels"),
        (lambda: EqualizedConv2d(4, 4, 0), "kernel_size"),
        (lambda: EqualizedConv2d(True, 4, 3), "in_channels"),
        (lambda: EqualizedLinear(0, 4), "in_features"),
        (lambda: EqualizedLinear(4, -1), "out_features"),
        (lambda: MinibatchStdDev(group_size=0), "group_size"),
        (lambda: MinibatchStdDev(num_channels=0), "num_channels"),
        (lambda: ToRGB(0), "in_channels"),
        (lambda: FromRGB(3, 0), "out_channels"),
    ],
)
def test_bad_constructor_args_raise_value_error_naming_parameter(factory, name):
    with pytest.raises(ValueError, match=name):
        factory()


@pytest.mark.parametrize("cls", [EqualizedConv2d, EqualizedLinear])
def test_zero_lr_multiplier_raises_value_error(cls):
    with pytest.raises(ValueError, match="lr_multiplier"):
        cls(3, 2, 1, lr_multiplier=0.0) if cls is EqualizedConv2d else cls(3, 2, lr_multiplier=0.0)
