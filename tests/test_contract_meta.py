"""The adapter contract fails broken adapters: an alpha = 0 path one ulp off, and a generator that trains inactive blocks."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch
from contract import AdapterContract
from nets import ProtocolDiscriminator, ProtocolGenerator
from torch import Tensor, nn


class OneUlpOffGenerator(ProtocolGenerator):
    """Yields the features below `until` one ulp up: the fade's old path then differs from the previous stage."""

    def features(self, z: Tensor, *, until: int) -> Iterator[tuple[int, Tensor]]:
        for r, h in super().features(z, until=until):
            yield r, (h.nextafter(torch.full_like(h, math.inf)) if r < until else h)


class EveryBlockGenerator(ProtocolGenerator):
    """Runs every block whatever `until` is and mixes a little of the top one in: inactive blocks get trained."""

    def features(self, z: Tensor, *, until: int) -> Iterator[tuple[int, Tensor]]:
        everything = list(super().features(z, until=self.resolutions[-1]))
        top = everything[-1][1]
        for r, h in everything:
            if r > until:
                return
            yield r, (h + 1e-3 * top.mean() if r == until else h)


def contract_for(make_generator: Callable[[], nn.Module]) -> AdapterContract:
    """The contract's checks on `make_generator()` with the protocol discriminator (not collected by pytest)."""

    class Contract(AdapterContract):
        resolutions = (4, 8, 16)

        def make_generator(self) -> nn.Module:
            return make_generator()

        def make_discriminator(self) -> nn.Module:
            return ProtocolDiscriminator()

        def latent(self, n: int) -> Tensor:
            return torch.randn(n, 16)

    return Contract()


def test_an_alpha_zero_path_one_ulp_off_fails_the_contract():
    contract_for(ProtocolGenerator).test_generator_alpha_zero_is_previous_stage_upsampled_bit_for_bit()  # the control
    broken = contract_for(OneUlpOffGenerator)
    broken.test_output_shapes_at_every_stage_and_phase()  # nothing else shows it
    with pytest.raises(AssertionError, match="fade into 8: alpha = 0 differs from 4 upsampled"):
        broken.test_generator_alpha_zero_is_previous_stage_upsampled_bit_for_bit()


def test_a_generator_that_trains_inactive_blocks_fails_the_contract():
    contract_for(ProtocolGenerator).test_one_step_at_every_stage_touches_only_the_active_parameters()  # the control
    broken = contract_for(EveryBlockGenerator)
    broken.test_protocol_conformance()  # its features have the right shapes
    with pytest.raises(AssertionError, match="a later stage uses no parameters of its own"):
        broken.test_one_step_at_every_stage_touches_only_the_active_parameters()
