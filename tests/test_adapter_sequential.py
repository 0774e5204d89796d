"""progrow.adapters.sequential: the PyTorch DCGAN tutorial's networks and other conv stacks made growable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from contract import AdapterContract
from torch import nn

import progrow as pg
from progrow.adapters.sequential import (
    SequentialDiscriminator,
    SequentialGenerator,
    growable_discriminator,
    growable_generator,
)

# The PyTorch DCGAN tutorial's networks, as users copy them: the same classes the example script shows.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from make_growable_sequential import Discriminator, Generator  # noqa: E402


def upsample_generator(z_dim=16, width=8, nc=3) -> nn.Sequential:
    """Linear stem, then Upsample + conv blocks, a 3×3 RGB conv at the top (16²) and Tanh."""
    return nn.Sequential(
        nn.Linear(z_dim, width * 16),
        nn.Unflatten(1, (width, 4, 4)),
        nn.LeakyReLU(0.2),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(width, width, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(width, width // 2, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width // 2, width // 2, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width // 2, nc, 3, padding=1),
        nn.Tanh(),
    )


def pooling_discriminator(width=8, nc=3) -> nn.Sequential:
    """1×1 RGB-in conv at 16², conv + average-pooling blocks, 3×3 conv at 4², Flatten + Linear score."""
    return nn.Sequential(
        nn.Conv2d(nc, width // 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width // 2, width // 2, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width // 2, width, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.AvgPool2d(2),
        nn.Conv2d(width, width, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.AvgPool2d(2),
        nn.Conv2d(width, width, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(width * 16, 1),
    )


class TestDCGANTutorialContract(AdapterContract):
    resolutions = (4, 8, 16, 32, 64)

    def make_generator(self):
        return growable_generator(Generator(nz=16, ngf=8).main)

    def make_discriminator(self):
        return growable_discriminator(Discriminator(ndf=8).main)

    def latent(self, n):
        return torch.randn(n, 16)


class TestUpsampleAndPoolingStacksContract(AdapterContract):
    resolutions = (4, 8, 16)

    def make_generator(self):
        return growable_generator(upsample_generator())

    def make_discriminator(self):
        return growable_discriminator(pooling_discriminator(), head_activation="drop")

    def latent(self, n):
        return torch.randn(n, 16)


# ------------------------------------------------------------------------------- the DCGAN tutorial
def test_dcgan_tutorial_at_full_size_in_a_few_lines():
    netG, netD = Generator(), Discriminator()
    G = pg.ProgressiveGenerator(growable_generator(netG.main))
    D = pg.ProgressiveDiscriminator(growable_discriminator(netD.main))
    assert G.resolutions == D.resolutions == (4, 8, 16, 32, 64)
    assert [G.net.channels(r) for r in G.resolutions] == [512, 256, 128, 64, 64]
    assert [D.net.channels(r) for r in D.resolutions] == [512, 256, 128, 64, 64]
    state = pg.GrowthState(64, alpha=0.5)
    images = G(torch.randn(2, 100), state)
    assert images.shape == (2, 3, 64, 64)
    assert D(images, state).shape == (2, 1)
    assert G.net.latent_dim == 100 and G.net.img_channels == 3 == D.net.img_channels
    assert G.net.dropped == ("layer 12 (ConvTranspose2d)", "layer 13 (Tanh)")
    assert D.net.dropped == ("layer 0 (Conv2d)", "layer 1 (LeakyReLU)")


def test_the_users_modules_and_weights_are_kept():
    netG, netD = Generator(nz=16, ngf=8), Discriminator(ndf=8)
    g_before = {n: p.detach().clone() for n, p in netG.main.named_parameters()}
    d_before = {n: p.detach().clone() for n, p in netD.main.named_parameters()}
    g, d = growable_generator(netG.main), growable_discriminator(netD.main)
    # the very same module objects, under names that say where they were
    assert g.stem[0] is netG.main[0] and g.blocks["8"][0] is netG.main[3] and g.blocks["32"][1] is netG.main[10]
    assert d.block(32)[0] is netD.main[2] and d.block(8)[1] is netD.main[9] and d.final[0] is netD.main[11]
    assert "blocks.8.3.weight" in dict(g.named_parameters()) and "final.11.weight" in dict(d.named_parameters())
    # every kept parameter is the user's tensor, unchanged; only the RGB layers are left out
    user_g = {id(p) for p in netG.main.parameters()} - {id(netG.main[12].weight)}
    user_d = {id(p) for p in netD.main.parameters()} - {id(netD.main[0].weight)}
    assert user_g <= {id(p) for p in g.parameters()} and user_d <= {id(p) for p in d.parameters()}
    assert id(netG.main[12].weight) not in {id(p) for p in g.parameters()}
    for n, p in netG.main.named_parameters():
        assert torch.equal(p, g_before[n])
    for n, p in netD.main.named_parameters():
        assert torch.equal(p, d_before[n])
    # training through progrow trains the user's network
    G = pg.ProgressiveGenerator(g)
    G(torch.randn(4, 16), pg.GrowthState(16)).mean().backward()
    assert netG.main[3].weight.grad is not None and netG.main[9].weight.grad is None


def test_stable_top_stage_runs_the_users_layers_then_to_rgb():
    netG = Generator(nz=16, ngf=8).eval()
    G = pg.ProgressiveGenerator(growable_generator(netG.main)).eval()
    z = torch.randn(3, 16)
    with torch.no_grad():
        h = netG.main[:12](z[:, :, None, None])  # the user's own layers up to 32²
        want = G.to_rgb["32"](h)
        assert torch.equal(G(z, pg.GrowthState(32)), want)


def test_mirror_block_is_fresh_and_like_the_dropped_layer():
    netG, netD = Generator(nz=16, ngf=8), Discriminator(ndf=8)
    g, d = growable_generator(netG.main), growable_discriminator(netD.main)
    top = g.blocks["64"]
    assert [type(m) for m in top] == [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU]
    assert (top[0].in_channels, top[0].out_channels, top[0].stride, top[0].bias) == (8, 8, (2, 2), None)
    assert top[1] is not netG.main[10] and top[1].num_batches_tracked == 0
    first = d.block(64)
    assert [type(m) for m in first] == [nn.Conv2d, nn.LeakyReLU]
    assert first[0] is not netD.main[0] and (first[0].in_channels, first[0].out_channels) == (8, 8)


def test_top_block_drop_stops_one_resolution_lower():
    netG, netD = Generator(nz=16, ngf=8), Discriminator(ndf=8)
    g = growable_generator(netG.main, top_block="drop")
    d = growable_discriminator(netD.main, top_block="drop")
    assert g.resolutions == d.resolutions == (4, 8, 16, 32)
    G, D = pg.ProgressiveGenerator(g), pg.ProgressiveDiscriminator(d)
    s = pg.GrowthState(32, alpha=0.25)
    assert D(G(torch.randn(2, 16), s), s).shape == (2, 1)


def test_top_block_of_your_own():
    netG, netD = Generator(nz=16, ngf=8), Discriminator(ndf=8)
    mine_g = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 6, 3, padding=1), nn.ReLU())
    mine_d = nn.Sequential(nn.Conv2d(5, 8, 3, padding=1), nn.AvgPool2d(2))
    g = growable_generator(netG.main, top_block=mine_g)
    d = growable_discriminator(netD.main, top_block=mine_d)
    assert g.blocks["64"].top_block is mine_g and g.channels(64) == 6
    assert d.block(64).top_block is mine_d and d.channels(64) == 5
    s = pg.GrowthState(64, alpha=0.5)
    out = pg.ProgressiveGenerator(g)(torch.randn(2, 16), s)
    assert pg.ProgressiveDiscriminator(d)(out, s).shape == (2, 1)
    with pytest.raises(ValueError, match=r"top_block maps \[N, 8, 32, 32\] to \[N, 6, 32, 32\]; expected \[N, C, 64, 64\]"):
        growable_generator(Generator(nz=16, ngf=8).main, top_block=nn.Conv2d(8, 6, 1))
    with pytest.raises(ValueError, match="top_block is only used when"):
        growable_generator(upsample_generator(), top_block=mine_g)


def test_other_layouts_and_options():
    g = growable_generator(upsample_generator())
    assert g.resolutions == (4, 8, 16) and g.latent_dim == 16 and not g.conv_input
    assert g.dropped == ("layer 11 (Conv2d)", "layer 12 (Tanh)")
    assert [type(m) for m in g.blocks["16"]] == [nn.Upsample, nn.Conv2d, nn.LeakyReLU, nn.Conv2d, nn.LeakyReLU]
    d = growable_discriminator(pooling_discriminator())
    assert d.resolutions == (4, 8, 16) and d.channels(16) == 4 and d.channels(4) == 8
    assert [type(m) for m in d.block(16)] == [nn.Conv2d, nn.LeakyReLU, nn.Conv2d, nn.LeakyReLU, nn.AvgPool2d]
    assert [type(m) for m in d.final] == [nn.Conv2d, nn.LeakyReLU, nn.Flatten, nn.Linear]
    # the DCGAN discriminator's Sigmoid stays unless asked
    keep = growable_discriminator(Discriminator(ndf=8).main)
    drop = growable_discriminator(Discriminator(ndf=8).main, head_activation="drop")
    assert isinstance(keep.final[-1], nn.Sigmoid) and isinstance(drop.final[-1], nn.Conv2d)
    assert drop.dropped[-1] == "layer 12 (Sigmoid)"
    # latents may come as [N, nz, 1, 1] as in the tutorial
    G = pg.ProgressiveGenerator(growable_generator(Generator(nz=16, ngf=8).main)).eval()
    z = torch.randn(2, 16)
    assert torch.equal(G(z[:, :, None, None], pg.GrowthState(8)), G(z, pg.GrowthState(8)))
    # grayscale
    g1 = growable_generator(Generator(nz=16, ngf=8, nc=1).main)
    d1 = growable_discriminator(Discriminator(ndf=8, nc=1).main)
    assert g1.img_channels == d1.img_channels == 1
    G1, D1 = pg.ProgressiveGenerator(g1, img_channels=1), pg.ProgressiveDiscriminator(d1, img_channels=1)
    s = pg.GrowthState(16, alpha=0.5)
    assert D1(G1(torch.randn(2, 16), s), s).shape == (2, 1)


def test_nested_sequentials_are_opened_and_named_by_path():
    seq = nn.Sequential(
        nn.Sequential(nn.ConvTranspose2d(16, 8, 4), nn.ReLU()),
        nn.Sequential(nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.ReLU()),
        nn.Sequential(nn.ConvTranspose2d(4, 3, 4, 2, 1), nn.Tanh()),
    )
    g = growable_generator(seq)
    assert g.resolutions == (4, 8, 16) and g.blocks["8"][0] is seq[1][0]
    assert "blocks.8.1_0.weight" in dict(g.named_parameters())
    assert g.dropped == ("layer 2.0 (ConvTranspose2d)", "layer 2.1 (Tanh)")


# -------------------------------------------------------------------------------------------- bad input
PROTOCOL_HINT = r"write it to progrow's protocol"


def test_generator_layer_that_does_not_double_names_the_layer():
    seq = Generator(nz=16, ngf=8).main
    seq[6] = nn.ConvTranspose2d(32, 16, 4, 4, 0, bias=False)  # 8² → 32² in one go
    with pytest.raises(
        ValueError,
        match=r"layer 6 \(ConvTranspose2d\) changes the resolution from 8×8 to 32×32 .*"
        r"expected each resolution change to double it exactly \(8 → 16\)",
    ) as info:
        growable_generator(seq)
    assert PROTOCOL_HINT in str(info.value)


def test_generator_that_does_not_end_in_an_image_names_the_layer():
    seq = Generator(nz=16, ngf=8).main
    seq[12] = nn.ConvTranspose2d(8, 8, 4, 2, 1, bias=False)
    with pytest.raises(
        ValueError,
        match=r"layer 12 \(ConvTranspose2d\) outputs 8 channels; expected an RGB \(3\) "
        r"or grayscale \(1\) image",
    ) as info:
        growable_generator(seq)
    assert PROTOCOL_HINT in str(info.value)
    with pytest.raises(ValueError, match=r"layer 12 \(ConvTranspose2d\) outputs 3 channels; expected img_channels=1"):
        growable_generator(Generator(nz=16, ngf=8).main, img_channels=1)
    flat = nn.Sequential(*Generator(nz=16, ngf=8).main, nn.Flatten())
    with pytest.raises(ValueError, match=r"layer 14 \(Flatten\) follows the RGB layer layer 12 \(ConvTranspose2d\)"):
        growable_generator(flat)


def test_discriminator_without_a_score_layer_names_the_layer():
    seq = Discriminator(ndf=8).main[:11]  # stops after the last LeakyReLU: [N, 64, 4, 4]
    with pytest.raises(ValueError, match=r"at no resolution from 4 to 1024 does the Sequential end in one score per image"):
        growable_discriminator(seq)
    with pytest.raises(
        ValueError,
        match=r"no final score layer: the Sequential ends with layer 10 \(LeakyReLU\) giving "
        r"\[N, 64, 4, 4\]; expected a last conv or linear layer that gives one score per "
        r"image \(e.g. Conv2d\(64, 1, 4\)\)",
    ) as info:
        growable_discriminator(seq, resolution=64)
    assert PROTOCOL_HINT in str(info.value)
    many = nn.Sequential(*Discriminator(ndf=8).main[:11], nn.Flatten(), nn.Linear(64 * 16, 10))
    with pytest.raises(ValueError, match=r"ends with layer 12 \(Linear\) giving \[N, 10\]"):
        growable_discriminator(many, resolution=64)


def test_discriminator_layer_that_does_not_halve_names_the_layer():
    seq = Discriminator(ndf=8).main
    seq[5] = nn.Conv2d(16, 32, 4, 4, 0, bias=False)  # 16² → 4² in one go
    with pytest.raises(
        ValueError,
        match=r"layer 5 \(Conv2d\) changes the resolution from 16×16 to 4×4 .*expected each "
        r"block to halve it exactly once \(16 → 8\)",
    ) as info:
        growable_discriminator(seq, resolution=64)
    assert PROTOCOL_HINT in str(info.value)
    pools = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.AvgPool2d(2),
        nn.AvgPool2d(2),
        nn.Conv2d(8, 1, 4),
    )
    with pytest.raises(ValueError, match=r"layer 4 \(AvgPool2d\) changes the resolution from 8×8 to 4×4"):
        growable_discriminator(pools)


def test_not_a_sequential_points_at_the_one_inside():
    with pytest.raises(TypeError, match=r"expected an nn.Sequential, got Generator; it holds one at .main: pass netG.main"):
        growable_generator(Generator(nz=16, ngf=8))
    with pytest.raises(TypeError, match=r"got Discriminator; it holds one at .main: pass netD.main"):
        growable_discriminator(Discriminator(ndf=8))


def test_other_bad_input():
    with pytest.raises(ValueError, match=r"layer 0 \(ConvTranspose2d\) takes 16 input channels but latent_dim=100"):
        growable_generator(Generator(nz=16, ngf=8).main, latent_dim=100)
    with pytest.raises(ValueError, match=r"layer 0 \(BatchNorm2d\) should be the RGB-in conv"):
        growable_discriminator(nn.Sequential(nn.BatchNorm2d(3), *Discriminator(ndf=8).main))
    gap = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1)
    )
    with pytest.raises(ValueError, match=r"one score per image at several resolutions \[4, 8, .*\]; pass resolution="):
        growable_discriminator(gap)
    assert growable_discriminator(gap, resolution=16).resolutions == (4, 8, 16)
    with pytest.raises(ValueError, match="top_block must be 'mirror', 'drop' or an nn.Module, got 'new'"):
        growable_generator(Generator(nz=16, ngf=8).main, top_block="new")
    with pytest.raises(ValueError, match=r"layer 2 \(ConvTranspose2d\) takes 4 channels but gets \[N, 8, 4, 4\]"):
        growable_generator(nn.Sequential(nn.ConvTranspose2d(16, 8, 4), nn.ReLU(), nn.ConvTranspose2d(4, 3, 4, 2, 1)))


def test_result_types_are_the_protocol():
    g = growable_generator(Generator(nz=16, ngf=8).main)
    d = growable_discriminator(Discriminator(ndf=8).main)
    assert isinstance(g, SequentialGenerator) and isinstance(g, pg.GrowableGenerator)
    assert isinstance(d, SequentialDiscriminator) and isinstance(d, pg.GrowableDiscriminator)
    assert "dropped=['layer 12 (ConvTranspose2d)', 'layer 13 (Tanh)']" in repr(g)


def test_mirror_after_upsample_and_after_pooling():
    g = growable_generator(
        nn.Sequential(
            nn.Linear(8, 64),
            nn.Unflatten(1, (4, 4, 4)),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(4, 3, 3, padding=1),
            nn.Tanh(),
        )
    )  # the 16² stage is an Upsample and the RGB conv: its block keeps the Upsample, gains a fresh conv
    assert [type(m) for m in g.blocks["16"]] == [nn.Upsample, nn.Conv2d, nn.LeakyReLU]
    assert g.dropped == ("layer 7 (Conv2d)", "layer 8 (Tanh)")
    d = growable_discriminator(
        nn.Sequential(
            nn.Conv2d(3, 4, 1),
            nn.LeakyReLU(0.2),
            nn.AvgPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 16, 1),
        )
    )  # the RGB-in stage pools: 16² gets a fresh 1×1 conv, activation and pooling
    assert [type(m) for m in d.block(16)] == [nn.Conv2d, nn.LeakyReLU, nn.AvgPool2d]
    assert d.dropped == ("layer 0 (Conv2d)", "layer 1 (LeakyReLU)", "layer 2 (AvgPool2d)")
    G, D = pg.ProgressiveGenerator(g), pg.ProgressiveDiscriminator(d)
    s = pg.GrowthState(16, alpha=0.5)
    assert D(G(torch.randn(2, 8), s), s).shape == (2, 1)


def test_user_style_rgb_layers_are_plain_convs_initialised_like_the_users_rgb_layer():
    torch.manual_seed(0)
    netG, netD = Generator(), Discriminator()
    for net in (netG, netD):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)  # the tutorial's init, before wrapping
    g, d = growable_generator(netG.main), growable_discriminator(netD.main)
    G = pg.ProgressiveGenerator(g, to_rgb=g.user_to_rgb)
    D = pg.ProgressiveDiscriminator(d, from_rgb=d.user_from_rgb)
    for r, layer in G.to_rgb.items():
        conv, act = layer
        assert type(conv) is nn.Conv2d and conv.kernel_size == (1, 1) and conv.bias is None  # the tutorial's bias=False
        assert isinstance(act, nn.Tanh) and conv.in_channels == g.channels(int(r)) and conv.out_channels == 3
    stds = torch.cat([layer[0].weight.flatten() for layer in G.to_rgb.values()]).std()
    assert 0.015 < stds < 0.025  # N(0, 0.02) like the RGB layer they replace, not the equalized N(0, 1)
    for layer in D.from_rgb.values():
        conv, act = layer
        assert type(conv) is nn.Conv2d and conv.kernel_size == (1, 1) and isinstance(act, nn.LeakyReLU)
        assert act.negative_slope == 0.2 and act is not netD.main[1]  # a fresh copy, not the user's module
    G.set_state(pg.GrowthState(16, alpha=0.5))
    D.set_state(pg.GrowthState(16, alpha=0.5))
    x = G(torch.randn(5, g.latent_dim))
    assert x.shape == (5, 3, 16, 16) and x.abs().max() < 1  # the Tanh bounds both faded terms
    D(x).sum().backward()
    assert all(p.grad is not None for p in D.from_rgb["16"].parameters())
    assert "Tanh" in repr(g.user_to_rgb) and "LeakyReLU" in repr(d.user_from_rgb)


def test_user_style_rgb_layers_read_the_users_init_when_called_not_when_wrapped():
    netG = Generator()
    g = growable_generator(netG.main)
    rgb = [m for m in netG.main.modules() if isinstance(m, nn.ConvTranspose2d)][-1]
    nn.init.normal_(rgb.weight, 0.0, 0.5)  # after growable_generator, before the wrapper
    G = pg.ProgressiveGenerator(g, to_rgb=g.user_to_rgb)
    assert 0.4 < torch.cat([layer[0].weight.flatten() for layer in G.to_rgb.values()]).std() < 0.6
