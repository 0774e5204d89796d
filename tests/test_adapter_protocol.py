"""The adapter contract for networks written to the protocol: the reference ProGAN and tests/nets.py's."""

from __future__ import annotations

import torch
from contract import AdapterContract
from nets import (
    ProtocolDiscriminator,
    ProtocolGenerator,
    StackDiscriminator,
    StackGenerator,
    plain_discriminator_stack,
    plain_generator_stack,
)

from progrow.adapters.progan import ProGANDiscriminator, ProGANGenerator

SMALL = dict(resolution=32, fmap_base=64, fmap_max=16)


class TestProGANContract(AdapterContract):
    resolutions = (4, 8, 16, 32)

    def make_generator(self):
        return ProGANGenerator(latent_dim=16, **SMALL)

    def make_discriminator(self):
        return ProGANDiscriminator(**SMALL)

    def latent(self, n):
        return torch.randn(n, 16)


class TestProtocolNetsContract(AdapterContract):
    resolutions = (4, 8, 16, 32)

    def make_generator(self):
        return ProtocolGenerator(16)

    def make_discriminator(self):
        return ProtocolDiscriminator()

    def latent(self, n):
        return torch.randn(n, 16)


class TestHandAdaptedStackContract(AdapterContract):
    resolutions = (4, 8, 16)

    def make_generator(self):
        return StackGenerator(plain_generator_stack(16))

    def make_discriminator(self):
        return StackDiscriminator(plain_discriminator_stack())

    def latent(self, n):
        return torch.randn(n, 16)
