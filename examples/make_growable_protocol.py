"""Route 1 — write your networks to progrow's protocol, then grow them 4² → 16² on CPU in a few seconds.

A generator offers `resolutions`, `channels(r)` and `features(z, until=R)`, which yields `(r, features)`
resolution by resolution; a discriminator offers `resolutions`, `channels(r)`, `block(r)` (halves the
resolution) and `head(x)` (scores). progrow adds toRGB / fromRGB, resampling and the fade-in.
Run:  python examples/make_growable_protocol.py [--steps 60]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor, nn

import progrow as pg


class Generator(nn.Module):
    """Latent `[N, 32]` → features at 4², 8², 16²; each block: 2× upsample, 3×3 conv, LeakyReLU."""

    resolutions = (4, 8, 16)

    def __init__(self, z_dim: int = 32, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.stem = nn.Sequential(nn.Linear(z_dim, width * 16), nn.Unflatten(1, (width, 4, 4)), nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleDict(
            {str(r): nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2)) for r in self.resolutions[1:]}
        )

    def channels(self, resolution: int) -> int:
        return self.width

    def features(self, z: Tensor, *, until: int) -> Iterator[tuple[int, Tensor]]:
        h = self.stem(z)
        yield 4, h
        for r in self.resolutions[1:]:
            if r > until:
                return
            h = self.blocks[str(r)](pg.upsample2x(h))
            yield r, h


class Discriminator(nn.Module):
    """Blocks of a 3×3 conv, LeakyReLU and 2×2 average pooling; a linear head on 4² features."""

    resolutions = (4, 8, 16)

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.blocks = nn.ModuleDict(
            {
                str(r): nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
                for r in self.resolutions[1:]
            }
        )
        self.score = nn.Sequential(nn.Flatten(), nn.Linear(width * 16, 1))

    def channels(self, resolution: int) -> int:
        return self.width

    def block(self, resolution: int) -> nn.Module:
        return self.blocks[str(resolution)]

    def head(self, x: Tensor) -> Tensor:
        return self.score(x)


def synthetic_reals(n: int = 64, resolution: int = 16) -> Tensor:
    """progrow's built-in shapes dataset, `[n, 3, R, R]` in [-1, 1]."""
    shapes = pg.SyntheticShapes(seed=0, num_images=n)
    return pg.to_float(torch.from_numpy(np.stack([shapes.render(i, resolution) for i in range(n)])))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps over the whole schedule (default: 60)")
    parser.add_argument("--batch", type=int, default=8, help="minibatch size (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    phase_kimg = args.steps * args.batch / 5 / 1000  # 4² stable, then fade + stable at 8² and 16²
    config = pg.ScheduleConfig(
        start_resolution=4, final_resolution=16, fade_kimg=phase_kimg, stable_kimg=phase_kimg, batch_size=args.batch, lr=2e-3
    )
    scheduler = pg.ProgressiveScheduler(config)
    G, D = pg.ProgressiveGenerator(Generator()), pg.ProgressiveDiscriminator(Discriminator())
    opt_g = torch.optim.Adam(G.parameters(), betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), betas=(0.0, 0.99))
    pg.bind(scheduler, G, D, opt_g, opt_d)  # G(z) and D(x) now run at the scheduler's state
    data = synthetic_reals()

    visited = []
    while not scheduler.done:
        state = scheduler.state
        batch = data[torch.randint(len(data), (state.batch_size,))]
        reals = pg.fade_reals(pg.resize_to(batch, state.resolution), state)
        fakes = G(torch.randn(state.batch_size, 32))
        d_loss = pg.logistic_d_loss(D, reals, fakes).loss
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = pg.logistic_g_loss(D(fakes)).loss
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if (state.resolution, state.phase) not in visited:
            visited.append((state.resolution, state.phase))
        scheduler.advance(state.batch_size)

    with torch.no_grad():
        samples = G(torch.randn(4, 32))
    summary = {
        "resolution": scheduler.state.resolution,
        "phases": visited,
        "sample_shape": list(samples.shape),
        "finite": bool(torch.isfinite(samples).all()),
        "d_loss": round(d_loss.item(), 4),
    }
    print("summary:", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
