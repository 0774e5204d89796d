"""A complete progressive-growing training loop, 4² → 16², on CPU in well under a minute.

The tiny generator and discriminator below are written directly to progrow's protocol; everything
else is progrow's public API. Run:  python examples/minimal_loop.py [--kimg 2.0] [--out samples/]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from collections.abc import Iterator

import torch
from torch import Tensor, nn

import progrow as pg


class TinyGenerator(nn.Module):
    """A generator to the protocol: `features(z, until=R)` yields `(res, [N, C, res, res])` up to R."""

    def __init__(self, z_dim: int = 32, width: int = 32, resolutions: tuple[int, ...] = (4, 8, 16)) -> None:
        super().__init__()
        self.z_dim, self.width, self.resolutions = z_dim, width, resolutions
        self.norm = pg.PixelNorm()
        self.dense = pg.EqualizedLinear(z_dim, width * 4 * 4)
        self.act = nn.LeakyReLU(0.2)
        self.blocks = nn.ModuleDict(
            {
                str(r): nn.Sequential(pg.EqualizedConv2d(width, width, 3), nn.LeakyReLU(0.2), pg.PixelNorm())
                for r in resolutions[1:]
            }
        )

    def channels(self, resolution: int) -> int:
        return self.width

    def features(self, z: Tensor, *, until: int) -> Iterator[tuple[int, Tensor]]:
        h = self.norm(self.act(self.dense(self.norm(z)).view(-1, self.width, 4, 4)))
        yield 4, h
        for r in self.resolutions[1:]:
            if r > until:
                return
            h = self.blocks[str(r)](pg.upsample2x(h))
            yield r, h


class TinyDiscriminator(nn.Module):
    """A discriminator to the protocol: `block(R)` halves the resolution, `head` scores 4×4 features."""

    def __init__(self, width: int = 32, resolutions: tuple[int, ...] = (4, 8, 16)) -> None:
        super().__init__()
        self.width, self.resolutions = width, resolutions
        self.blocks = nn.ModuleDict(
            {
                str(r): nn.Sequential(pg.EqualizedConv2d(width, width, 3), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
                for r in resolutions[1:]
            }
        )
        self.final = nn.Sequential(
            pg.MinibatchStdDev(group_size=4),
            pg.EqualizedConv2d(width + 1, width, 3),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            pg.EqualizedLinear(width * 4 * 4, 1, gain=1.0),
        )

    def channels(self, resolution: int) -> int:
        return self.width

    def block(self, resolution: int) -> nn.Module:
        return self.blocks[str(resolution)]

    def head(self, x: Tensor) -> Tensor:
        return self.final(x)


def sample_reals(n: int, size: int = 16) -> Tensor:
    """Synthetic 'dataset': smooth two-colour gradients in [-1, 1], `[n, 3, size, size]`."""
    t = torch.linspace(-1, 1, size)
    angle = torch.rand(n, 1, 1) * 2 * math.pi
    ramp = (torch.cos(angle) * t[None, None, :] + torch.sin(angle) * t[None, :, None]) * 0.5 + 0.5  # [n, H, W]
    a, b = torch.rand(n, 3, 1, 1) * 2 - 1, torch.rand(n, 3, 1, 1) * 2 - 1
    return torch.lerp(a, b, ramp[:, None])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kimg", type=float, default=2.0, help="thousands of images per phase (default: 2.0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--out", default=None, help="folder for a PNG grid of EMA samples at the end (default: none)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    config = pg.ScheduleConfig(
        start_resolution=4,
        final_resolution=16,
        fade_kimg=args.kimg,
        stable_kimg=args.kimg,
        batch_size=16,
        lr=2e-3,
        reset_optimizers="stage",
    )
    scheduler = pg.ProgressiveScheduler(config)
    G = pg.ProgressiveGenerator(TinyGenerator())
    D = pg.ProgressiveDiscriminator(TinyDiscriminator())
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(0.0, 0.99), eps=1e-8)
    ema = pg.EMA(G, beta=0.99)
    z_dim = G.net.z_dim

    phases, started = [], time.perf_counter()
    while not scheduler.done:
        state = scheduler.state
        pg.set_lr(opt_g, state.lr)
        pg.set_lr(opt_d, state.lr)
        n = state.batch_size

        # Discriminator step: reals faded like the generator's output; no generator graph is kept.
        reals = pg.fade_reals(pg.resize_to(sample_reals(n), state.resolution), state)
        with torch.no_grad():
            fakes = G(torch.randn(n, z_dim), state)
        d_out = pg.wgan_gp_d_loss(functools.partial(D, state=state), reals, fakes)
        opt_d.zero_grad(set_to_none=True)
        d_out.loss.backward()
        opt_d.step()

        # Generator step: no gradients for D's weights.
        D.requires_grad_(False)
        g_out = pg.wgan_g_loss(D(G(torch.randn(n, z_dim), state), state))
        opt_g.zero_grad(set_to_none=True)
        g_out.loss.backward()
        opt_g.step()
        D.requires_grad_(True)

        ema.update(G)
        new = scheduler.advance(n)
        if scheduler.optimizer_reset_due(state, new):
            pg.reset_optimizer(opt_g)
            pg.reset_optimizer(opt_d)
        if new.phase != state.phase or new.stage != state.stage or scheduler.done:
            phases.append(
                {
                    "resolution": state.resolution,
                    "phase": state.phase,
                    "kimg": round(new.kimg, 3),
                    "d_loss": round(d_out.loss.item(), 4),
                    "g_loss": round(g_out.loss.item(), 4),
                }
            )
            print(
                f"{state.resolution:>4}² {state.phase:<6} done at {new.kimg:7.3f} kimg  "
                f"d_loss {d_out.loss.item():8.4f}  g_loss {g_out.loss.item():8.4f}  "
                f"({time.perf_counter() - started:.1f} s)"
            )

    final = scheduler.state
    with torch.no_grad():
        samples = ema.module(torch.randn(16, z_dim), final)
    if args.out:
        from pathlib import Path

        Path(args.out).mkdir(parents=True, exist_ok=True)
        rows = [torch.cat(list(row), dim=-1) for row in pg.to_uint8(samples).split(4)]  # a 4 × 4 grid [C, 4H, 4W]
        pg.to_pil(torch.cat(rows, dim=-2)).save(Path(args.out) / "samples.png")
    summary = {
        "resolution": final.resolution,
        "nimg": scheduler.nimg,
        "sample_shape": list(samples.shape),
        "finite": bool(torch.isfinite(samples).all()),
        "phases": phases,
        "seconds": round(time.perf_counter() - started, 2),
    }
    print("summary:", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
