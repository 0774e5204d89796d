"""The quality benchmark's variants: the tutorial DCGAN, and trainers that step each variant and sample it."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


class DCGANGenerator(nn.Module):
    """The PyTorch DCGAN tutorial's generator for any `resolution` ≥ 8: `[N, nz, 1, 1] -> [N, nc, R, R]`."""

    def __init__(self, resolution: int, *, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        doublings = int(math.log2(resolution)) - 3  # 4 → 8 → … → R/2 by the middle layers
        width = ngf * 2**doublings
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(doublings):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.nz = nz

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z.view(len(z), -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """The PyTorch DCGAN tutorial's discriminator for any `resolution` ≥ 8: `[N, nc, R, R] -> [N, 1, 1, 1]`."""

    def __init__(self, resolution: int, *, ndf: int = 64, nc: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for _ in range(int(math.log2(resolution)) - 3):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


def dcgan_init(m: nn.Module) -> None:
    """The tutorial's initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02) and zero bias."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------- training
class Trainer:
    """One variant: `step()` trains one minibatch; `sample(z)` gives images at the current stage; `state`."""

    state: Any
    kimg: float

    def step(self) -> None:
        raise NotImplementedError

    def sample(self, z: Tensor, state: Any = None) -> Tensor:
        raise NotImplementedError


class ProGANTrainer(Trainer):
    """The reference training script's own pieces (`build_run`, `train_step`), driven step by step."""

    def __init__(
        self,
        cache: Path,
        *,
        preset: str,
        flat: bool,
        seed: int,
        work: Path,
        phase_kimg: float | None,
        overrides: dict[str, Any],
        extra_args: Sequence[str] = (),
    ) -> None:
        from progrow.adapters.progan import train as T
        from progrow.adapters.progan.distributed import DistInfo
        from progrow.data import MultiResDataset

        argv = [
            "--preset",
            preset,
            "--data",
            str(cache),
            "--out",
            str(work),
            "--device",
            "cpu",
            "--kimg",
            "1000000",
            "--seed",
            str(seed),
        ]
        argv += ["--no-growing"] if flat else []
        argv += ["--phase-kimg", str(phase_kimg)] if phase_kimg else []
        argv += list(extra_args)
        opts = T.resolve_options(T.build_parser().parse_args(argv), DistInfo())
        opts.preset = apply_overrides(opts.preset, overrides)
        self.T, self.run = T, T.build_run(opts, MultiResDataset(cache))
        self.latent_dim = opts.preset.latent_dim

    @property
    def state(self) -> Any:
        return self.run.scheduler.state

    @property
    def kimg(self) -> float:
        return self.run.scheduler.nimg / 1000

    def step(self) -> None:
        from progrow.adapters.progan.warm_stage import begins_fade, warm_start_stage

        state = self.run.scheduler.state
        self.T.train_step(self.run, state)
        new = self.run.scheduler.advance(state.batch_size)
        if self.run.opts.preset.warm_start != "off" and begins_fade(state, new):
            warm_start_stage(self.run, new)  # as the training script does

    def sample(self, z: Tensor, state: Any = None) -> Tensor:
        G = self.run.ema.module
        with torch.no_grad():
            return G(z, state or self.state)  # an explicit state leaves the scheduler's binding alone


class DCGANTrainer(Trainer):
    """The tutorial's training loop: BCE on D's sigmoid, Adam(2e-4, β = (0.5, 0.999)), batch 64; optionally grown."""

    def __init__(
        self, cache: Path, *, resolution: int, grow: bool, seed: int, schedule: Any, batch_size: int = 64, lr: float = 2e-4
    ) -> None:
        import progrow as pg
        from progrow.adapters.sequential import growable_discriminator, growable_generator
        from progrow.data import ImageSampler, MultiResDataset

        torch.manual_seed(seed)
        dataset = MultiResDataset(cache)
        netG = DCGANGenerator(resolution, nc=dataset.num_channels)
        netD = DCGANDiscriminator(resolution, nc=dataset.num_channels)
        netG.apply(dcgan_init)
        netD.apply(dcgan_init)
        self.latent_dim = netG.nz
        self.grow = grow
        if grow:
            # toRGB / fromRGB in the DCGAN's own style (plain 1×1 convs, N(0, 0.02), its Tanh / LeakyReLU), as
            # progrow.adapters.sequential recommends for networks without equalized learning rate.
            g, d = growable_generator(netG.main), growable_discriminator(netD.main)
            self.G: nn.Module = pg.ProgressiveGenerator(g, img_channels=dataset.num_channels, to_rgb=g.user_to_rgb)
            self.D: nn.Module = pg.ProgressiveDiscriminator(d, img_channels=dataset.num_channels, from_rgb=d.user_from_rgb)
            config = schedule.replace(
                batch_size=batch_size, batch_size_per_res={}, lr=lr, lr_per_res={}, total_kimg=1e6, reset_optimizers="never"
            )
        else:
            self.G, self.D = netG, netD
            config = pg.ScheduleConfig(
                start_resolution=resolution, final_resolution=resolution, stable_kimg=1e6, batch_size=batch_size, lr=lr
            )
        self.scheduler = pg.ProgressiveScheduler(config)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.999))
        if grow:
            pg.bind(self.scheduler, self.G, self.D, self.opt_g, self.opt_d)
        self.sampler = ImageSampler(dataset, seed=seed, mirror=True)
        self.criterion = nn.BCELoss()
        self.pg = pg

    @property
    def state(self) -> Any:
        return self.scheduler.state

    @property
    def kimg(self) -> float:
        return self.scheduler.nimg / 1000

    def step(self) -> None:
        state = self.scheduler.state
        n = state.batch_size
        images, _ = self.sampler.next_batch(state.resolution, n)
        real = self.pg.fade_reals(self.pg.to_float(images), state) if self.grow else self.pg.to_float(images)
        ones, zeros = torch.ones(n), torch.zeros(n)
        self.D.zero_grad()
        err_real = self.criterion(self.D(real).view(-1), ones)
        err_real.backward()
        fake = self.G(torch.randn(n, self.latent_dim))
        err_fake = self.criterion(self.D(fake.detach()).view(-1), zeros)
        err_fake.backward()
        self.opt_d.step()
        self.G.zero_grad()
        err_g = self.criterion(self.D(fake).view(-1), ones)
        err_g.backward()
        self.opt_g.step()
        self.scheduler.advance(n)

    def sample(self, z: Tensor, state: Any = None) -> Tensor:
        G = copy.deepcopy(self.G)  # batch statistics, as the tutorial samples; the copy keeps BN buffers untouched
        with torch.no_grad():
            return G(z, state or self.state) if self.grow else G(z)


def apply_overrides(preset: Any, overrides: dict[str, Any]) -> Any:
    """`preset` with fields replaced: `{"fmap_max": 128, "schedule.batch_size": 32}` (for tuning experiments)."""
    schedule = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("schedule.")}
    top = {k: v for k, v in overrides.items() if not k.startswith("schedule.")}
    if schedule:
        top["schedule"] = preset.schedule.replace(**schedule)
    return replace(preset, **top) if top else preset
