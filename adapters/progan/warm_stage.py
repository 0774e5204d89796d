"""The warm start of a stage's new layers when its fade begins (`--warm-start`, progrow.warm_start)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

import progrow as pg
from progrow.data import to_float

from .distributed import broadcast_module
from .run import Run, batch_size

__all__ = ["begins_fade", "warm_start_stage"]

WARM_SEED_STRIDE = 65_537  # a prime: the warm start of each resolution draws its own latents and reals


def begins_fade(state: pg.GrowthState, new: pg.GrowthState) -> bool:
    """True when the step from `state` to `new` enters a new stage in its fade (the new layers are untrained)."""
    return new.stage != state.stage and new.is_fading


def warm_start_stage(run: Run, state: pg.GrowthState) -> tuple[pg.WarmStart, pg.WarmStart | None]:
    """Fit the new G block + toRGB (copied into G_ema), and with `warm_start="both"` the new D block + fromRGB,
    of `state`'s stage; returns the two fits (None for D when only the generator is fitted).

    `preset.warm_start_steps` Adam steps each, at most as many as the fade has minibatches (a short schedule
    spends no more on the warm start than on its fade), with the preset's lr and betas and the stage's
    minibatch, on latents and reals drawn from their own seeded generator: a resumed run repeats the warm
    start it was killed in, bit for bit, and the training streams (latents, data order) are not touched.
    Every rank computes the same fit, and rank 0's weights are broadcast afterwards so the ranks stay equal
    to the last bit.
    """
    opts, p = run.opts, run.opts.preset
    res, n = state.resolution, batch_size(state)
    steps = min(p.warm_start_steps, fade_steps(run, state))
    lr = state.lr if state.lr is not None else p.schedule.lr_at(res)
    rng = torch.Generator().manual_seed(opts.seed * WARM_SEED_STRIDE + res)
    g_fit = pg.warm_start(run.G, res, _latents(run, rng, n, steps), lr=lr, betas=p.adam_betas, ema=run.ema)
    d_fit = None
    if p.warm_start == "both":
        d_fit = pg.warm_start(run.D, res, _reals(run, rng, res, n, steps), lr=lr, betas=p.adam_betas)
    for module in (run.G, run.D, run.ema.module):
        broadcast_module(module, opts.dist)
    if opts.dist.is_main:
        d_line = "" if d_fit is None else f", D new features rel. MSE {d_fit.loss_before:.3f} → {d_fit.loss_after:.3f}"
        g_line = f"G new path MSE {g_fit.loss_before:.4f} → {g_fit.loss_after:.4f}"
        print(f"warm start {res}²: {g_line}{d_line} ({steps} step{'' if steps == 1 else 's'})", flush=True)
    return g_fit, d_fit


def fade_steps(run: Run, state: pg.GrowthState) -> int:
    """Minibatches in the whole fade that `state` is in (a short `--phase-kimg` caps the warm start to them)."""
    span = run.scheduler.span_at(state.nimg)
    assert span.end_nimg is not None  # a fade is never the open last phase
    return -(-(span.end_nimg - span.start_nimg) // batch_size(state))


def _latents(run: Run, rng: torch.Generator, n: int, steps: int) -> Iterator[Tensor | tuple[Tensor, dict[str, Tensor]]]:
    """`steps` latent batches `[n, latent]` (with labels drawn from the real ones for a conditional run)."""
    device = run.opts.device
    for _ in range(steps):
        z = torch.randn(n, run.opts.preset.latent_dim, generator=rng).to(device)
        if run.label_pool is None:
            yield z
        else:
            labels = run.label_pool[torch.randint(len(run.label_pool), (n,), generator=rng)].to(device)
            yield z, {"labels": labels}


def _reals(run: Run, rng: torch.Generator, res: int, n: int, steps: int) -> Iterator[Tensor]:
    """`steps` batches `[n, C, res, res]` of reals in [-1, 1], drawn uniformly from the dataset."""
    dataset = run.sampler.sampler.dataset
    level = dataset.level(res)
    for _ in range(steps):
        idx = np.sort(torch.randint(len(dataset), (n,), generator=rng).numpy())
        x = to_float(torch.from_numpy(np.ascontiguousarray(level[idx])).to(run.opts.device))
        yield x.contiguous(memory_format=torch.channels_last) if run.opts.channels_last else x
