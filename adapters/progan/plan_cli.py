"""`progrow plan`: the largest minibatch per resolution of a preset for a memory budget, counted on fake tensors.

    progrow plan --preset paper-1024 --memory 80GiB --precision bf16 --nproc 8

Prints, per resolution: the planned batch (over all ranks) and per rank, the counted peak of one rank's
training step, the preset's own batch for comparison, FLOPs per image of that step (counted with torch's
FLOP formulas), the images/s they allow at `--mfu` of `--peak-tflops` per GPU, and the schedule's
estimated wall-clock (Σ phases of images / that rate: a FLOP bound, no per-step overhead).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import progrow as pg
from progrow.memory import SAFETY_MARGIN, BatchPlan, BudgetError, CountingMeasure, format_bytes, free_memory, parse_bytes

from ..cli_help import HelpFormatter
from .options import DEFAULT_MAX_BATCH
from .plan import plan_preset, planning_options
from .presets import PRESETS, get_preset

__all__ = ["build_parser", "main", "format_plan"]

DEFAULT_MFU = 0.40  # as benchmarks/flops.py
DEFAULT_PEAK_TFLOPS = 989.0  # one H100 SXM5, dense bf16 (no sparsity)


class _Usage(Exception):
    """Bad input: one `error:` line, exit code 2."""


def build_parser(prog: str = "progrow plan") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Plan the largest minibatch per resolution whose training step fits a memory budget per GPU "
        "(counted on fake tensors: no memory of that size is needed here).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--preset", default="paper-1024", choices=sorted(PRESETS), help="networks, loss and schedule to plan")
    p.add_argument(
        "--memory",
        required=True,
        help="memory per GPU: 80GiB, 80GB (GB = 10⁹ bytes, GiB = 2³⁰), 512MiB, 8e10 (bytes), or 'auto' (this "
        "machine's available memory)",
    )
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"], help="autocast precision of the step")
    p.add_argument("--channels-last", action="store_true", help="plan a channels_last run")
    p.add_argument("--nproc", type=int, default=1, help="data-parallel ranks (GPUs); batches are multiples of it")
    p.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        help="cap on the batch over all ranks, 0 for none (at 1024 a phase of 800 kimg is still 781 steps; larger "
        "batches would want another learning rate)",
    )
    p.add_argument("--pow2", action="store_true", help="batches that are powers of two")
    p.add_argument(
        "--margin", type=float, default=SAFETY_MARGIN, help="share of the budget kept free for what the count cannot see"
    )
    p.add_argument("--mfu", type=float, default=DEFAULT_MFU, help="model FLOPs utilisation assumed for the images/s bound")
    p.add_argument(
        "--peak-tflops", type=float, default=DEFAULT_PEAK_TFLOPS, help="peak TFLOP/s of one GPU (989: H100 SXM5 dense bf16)"
    )
    p.add_argument("--json", default=None, help="also write the plan (every measurement) to this JSON file")
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = "progrow plan") -> int:
    """Entry point of `progrow plan`; returns the exit code (2 with one `error:` line on bad input)."""
    args = build_parser(prog).parse_args(argv)
    try:
        budget = _budget(args.memory)
        _check(args)
        start = time.perf_counter()
        opts = planning_options(get_preset(args.preset), precision=args.precision, channels_last=args.channels_last)
        plan, measure = plan_preset(
            opts,
            budget,
            ranks=args.nproc,
            max_batch=args.max_batch or None,
            pow2=args.pow2,
            margin=args.margin,
            fake=True,
        )
        seconds = time.perf_counter() - start
    except BudgetError as exc:
        print(f"error: --memory {args.memory}: {exc}", file=sys.stderr, flush=True)
        return 2
    except (_Usage, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    assert isinstance(measure, CountingMeasure)
    print(format_plan(plan, measure, args, seconds))
    if args.json is not None:
        record = plan.to_dict()
        record["flops_per_image"] = {str(r.resolution): _flops_per_image(measure, r.resolution, r.per_rank) for r in plan.rows}
        try:
            Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        except OSError as exc:
            print(f"error: --json: could not write {args.json}: {exc.strerror or exc}", file=sys.stderr, flush=True)
            return 2
    return 0


def _budget(spec: str) -> int:
    if spec == "auto":
        return free_memory("cpu")
    try:
        return parse_bytes(spec, option="--memory")
    except ValueError as exc:
        raise _Usage(str(exc)) from None


def _check(args: argparse.Namespace) -> None:
    if args.nproc < 1:
        raise _Usage(f"--nproc: expected an int ≥ 1, got {args.nproc}")
    if args.max_batch and args.max_batch < args.nproc or args.max_batch < 0:
        raise _Usage(f"--max-batch: expected 0 (none) or an int ≥ --nproc ({args.nproc}), got {args.max_batch}")
    if not 0 <= args.margin < 1:
        raise _Usage(f"--margin: expected a fraction in [0, 1), got {args.margin}")
    if not 0 < args.mfu <= 1:
        raise _Usage(f"--mfu: expected a fraction in (0, 1], got {args.mfu}")
    if not args.peak_tflops > 0:
        raise _Usage(f"--peak-tflops: expected a number > 0, got {args.peak_tflops}")
    if args.pow2 and args.nproc & (args.nproc - 1):
        raise _Usage(f"--pow2: the batch must also be a multiple of --nproc {args.nproc}, which no power of two is")
    if args.json is not None:
        target = Path(args.json)
        if target.is_dir() or not target.parent.is_dir():
            what = "is a folder" if target.is_dir() else f"{target.parent} is not a folder"
            raise _Usage(f"--json: {target} {what}; expected a file to write")


def _flops_per_image(measure: CountingMeasure, resolution: int, per_rank: int) -> float:
    return measure.counts[(resolution, per_rank)].flops / per_rank


def format_plan(plan: BatchPlan, measure: CountingMeasure, args: Any, seconds: float) -> str:
    """The table `progrow plan` prints."""
    preset = get_preset(args.preset)
    rate = args.mfu * args.peak_tflops * 1e12 * plan.ranks  # FLOP/s of all ranks together
    scheduler = pg.ProgressiveScheduler(plan.schedule)
    images = {r: 0 for r in plan.schedule.resolutions}
    for span in scheduler.phases:
        images[span.resolution] += scheduler.images_in(span)
    lines = [
        f"progrow plan: {plan.extra.get('preset')} at {args.precision}{', channels_last' if args.channels_last else ''}, "
        f"{plan.ranks} rank(s); budget {format_bytes(plan.budget_bytes)} per GPU ({plan.budget_bytes:,} bytes), usable "
        f"{format_bytes(plan.usable_bytes)} after the {plan.margin:.0%} safety margin; peaks {plan.method}",
        "",
    ]
    head = (
        f"{'res':>5} | {'batch':>7} | {'per rank':>8} | {'peak / rank':>11} | {'of usable':>9} | {'preset batch':>12} | "
        f"{'GFLOP/img':>9} | {'img/s bound':>11} | {'kimg':>6} | {'est. time':>9}"
    )
    lines += [head, "|".join("-" * len(c) for c in head.split("|"))]
    total_s = 0.0
    for row in plan.rows:
        flops = _flops_per_image(measure, row.resolution, row.per_rank)
        img_s = rate / flops if flops else float("inf")
        t = images[row.resolution] / img_s
        total_s += t
        batch = f"{row.batch_size}{'*' if row.capped else ''}"
        lines.append(
            f"{f'{row.resolution}²':>5} | {batch:>7} | {row.per_rank:>8} | {format_bytes(row.peak_bytes):>11} | "
            f"{row.peak_bytes / plan.usable_bytes:>9.1%} | {preset.schedule.batch_size_at(row.resolution):>12} | "
            f"{flops / 1e9:>9.2f} | {img_s:>11,.0f} | {images[row.resolution] / 1000:>6.0f} | {_hours(t):>9}"
        )
    lines += [
        "",
        f"Estimated wall-clock of the schedule: {_hours(total_s)} ({total_s / 86400:.2f} days) — a FLOP bound: "
        f"{args.mfu:.0%} MFU of {args.peak_tflops:g} TFLOP/s per GPU × {plan.ranks}, no per-step overhead.",
        "peak / rank: counted peak of one training step (D step with its penalty, G step, Adam states, G EMA, "
        "the data batch) at the per-rank batch; the next larger allowed batch does not fit. "
        + ("* capped by --max-batch. " if any(r.capped for r in plan.rows) else "")
        + f"Planned in {seconds:.1f} s.",
    ]
    return "\n".join(lines)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"
