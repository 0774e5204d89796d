"""Train the reference ProGAN.

    python -m progrow.adapters.progan.train --preset cpu-demo --out runs/demo          # CPU, minutes
    torchrun --nproc_per_node 8 -m progrow.adapters.progan.train --preset paper-1024 \
        --data /data/celeba-hq --out runs/celebahq --precision bf16                     # 8 GPUs

A second invocation with the same `--out` resumes from its newest checkpoint. Files written to `--out`:
`log.jsonl` (one line per tick), `grids/` (G_ema samples from fixed latents at every tick),
`plots/losses.png` (D and G losses against kimg, redrawn at every tick; metric plots beside it),
`tensorboard/` (TensorBoard event files, when the package is installed), `checkpoints/` (every N ticks and
at every stage end), `config.json`, and at the end `generator.safetensors` + `generator.json` (the G_ema export).

The script reads top to bottom: `main` → `resolve_options` (options.py: the command line) → `run_training`
(resume.py: which checkpoint; dataset.py: the data cache) → `train`: `build_run` (run.py: networks, EMA,
optimizers, schedule, sampler), then the loop of `train_step` (step.py: one D + G update, the losses of
losses.py) and `Reporter.after_step` (report.py: what happens at a tick).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import torch

from progrow.checkpoint import CheckpointError
from progrow.data import DataError, MultiResDataset

from .dataset import open_dataset
from .distributed import any_rank, init_distributed
from .export import export_generator
from .options import Options, UsageError, build_parser, resolve_options
from .plan import plan_for_run, with_recorded_plan
from .report import Reporter
from .resume import Diverged, Resume, begin, check_resumable, find_resume, rollback, stop_with_checkpoint
from .run import Run, build_run, class_count, make_adam
from .rundir import remove_empty_tree
from .signals import StopSignals
from .step import train_step
from .warm_stage import begins_fade, warm_start_stage

# The pieces the script is made of, for programs that drive a run themselves (benchmarks, tests).
__all__ = [
    "main",
    "train",
    "run_training",
    "build_parser",
    "resolve_options",
    "UsageError",
    "Options",
    "Run",
    "build_run",
    "make_adam",
    "train_step",
    "open_dataset",
    "find_resume",
    "check_resumable",
    "init_distributed",
]


def train(opts: Options, dataset: MultiResDataset, resume: Resume | None) -> Run:
    """Train from `resume` (or from scratch) until the schedule ends or a stop signal; G_ema is exported at the end."""
    run = build_run(opts, dataset)
    begin(run, resume)  # restore the checkpoint, or start the run folder
    sched = run.scheduler
    with (
        StopSignals(opts.stop_signals) as stop,
        closing(run.sampler),
        Reporter(run, dataset, resumed=resume is not None) as report,
    ):
        while not sched.done:
            state = sched.state
            stats = train_step(run, state)
            new = sched.advance(state.batch_size)  # the bound wrappers and optimizers follow
            if run.bad_streak >= opts.max_bad_steps:
                rollback(run)  # to the newest good checkpoint, with other latents
                report.restart()
                continue
            if opts.preset.warm_start != "off" and begins_fade(state, new):
                warm_start_stage(run, new)  # before the stage-end checkpoint, which then holds the fitted layers
            report.after_step(state, new, stats)  # at a tick: log, grid, metrics, plots, checkpoint
            signum = any_rank(stop.received or 0, opts.dist, opts.device)  # every rank stops at the same step
            if signum:
                stop_with_checkpoint(run, signum)
                return run
    if opts.dist.is_main:
        export_generator(
            run.ema.module,
            opts.out / "generator",
            preset=opts.preset,
            num_classes=run.num_classes,
            img_channels=dataset.num_channels,
            state=sched.state,
        )
        print(f"done: {sched.nimg / 1000:.3f} kimg; G_ema exported to {opts.out / 'generator.safetensors'}", flush=True)
    return run


def run_training(opts: Options) -> Run:
    """Find the checkpoint to resume (refusing an incompatible one), open the data, plan the batch table
    (`--batch-memory`, a new run only), `train`."""
    resume = find_resume(opts)
    if resume is not None and opts.batch_memory is not None:
        opts = with_recorded_plan(opts, resume[1], resume[0])  # the table this run was planned with
    if resume is not None:
        check_resumable(resume[1], opts, resume[0])
    planning = resume is None and opts.batch_memory is not None
    channels = opts.source.num_channels if opts.source is not None else None
    if planning and channels is not None and not opts.cond:  # before the cache is built: a refused budget leaves nothing
        opts = plan_for_run(opts, img_channels=channels)
    dataset = open_dataset(opts)
    if planning and opts.batch_plan is None:
        opts = plan_for_run(opts, img_channels=dataset.num_channels, num_classes=class_count(opts, dataset))
    return train(opts, dataset, resume)


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m progrow.adapters.progan.train") -> int:
    """Entry point of `python -m progrow.adapters.progan.train` and `progrow train`; returns the exit code.

    Bad input, unusable data and failed writes (a full disk) end with one `error:` line and exit code 2;
    a run folder this invocation created and left empty is removed again.
    """
    args = build_parser(prog).parse_args(argv)
    out: Path | None = None
    created = False
    try:
        opts = resolve_options(args, init_distributed(_backend(args.device)))
        out, created = opts.out, not opts.out.exists()
        run = run_training(opts)
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


def _backend(device: str | None) -> str:
    """The device kind the ranks talk over: cuda for a CUDA `--device` (or none given, where CUDA is available)."""
    return "cuda" if (device or "").startswith("cuda") or (device is None and torch.cuda.is_available()) else "cpu"


def _fail(message: str, created: Path | None, *, code: int = 2) -> int:
    """Print `message` on stderr, remove the run folder `created` by this invocation if it holds no file; `code`."""
    print(message, file=sys.stderr, flush=True)
    if created is not None:
        remove_empty_tree(created)
    return code


if __name__ == "__main__":
    sys.exit(main())
