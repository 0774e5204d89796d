"""Route 3 — a framework bridge: grow a GAN inside a Lightning `LightningModule`, 4² → 16² on CPU.

`ProgressiveCallback` drives progrow's scheduler from the Trainer: it binds the module's wrappers (so
`self.G(z)` runs at the current stage and alpha), sets the learning rate, resets the optimizers per the
schedule, logs `growth/resolution` and `growth/alpha`, and saves the scheduler in Lightning's checkpoints.
The module uses manual optimization and `growth.prepare_reals(batch)` for the state's minibatch,
resolution and fade. Needs the `lightning` extra (pip install progrow-gan[lightning]).
Run:  python examples/make_growable_lightning.py [--steps 40] [--out runs/lightning] [--resume]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import progrow as pg
from progrow.adapters.lightning import ProgressiveCallback
from progrow.adapters.sequential import growable_discriminator, growable_generator


def networks(z_dim: int = 32, width: int = 16) -> tuple[nn.Module, nn.Module]:
    """Small DCGAN-style stacks for 16² images, made growable by route 2 (any protocol networks do)."""
    g = nn.Sequential(
        nn.ConvTranspose2d(z_dim, width, 4), nn.BatchNorm2d(width), nn.ReLU(),
        nn.ConvTranspose2d(width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.ConvTranspose2d(width, 3, 4, 2, 1), nn.Tanh(),
    )  # fmt: skip
    d = nn.Sequential(
        nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 1, 4),
    )  # fmt: skip
    return pg.ProgressiveGenerator(growable_generator(g)), pg.ProgressiveDiscriminator(growable_discriminator(d))


class GAN(L.LightningModule):
    """A user's GAN module: two optimizers, manual optimization, networks called without a growth state."""

    def __init__(self, growth: ProgressiveCallback, z_dim: int = 32) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.growth, self.z_dim = growth, z_dim
        self.G, self.D = networks(z_dim)
        self.steps_run = 0

    def configure_optimizers(self):
        return [
            torch.optim.Adam(self.G.parameters(), betas=(0.0, 0.99)),
            torch.optim.Adam(self.D.parameters(), betas=(0.0, 0.99)),
        ]

    def on_growth_phase(self, state: pg.GrowthState) -> None:  # called by the callback at every new phase
        print(f"phase: {state.resolution}² {state.phase} at {state.kimg:.3f} kimg")

    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        reals = self.growth.prepare_reals(batch)  # the state's minibatch, at its resolution, faded
        fakes = self.G(torch.randn(reals.shape[0], self.z_dim))
        d_loss = pg.logistic_d_loss(self.D, reals, fakes).loss
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = pg.logistic_g_loss(self.D(fakes)).loss
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})
        self.steps_run += 1


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps over the whole schedule (default: 40)")
    parser.add_argument("--batch", type=int, default=8, help="minibatch size (default: 8)")
    parser.add_argument("--out", default=None, help="folder for Lightning's logs and a last.ckpt (default: none)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    args = parser.parse_args(argv)
    L.seed_everything(0, verbose=False)

    phase_kimg = args.steps * args.batch / 5 / 1000
    config = pg.ScheduleConfig(
        start_resolution=4,
        final_resolution=16,
        fade_kimg=phase_kimg,
        stable_kimg=phase_kimg,
        batch_size=args.batch,
        lr=2e-3,
        reset_optimizers="stage",
    )
    growth = ProgressiveCallback(pg.ProgressiveScheduler(config))
    shapes = pg.SyntheticShapes(seed=0, num_images=64)
    data = pg.to_float(torch.from_numpy(np.stack([shapes.render(i, 16) for i in range(64)])))
    loader = DataLoader(data, batch_size=growth.max_batch_size, shuffle=True, drop_last=True)

    out = Path(args.out) if args.out else None
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=-1,
        callbacks=[growth],
        logger=out is not None,
        default_root_dir=out,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    ckpt = out / "last.ckpt" if out else None
    module = GAN(growth)
    trainer.fit(module, loader, ckpt_path=str(ckpt) if args.resume and ckpt and ckpt.exists() else None)
    if ckpt:
        trainer.save_checkpoint(ckpt)

    with torch.no_grad():
        samples = module.G(torch.randn(4, 32))
    state = growth.state
    summary = {
        "resolution": state.resolution,
        "nimg": growth.scheduler.nimg,
        "done": growth.scheduler.done,
        "sample_shape": list(samples.shape),
        "finite": bool(torch.isfinite(samples).all()),
        "steps_this_run": module.steps_run,
        "logged": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("growth/")},
    }
    print("summary:", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
