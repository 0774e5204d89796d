"""The memory planner for the reference ProGAN: its real `train_step`, counted (fake tensors) or measured (CUDA).

`plan_preset` plans a preset's batch table for a budget: networks, EMA, Adams and GradScaler built as the
training script builds them (`build_models`), and each trial step is the script's own `train_step` at a
growth state, on a data batch of uint8 images as the sampler delivers them. On fake tensors
(`FakeTensorMode`, the default and what `progrow plan` uses) nothing of the activations' size is
allocated, so a 1024² plan runs on a laptop; on a CUDA device (`progrow train --batch-memory` there) every
trial step runs for real and `torch.cuda.max_memory_allocated` is read.

With several ranks each one runs `batch / ranks` images; the count is one rank's step, without the flat
gradient buffer of the all-reduce (one copy of the gradients, made after backward has freed the
activations). `--compile` is not modelled (the eager step is counted).
"""

from __future__ import annotations

import contextlib
import gc
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import progrow as pg
from progrow.data import Prefetcher
from progrow.memory import (
    BatchPlan,
    CountingMeasure,
    CudaMeasure,
    LrScaling,
    Measure,
    format_bytes,
    free_memory,
    plan_batch_sizes,
)

from .distributed import DistInfo, gather_objects
from .losses import losses_for
from .options import DEFAULT_MAX_BATCH, Options, Precision, UsageError
from .presets import ProGANPreset
from .run import Run, build_models, make_anchor
from .step import train_step

__all__ = ["PlanningRun", "plan_preset", "planning_options", "plan_for_run", "with_recorded_plan"]


class _TrialBatches:
    """Stands in for the run's sampler: uint8 images `[n, C, R, R]` (and labels) made on the device, as `next_batch` does."""

    def __init__(self, img_channels: int, num_classes: int) -> None:
        self.img_channels, self.num_classes = img_channels, num_classes

    def next_batch(self, resolution: int, batch_size: int, *, device: torch.device | str | None = None) -> Any:
        images = torch.randint(0, 256, (batch_size, self.img_channels, resolution, resolution), dtype=torch.uint8, device=device)
        labels = torch.randint(self.num_classes, (batch_size,), device=device) if self.num_classes else None
        return images, labels


class PlanningRun:
    """A throwaway `Run` of the training script on which `step(resolution, per_rank)` runs one `train_step`.

    `fake=True`: the weights, optimizer states and every step are fake tensors (counted, never computed).
    """

    def __init__(self, opts: Options, *, num_classes: int, img_channels: int, fake: bool) -> None:
        self.fake_mode = FakeTensorMode() if fake else None
        single = replace(opts, dist=DistInfo(), compile=False, device=torch.device("cpu") if fake else opts.device)
        G, D, ema, opt_g, opt_d = build_models(
            single, num_classes=num_classes, img_channels=img_channels, fake_mode=self.fake_mode
        )
        scaler = torch.amp.GradScaler(single.device.type, enabled=single.precision == "fp16")
        schedule = opts.preset.schedule
        self.start_resolution = schedule.start_resolution
        sampler = cast(Prefetcher, _TrialBatches(img_channels, num_classes))
        self.run = Run(
            single,
            G,
            D,
            ema,
            opt_g,
            opt_d,
            scaler,
            pg.ProgressiveScheduler(schedule),
            sampler,
            num_classes,
            losses_for(opts.preset.loss),
            G,
            D,
        )
        self.run.anchor = make_anchor(single)  # its copy of G_ema is taken in the uncounted step of each resolution
        if num_classes:
            with self.fake_mode if self.fake_mode is not None else contextlib.nullcontext():
                self.run.label_pool = torch.arange(num_classes, device=single.device)

    def step(self, resolution: int, batch_size: int) -> None:
        """One `train_step` at `resolution` (mid-fade, alpha 0.5, except at the first resolution) on `batch_size` images.

        Always a step with the loss's regularizer (a lazy R1 runs it on step 0), whose memory peak is the larger.
        """
        fading = resolution != self.start_resolution
        stage = int(math.log2(resolution // self.start_resolution))  # a stage past the first has the anchor's term
        state = pg.GrowthState(resolution, alpha=0.5 if fading else 1.0, stage=stage, batch_size=batch_size)
        for module in (self.run.G, self.run.D, self.run.ema.module):
            module.set_state(state)
        self.run.d_steps = 0  # a step with R1 even under a lazy `r1_interval`: the one with the larger peak
        train_step(self.run, state)

    def measure(self) -> Measure:
        """`measure(resolution, per_rank) -> bytes`: counted on fake tensors, else `max_memory_allocated` on CUDA
        (counted on real tensors on a CPU)."""
        run = self.run
        if self.fake_mode is None and run.opts.device.type == "cuda":
            return CudaMeasure(self.step, optimizers=[run.opt_g, run.opt_d], device=run.opts.device)
        return CountingMeasure(
            self.step,
            track=[run.G, run.D, run.ema, run.opt_g, run.opt_d],
            optimizers=[run.opt_g, run.opt_d],
            fake_mode=self.fake_mode,
        )


def planning_options(preset: ProGANPreset, *, precision: Precision = "bf16", channels_last: bool = False) -> Options:
    """The `Options` a plan of `preset` needs when there is no training command line (`progrow plan`)."""
    return Options(
        preset=preset,
        out=Path("."),
        data="synthetic",
        resume="none",
        device=torch.device("cpu"),
        precision=precision,
        channels_last=channels_last,
        compile=False,
        seed=0,
        cond=False,
        no_growing=False,
    )


def plan_preset(
    opts: Options,
    budget_bytes: int,
    *,
    ranks: int = 1,
    num_classes: int = 0,
    img_channels: int = 3,
    fake: bool = True,
    max_batch: int | None = None,
    pow2: bool = False,
    margin: float | None = None,
    lr_scaling: LrScaling = "none",
) -> tuple[BatchPlan, Measure]:
    """Plan `opts.preset`'s batch table for `budget_bytes` per device; the plan and the measure (its counters).

    `fake=True` counts fake-tensor steps (any device's plan, from a CPU); `fake=False` runs real steps on
    `opts.device` (`max_memory_allocated` on CUDA, the counter elsewhere).
    """
    planning = PlanningRun(opts, num_classes=num_classes, img_channels=img_channels, fake=fake)
    measure = planning.measure()
    how = (
        "counted on fake tensors (MemoryCounter)"
        if fake
        else ("torch.cuda.max_memory_allocated of real steps" if opts.device.type == "cuda" else "counted on real tensors")
    )
    kwargs: dict[str, Any] = {} if margin is None else {"margin": margin}
    try:
        plan = plan_batch_sizes(
            measure,
            opts.preset.schedule,
            budget_bytes,
            ranks=ranks,
            max_batch=max_batch,
            pow2=pow2,
            lr_scaling=lr_scaling,
            method=how,
            **kwargs,
        )
    finally:
        del planning
        gc.collect()
        if opts.device.type == "cuda":
            torch.cuda.empty_cache()
    extra = {"preset": opts.preset.name, "precision": opts.precision, "channels_last": opts.channels_last}
    return replace(plan, extra=extra), measure


def plan_for_run(opts: Options, *, img_channels: int, num_classes: int = 0) -> Options:
    """`--batch-memory`: `opts` with the preset's batch table planned for the budget on this run's device.

    CUDA: real steps, `max_memory_allocated` (rank 0's table is used by every rank); elsewhere: counted on
    fake tensors. Batches are multiples of the world size, at most `DEFAULT_MAX_BATCH`. The plan goes to
    `opts.batch_plan` (config.json and every checkpoint keep it).
    """
    assert opts.batch_memory is not None
    try:
        budget = free_memory(opts.device) if opts.batch_memory == "auto" else opts.batch_memory
    except ValueError as exc:
        raise UsageError(f"--batch-memory {exc}") from None
    try:
        plan, _ = plan_preset(
            opts,
            budget,
            ranks=opts.dist.world_size,
            num_classes=num_classes,
            img_channels=img_channels,
            fake=opts.device.type != "cuda",
            max_batch=max(DEFAULT_MAX_BATCH, opts.dist.world_size),
        )
    except ValueError as exc:  # BudgetError included
        raise UsageError(f"--batch-memory {_spec(opts.batch_memory)}: {exc}") from None
    record = gather_objects({**plan.to_dict(), "spec": _spec(opts.batch_memory)}, opts.dist)[0]
    schedule = opts.preset.schedule.replace(**{k: record["schedule"][k] for k in _BATCH_FIELDS})
    if opts.dist.is_main:
        table = ", ".join(f"{r}²: {b}" for r, b in schedule.batch_size_per_res.items())
        print(
            f"batch table planned for {format_bytes(budget)} per device (--batch-memory {_spec(opts.batch_memory)}, "
            f"{plan.margin:.0%} margin, {plan.method}): {table}",
            flush=True,
        )
    return replace(opts, preset=replace(opts.preset, schedule=schedule), batch_plan=record)


def with_recorded_plan(opts: Options, payload: dict[str, Any], path: Path) -> Options:
    """`--batch-memory` on resume: the batch table the run was planned with (its checkpoint's), not a new plan."""
    record = payload.get("batch_plan")
    if not isinstance(record, dict) or not isinstance(record.get("schedule"), dict):
        raise UsageError(
            f"--batch-memory: {path} was trained without --batch-memory; resume without it, or start a new run with another --out"
        )
    schedule = opts.preset.schedule.replace(**{k: record["schedule"][k] for k in _BATCH_FIELDS})
    if opts.dist.is_main:
        print(f"keeping the batch table planned when this run started (--batch-memory {record.get('spec')})", flush=True)
    return replace(opts, preset=replace(opts.preset, schedule=schedule), batch_plan=record)


_BATCH_FIELDS = ("batch_size", "batch_size_per_res", "batch_multiple")


def _spec(value: int | str) -> str:
    return value if isinstance(value, str) else f"{value:,} bytes"
