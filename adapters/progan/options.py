"""The training script's command line: the parser, the validated `Options`, and one small check per option."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

import progrow as pg
from progrow.data import DataError
from progrow.memory import SAFETY_MARGIN, parse_bytes
from progrow.metrics import METRICS
from progrow.metrics.inception import check_weights_file

from ..cli_help import HelpFormatter
from ..devices import cpu_bf16_is_fast, resolve_device
from .data_source import DataSource, inspect_data
from .distributed import DistInfo
from .presets import PRESETS, ProGANPreset, get_preset
from .signals import parse_signals

DEFAULT_MAX_BATCH = 1024  # the planner's cap (`--batch-memory`, `progrow plan`): a phase of 800 kimg is still 781 steps

__all__ = ["MAX_SEED", "Options", "Precision", "UsageError", "build_parser", "resolve_options"]

MAX_SEED = 2**32 - 1
Precision = Literal["fp32", "bf16", "fp16"]
S = TypeVar("S")
T = TypeVar("T")


class UsageError(Exception):
    """Bad command-line input, found before any model is built; printed without a traceback, exit code 2."""


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
        "cpu-demo (32², minutes on a CPU), cpu-demo-64 (the same with a 64² stage)",
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
        help="autocast precision; auto = bf16 on CUDA, fp32 on CPU; fp16 uses a GradScaler. On a CPU with AMX tiles "
        "(Intel Sapphire Rapids and later) bf16 trains faster than fp32 (benchmarks/cpu_step.py --bf16); on other CPUs "
        "it is slower, and fp16 is slower on every CPU",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels_last memory format of the networks and reals (default: on for a CPU, where the cpu-demo step "
        "is faster with it (benchmarks/cpu_step.py), off elsewhere; recent GPUs gain from it with bf16 / fp16)",
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
    p.add_argument(
        "--warm-start",
        default=None,
        choices=["off", "generator", "both"],
        help="before each fade, fit the new stage's layers to the previous stage (progrow.warm_start): G's new "
        "block + toRGB ('generator'), and D's new block + fromRGB too ('both') (default: the preset's; off in every preset)",
    )
    p.add_argument(
        "--warm-start-steps",
        type=int,
        default=None,
        help="Adam steps of each warm-start fit, at most as many as the fade has minibatches (default: the preset's, 200)",
    )
    p.add_argument(
        "--stage-anchor",
        type=float,
        default=None,
        metavar="WEIGHT",
        help="hold each stage's image, box-filtered to the previous resolution, to the previous stage's G_ema for the "
        "same latent (progrow.StageAnchor): WEIGHT × the MSE, added to G's loss; 0 = off, the paper "
        "(default: the preset's)",
    )
    p.add_argument(
        "--stage-anchor-levels",
        default=None,
        choices=["previous", "all"],
        help="the anchor's MSE at the previous resolution only, or summed over every coarser one (default: the preset's)",
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
        "--batch",
        default=None,
        help="minibatch over all ranks instead of the preset's table: N for every resolution, RES:N for one, "
        "e.g. 32 or 32,256:14,1024:4",
    )
    p.add_argument(
        "--batch-memory",
        default=None,
        help="plan the minibatch per resolution for this much memory per device (80GiB, 80GB = 8e10 bytes, or auto: "
        f"the device's free memory, available RAM on a CPU), less a {SAFETY_MARGIN * 100:.0f} %% margin, batches ≤ "
        f"{DEFAULT_MAX_BATCH}; recorded in config.json and kept on resume; not with --batch",
    )
    p.add_argument(
        "--tick-kimg",
        type=float,
        default=None,
        help="kimg between ticks (log line + grid); default: the preset's per-resolution table",
    )
    p.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="no TensorBoard event files in <out>/tensorboard (written when the tensorboard package is installed)",
    )
    return p


@dataclass
class Options:
    """The validated run description: the preset with command-line overrides applied."""

    preset: ProGANPreset
    out: Path
    data: str
    resume: str  # "auto", "none" or a checkpoint file
    device: torch.device
    precision: Precision
    channels_last: bool
    compile: bool
    seed: int
    cond: bool
    no_growing: bool
    crop: Literal["center", "none"] = "center"
    upscale: bool = False
    bad_images: Literal["error", "skip"] = "error"
    stop_signals: tuple[signal.Signals, ...] = ()
    max_bad_steps: int = 20
    max_rollbacks: int = 3
    metrics: tuple[str, ...] = ()
    metric_samples: int = 10_000
    metric_ticks: int = 0
    inception_weights: str | None = None
    data_workers: int = 0
    tensorboard: bool = True  # TensorBoard event files, when the package is installed
    dist: DistInfo = field(default_factory=DistInfo)
    source: DataSource | None = None  # what --data names, inspected before anything is built
    batch_memory: int | Literal["auto"] | None = None  # --batch-memory: bytes per device, or auto
    batch_plan: dict[str, Any] | None = None  # the plan the batch table came from (set when --batch-memory planned it)

    def identity(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed by this run (bookkeeping and `--kimg` may change)."""
        preset = self.preset.to_dict()
        preset["schedule"].pop("total_kimg")
        for bookkeeping in ("tick_kimg", "checkpoint_ticks", "keep_checkpoints", "grid_size"):
            preset.pop(bookkeeping)
        # Fields added later: at their defaults, checkpoints made before them still match.
        later_fields: tuple[tuple[str, Any], ...] = (
            ("g_padding", "zeros"),
            ("r1_interval", 1),
            ("warm_start", "off"),
            ("warm_start_steps", 200),
            ("stage_anchor", 0.0),
            ("stage_anchor_levels", "previous"),
            ("r1_gamma_per_res", {}),
        )
        for later, default in later_fields:
            if preset[later] == default:
                preset.pop(later)
        return {"preset": preset, "cond": self.cond, "no_growing": self.no_growing}


def resolve_options(args: argparse.Namespace, dist: DistInfo) -> Options:
    """Apply the command line to the preset and validate it all, option by option; raises `UsageError`."""
    batch_memory = _batch_memory(args.batch_memory, args.batch)
    preset = _preset(args, dist)
    device = _device(args.device, dist)
    precision = _precision(args.precision, device, dist)
    _in_range("seed", args.seed, 0, MAX_SEED)
    out = Path(args.out) if args.out else Path("runs") / preset.name
    _check_out(out)
    _in_range("max-bad-steps", args.max_bad_steps, 1)
    _in_range("max-rollbacks", args.max_rollbacks, 0)
    metrics = _metrics(args.metrics)
    _in_range("metric-samples", args.metric_samples, 2)
    _in_range("data-workers", args.data_workers, 0)
    _in_range("metric-ticks", args.metric_ticks, 0)
    _check_inception_weights(args.inception_weights)
    stop_signals = _parsed(parse_signals, args.stop_signals)
    _check_resume(args.resume, out)
    source = _source(args.data, cond=args.cond)
    return Options(
        preset=preset,
        out=out,
        data=args.data,
        resume=args.resume,
        device=device,
        precision=precision,
        channels_last=device.type == "cpu" if args.channels_last is None else args.channels_last,
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
        tensorboard=args.tensorboard,
        dist=dist,
        source=source,
        batch_memory=batch_memory,
    )


def _preset(args: argparse.Namespace, dist: DistInfo) -> ProGANPreset:
    """`--preset` with the schedule and bookkeeping options applied."""
    preset = get_preset(args.preset)
    schedule = _schedule(args, preset, dist)
    changes: dict[str, Any] = {"schedule": schedule}
    if args.no_growing and preset.r1_gamma_per_res:  # one stage: the final resolution's γ, as its lr and minibatch
        changes.update(r1_gamma=preset.r1_gamma_at(schedule.final_resolution), r1_gamma_per_res={})
    if args.mirror is not None:
        changes["mirror"] = args.mirror
    for name in ("checkpoint_ticks", "keep_checkpoints"):
        value = getattr(args, name)
        if value is not None:
            _in_range(name.replace("_", "-"), value, 1)
            changes[name] = value
    if args.warm_start is not None:
        changes["warm_start"] = args.warm_start
    if args.warm_start_steps is not None:
        _in_range("warm-start-steps", args.warm_start_steps, 1)
        changes["warm_start_steps"] = args.warm_start_steps
    if args.stage_anchor is not None:
        if not math.isfinite(args.stage_anchor) or args.stage_anchor < 0:
            raise UsageError(f"--stage-anchor: expected a finite number ≥ 0, got {args.stage_anchor}")
        changes["stage_anchor"] = args.stage_anchor
    if args.stage_anchor_levels is not None:
        changes["stage_anchor_levels"] = args.stage_anchor_levels
    if args.tick_kimg is not None:
        _positive("tick-kimg", args.tick_kimg)
        changes["tick_kimg"] = {r: args.tick_kimg for r in schedule.resolutions}
    return replace(preset, **changes)


def _schedule(args: argparse.Namespace, preset: ProGANPreset, dist: DistInfo) -> pg.ScheduleConfig:
    """The preset's schedule with `--phase-kimg`, `--no-growing`, `--kimg` and the number of ranks applied."""
    schedule = preset.schedule
    changes: dict[str, Any] = {}
    if args.phase_kimg is not None:
        _positive("phase-kimg", args.phase_kimg)
        changes.update(fade_kimg=args.phase_kimg, stable_kimg=args.phase_kimg, fade_kimg_per_res={}, stable_kimg_per_res={})
    if args.no_growing:  # the final resolution for as long as growing would have taken
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
    if args.batch is not None:
        changes.update(_batch_table(args.batch, schedule.replace(**changes)))
    if args.kimg is not None:
        _positive("kimg", args.kimg)
        changes["total_kimg"] = args.kimg
    if dist.world_size > 1:
        changes["batch_multiple"] = dist.world_size
    try:
        return schedule.replace(**changes)
    except ValueError as exc:
        hint = f" (with {dist.world_size} ranks every minibatch must split evenly)" if dist.world_size > 1 else ""
        raise UsageError(f"--preset {preset.name}: {exc}{hint}") from None


def _batch_table(spec: str, schedule: pg.ScheduleConfig) -> dict[str, Any]:
    """`--batch N[,RES:N…]` as ScheduleConfig changes: N replaces the whole table, RES:N sets one resolution."""
    changes: dict[str, Any] = {}
    table: dict[int, int] = dict(schedule.batch_size_per_res)
    for item in (part.strip() for part in spec.split(",")):
        res_text, _, n_text = item.rpartition(":")
        try:
            n = int(n_text)
            res = int(res_text) if res_text else None
        except ValueError:
            raise UsageError(f"--batch: cannot read {item!r}; expected N or RES:N, e.g. 32 or 32,256:14,1024:4") from None
        if n < 1:
            raise UsageError(f"--batch: expected a batch ≥ 1, got {item!r}")
        if res is None:
            changes["batch_size"] = n
            table = {}
        elif res not in schedule.resolutions:
            raise UsageError(f"--batch: {res} is not a resolution of the schedule ({', '.join(map(str, schedule.resolutions))})")
        else:
            table[res] = n
    changes["batch_size_per_res"] = table
    return changes


def _batch_memory(spec: str | None, batch: str | None) -> int | Literal["auto"] | None:
    """`--batch-memory`: bytes, `auto`, or None; refused together with `--batch` (an explicit table)."""
    if spec is None:
        return None
    if batch is not None:
        raise UsageError("--batch-memory: cannot be combined with --batch (an explicit batch table); give one of them")
    if spec.strip() == "auto":
        return "auto"
    return _parsed(lambda text: parse_bytes(text, option="--batch-memory"), spec)


def _device(spec: str | None, dist: DistInfo) -> torch.device:
    """`--device` (default: cuda when available); on CUDA, this rank's GPU unless an index is given."""
    device = _parsed(resolve_device, spec)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", dist.local_rank)
    return device


def _precision(spec: Literal["auto"] | Precision, device: torch.device, dist: DistInfo) -> Precision:
    """`--precision`, with auto = bf16 on CUDA and fp32 elsewhere; warns of half precision on a CPU where it is slow."""
    if spec == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if device.type == "cpu" and dist.is_main:
        if spec == "fp16":
            slow = "much slower than fp32 there (about 30× measured: no CPU kernels run fp16 fast)"
        elif spec == "bf16" and not cpu_bf16_is_fast():
            slow = (
                "slower than fp32 on a CPU without AMX tiles, as this one "
                "(about 0.9× as fast with bf16 instructions, 0.15× without)"
            )
        else:
            return spec  # bf16 on a CPU with AMX tiles: faster than fp32 (benchmarks/cpu_step.py --bf16)
        print(f"warning: --precision {spec} on a CPU is {slow}; it is meant for GPUs", file=sys.stderr, flush=True)
    return spec


def _check_out(out: Path) -> None:
    """`--out` must be a folder or creatable as one: no file at it or at any of its parents."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file" if path == out else f"cannot be created: {path} is a file"
                raise UsageError(f"--out: {out} {what}; expected a run folder (new, or one to resume)")
            return


def _metrics(spec: str) -> tuple[str, ...]:
    """`--metrics` as a tuple of known metric names."""
    metrics = tuple(m.strip() for m in spec.split(",") if m.strip())
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UsageError(f"--metrics: unknown metric(s) {', '.join(unknown)}; available: {', '.join(METRICS)}")
    return metrics


def _check_inception_weights(spec: str | None) -> None:
    """`--inception-weights`, when given, names a file that holds the InceptionV3 weights."""
    if spec is None:
        return
    weights = Path(spec)
    if not weights.is_file():
        what = " is a folder; expected the weights file" if weights.is_dir() else ": no such file"
        raise UsageError(f"--inception-weights: {weights}{what}")
    _parsed(lambda path: check_weights_file(path, option="--inception-weights"), weights)


def _check_resume(spec: str, out: Path) -> None:
    """`--resume` is auto, none (and `out` holds no checkpoint) or an existing checkpoint file."""
    if spec not in ("auto", "none") and not Path(spec).is_file():
        what = "is a folder, expected a checkpoint file" if Path(spec).is_dir() else "no such checkpoint file"
        raise UsageError(f"--resume: {spec}: {what} (or use 'auto' / 'none')")
    checkpoints = out / "checkpoints"
    if spec == "none" and checkpoints.is_dir() and any(checkpoints.iterdir()):
        raise UsageError(f"--resume none: {out} already holds checkpoints; choose another --out or resume")


def _source(spec: str, *, cond: bool) -> DataSource:
    """What `--data` names, inspected without decoding images; with `--cond` it must have labels."""
    try:
        source = inspect_data(spec)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    if cond and not source.has_labels:
        raise UsageError(
            f"--cond: {source.description} has no labels; conditional training needs a folder or zip with "
            "a dataset.json of labels (or a cache built from one)"
        )
    return source


def _in_range(option: str, value: int, minimum: int, maximum: int | None = None) -> None:
    """`--option` is an int ≥ `minimum` (and ≤ `maximum`)."""
    if maximum is not None and not minimum <= value <= maximum:
        raise UsageError(f"--{option}: expected an int in {minimum}..{maximum}, got {value}")
    if value < minimum:
        raise UsageError(f"--{option}: expected an int ≥ {minimum}, got {value}")


def _positive(option: str, value: float) -> None:
    """`--option` is a number > 0."""
    if not value > 0:
        raise UsageError(f"--{option}: expected a number > 0, got {value}")


def _parsed(parse: Callable[[S], T], spec: S) -> T:
    """`parse(spec)`, its `ValueError` turned into a `UsageError` with the same message."""
    try:
        return parse(spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
