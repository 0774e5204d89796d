"""Everything a training run holds (`Run`: networks, EMA, optimizers, schedule, data) and how it is built from `Options`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

import progrow as pg
from progrow.data import ImageSampler, MultiResDataset, Prefetcher
from progrow.memory import to_fake

from .distributed import broadcast_module
from .export import discriminator_kwargs, generator_kwargs
from .losses import DLoss, GLoss, losses_for
from .networks import ProGANDiscriminator, ProGANGenerator
from .options import Options

__all__ = ["Run", "build_run", "build_models", "make_anchor", "make_adam", "batch_size", "seed_latents"]

# Every random stream of a run derives from --seed s: the initial weights (torch.manual_seed(s), the same on
# every rank), the data order and flips (ImageSampler(seed=s)), the grid latents (a generator seeded s), and
# the training latents, which differ per rank and after each rollback: s·STRIDE + OFFSET + rank, then
# s·STRIDE + STEP·k + rank after rollback k.
LATENT_SEED_STRIDE = 1_000_003  # a prime, so that different --seed values own disjoint seeds
LATENT_SEED_OFFSET = 1
ROLLBACK_SEED_STEP = 7919  # a prime


@dataclass
class Run:
    """Everything that changes during training; what a checkpoint saves."""

    opts: Options
    G: pg.ProgressiveGenerator
    D: pg.ProgressiveDiscriminator
    ema: pg.EMA[pg.ProgressiveGenerator]
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    scheduler: pg.ProgressiveScheduler
    sampler: Prefetcher
    num_classes: int
    losses: tuple[DLoss, GLoss]  # the preset's (d_loss, g_loss)
    G_forward: Callable[..., Tensor]  # G, or torch.compile(G) with --compile; `G_forward(z [N, latent]) -> [N, C, R, R]`
    D_forward: Callable[..., Tensor]  # D (what the step calls: `D_forward(images) -> scores [N, 1 + classes]`)
    label_pool: Tensor | None = None  # every real label, to draw labels for fakes
    tick: int = 0
    next_tick_nimg: int = 0
    skipped_steps: int = 0
    stopped_by: int | None = None  # the signal that ended training early, if any
    last_step_ok: bool = True  # False when the last step skipped an update (non-finite gradients)
    bad_streak: int = 0  # consecutive skipped steps
    rollbacks: int = 0  # rollbacks to the last good checkpoint in this process
    d_steps: int = 0  # discriminator steps taken (a lazy R1 runs when this is a multiple of `r1_interval`)
    d_terms: dict[str, Tensor] = field(default_factory=dict)  # the D loss's latest terms (a skipped R1 keeps its last)
    anchor: pg.StageAnchor | None = None  # --stage-anchor: the previous stage's G_ema and G's anchor term


def class_count(opts: Options, dataset: MultiResDataset) -> int:
    """Classes a conditional run (`--cond`) trains on: the dataset's largest label + 1; 0 when unconditional."""
    return int(dataset.labels.max()) + 1 if opts.cond and dataset.labels is not None else 0


def build_run(opts: Options, dataset: MultiResDataset) -> Run:
    """The networks (the same initial weights on every rank), EMA, optimizers, scheduler and sampler, bound together."""
    p = opts.preset
    losses = losses_for(p.loss)
    num_classes = class_count(opts, dataset)
    G, D, ema, opt_g, opt_d = build_models(opts, num_classes=num_classes, img_channels=dataset.num_channels)
    scaler = torch.amp.GradScaler(opts.device.type, enabled=opts.precision == "fp16")
    scheduler = pg.ProgressiveScheduler(p.schedule)
    image_sampler = ImageSampler(dataset, seed=opts.seed, mirror=p.mirror, rank=opts.dist.rank, world_size=opts.dist.world_size)
    sampler = Prefetcher(
        image_sampler,
        plan=lambda n: _batch_at(scheduler, n),
        position=lambda: scheduler.nimg,
        num_workers=opts.data_workers,
        device=opts.device,
    )
    seed_latents(opts)
    G_forward = torch.compile(G) if opts.compile else G
    run = Run(opts, G, D, ema, opt_g, opt_d, scaler, scheduler, sampler, num_classes, losses, G_forward, D)
    if num_classes:
        run.label_pool = torch.as_tensor(dataset.labels, dtype=torch.long)
    run.anchor = make_anchor(opts)
    # Wrappers follow the scheduler's state; optimizers get its learning rate and its reset policy.
    pg.bind(scheduler, G, D, ema.module, opt_g, opt_d)
    return run


def make_anchor(opts: Options) -> pg.StageAnchor | None:
    """The preset's `StageAnchor` (None when `stage_anchor` is 0, as in the paper's presets)."""
    p = opts.preset
    if p.stage_anchor == 0:
        return None
    return pg.StageAnchor(weight=p.stage_anchor, levels=p.stage_anchor_levels, start_resolution=p.schedule.start_resolution)


def build_models(
    opts: Options, *, num_classes: int, img_channels: int, fake_mode: Any | None = None
) -> tuple[
    pg.ProgressiveGenerator, pg.ProgressiveDiscriminator, pg.EMA[pg.ProgressiveGenerator], torch.optim.Adam, torch.optim.Adam
]:
    """The wrapped networks (seeded by `opts.seed`, equal on every rank), the G EMA and the two Adams, on `opts.device`.

    With `fake_mode` (a `FakeTensorMode`), the weights become fake tensors after construction and the
    optimizers are made inside the mode: what the memory planner counts without the memory.
    """
    p = opts.preset
    torch.manual_seed(opts.seed)  # the same initial weights on every rank
    net_g = ProGANGenerator(**generator_kwargs(p, num_classes))
    net_d = ProGANDiscriminator(**discriminator_kwargs(p, num_classes))
    device = "cpu" if fake_mode is not None else opts.device
    G = pg.ProgressiveGenerator(net_g, img_channels=img_channels).to(device)
    D = pg.ProgressiveDiscriminator(net_d, img_channels=img_channels).to(device)
    if opts.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    if fake_mode is None:
        broadcast_module(G, opts.dist)
        broadcast_module(D, opts.dist)
    ema = pg.EMA(G, beta=p.ema_beta)
    if fake_mode is not None:
        to_fake(fake_mode, G, D, ema.module)
    with fake_mode if fake_mode is not None else contextlib.nullcontext():
        opt_g = make_adam(G.parameters(), lr=p.schedule.lr, betas=p.adam_betas, eps=p.adam_eps)
        opt_d = make_adam(D.parameters(), lr=p.schedule.lr, betas=p.adam_betas, eps=p.adam_eps)
    return G, D, ema, opt_g, opt_d


def seed_latents(opts: Options, *, rollbacks: int = 0) -> None:
    """Seed torch's global RNG for this rank's training latents (other ones after each of `rollbacks`)."""
    offset = ROLLBACK_SEED_STEP * rollbacks if rollbacks else LATENT_SEED_OFFSET
    torch.manual_seed(opts.seed * LATENT_SEED_STRIDE + offset + opts.dist.rank)


def batch_size(state: pg.GrowthState) -> int:
    """The minibatch size of a step at `state` (over all ranks); every preset's schedule has one."""
    if state.batch_size is None:
        raise ValueError(f"the schedule gives no batch size at {state}")
    return state.batch_size


def _batch_at(scheduler: pg.ProgressiveScheduler, nimg: int) -> tuple[int, int]:
    state = scheduler.state_at(nimg)
    return state.resolution, batch_size(state)


def make_adam(params: Iterable[torch.nn.Parameter], *, lr: float, betas: tuple[float, float], eps: float) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel (all weights in one pass) where this torch has one for their device.

    The fused kernel computes the same update as the default per-weight loop; at 4² it makes a whole
    training iteration about 5 % faster on a CPU (benchmarks/train_step.py). Older torch (< 2.4 on CPU)
    and devices without the kernel get the default implementation.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True)
    except RuntimeError:  # "`fused=True` requires all the params to be floating point Tensors of supported devices"
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
