"""Route 2 — make an `nn.Sequential` GAN growable: the PyTorch DCGAN tutorial's networks, grown 4² → 64².

The two classes below are the tutorial's, unchanged but for their sizes being arguments.
`progrow.adapters.sequential` cuts their `main` Sequentials into one block per resolution, reusing their
layers and weights, and swaps their RGB layers for progrow's toRGB / fromRGB. The training step is the
tutorial's too (BCE on the discriminator's sigmoid, Adam 2e-4, β₁ = 0.5).
Run:  python examples/make_growable_sequential.py [--steps 45] [--ngf 8] [--ndf 8]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch import nn

import progrow as pg
from progrow.adapters.sequential import growable_discriminator, growable_generator


class Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, ndf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=45, help="training steps over the whole schedule (default: 45)")
    parser.add_argument("--batch", type=int, default=8, help="minibatch size (default: 8)")
    parser.add_argument("--nz", type=int, default=100, help="latent size (tutorial: 100)")
    parser.add_argument("--ngf", type=int, default=8, help="generator width (tutorial: 64)")
    parser.add_argument("--ndf", type=int, default=8, help="discriminator width (tutorial: 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    # --- the part that makes the tutorial's networks growable --------------------------------------
    netG, netD = Generator(args.nz, args.ngf), Discriminator(args.ndf)
    g, d = growable_generator(netG.main), growable_discriminator(netD.main)
    # toRGB / fromRGB per resolution, 4² … 64², in the tutorial's style (plain 1×1 convs, its Tanh and
    # LeakyReLU), not the paper's equalized ones, which would learn slowly next to the tutorial's layers
    G = pg.ProgressiveGenerator(g, to_rgb=g.user_to_rgb)
    D = pg.ProgressiveDiscriminator(d, from_rgb=d.user_from_rgb)  # keeps the Sigmoid
    phase_kimg = args.steps * args.batch / 9 / 1000  # 4² stable, then fade + stable per stage
    scheduler = pg.ProgressiveScheduler(
        pg.ScheduleConfig(
            start_resolution=4, final_resolution=64, fade_kimg=phase_kimg, stable_kimg=phase_kimg, batch_size=args.batch, lr=2e-4
        )
    )
    optimizerG = torch.optim.Adam(G.parameters(), betas=(0.5, 0.999))  # the tutorial's Adam (lr from the schedule)
    optimizerD = torch.optim.Adam(D.parameters(), betas=(0.5, 0.999))
    pg.bind(scheduler, G, D, optimizerG, optimizerD)
    # ------------------------------------------------------------------------------------------------

    shapes = pg.SyntheticShapes(seed=0, num_images=32)
    data = pg.to_float(torch.from_numpy(np.stack([shapes.render(i, 64) for i in range(32)])))
    criterion = nn.BCELoss()
    visited = []
    while not scheduler.done:
        state = scheduler.state
        n = state.batch_size
        real = pg.fade_reals(pg.resize_to(data[torch.randint(len(data), (n,))], state.resolution), state)
        fake = G(torch.randn(n, args.nz))
        # the tutorial's step: D on real (label 1) and fake (label 0), then G against label 1
        errD = criterion(D(real).view(-1), torch.ones(n)) + criterion(D(fake.detach()).view(-1), torch.zeros(n))
        optimizerD.zero_grad()
        errD.backward()
        optimizerD.step()
        errG = criterion(D(fake).view(-1), torch.ones(n))
        optimizerG.zero_grad()
        errG.backward()
        optimizerG.step()
        if (state.resolution, state.phase) not in visited:
            visited.append((state.resolution, state.phase))
        scheduler.advance(n)

    with torch.no_grad():
        samples = G.eval()(torch.randn(4, args.nz))
    summary = {
        "resolution": scheduler.state.resolution,
        "phases": visited,
        "sample_shape": list(samples.shape),
        "finite": bool(torch.isfinite(samples).all()),
        "dropped": list(G.net.dropped + D.net.dropped),
        "errD": round(errD.item(), 4),
    }
    print("summary:", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
