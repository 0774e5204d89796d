"""Train the reference ProGAN.

    python -m progrow.adapters.progan.train --preset cpu-demo --out runs/demo          # CPU, minutes
    torchrun --nproc_per_node 8 -m progrow.adapters.progan.train --preset paper-1024 \
        --data /data/celeba-hq --out runs/celebahq --precision bf16                     # 8 GPUs

A second invocation with the same `--out` resumes from its newest checkpoint. Files written to `--out`:
`log.jsonl` (one line per tick), `grids/` (G_ema samples from fixed latents at every tick),
`checkpoints/` (every N ticks and at every stage end), `config.json`, and at the end
`generator.safetensors` + `generator.json` (the G_ema export).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

import progrow as pg
from progrow.checkpoint import (
    CheckpointError,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)
from progrow.data import DataError, ImageSampler, MultiResDataset, Prefetcher, build_cache, open_source, to_float
from progrow.data.cache import CachePlan
from progrow.metrics import METRICS
from progrow.metrics.inception import check_weights_file

from ..cli_help import HelpFormatter
from ..devices import resolve_device
from .data_source import DataSource, describe_source, inspect_data, same_source
from .distributed import (
    DistInfo,
    all_reduce_grads,
    any_rank,
    barrier,
    broadcast_module,
    gather_objects,
    init_distributed,
)
from .export import export_generator, generator_kwargs
from .metric_groups import evaluate_groups
from .networks import ProGANDiscriminator, ProGANGenerator
from .plots import plot_metrics
from .presets import PRESETS, ProGANPreset, get_preset
from .rundir import remove_empty_tree
from .signals import StopSignals, parse_signals

__all__ = ["main", "build_parser", "UsageError"]

FORMAT = "progrow.progan/1"
MAX_SEED = 2**32 - 1


class Diverged(Exception):
    """Training kept producing non-finite gradients through every allowed rollback (exit code 3)."""


class UsageError(Exception):
    """Bad command-line input, found before any model is built; printed without a traceback, exit code 2."""


# ------------------------------------------------------------------------------------------- arguments
def build_parser(prog: str = "python -m progrow.adapters.progan.train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train the reference ProGAN (Karras et al. 2018) with progressive growing.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--preset",
        default="cpu-demo",
        choices=sorted(PRESETS),
        help="networks + schedule: paper-1024 (800/800 kimg), official-1024 (600/600 kimg, official batch table), "
        "cpu-demo (32², minutes on a CPU)",
    )
    p.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic' (rendered by progrow; 'synthetic:SEED:N' to choose), an image folder, a StyleGAN2-ADA "
        "zip, or a cache made by `progrow dataset`",
    )
    p.add_argument(
        "--crop",
        default="center",
        choices=["center", "none"],
        help="when --data is an image folder or zip: crop non-square images to their centred square, or refuse them",
    )
    p.add_argument(
        "--upscale",
        action="store_true",
        help="when --data is an image folder or zip: enlarge images smaller than the preset's resolution instead "
        "of refusing them",
    )
    p.add_argument(
        "--bad-images",
        default="error",
        choices=["error", "skip"],
        help="when --data is an image folder or zip: undecodable images stop the run before training (listed), or "
        "are skipped and recorded",
    )
    p.add_argument("--out", default=None, help="run folder (default: runs/<preset>); resuming happens from here")
    p.add_argument(
        "--kimg",
        type=float,
        default=None,
        help="stop after this many thousand images (default: the end of the preset's schedule)",
    )
    p.add_argument("--phase-kimg", type=float, default=None, help="override the length of every fade and stable phase, in kimg")
    p.add_argument(
        "--resume",
        default="auto",
        help="'auto' (newest valid checkpoint in --out, if any), 'none' (start over; refuses a non-empty --out), "
        "or a checkpoint path",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast precision; auto = bf16 on CUDA, fp32 on CPU; fp16 uses a GradScaler",
    )
    p.add_argument(
        "--channels-last", action="store_true", help="channels_last memory format (faster convolutions on recent GPUs)"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the generator (the discriminator stays eager: the gradient penalty needs double backward)",
    )
    p.add_argument("--seed", type=int, default=0, help=f"seed for weights, latents and data order, 0..{MAX_SEED}")
    p.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random horizontal flips of the reals (default: the preset's)",
    )
    p.add_argument(
        "--cond",
        action="store_true",
        help="class-conditional training with the dataset's labels (auxiliary classifier, as the official code)",
    )
    p.add_argument(
        "--no-growing",
        action="store_true",
        help="train at the final resolution from the start (the paper's non-progressive baseline)",
    )
    p.add_argument("--checkpoint-ticks", type=int, default=None, help="a checkpoint every N ticks (default: the preset's)")
    p.add_argument("--keep-checkpoints", type=int, default=None, help="checkpoints kept on disk (default: the preset's)")
    p.add_argument(
        "--stop-signals",
        default="TERM",
        help="signals that end training after the current step with a checkpoint (exit code 128 + signal), e.g. TERM,USR1",
    )
    p.add_argument(
        "--max-bad-steps",
        type=int,
        default=20,
        help="consecutive steps with non-finite gradients (updates skipped) before rolling back to the last good checkpoint",
    )
    p.add_argument("--max-rollbacks", type=int, default=3, help="rollbacks before training stops as diverged (exit code 3)")
    p.add_argument(
        "--metrics",
        default="",
        help="comma-separated metrics of G_ema at every stage end, logged as NAME@RES: fid, kid, is, swd, ms_ssim",
    )
    p.add_argument("--metric-samples", type=int, default=10_000, help="generated images per metric evaluation")
    p.add_argument("--metric-ticks", type=int, default=0, help="also evaluate the metrics every N ticks (0: at stage ends only)")
    p.add_argument(
        "--inception-weights",
        default=None,
        help="local InceptionV3 weights for fid/kid/is (torch-fidelity's pt_inception-2015-12-05 file; default: "
        "its download cache)",
    )
    p.add_argument(
        "--data-workers",
        type=int,
        default=0,
        help="threads that read the next minibatches ahead of the training step (0: read in the step); the "
        "batches are the same for any value",
    )
    p.add_argument(
        "--tick-kimg",
        type=float,
        default=None,
        help="kimg between ticks (log line + grid); default: the preset's per-resolution table",
    )
    return p


@dataclass
class Options:
    """The validated run description: the preset with command-line overrides applied."""

    preset: ProGANPreset
    out: Path
    data: str
    resume: str
    device: torch.device
    precision: Literal["fp32", "bf16", "fp16"]
    channels_last: bool
    compile: bool
    seed: int
    cond: bool
    no_growing: bool
    crop: Literal["center", "none"] = "center"
    upscale: bool = False
    bad_images: Literal["error", "skip"] = "error"
    stop_signals: tuple = ()
    max_bad_steps: int = 20
    max_rollbacks: int = 3
    metrics: tuple = ()
    metric_samples: int = 10_000
    metric_ticks: int = 0
    inception_weights: str | None = None
    data_workers: int = 0
    dist: DistInfo = field(default_factory=DistInfo)
    source: DataSource | None = None  # what --data names, inspected before anything is built

    def identity(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed by this run (bookkeeping and `--kimg` may change)."""
        preset = self.preset.to_dict()
        preset["schedule"].pop("total_kimg")
        for bookkeeping in ("tick_kimg", "checkpoint_ticks", "keep_checkpoints", "grid_size"):
            preset.pop(bookkeeping)
        return {"preset": preset, "cond": self.cond, "no_growing": self.no_growing}


def resolve_options(args: argparse.Namespace, dist: DistInfo) -> Options:
    """Apply the command line to the preset and validate it all; raises `UsageError`."""
    preset = get_preset(args.preset)
    schedule = preset.schedule
    changes: dict[str, Any] = {}
    if args.phase_kimg is not None:
        if not args.phase_kimg > 0:
            raise UsageError(f"--phase-kimg: expected a number > 0, got {args.phase_kimg}")
        changes.update(fade_kimg=args.phase_kimg, stable_kimg=args.phase_kimg, fade_kimg_per_res={}, stable_kimg_per_res={})
    if args.no_growing:
        growth_end = pg.ProgressiveScheduler(schedule.replace(**changes)).total_nimg / 1000
        final = schedule.final_resolution
        changes.update(
            start_resolution=final,
            fade_kimg_per_res={},
            stable_kimg_per_res={},
            stable_kimg=growth_end,
            batch_size=schedule.batch_size_at(final),
            batch_size_per_res={},
            lr=schedule.lr_at(final),
            lr_per_res={},
        )
    if args.kimg is not None:
        if not args.kimg > 0:
            raise UsageError(f"--kimg: expected a number > 0, got {args.kimg}")
        changes["total_kimg"] = args.kimg
    if dist.world_size > 1:
        changes["batch_multiple"] = dist.world_size
    try:
        schedule = schedule.replace(**changes)
    except ValueError as exc:
        hint = f" (with {dist.world_size} ranks every minibatch must split evenly)" if dist.world_size > 1 else ""
        raise UsageError(f"--preset {preset.name}: {exc}{hint}") from None
    preset_changes: dict[str, Any] = {"schedule": schedule}
    if args.mirror is not None:
        preset_changes["mirror"] = args.mirror
    for name in ("checkpoint_ticks", "keep_checkpoints"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise UsageError(f"--{name.replace('_', '-')}: expected an int ≥ 1, got {value}")
            preset_changes[name] = value
    if args.tick_kimg is not None:
        if not args.tick_kimg > 0:
            raise UsageError(f"--tick-kimg: expected a number > 0, got {args.tick_kimg}")
        preset_changes["tick_kimg"] = {r: args.tick_kimg for r in schedule.resolutions}
    preset = replace(preset, **preset_changes)

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank if device.index is None else device.index)
    precision = args.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if device.type == "cpu" and precision in ("bf16", "fp16") and dist.is_main:
        print(
            f"warning: --precision {precision} on a CPU is much slower than fp32 there (about 6× measured); it is meant for GPUs",
            file=sys.stderr,
            flush=True,
        )
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed: expected an int in 0..{MAX_SEED}, got {args.seed}")
    out = Path(args.out) if args.out else Path("runs") / preset.name
    _check_out(out)
    for name in ("max_bad_steps", "max_rollbacks"):
        if getattr(args, name) < (1 if name == "max_bad_steps" else 0):
            raise UsageError(
                f"--{name.replace('_', '-')}: expected an int ≥ {1 if name == 'max_bad_steps' else 0}, got {getattr(args, name)}"
            )
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UsageError(f"--metrics: unknown metric(s) {', '.join(unknown)}; available: {', '.join(METRICS)}")
    if args.metric_samples < 2:
        raise UsageError(f"--metric-samples: expected an int ≥ 2, got {args.metric_samples}")
    if args.data_workers < 0:
        raise UsageError(f"--data-workers: expected an int ≥ 0, got {args.data_workers}")
    if args.metric_ticks < 0:
        raise UsageError(f"--metric-ticks: expected an int ≥ 0, got {args.metric_ticks}")
    if args.inception_weights is not None:
        weights = Path(args.inception_weights)
        if not weights.is_file():
            what = " is a folder; expected the weights file" if weights.is_dir() else ": no such file"
            raise UsageError(f"--inception-weights: {weights}{what}")
        try:
            check_weights_file(weights, option="--inception-weights")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    try:
        stop_signals = parse_signals(args.stop_signals)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.resume not in ("auto", "none") and not Path(args.resume).is_file():
        what = "is a folder, expected a checkpoint file" if Path(args.resume).is_dir() else "no such checkpoint file"
        raise UsageError(f"--resume: {args.resume}: {what} (or use 'auto' / 'none')")
    if args.resume == "none" and (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
        raise UsageError(f"--resume none: {out} already holds checkpoints; choose another --out or resume")
    try:
        source = inspect_data(args.data)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    if args.cond and not source.has_labels:
        raise UsageError(
            f"--cond: {source.description} has no labels; conditional training needs a folder or zip with "
            "a dataset.json of labels (or a cache built from one)"
        )
    return Options(
        preset=preset,
        out=out,
        data=args.data,
        resume=args.resume,
        device=device,
        precision=precision,
        channels_last=args.channels_last,
        compile=args.compile,
        seed=args.seed,
        cond=args.cond,
        no_growing=args.no_growing,
        crop=args.crop,
        upscale=args.upscale,
        bad_images=args.bad_images,
        stop_signals=stop_signals,
        max_bad_steps=args.max_bad_steps,
        max_rollbacks=args.max_rollbacks,
        metrics=metrics,
        metric_samples=args.metric_samples,
        metric_ticks=args.metric_ticks,
        inception_weights=args.inception_weights,
        data_workers=args.data_workers,
        dist=dist,
        source=source,
    )


def _check_out(out: Path) -> None:
    """`--out` must be a folder or creatable as one: no file at it or at any of its parents."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file" if path == out else f"cannot be created: {path} is a file"
                raise UsageError(f"--out: {out} {what}; expected a run folder (new, or one to resume)")
            return


# ------------------------------------------------------------------------------------------------ data
def open_dataset(opts: Options) -> MultiResDataset:
    """The multi-resolution cache for `--data`, built into `<out>/dataset` on first use (announced first)."""
    res = opts.preset.resolution
    spec = opts.data
    assert opts.source is not None
    if opts.source.kind == "cache":
        path = Path(spec)
        return _check_dataset(MultiResDataset(path), opts, path)
    cache = opts.out / "dataset"
    if opts.dist.is_main and not (cache / "meta.json").is_file():
        if opts.source.kind == "synthetic":
            print(
                f"note: --data {spec} is progrow's built-in demo set (drawn shapes), for trying the tool; "
                "pass --data with your images (a folder, a zip, or a `progrow dataset` cache) for real training",
                flush=True,
            )
        build_cache(
            spec, cache, resolution=res, crop=opts.crop, upscale=opts.upscale, bad_images=opts.bad_images, on_plan=_announce
        )
    barrier(opts.dist)  # the other ranks wait for rank 0's cache
    dataset = MultiResDataset(cache)
    with open_source(spec) as src:
        if dataset.source != src.description:
            raise UsageError(f"--data: {opts.out} was trained on {dataset.source}, not {src.description}; use another --out")
    return _check_dataset(dataset, opts, cache)


def _announce(plan: CachePlan) -> None:
    print(f"dataset: {plan.describe()}", flush=True)


def _check_dataset(ds: MultiResDataset, opts: Options, path: Path) -> MultiResDataset:
    needed = opts.preset.schedule.resolutions
    missing = [r for r in needed if r not in ds.resolutions]
    if missing:
        raise UsageError(f"--data: {path} has levels {tuple(ds.resolutions)}, the preset needs {needed} (missing {missing})")
    if opts.cond and ds.labels is None:
        raise UsageError(f"--cond: {path} has no labels (a StyleGAN2-ADA zip with dataset.json provides them)")
    return ds


# --------------------------------------------------------------------------------------------- the run
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
    label_pool: torch.Tensor | None = None  # every real label, to draw labels for fakes
    tick: int = 0
    next_tick_nimg: int = 0
    skipped_steps: int = 0
    stopped_by: int | None = None  # the signal that ended training early, if any
    last_step_ok: bool = True  # False when the last step skipped an update (non-finite gradients)
    bad_streak: int = 0  # consecutive skipped steps
    rollbacks: int = 0  # rollbacks to the last good checkpoint in this process
    G_forward: Callable[..., torch.Tensor] | None = None


def build_run(opts: Options, dataset: MultiResDataset) -> Run:
    p = opts.preset
    torch.manual_seed(opts.seed)  # the same initial weights on every rank
    num_classes = int(dataset.labels.max()) + 1 if opts.cond and dataset.labels is not None else 0
    net_g = ProGANGenerator(
        resolution=p.resolution, latent_dim=p.latent_dim, num_classes=num_classes, fmap_base=p.fmap_base, fmap_max=p.fmap_max
    )
    net_d = ProGANDiscriminator(
        resolution=p.resolution,
        num_classes=num_classes,
        fmap_base=p.fmap_base,
        fmap_max=p.fmap_max,
        mbstd_group_size=p.mbstd_group_size,
    )
    G = pg.ProgressiveGenerator(net_g, img_channels=dataset.num_channels).to(opts.device)
    D = pg.ProgressiveDiscriminator(net_d, img_channels=dataset.num_channels).to(opts.device)
    if opts.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    broadcast_module(G, opts.dist)
    broadcast_module(D, opts.dist)
    ema = pg.EMA(G, beta=p.ema_beta)
    opt_g = make_adam(G.parameters(), lr=p.schedule.lr, betas=p.adam_betas, eps=p.adam_eps)
    opt_d = make_adam(D.parameters(), lr=p.schedule.lr, betas=p.adam_betas, eps=p.adam_eps)
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
    torch.manual_seed(opts.seed * 1_000_003 + 1 + opts.dist.rank)  # latents differ between ranks
    run = Run(opts, G, D, ema, opt_g, opt_d, scaler, scheduler, sampler, num_classes)
    if num_classes:
        run.label_pool = torch.as_tensor(dataset.labels, dtype=torch.long)
    run.G_forward = torch.compile(G) if opts.compile else G
    # Wrappers follow the scheduler's state; optimizers get its learning rate and its reset policy.
    pg.bind(scheduler, G, D, ema.module, opt_g, opt_d)
    return run


def checkpoint_payload(run: Run, rng: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "identity": run.opts.identity(),
        "data": None if run.opts.source is None else run.opts.source.identity,
        "architecture": {"generator": generator_kwargs(run.opts.preset, run.num_classes), "img_channels": run.G.img_channels},
        "nimg": run.scheduler.nimg,
        "G": run.G.state_dict(),
        "D": run.D.state_dict(),
        "G_ema": run.ema.state_dict(),
        "opt_g": run.opt_g.state_dict(),
        "opt_d": run.opt_d.state_dict(),
        "scaler": run.scaler.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "sampler": run.sampler.state_dict(),
        "rng": rng,  # one entry per rank
        "progress": {"tick": run.tick, "next_tick_nimg": run.next_tick_nimg, "skipped_steps": run.skipped_steps},
    }


def check_resumable(payload: dict[str, Any], opts: Options, path: Path) -> None:
    """Refuse a checkpoint from another preset or set-up, naming the differing keys (before any model exists)."""
    if payload.get("format") != FORMAT:
        raise UsageError(
            f"--resume: {path} is not a ProGAN training checkpoint (format {payload.get('format')!r}, expected {FORMAT!r})"
        )
    saved, now = payload.get("identity", {}), opts.identity()
    diffs = sorted(_differences(saved, now))
    if diffs:
        raise UsageError(
            f"--resume: {path} was made with a different configuration; differing keys: {', '.join(diffs)}. "
            "Use the same --preset and options, or another --out"
        )
    saved_data = payload.get("data")
    if isinstance(saved_data, dict) and opts.source is not None and not same_source(saved_data, opts.source.identity):
        raise UsageError(
            f"--data: {path} was trained on {describe_source(saved_data)}, but --data {opts.data} is "
            f"{opts.source.description}; resume with the same data, or start a new run with another --out"
        )


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def restore(run: Run, payload: dict[str, Any]) -> None:
    run.G.load_state_dict(payload["G"])
    run.D.load_state_dict(payload["D"])
    run.ema.load_state_dict(payload["G_ema"])
    run.opt_g.load_state_dict(payload["opt_g"])
    run.opt_d.load_state_dict(payload["opt_d"])
    run.scaler.load_state_dict(payload["scaler"])
    run.scheduler.load_state_dict(payload["scheduler"], strict=False)  # check_resumable compared all but --kimg
    run.sampler.load_state_dict(payload["sampler"])
    progress = payload["progress"]
    run.tick, run.next_tick_nimg, run.skipped_steps = progress["tick"], progress["next_tick_nimg"], progress["skipped_steps"]
    rng = payload["rng"]
    if len(rng) == run.opts.dist.world_size:  # a different number of ranks cannot continue their streams
        restore_rng_state(rng[run.opts.dist.rank])


def find_resume(opts: Options) -> tuple[Path, dict[str, Any]] | None:
    if opts.resume == "none":
        return None
    if opts.resume != "auto":
        path = Path(opts.resume)
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            raise UsageError(f"--resume: {exc}") from None
    return latest_checkpoint(opts.out / "checkpoints")


# ----------------------------------------------------------------------------------------- one step
def _autocast(opts: Options) -> contextlib.AbstractContextManager:
    if opts.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if opts.precision == "bf16" else torch.float16
    return torch.autocast(device_type=opts.device.type, dtype=dtype)


def _d_loss(run: Run, critic: Callable, reals: torch.Tensor, fakes: torch.Tensor) -> pg.LossOutput:
    p = run.opts.preset
    if p.loss == "wgan-gp":
        return pg.wgan_gp_d_loss(critic, reals, fakes, gp_weight=p.gp_weight, drift_weight=p.drift_weight)
    if p.loss == "lsgan":
        return pg.lsgan_d_loss(critic, reals, fakes)
    return pg.logistic_d_loss(critic, reals, fakes, r1_gamma=p.r1_gamma)


def _g_loss(run: Run, scores: torch.Tensor) -> pg.LossOutput:
    loss = run.opts.preset.loss
    if loss == "wgan-gp":
        return pg.wgan_g_loss(scores)
    if loss == "lsgan":
        return pg.lsgan_g_loss(scores)
    return pg.logistic_g_loss(scores)


def _optimizer_step(run: Run, loss: torch.Tensor, params: list[torch.nn.Parameter], opt: torch.optim.Optimizer) -> bool:
    """Backward, average over ranks, step. Non-finite gradients skip the update (on every rank alike, as the
    averaged gradients are equal everywhere); with fp16 the GradScaler does this itself. True if applied."""
    opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    all_reduce_grads(params, run.opts.dist)
    if run.scaler.is_enabled():
        run.scaler.step(opt)
        return True
    grads = [p.grad for p in params if p.grad is not None]
    finite = bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()) if grads else True
    if finite:
        opt.step()
    else:
        opt.zero_grad(set_to_none=True)
    return finite


def _batch_at(scheduler: pg.ProgressiveScheduler, nimg: int) -> tuple[int, int]:
    state = scheduler.state_at(nimg)
    assert state.batch_size is not None  # every preset's schedule has batch sizes
    return state.resolution, state.batch_size


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


def train_step(run: Run, state: pg.GrowthState) -> dict[str, torch.Tensor]:
    """One discriminator and one generator update at `state` (the wrappers are bound to it); detached losses."""
    opts, p = run.opts, run.opts.preset
    assert state.batch_size is not None  # every preset's schedule has batch sizes
    n = state.batch_size // opts.dist.world_size
    images, real_labels = run.sampler.next_batch(state.resolution, state.batch_size, device=opts.device)
    reals = pg.fade_reals(to_float(images), state)
    if opts.channels_last:
        reals = reals.contiguous(memory_format=torch.channels_last)
    G, D = run.G_forward, run.D
    assert G is not None

    def fake_labels() -> torch.Tensor | None:
        if not run.num_classes:
            return None
        assert run.label_pool is not None
        return run.label_pool[torch.randint(len(run.label_pool), (n,))].to(opts.device)

    def generate(labels: torch.Tensor | None) -> torch.Tensor:
        z = torch.randn(n, p.latent_dim, device=opts.device)
        return G(z) if labels is None else G(z, labels=labels)

    # Discriminator: no generator graph, no generator gradients.
    run.G.requires_grad_(False)
    with _autocast(opts):
        labels = fake_labels()
        with torch.no_grad():
            fakes = generate(labels)
        d_out = _d_loss(run, lambda x: D(x)[:, :1], reals, fakes)
        d_loss = d_out.loss
        if run.num_classes:  # auxiliary classifier on reals and fakes, as the official conditional loss
            assert labels is not None and real_labels is not None
            d_loss = (
                d_loss + F.cross_entropy(D(reals)[:, 1:].float(), real_labels) + F.cross_entropy(D(fakes)[:, 1:].float(), labels)
            )
    d_ok = _optimizer_step(run, d_loss, list(D.parameters()), run.opt_d)
    run.G.requires_grad_(True)

    # Generator: no discriminator weight gradients.
    D.requires_grad_(False)
    with _autocast(opts):
        labels = fake_labels()
        scores = D(generate(labels))
        g_out = _g_loss(run, scores[:, :1])
        g_loss = g_out.loss
        if run.num_classes:
            assert labels is not None
            g_loss = g_loss + F.cross_entropy(scores[:, 1:].float(), labels)
    g_ok = _optimizer_step(run, g_loss, list(run.G.parameters()), run.opt_g)
    D.requires_grad_(True)
    run.scaler.update()
    run.ema.update(run.G)
    run.last_step_ok = d_ok and g_ok
    if not run.last_step_ok:
        run.skipped_steps += 1
    stats = {f"d_{k}": v for k, v in d_out.terms.items()}
    stats.update(d_loss=d_loss.detach(), g_loss=g_loss.detach())
    return stats


# ------------------------------------------------------------------------------------- bookkeeping
def save_grid(run: Run, path: Path, latents: torch.Tensor, grid_labels: torch.Tensor | None) -> None:
    """G_ema samples from fixed latents, at its bound state, as one PNG; each image enlarged (nearest) to ≥ 64 px."""
    from PIL import Image

    G_ema = run.ema.module
    with torch.no_grad():
        kw = {"labels": grid_labels} if grid_labels is not None else {}
        images = G_ema(latents, **kw).float().cpu()
    scale = max(1, 64 // images.shape[-1])
    if scale > 1:
        images = F.interpolate(images, scale_factor=float(scale), mode="nearest")
    images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = images.shape
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = torch.zeros(c, rows * h, cols * w, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[:, r * h : (r + 1) * h, col * w : (col + 1) * w] = images[i]
    array = grid.permute(1, 2, 0).numpy()
    mode = "L" if c == 1 else "RGB"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[:, :, 0] if c == 1 else array, mode=mode).save(path)


def _weights_finite(run: Run) -> bool:
    tensors: list[torch.Tensor] = [t for m in (run.G, run.D, run.ema.module) for t in m.parameters()]
    return bool(torch.stack(torch._foreach_norm(tensors)).isfinite().all())


def rollback(run: Run) -> None:
    """Return to the newest good checkpoint after persistent non-finite gradients; raise `Diverged` past the limit."""
    run.rollbacks += 1
    if run.rollbacks > run.opts.max_rollbacks:
        raise Diverged(
            f"{run.opts.max_bad_steps} consecutive non-finite steps after {run.opts.max_rollbacks} rollbacks "
            f"(at {run.scheduler.nimg / 1000:.3f} kimg); lower the learning rate or check the data"
        )
    found = latest_checkpoint(run.opts.out / "checkpoints")
    if found is None:
        raise Diverged(
            f"{run.opts.max_bad_steps} consecutive non-finite steps at {run.scheduler.nimg / 1000:.3f} kimg "
            "and no checkpoint to roll back to"
        )
    restore(run, found[1])
    torch.manual_seed(run.opts.seed * 1_000_003 + 7919 * run.rollbacks + run.opts.dist.rank)  # other latents this time
    run.bad_streak = 0
    if run.opts.dist.is_main:
        print(f"warning: rolled back to {found[0]} ({run.rollbacks}/{run.opts.max_rollbacks})", file=sys.stderr, flush=True)


def write_checkpoint(run: Run) -> Path | None:
    """Checkpoint on rank 0, with every rank's RNG state (a collective: all ranks call it at the same step)."""
    rng = gather_objects(capture_rng_state(), run.opts.dist)
    if not run.opts.dist.is_main:
        return None
    if not _weights_finite(run):
        print(f"warning: non-finite weights at {run.scheduler.nimg} images; checkpoint not written", file=sys.stderr, flush=True)
        return None
    directory = run.opts.out / "checkpoints"
    path = save_checkpoint(checkpoint_payload(run, rng), checkpoint_path(directory, run.scheduler.nimg))
    prune_checkpoints(directory, keep=run.opts.preset.keep_checkpoints)
    return path


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


def _truncate_log(path: Path, nimg: int) -> None:
    """Drop log records written after the checkpoint being resumed (a killed run logs ticks it never saved)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if round(json.loads(line)["kimg"] * 1000) <= nimg:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by the kill
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    tmp.replace(path)


def train(opts: Options, dataset: MultiResDataset, resume: tuple[Path, dict[str, Any]] | None) -> Run:
    run = build_run(opts, dataset)
    main_rank = opts.dist.is_main
    if resume is not None:
        restore(run, resume[1])
        if main_rank:
            _truncate_log(opts.out / "log.jsonl", run.scheduler.nimg)
            print(f"resumed from {resume[0]} at {run.scheduler.nimg / 1000:.3f} kimg", flush=True)
    elif main_rank:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "config.json").write_text(
            json.dumps({"identity": opts.identity(), "data": opts.data, "seed": opts.seed}, indent=2)
        )

    p = opts.preset
    grid_gen = torch.Generator().manual_seed(opts.seed)
    grid_latents = torch.randn(p.grid_size, p.latent_dim, generator=grid_gen).to(opts.device)
    grid_labels = (torch.arange(p.grid_size) % run.num_classes).to(opts.device) if run.num_classes else None
    sched = run.scheduler
    bar = _progress_bar(run)
    log = (opts.out / "log.jsonl").open("a") if main_rank else None
    started, tick_start_nimg, tick_start_time = time.perf_counter(), sched.nimg, time.perf_counter()
    stats: dict[str, torch.Tensor] = {}
    stop = StopSignals(opts.stop_signals)
    warned_plots = False
    try:
        stop.__enter__()
        while not sched.done:
            state = sched.state
            if run.next_tick_nimg == 0:
                run.next_tick_nimg = int(p.tick_kimg_at(state.resolution) * 1000)
            stats = train_step(run, state)
            run.bad_streak = 0 if run.last_step_ok else run.bad_streak + 1
            new = sched.advance(state.batch_size)  # the bound wrappers and optimizers follow
            if run.bad_streak >= opts.max_bad_steps:
                rollback(run)
                bar.n = sched.nimg
                tick_start_nimg, tick_start_time = sched.nimg, time.perf_counter()
                continue
            bar.update(new.nimg - state.nimg)
            stage_end = new.stage != state.stage
            if new.nimg >= run.next_tick_nimg or stage_end or sched.done:
                run.tick += 1
                now = time.perf_counter()
                rate = (new.nimg - tick_start_nimg) / max(now - tick_start_time, 1e-9)
                tick_start_nimg, tick_start_time = new.nimg, now
                run.next_tick_nimg = new.nimg + int(p.tick_kimg_at(new.resolution) * 1000)
                record = {
                    "tick": run.tick,
                    "kimg": round(new.kimg, 3),
                    "stage": state.stage,
                    "resolution": state.resolution,
                    "phase": state.phase,
                    "alpha": round(state.alpha, 5),
                    "batch_size": state.batch_size,
                    "lr": state.lr,
                    "img_per_s": round(rate, 2),
                    "seconds": round(now - started, 2),
                    "skipped_steps": run.skipped_steps,
                    **{k: round(float(v), 5) for k, v in stats.items()},
                }
                bar.set_postfix_str(
                    f"{state.resolution}² {state.phase} α={state.alpha:.2f} "
                    f"d={record['d_loss']:.3f} g={record['g_loss']:.3f} {rate:.0f} img/s",
                    refresh=False,
                )
                metrics_due = opts.metrics and (
                    stage_end or sched.done or (opts.metric_ticks and run.tick % opts.metric_ticks == 0)
                )
                if main_rank and metrics_due:
                    record.update(evaluate_metrics(run, state, dataset))
                if main_rank:
                    assert log is not None
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    if bar.disable:
                        print(" ".join(f"{k}={v}" for k, v in record.items()), flush=True)
                    save_grid(run, opts.out / "grids" / f"grid-{new.nimg:09d}.png", grid_latents, grid_labels)
                    if metrics_due and plot_metrics(opts.out / "log.jsonl", opts.out / "plots") is None and not warned_plots:
                        print(
                            "notice: matplotlib is not installed, so no metric plots (pip install 'progrow-gan[plots]')",
                            flush=True,
                        )
                        warned_plots = True
                if stage_end or sched.done or run.tick % p.checkpoint_ticks == 0:
                    write_checkpoint(run)
            signum = any_rank(stop.received or 0, opts.dist, opts.device)  # every rank stops at the same step
            if signum:
                run.stopped_by = signum
                path = write_checkpoint(run)
                if main_rank:
                    print(f"stopped by signal {signum} at {sched.nimg / 1000:.3f} kimg; checkpoint {path}", flush=True)
                return run
    finally:
        stop.__exit__()
        run.sampler.close()
        bar.close()
        if log is not None:
            log.close()
    if main_rank:
        export_generator(
            run.ema.module,
            opts.out / "generator",
            preset=p,
            num_classes=run.num_classes,
            img_channels=dataset.num_channels,
            state=sched.state,
        )
        print(f"done: {sched.nimg / 1000:.3f} kimg; G_ema exported to {opts.out / 'generator.safetensors'}", flush=True)
    return run


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m progrow.adapters.progan.train") -> int:
    """Entry point of `python -m progrow.adapters.progan.train` and `progrow train`; returns the exit code.

    Bad input, unusable data and failed writes (a full disk) end with one `error:` line and exit code 2;
    a run folder this invocation created and left empty is removed again.
    """
    args = build_parser(prog).parse_args(argv)
    out: Path | None = None
    created = False
    try:
        dist = init_distributed(
            "cuda" if (args.device or "").startswith("cuda") or (args.device is None and torch.cuda.is_available()) else "cpu"
        )
        opts = resolve_options(args, dist)
        out, created = opts.out, not opts.out.exists()
        resume = find_resume(opts)
        if resume is not None:
            check_resumable(resume[1], opts, resume[0])
        dataset = open_dataset(opts)
        run = train(opts, dataset, resume)
    except (UsageError, DataError, CheckpointError) as exc:
        return _fail(f"error: {exc}", out if created else None)
    except OSError as exc:  # a write in the run folder failed (a full disk, a file size limit, permissions)
        where = exc.filename or out
        return _fail(f"error: could not write {where}: {exc.strerror or exc}", out if created else None)
    except KeyboardInterrupt:
        return _fail("error: interrupted", out if created else None, code=130)
    except Diverged as exc:
        print(f"error: training diverged: {exc}", file=sys.stderr)
        return 3
    return 0 if run.stopped_by is None else 128 + run.stopped_by


def _fail(message: str, created: Path | None, *, code: int = 2) -> int:
    """Print `message` on stderr, remove the run folder `created` by this invocation if it holds no file; `code`."""
    print(message, file=sys.stderr, flush=True)
    if created is not None:
        remove_empty_tree(created)
    return code


if __name__ == "__main__":
    sys.exit(main())
