"""`progrow.warm_start`: a stage's new layers fitted to the previous stage; nothing the previous stage had changes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from nets import ProtocolDiscriminator, ProtocolGenerator
from run_helpers import assert_same_run, final_checkpoint

import progrow as pg
from progrow.adapters.progan.networks import ProGANDiscriminator, ProGANGenerator
from progrow.adapters.progan.presets import get_preset
from progrow.adapters.progan.train import main as train_main


def _protocol_pair() -> tuple[pg.ProgressiveGenerator, pg.ProgressiveDiscriminator]:
    torch.manual_seed(0)
    return pg.ProgressiveGenerator(ProtocolGenerator()), pg.ProgressiveDiscriminator(ProtocolDiscriminator())


def _progan_pair() -> tuple[pg.ProgressiveGenerator, pg.ProgressiveDiscriminator]:
    torch.manual_seed(0)
    G = pg.ProgressiveGenerator(ProGANGenerator(resolution=32, latent_dim=32, fmap_base=128, fmap_max=32))
    D = pg.ProgressiveDiscriminator(ProGANDiscriminator(resolution=32, fmap_base=128, fmap_max=32))
    return G, D


def _latents(n_batches: int, dim: int, *, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, dim, generator=g) for _ in range(n_batches)]


def _images(n_batches: int, res: int, *, seed: int = 2) -> list[torch.Tensor]:
    """Smooth images in [-1, 1] (a blurred noise field), so a coarse stage sees most of what a fine one does."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        coarse = torch.rand(8, 3, res // 4, res // 4, generator=g) * 2 - 1
        out.append(torch.nn.functional.interpolate(coarse, size=(res, res), mode="bilinear", align_corners=False))
    return out


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_new_parameters_are_the_new_block_and_its_rgb_layer() -> None:
    G, D = _protocol_pair()
    g_names = pg.new_parameters(G, 16, torch.randn(2, 16))
    assert g_names == ["net.convs.16.weight", "net.convs.16.bias", "to_rgb.16.weight", "to_rgb.16.bias"]
    d_names = pg.new_parameters(D, 16, torch.randn(2, 3, 16, 16))
    assert d_names == ["net.blocks.16.0.weight", "net.blocks.16.0.bias", "from_rgb.16.weight", "from_rgb.16.bias"]


def test_generator_fit_falls_and_leaves_the_previous_stage_bit_for_bit() -> None:
    G, _ = _progan_pair()
    ema = pg.EMA(G, beta=0.99)
    z_check = torch.randn(6, 32)
    with torch.no_grad():
        prev_before = G(z_check, pg.GrowthState(8))
        fade0_before = G(z_check, pg.GrowthState(16, alpha=0.0))
    weights = _snapshot(G)
    fit = pg.warm_start(G, 16, _latents(100, 32), lr=2e-3, ema=ema)

    assert fit.side == "generator" and fit.resolution == 16 and fit.steps == 100
    assert fit.loss_after < 0.5 * fit.loss_before, fit
    changed = {n for n, p in G.named_parameters() if not torch.equal(p, weights[n])}
    assert changed == set(fit.parameters)
    assert all(n.startswith(("net.blocks.16.", "to_rgb.16.")) for n in fit.parameters), fit.parameters
    with torch.no_grad():
        assert torch.equal(G(z_check, pg.GrowthState(8)), prev_before)  # the previous stage, bit for bit
        assert torch.equal(G(z_check, pg.GrowthState(16, alpha=0.0)), fade0_before)  # alpha = 0 too
        # The new path alone now draws the previous stage's picture, far closer than before the fit.
        new_path = G(z_check, pg.GrowthState(16))
        assert (new_path - fade0_before).pow(2).mean() < 0.6 * fit.loss_before
    for n in fit.parameters:  # the shadow holds the fitted weights
        assert torch.equal(ema.module.get_parameter(n), G.get_parameter(n))
    assert all(p.grad is None for p in G.parameters())
    assert all(p.requires_grad for p in G.parameters())  # flags as they were


def test_discriminator_fit_falls_and_leaves_the_previous_stage_bit_for_bit() -> None:
    _, D = _progan_pair()
    x_check = _images(1, 16, seed=9)[0]
    with torch.no_grad():
        prev_before = D(pg.downsample2x(x_check), pg.GrowthState(8))
        fade0_before = D(x_check, pg.GrowthState(16, alpha=0.0))
    weights = _snapshot(D)
    D.requires_grad_(False)  # a training step may have left the flags off: they come back as they were
    fit = pg.warm_start(D, 16, _images(80, 16), lr=2e-3)

    assert fit.side == "discriminator" and fit.steps == 80
    assert fit.loss_after < 0.5 * fit.loss_before, fit
    changed = {n for n, p in D.named_parameters() if not torch.equal(p, weights[n])}
    assert changed == set(fit.parameters)
    assert all(n.startswith(("net.blocks.16.", "from_rgb.16.")) for n in fit.parameters), fit.parameters
    assert not any(p.requires_grad for p in D.parameters())
    with torch.no_grad():
        assert torch.equal(D(pg.downsample2x(x_check), pg.GrowthState(8)), prev_before)
        assert torch.equal(D(x_check, pg.GrowthState(16, alpha=0.0)), fade0_before)


def test_conditional_generator_batches_carry_forward_kwargs() -> None:
    torch.manual_seed(0)
    G = pg.ProgressiveGenerator(ProGANGenerator(resolution=16, latent_dim=16, fmap_base=64, fmap_max=16, num_classes=3))
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, 16, generator=g), {"labels": torch.randint(3, (4,), generator=g)}) for _ in range(5)]
    fit = pg.warm_start(G, 8, batches)
    assert fit.steps == 5 and fit.loss_after < fit.loss_before


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda G, D: pg.warm_start(G, 4, [torch.randn(2, 16)]), ValueError, "resolution 4 has no previous stage"),
        (lambda G, D: pg.warm_start(G, 64, [torch.randn(2, 16)]), ValueError, "resolution 64 has no previous stage"),
        (lambda G, D: pg.warm_start(G, 8, []), ValueError, "batches is empty"),
        (lambda G, D: pg.warm_start(G, 8, [[torch.randn(2, 16)]]), TypeError, "a Tensor or (Tensor, kwargs dict), got list"),
        (lambda G, D: pg.warm_start(D, 8, [torch.randn(2, 3, 16, 16)]), ValueError, "expected images [N, 3, 8, 8]"),
        (lambda G, D: pg.warm_start(G.net, 8, [torch.randn(2, 16)]), TypeError, "got ProtocolGenerator"),
    ],
)
def test_errors_name_what_was_expected(call, error, message) -> None:  # type: ignore[no-untyped-def]
    G, D = _protocol_pair()
    with pytest.raises(error) as info:
        call(G, D)
    assert message in str(info.value)


@pytest.mark.parametrize("sides", ["generator", "both"])
def test_training_script_warm_starts_each_fade_before_the_stage_end_checkpoint(tmp_path, capsys, sides) -> None:
    # 64-image phases at batch 32: the 4² stage ends after 2 steps; --kimg 0.064 stops at the 8² fade's start,
    # so the final checkpoint is the stage-end one, written after the warm start of the 8² layers.
    fast = ["--preset", "cpu-demo", "--phase-kimg", "0.064", "--tick-kimg", "0.064", "--data", "synthetic:0:64"]
    assert train_main([*fast, "--out", str(tmp_path / "cold"), "--kimg", "0.064"]) == 0
    assert "warm start" not in capsys.readouterr().out
    assert train_main([*fast, "--out", str(tmp_path / "warm"), "--kimg", "0.064", "--warm-start", sides]) == 0
    printed = capsys.readouterr().out
    assert "warm start 8²: G new path MSE" in printed
    assert ("D new features" in printed) is (sides == "both")
    assert "(2 steps)" in printed  # at most as many steps as the fade's 64 images / 32 per minibatch
    cold, warm = final_checkpoint(tmp_path / "cold"), final_checkpoint(tmp_path / "warm")
    assert cold["nimg"] == warm["nimg"] == 64
    new_g = ("net.blocks.8.", "to_rgb.8.")
    new_d = ("net.blocks.8.", "from_rgb.8.") if sides == "both" else ()
    for side, new in (("G", new_g), ("D", new_d)):
        for name, value in cold[side].items():
            fitted = name.startswith(new) if new else False
            assert torch.equal(value, warm[side][name]) is not fitted, f"{side} {name}"  # only the new layers moved
    shadow = warm["G_ema"]["module"]
    for name, value in warm["G"].items():
        if name.startswith(new_g):
            assert torch.equal(shadow[name], value), name  # G_ema holds the fitted layers too


def test_a_run_resumed_after_a_warm_start_equals_an_uninterrupted_one(tmp_path) -> None:
    fast = ["--preset", "cpu-demo", "--phase-kimg", "0.064", "--tick-kimg", "0.064", "--data", "synthetic:0:64"]
    fast += ["--warm-start", "both"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main([*fast, "--out", str(straight), "--kimg", "0.192"]) == 0  # through the 8² fade and stable
    assert train_main([*fast, "--out", str(split), "--kimg", "0.064"]) == 0  # stops right after the 8² warm start
    assert train_main([*fast, "--out", str(split), "--kimg", "0.192"]) == 0
    assert_same_run(final_checkpoint(straight), final_checkpoint(split))


def test_warm_start_is_off_in_every_preset_and_its_fields_are_checked() -> None:
    for name in ("cpu-demo", "cpu-demo-64", "paper-1024", "official-1024"):
        assert get_preset(name).warm_start == "off"
    with pytest.raises(ValueError, match="warm_start_steps expected an int ≥ 1, got 0"):
        replace(get_preset("cpu-demo"), warm_start_steps=0)
    with pytest.raises(ValueError, match="warm_start expected 'off', 'generator' or 'both', got 'd'"):
        replace(get_preset("cpu-demo"), warm_start="d")
