"""Checkpoints of a run: the payload, the compatibility check, restore, rollback after divergence, log truncation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from progrow import ScheduleConfig
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

from .data_source import describe_source, same_source
from .distributed import gather_objects
from .export import discriminator_kwargs, generator_kwargs
from .options import Options, UsageError
from .run import Run, seed_latents

__all__ = [
    "FORMAT",
    "Diverged",
    "Resume",
    "find_resume",
    "check_resumable",
    "begin",
    "restore",
    "rollback",
    "write_checkpoint",
    "stop_with_checkpoint",
]

FORMAT = "progrow.progan/1"
# A checkpoint to continue from: its path and its loaded payload.
Resume = tuple[Path, dict[str, Any]]


class Diverged(Exception):
    """Training kept producing non-finite gradients through every allowed rollback (exit code 3)."""


def find_resume(opts: Options) -> Resume | None:
    """The checkpoint `--resume` names: none, the newest valid one in `<out>/checkpoints` (auto), or a file."""
    if opts.resume == "none":
        return None
    if opts.resume != "auto":
        path = Path(opts.resume)
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            raise UsageError(f"--resume: {exc}") from None
    return latest_checkpoint(opts.out / "checkpoints")


def check_resumable(payload: dict[str, Any], opts: Options, path: Path) -> None:
    """Refuse a checkpoint from another preset or set-up, naming the differing keys (before any model exists)."""
    if payload.get("format") != FORMAT:
        raise UsageError(
            f"--resume: {path} is not a ProGAN training checkpoint (format {payload.get('format')!r}, expected {FORMAT!r})"
        )
    diffs = sorted(_differences(_comparable(payload.get("identity", {})), _comparable(opts.identity())))
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


def _comparable(identity: Any) -> Any:
    """`identity` without the length of the final resolution's stable phase, which only decides where a run ends.

    The last stable phase is open (it lasts until `--kimg`, which is not part of the identity either), so a
    preset whose final stable phase got longer or shorter trains the same run up to its new end. The other
    resolutions' stable lengths are written out per resolution (`stable_kimg_per_res.16`), whether they come
    from `stable_kimg` or an override, so a change of `stable_kimg` that reaches them is still refused.
    An identity this cannot read is compared as it is.
    """
    try:
        preset = identity["preset"]
        fields = dict(preset["schedule"])  # `Options.identity` has already left out total_kimg
        schedule = ScheduleConfig.from_dict(fields)
    except (KeyError, TypeError, ValueError, AttributeError):
        return identity
    fields.pop("stable_kimg", None)
    fields["stable_kimg_per_res"] = {str(r): schedule.stable_kimg_at(r) for r in schedule.resolutions[:-1]}
    return {**identity, "preset": {**preset, "schedule": fields}}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def begin(run: Run, resume: Resume | None) -> None:
    """Continue from `resume` (dropping the log records written after it), or start the run folder's config.json
    (and its log: a run killed before its first checkpoint leaves records that this one will write again)."""
    opts = run.opts
    if resume is not None:
        restore(run, resume[1])
        if opts.dist.is_main:
            _truncate_log(opts.out / "log.jsonl", run.scheduler.nimg)
            print(f"resumed from {resume[0]} at {run.scheduler.nimg / 1000:.3f} kimg", flush=True)
    elif opts.dist.is_main:
        opts.out.mkdir(parents=True, exist_ok=True)
        _truncate_log(opts.out / "log.jsonl", 0)
        config: dict[str, Any] = {"identity": opts.identity(), "data": opts.data, "seed": opts.seed}
        if opts.batch_plan is not None:  # --batch-memory: the plan the batch table came from
            config["batch_plan"] = opts.batch_plan
        (opts.out / "config.json").write_text(json.dumps(config, indent=2))


def checkpoint_payload(run: Run, rng: list[dict[str, Any]]) -> dict[str, Any]:
    """What a checkpoint holds: the identity to check on resume, every state of the run, every rank's RNG."""
    return {
        "format": FORMAT,
        "identity": run.opts.identity(),
        "data": None if run.opts.source is None else run.opts.source.identity,
        "architecture": {
            "generator": generator_kwargs(run.opts.preset, run.num_classes),
            "discriminator": discriminator_kwargs(run.opts.preset, run.num_classes),
            "img_channels": run.G.img_channels,
        },
        "nimg": run.scheduler.nimg,
        "G": run.G.state_dict(),
        "D": run.D.state_dict(),
        "G_ema": run.ema.state_dict(),
        "opt_g": run.opt_g.state_dict(),
        "opt_d": run.opt_d.state_dict(),
        "scaler": run.scaler.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "sampler": run.sampler.state_dict(),
        "anchor": None if run.anchor is None else run.anchor.state_dict(),  # the previous stage's G_ema (--stage-anchor)
        "rng": rng,  # one entry per rank
        "progress": {
            "tick": run.tick,
            "next_tick_nimg": run.next_tick_nimg,
            "skipped_steps": run.skipped_steps,
            "d_steps": run.d_steps,
            "d_terms": {k: float(v) for k, v in run.d_terms.items()},
        },
        "batch_plan": run.opts.batch_plan,  # --batch-memory's plan (None without it), kept on resume
    }


def restore(run: Run, payload: dict[str, Any]) -> None:
    """Load a checkpoint payload into `run`: weights, optimizers, scaler, schedule position, data order, RNG."""
    run.G.load_state_dict(payload["G"])
    run.D.load_state_dict(payload["D"])
    run.ema.load_state_dict(payload["G_ema"])
    run.opt_g.load_state_dict(payload["opt_g"])
    run.opt_d.load_state_dict(payload["opt_d"])
    run.scaler.load_state_dict(payload["scaler"])
    run.scheduler.load_state_dict(payload["scheduler"], strict=False)  # check_resumable compared all but --kimg
    run.sampler.load_state_dict(payload["sampler"])
    if run.anchor is not None and payload.get("anchor") is not None:  # the identity says both runs anchor alike
        run.anchor.load_state_dict(payload["anchor"])
    progress = payload["progress"]
    run.tick, run.next_tick_nimg, run.skipped_steps = progress["tick"], progress["next_tick_nimg"], progress["skipped_steps"]
    run.d_steps = int(progress.get("d_steps", 0))  # checkpoints made before lazy R1 lack it (their interval is 1)
    run.d_terms = {k: torch.tensor(v) for k, v in progress.get("d_terms", {}).items()}
    rng = payload["rng"]
    if len(rng) == run.opts.dist.world_size:  # a different number of ranks cannot continue their streams
        restore_rng_state(rng[run.opts.dist.rank])


def rollback(run: Run) -> None:
    """Return to the newest good checkpoint after persistent non-finite gradients; raise `Diverged` past the limit."""
    opts = run.opts
    run.rollbacks += 1
    if run.rollbacks > opts.max_rollbacks:
        raise Diverged(
            f"{opts.max_bad_steps} consecutive non-finite steps after {opts.max_rollbacks} rollbacks "
            f"(at {run.scheduler.nimg / 1000:.3f} kimg); lower the learning rate or check the data"
        )
    found = latest_checkpoint(opts.out / "checkpoints")
    if found is None:
        raise Diverged(
            f"{opts.max_bad_steps} consecutive non-finite steps at {run.scheduler.nimg / 1000:.3f} kimg "
            "and no checkpoint to roll back to"
        )
    restore(run, found[1])
    seed_latents(opts, rollbacks=run.rollbacks)  # other latents this time
    run.bad_streak = 0
    if opts.dist.is_main:
        print(f"warning: rolled back to {found[0]} ({run.rollbacks}/{opts.max_rollbacks})", file=sys.stderr, flush=True)


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


def stop_with_checkpoint(run: Run, signum: int) -> None:
    """End training early because of signal `signum`: a checkpoint of this step, and where it is."""
    run.stopped_by = signum
    path = write_checkpoint(run)
    if run.opts.dist.is_main:
        print(f"stopped by signal {signum} at {run.scheduler.nimg / 1000:.3f} kimg; checkpoint {path}", flush=True)


def _weights_finite(run: Run) -> bool:
    tensors: list[torch.Tensor] = [t for m in (run.G, run.D, run.ema.module) for t in m.parameters()]
    return bool(torch.stack(torch._foreach_norm(tensors)).isfinite().all())


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
