"""User networks that know nothing of progrow, used across the tests.

- `ProtocolGenerator` / `ProtocolDiscriminator`: written directly to the protocol, with channel counts
  that change from resolution to resolution.
- `plain_generator_stack()` / `plain_discriminator_stack()`: ordinary conv stacks (nn.Conv2d, BatchNorm,
  ConvTranspose2d) as a user would write them without progrow, made growable by the small adapters
  `StackGenerator` / `StackDiscriminator` defined here, as a user would in their own code.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch.nn.functional as F
from torch import Tensor, nn

RESOLUTIONS = (4, 8, 16, 32)
WIDTHS = {4: 32, 8: 24, 16: 16, 32: 8}


class ProtocolGenerator(nn.Module):
    def __init__(self, z_dim: int = 16, widths: dict[int, int] = WIDTHS) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.widths = dict(widths)
        self.resolutions = tuple(sorted(widths))
        self.stem = nn.Linear(z_dim, widths[4] * 16)
        self.convs = nn.ModuleDict({str(r): nn.Conv2d(widths[r // 2], widths[r], 3, padding=1) for r in self.resolutions[1:]})

    def channels(self, resolution: int) -> int:
        return self.widths[resolution]

    def features(self, z: Tensor, *, until: int) -> Iterator[tuple[int, Tensor]]:
        h = F.leaky_relu(self.stem(z).view(-1, self.widths[4], 4, 4), 0.2)
        yield 4, h
        for r in self.resolutions[1:]:
            if r > until:
                return
            h = F.leaky_relu(self.convs[str(r)](F.interpolate(h, scale_factor=2.0)), 0.2)
            yield r, h


class ProtocolDiscriminator(nn.Module):
    def __init__(self, widths: dict[int, int] = WIDTHS, *, num_classes: int = 0) -> None:
        super().__init__()
        self.widths = dict(widths)
        self.resolutions = tuple(sorted(widths))
        self.blocks = nn.ModuleDict(
            {
                str(r): nn.Sequential(nn.Conv2d(widths[r], widths[r // 2], 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
                for r in self.resolutions[1:]
            }
        )
        self.out = nn.Linear(widths[4] * 16, 1)
        self.embed = nn.Embedding(num_classes, widths[4] * 16) if num_classes else None

    def channels(self, resolution: int) -> int:
        return self.widths[resolution]

    def block(self, resolution: int) -> nn.Module:
        return self.blocks[str(resolution)]

    def head(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = x.flatten(1)
        score = self.out(h)
        if self.embed is not None and labels is not None:
            score = score + (self.embed(labels) * h).sum(dim=1, keepdim=True)
        return score


def plain_generator_stack(z_dim: int = 16, width: int = 16) -> nn.ModuleList:
    """A DCGAN-like stack: latent -> 4×4 by a transposed conv, then one upsampling block per 2×."""
    return nn.ModuleList(
        [
            nn.Sequential(nn.ConvTranspose2d(z_dim, width, 4), nn.BatchNorm2d(width), nn.ReLU()),
            nn.Sequential(nn.ConvTranspose2d(width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU()),
            nn.Sequential(nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.BatchNorm2d(width // 2), nn.ReLU()),
        ]
    )


def plain_discriminator_stack(width: int = 16) -> nn.ModuleList:
    """A DCGAN-like stack: one strided conv per 2×, then a 4×4 conv to a score."""
    return nn.ModuleList(
        [
            nn.Sequential(nn.Conv2d(width // 2, width, 4, 2, 1), nn.LeakyReLU(0.2)),
            nn.Sequential(nn.Conv2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2)),
            nn.Conv2d(width, 1, 4),
        ]
    )


class StackGenerator(nn.Module):
    """The user's adapter: exposes a plain stack through the protocol (block i produces 4·2^i)."""

    def __init__(self, stack: nn.ModuleList) -> None:
        super().__init__()
        self.stack = stack
        self.resolutions = tuple(4 * 2**i for i in range(len(stack)))

    def channels(self, resolution: int) -> int:
        block = self.stack[self.resolutions.index(resolution)]
        return block[0].out_channels

    def features(self, z: Tensor, *, until: int) -> Iterator[tuple[int, Tensor]]:
        h = z[:, :, None, None]
        for r, block in zip(self.resolutions, self.stack, strict=True):
            if r > until:
                return
            h = block(h)
            yield r, h


class StackDiscriminator(nn.Module):
    """The user's adapter: stack[i] halves resolution 4·2^(n−1−i); the last module is the head."""

    def __init__(self, stack: nn.ModuleList) -> None:
        super().__init__()
        self.stack = stack
        n = len(stack) - 1
        self.resolutions = tuple(4 * 2**i for i in range(n + 1))
        self._blocks = {4 * 2 ** (n - i): i for i in range(n)}

    def channels(self, resolution: int) -> int:
        if resolution == self.resolutions[0]:
            return self.stack[-1].in_channels
        return self.stack[self._blocks[resolution]][0].in_channels

    def block(self, resolution: int) -> nn.Module:
        return self.stack[self._blocks[resolution]]

    def head(self, x: Tensor) -> Tensor:
        return self.stack[-1](x).flatten(1)
