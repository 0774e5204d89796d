"""What happens at a tick of training: the log record, the progress bar, the log line, the grid, TensorBoard,
metrics, plots, a checkpoint."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import progrow as pg
from progrow.data import MultiResDataset
from progrow.images import to_pil, to_uint8

from .metric_groups import evaluate_groups
from .plots import plot_losses, plot_metrics
from .resume import write_checkpoint
from .run import Run
from .tensorboard_log import TensorBoardLog, open_tensorboard

__all__ = ["Reporter", "save_grid", "sample_grid", "evaluate_metrics", "LOSS_PLOT_MIN_SECONDS"]

# `plots/losses.png` is redrawn at every tick, except a tick that comes sooner than this after the start or the
# last drawing; the run's last tick always draws, and a run stopped by a signal draws on its way out. Drawing
# costs ~0.1 s (importing matplotlib ~0.5 s): runs with ticks a fraction of a second apart (tests, toy
# schedules) would spend most of their time plotting; ticks of real runs are tens of seconds to minutes apart.
LOSS_PLOT_MIN_SECONDS = 2.0


class Reporter:
    """Follows the training loop (`after_step`); at each tick records, shows and saves what the run has done.

    A tick comes every `tick_kimg` (per resolution), at every stage end and at the end. Rank 0 appends the
    record to `log.jsonl` (printed too when there is no progress bar), saves the G_ema grid, evaluates the
    metrics when due (stage ends, the end, every `--metric-ticks`) and plots them, redraws `plots/losses.png`
    and logs the tick to TensorBoard (tensorboard_log.py); every rank joins the checkpoint (stage ends, the
    end, every `checkpoint_ticks`). A context manager: closes the bar, the log and the TensorBoard writer.
    """

    def __init__(self, run: Run, dataset: MultiResDataset, *, resumed: bool = False) -> None:
        self.run, self.dataset = run, dataset
        opts, p = run.opts, run.opts.preset
        self.main = opts.dist.is_main
        grid_rng = torch.Generator().manual_seed(opts.seed)  # the same grid latents in every run of this seed
        self.grid_latents = torch.randn(p.grid_size, p.latent_dim, generator=grid_rng).to(opts.device)
        self.grid_labels = (torch.arange(p.grid_size) % run.num_classes).to(opts.device) if run.num_classes else None
        if run.next_tick_nimg == 0:  # a fresh run: the first tick
            run.next_tick_nimg = int(p.tick_kimg_at(run.scheduler.state.resolution) * 1000)
        self.bar = _progress_bar(run)
        self.log = (opts.out / "log.jsonl").open("a") if self.main else None
        self.tb: TensorBoardLog | None = open_tensorboard(opts, run.scheduler.nimg, resumed=resumed)
        self.started = time.perf_counter()
        self.restart()
        self.warned_plots = False
        self.loss_plot_at = self.started  # perf_counter() of the last drawing of plots/losses.png
        self.loss_plot_behind = False  # a tick since that drawing

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and self.loss_plot_behind:  # stopped by a signal after an undrawn tick
            self._plot_losses()
        self.bar.close()
        if self.log is not None:
            self.log.close()
        if self.tb is not None:
            self.tb.close()

    def restart(self) -> None:
        """Count the next tick from the scheduler's position now (at the start, and after a rollback)."""
        self.bar.n = self.run.scheduler.nimg
        self.tick_start_nimg, self.tick_start_time = self.run.scheduler.nimg, time.perf_counter()
        if self.tb is not None:
            self.tb.rewind(self.run.scheduler.nimg)  # after a rollback: TensorBoard drops the ticks past it

    def after_step(self, state: pg.GrowthState, new: pg.GrowthState, stats: dict[str, Tensor]) -> None:
        """Advance the bar over the step from `state` to `new`; a tick if one is due."""
        self.bar.update(new.nimg - state.nimg)
        final = new.stage != state.stage or self.run.scheduler.done  # a stage end, or the end
        if new.nimg >= self.run.next_tick_nimg or final:
            self.tick(state, new, stats, final=final)

    def tick(self, state: pg.GrowthState, new: pg.GrowthState, stats: dict[str, Tensor], *, final: bool) -> None:
        """Record the tick that ends with the step from `state` to `new`; metrics and a checkpoint when due."""
        run, opts = self.run, self.run.opts
        record = self._record(state, new, stats)
        self.bar.set_postfix_str(
            f"{state.resolution}² {state.phase} α={state.alpha:.2f} "
            f"d={record['d_loss']:.3f} g={record['g_loss']:.3f} {record['img_per_s']:.0f} img/s",
            refresh=False,
        )
        metrics_due = bool(opts.metrics) and (final or bool(opts.metric_ticks and run.tick % opts.metric_ticks == 0))
        if self.main:
            if metrics_due:
                record.update(evaluate_metrics(run, state, self.dataset))
            self._write(record)
            grid = save_grid(run, opts.out / "grids" / f"grid-{new.nimg:09d}.png", self.grid_latents, self.grid_labels)
            if self.tb is not None:
                self.tb.tick(new.nimg, record, grid)
            if metrics_due:
                self._plot()
            self.loss_plot_behind = True
            if run.scheduler.done or time.perf_counter() - self.loss_plot_at >= LOSS_PLOT_MIN_SECONDS:
                self._plot_losses()
        if final or run.tick % opts.preset.checkpoint_ticks == 0:
            write_checkpoint(run)

    def _record(self, state: pg.GrowthState, new: pg.GrowthState, stats: dict[str, Tensor]) -> dict[str, Any]:
        """The log record of the tick (the state trained at, speed, losses); counts the tick and schedules the next."""
        run = self.run
        run.tick += 1
        now = time.perf_counter()
        rate = (new.nimg - self.tick_start_nimg) / max(now - self.tick_start_time, 1e-9)
        self.tick_start_nimg, self.tick_start_time = new.nimg, now
        run.next_tick_nimg = new.nimg + int(run.opts.preset.tick_kimg_at(new.resolution) * 1000)
        return {
            "tick": run.tick,
            "kimg": round(new.kimg, 3),
            "stage": state.stage,
            "resolution": state.resolution,
            "phase": state.phase,
            "alpha": round(state.alpha, 5),
            "batch_size": state.batch_size,
            "lr": state.lr,
            "img_per_s": round(rate, 2),
            "seconds": round(now - self.started, 2),
            "skipped_steps": run.skipped_steps,
            **{k: round(float(v), 5) for k, v in stats.items()},
        }

    def _write(self, record: dict[str, Any]) -> None:
        assert self.log is not None
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()
        if self.bar.disable:
            print(" ".join(f"{k}={v}" for k, v in record.items()), flush=True)

    def _plot(self) -> None:
        out = self.run.opts.out
        if plot_metrics(out / "log.jsonl", out / "plots") is None:
            self._no_matplotlib()

    def _plot_losses(self) -> None:
        out = self.run.opts.out
        if plot_losses(out / "log.jsonl", out / "plots") is None:
            self._no_matplotlib()
        self.loss_plot_at, self.loss_plot_behind = time.perf_counter(), False

    def _no_matplotlib(self) -> None:
        if not self.warned_plots:
            print(
                "notice: matplotlib is not installed, so no loss or metric plots (pip install 'progrow-gan[plots]')", flush=True
            )
            self.warned_plots = True


def _progress_bar(run: Run) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=run.scheduler.total_nimg,
        initial=run.scheduler.nimg,
        unit="img",
        unit_scale=True,
        disable=None if run.opts.dist.is_main else True,
        dynamic_ncols=True,
        mininterval=1.0,
    )


def save_grid(run: Run, path: Path, latents: torch.Tensor, grid_labels: torch.Tensor | None) -> Tensor:
    """`sample_grid` saved as one PNG at `path`; returns the grid."""
    grid = sample_grid(run, latents, grid_labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(grid).save(path)
    return grid


def sample_grid(run: Run, latents: torch.Tensor, grid_labels: torch.Tensor | None) -> Tensor:
    """G_ema samples from fixed latents, at its bound state, tiled `[C, H, W]` uint8; each image enlarged (nearest) to ≥ 64 px."""
    G_ema = run.ema.module
    with torch.no_grad():
        kw = {"labels": grid_labels} if grid_labels is not None else {}
        images = G_ema(latents, **kw).float().cpu()
    scale = max(1, 64 // images.shape[-1])
    if scale > 1:
        images = F.interpolate(images, scale_factor=float(scale), mode="nearest")
    images = to_uint8(images)
    n, c, h, w = images.shape
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = torch.zeros(c, rows * h, cols * w, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[:, r * h : (r + 1) * h, col * w : (col + 1) * w] = images[i]
    return grid


def evaluate_metrics(run: Run, state: pg.GrowthState, dataset: MultiResDataset) -> dict[str, Any]:
    """The `--metrics` of G_ema at `state`, keyed `name@resolution`; a failure is reported and training goes on."""
    opts = run.opts
    options: dict[str, Any] = {"num_samples": opts.metric_samples, "device": opts.device}
    if any(m in ("fid", "kid", "is") for m in opts.metrics):
        options.update(cache_dir=str(opts.out / "metric-cache"), weights_path=opts.inception_weights)
    if run.num_classes:
        options["labels"] = torch.arange(opts.metric_samples) % run.num_classes
    scores, errors = evaluate_groups(opts.metrics, run.ema.module, state, dataset, **options)
    record: dict[str, Any] = {f"{name}@{state.resolution}": round(value, 6) for name, value in scores.items()}
    if errors:  # a metric must never end a training run, nor take the others with it
        for names, message in errors.items():
            print(f"warning: metrics {names} failed at {state.resolution}²: {message}", file=sys.stderr, flush=True)
        record["metrics_error"] = "; ".join(f"{names}: {message}" for names, message in errors.items())
    return record
