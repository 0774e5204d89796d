"""progrow.adapters.torchgan against the installed torchgan (the optional extra `torchgan`)."""

from __future__ import annotations

import pytest
import torch
from contract import AdapterContract

torchgan_models = pytest.importorskip("torchgan.models")

import progrow as pg  # noqa: E402
from progrow.adapters.torchgan import (  # noqa: E402
    TESTED_VERSIONS,
    TORCHGAN_VERSION,
    growable_discriminator,
    growable_generator,
)

DCGANGenerator, DCGANDiscriminator = torchgan_models.DCGANGenerator, torchgan_models.DCGANDiscriminator


class TestTorchganDCGANContract(AdapterContract):
    resolutions = (4, 8, 16, 32)

    def make_generator(self):
        return growable_generator(DCGANGenerator(encoding_dims=16, out_size=32, step_channels=8))

    def make_discriminator(self):
        return growable_discriminator(DCGANDiscriminator(in_size=32, step_channels=8))

    def latent(self, n):
        return torch.randn(n, 16)


def test_installed_version_is_a_tested_one():
    assert TORCHGAN_VERSION in TESTED_VERSIONS


def test_torchgan_modules_and_weights_are_reused():
    tg_g = DCGANGenerator(encoding_dims=16, out_size=32, step_channels=8)
    tg_d = DCGANDiscriminator(in_size=32, step_channels=8)
    before = {n: p.detach().clone() for n, p in tg_g.named_parameters()}
    g, d = growable_generator(tg_g), growable_discriminator(tg_d)
    assert g.stem[0] is tg_g.model[0][0] and g.blocks["8"][0] is tg_g.model[1][0]
    assert d.block(16)[0] is tg_d.model[1][0] and d.final[0] is tg_d.disc[0]
    assert g.dropped == ("layer model.3.0 (ConvTranspose2d)", "layer model.3.1 (Tanh)")
    assert d.dropped == ("layer model.0.0 (Conv2d)", "layer model.0.1 (LeakyReLU)")
    for n, p in tg_g.named_parameters():
        assert torch.equal(p, before[n])
    # torchgan's own stable top stage, but for the RGB layer: its layers, then progrow's toRGB
    G = pg.ProgressiveGenerator(g).eval()
    tg_g.eval()
    z = torch.randn(2, 16)
    with torch.no_grad():
        h = tg_g.model[:3](z[:, :, None, None])
        assert torch.equal(G(z, pg.GrowthState(16)), G.to_rgb["16"](h))


def test_options_pass_through():
    tg_g = DCGANGenerator(encoding_dims=8, out_size=16, out_channels=1, step_channels=4, batchnorm=False)
    tg_d = DCGANDiscriminator(in_size=16, in_channels=1, step_channels=4, batchnorm=False)
    g = growable_generator(tg_g, top_block="drop")
    d = growable_discriminator(tg_d, top_block="drop", head_activation="drop")
    assert g.resolutions == d.resolutions == (4, 8) and g.img_channels == d.img_channels == 1
    assert d.dropped[-1] == "layer disc.1 (LeakyReLU)"
    G, D = pg.ProgressiveGenerator(g, img_channels=1), pg.ProgressiveDiscriminator(d, img_channels=1)
    s = pg.GrowthState(8, alpha=0.5)
    assert D(G(torch.randn(3, 8), s), s).shape == (3, 1)


def test_wrong_types_and_conditional_networks_are_refused():
    with pytest.raises(TypeError, match="expected a torchgan DCGANGenerator, got DCGANDiscriminator"):
        growable_generator(DCGANDiscriminator())
    with pytest.raises(TypeError, match="expected a torchgan DCGANDiscriminator, got Linear"):
        growable_discriminator(torch.nn.Linear(2, 2))
    g = DCGANGenerator(encoding_dims=8, out_size=16, step_channels=4)
    g.label_type = "required"
    with pytest.raises(ValueError, match=r"conditional networks \(label_type='required'\) are not supported"):
        growable_generator(g)
