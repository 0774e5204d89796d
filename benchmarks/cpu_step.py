"""The `cpu-demo` training step on a CPU: contiguous with R1 at every step, against channels_last, lazy R1, and both.

    python benchmarks/cpu_step.py              # every stage 4² → 32², fade and stable: about 5 minutes on 2 CPU cores
    python benchmarks/cpu_step.py --cond       # the conditional step (--cond) against the unconditional one
    python benchmarks/cpu_step.py --bf16       # bf16 autocast (--precision bf16) against fp32
    python benchmarks/cpu_step.py --quick      # a smoke run (seconds; too few rounds to judge)

Each variant is the training script's own run and step (`build_run`, `update`: `train_step` once the
minibatch is read) for the `cpu-demo` preset (logistic loss + R1 γ = 0.1, minibatch 32, 64 → 16 feature
maps), at each stage's state (fades at alpha 0.5):

- **baseline**: `--no-channels-last` and the preset with `r1_interval=1` (R1 at every step): the training
  script and `cpu-demo` before both became defaults;
- **channels_last**: networks and reals in the channels_last memory format (the script's CPU default);
- **lazy R1**: `r1_interval=4` (R1 on every 4th D step, weighted ×4; blocks hold a multiple of 4 steps);
- **both**: the two together, which is what `python -m progrow.adapters.progan.train --preset cpu-demo` runs on a CPU.

With `--cond`, two variants at those defaults instead: **unconditional** and **conditional** (`--cond`,
three classes: a one-hot label into G, class logits out of D and the auxiliary classifier's loss), and
the ratios are the other way round, the conditional step's cost (conditional time / unconditional
time): D runs once per batch in both, so the labels should cost little beside it.

With `--bf16`, **fp32** against **bf16** (`--precision bf16`: the step under bf16 autocast), both at the
defaults, ratios fp32 time / bf16 time. The header says whether this CPU has AMX tiles
(`progrow.adapters.devices.cpu_bf16_is_fast`), which decides whether the training script warns of
`--precision bf16` on a CPU: with AMX, oneDNN runs bf16 convolutions in the tiles and they beat fp32;
without, it uses slower bf16 instructions or none, and bf16 is slower than fp32.

The variants run interleaved in one process (A B C D, D C B A, …), one block of steps each per round;
ratios (baseline time / variant time) are taken within a round, median (min–max) over rounds. The last
table weights each stage's img/s by the images `cpu-demo` trains there (its phase lengths), which gives
the training-step share of the main job's CPU time per variant.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

import progrow as pg
from progrow.adapters.devices import cpu_bf16_is_fast
from progrow.adapters.progan.distributed import DistInfo
from progrow.adapters.progan.step import update
from progrow.adapters.progan.train import build_parser, build_run, resolve_options
from progrow.data import MultiResDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import fmt_ratio, interleave, machine_header, summary  # noqa: E402

# name: (channels_last, r1_interval, conditional, precision); the first of each set is the baseline of the ratios.
VARIANTS = {
    "baseline": (False, 1, False, "fp32"),
    "channels_last": (True, 1, False, "fp32"),
    "lazy R1": (False, 4, False, "fp32"),
    "both": (True, 4, False, "fp32"),
}
COND_VARIANTS = {"unconditional": (True, 4, False, "fp32"), "conditional": (True, 4, True, "fp32")}
BF16_VARIANTS = {"fp32": (True, 4, False, "fp32"), "bf16": (True, 4, False, "bf16")}
NUM_CLASSES = 3  # of the conditional variant's labels
MAX_COND_COST = 1.15  # --cond target: the conditional step at most this × the unconditional one
STAGES = [(4, 1.0)] + [(r, a) for r in (8, 16, 32) for a in (0.5, 1.0)]
STEPS_PER_BLOCK = {4: 48, 8: 16, 16: 8, 32: 4}  # about a second each; multiples of the lazy interval
QUICK_STEPS = 4  # steps per block of --quick


class Loop:
    """The training script's run for `cpu-demo`, its wrappers set to one stage's state; `block()` runs `steps` steps."""

    def __init__(
        self,
        work: Path,
        resolution: int,
        alpha: float,
        *,
        channels_last: bool,
        r1_interval: int,
        cond: bool,
        precision: str = "fp32",
        steps: int,
    ) -> None:
        cache = _cache(work, labelled=cond)
        argv = ["--preset", "cpu-demo", "--data", str(cache), "--out", str(work / "run"), "--device", "cpu"]
        argv += ["--precision", precision]
        argv.append("--channels-last" if channels_last else "--no-channels-last")
        if cond:
            argv.append("--cond")
        opts = resolve_options(build_parser().parse_args(argv), DistInfo())
        opts.preset = replace(opts.preset, r1_interval=r1_interval)
        self.run = build_run(opts, MultiResDataset(cache))
        batch = opts.preset.schedule.batch_size_at(resolution)
        self.state = pg.GrowthState(resolution, alpha=alpha, batch_size=batch, lr=opts.preset.schedule.lr_at(resolution))
        for module in (self.run.G, self.run.D, self.run.ema.module):
            module.set_state(self.state)
        gen = torch.Generator().manual_seed(0)
        self.reals = torch.rand(batch, 3, resolution, resolution, generator=gen) * 2 - 1
        self.labels = torch.randint(NUM_CLASSES, (batch,), generator=gen) if cond else None
        self.steps, self.batch = steps, batch

    def block(self) -> None:
        for _ in range(self.steps):
            update(self.run, self.state, self.reals, self.labels)


def _cache(work: Path, *, labelled: bool) -> Path:
    """A tiny 4² cache in `work`, built once: 8 synthetic images, or `NUM_CLASSES` labelled ones (the conditional
    run's classes). The sampler is built on it and never read."""
    from PIL import Image

    cache = work / ("labelled-cache" if labelled else "cache")
    if (cache / "meta.json").is_file():
        return cache
    source = "synthetic:0:8"
    if labelled:
        folder = work / "labelled"
        folder.mkdir()
        labels = []
        for k in range(NUM_CLASSES):
            Image.new("RGB", (4, 4), (80 * k, 0, 0)).save(folder / f"{k}.png")
            labels.append([f"{k}.png", k])
        (folder / "dataset.json").write_text(json.dumps({"labels": labels}))
        source = str(folder)
    pg.build_cache(source, cache, resolution=4)
    return cache


def stage_images(preset_name: str = "cpu-demo") -> dict[tuple[int, float], float]:
    """Images `cpu-demo` trains in each benchmarked (resolution, alpha) cell: fades → alpha 0.5, stable → 1."""
    from progrow.adapters.progan.presets import get_preset

    scheduler = pg.ProgressiveScheduler(get_preset(preset_name).schedule)
    out: dict[tuple[int, float], float] = {}
    for span in scheduler.phases:
        key = (span.resolution, 0.5 if span.phase == "fade" else 1.0)
        out[key] = out.get(key, 0.0) + scheduler.images_in(span)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8, help="interleaved rounds per stage (default: 8)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2, as the main job on 2 cores)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--cond", action="store_true", help="the conditional step against the unconditional one instead")
    mode.add_argument("--bf16", action="store_true", help="the step under bf16 autocast against fp32 instead")
    p.add_argument("--quick", action="store_true", help=f"smoke run: 2 rounds of {QUICK_STEPS} steps at 4² and 8² only")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds, stages = (2, STAGES[:2]) if args.quick else (args.rounds, STAGES)
    variants = COND_VARIANTS if args.cond else BF16_VARIANTS if args.bf16 else VARIANTS
    names = list(variants)
    base = names[0]
    started = time.perf_counter()
    if args.cond:
        print(machine_header("cpu_step.py: the cpu-demo step, unconditional vs conditional (--cond)"))
        print(f"# {rounds} interleaved rounds per stage; batch 32; fades at alpha 0.5; {NUM_CLASSES} classes\n")
    elif args.bf16:
        print(machine_header("cpu_step.py: the cpu-demo step, fp32 vs bf16 autocast (--bf16)"))
        amx = "yes" if cpu_bf16_is_fast() else "no"
        print(f"# {rounds} interleaved rounds per stage; batch 32; fades at alpha 0.5; AMX tiles on this CPU: {amx}\n")
    else:
        print(machine_header("cpu_step.py: the cpu-demo step, baseline vs channels_last vs lazy R1 (×4)"))
        print(f"# {rounds} interleaved rounds per stage; batch 32; fades at alpha 0.5\n")
    ratio_names = [f"{n} cost" if args.cond else n for n in names[1:]]
    rate_cols, ratio_cols = (f"{n + ' img/s':>19}" for n in names), (f"{n:>22}" for n in ratio_names)
    header = "stage      | " + " | ".join(rate_cols) + " | " + " | ".join(ratio_cols)
    print(header)
    print("-" * len(header))
    img_s: dict[str, dict[tuple[int, float], float]] = {n: {} for n in names}
    medians: dict[str, list[float]] = {n: [] for n in names[1:]}
    with tempfile.TemporaryDirectory(prefix="progrow-cpu-step-") as tmp:
        for resolution, alpha in stages:
            steps = QUICK_STEPS if args.quick else STEPS_PER_BLOCK[resolution]
            loops = {
                n: Loop(Path(tmp), resolution, alpha, channels_last=cl, r1_interval=k, cond=c, precision=pr, steps=steps)
                for n, (cl, k, c, pr) in variants.items()
            }
            times = interleave({n: loop.block for n, loop in loops.items()}, rounds=rounds)
            cells, ratios = [], []
            for n in names:
                rate = steps * loops[n].batch / summary(times[n])[0]
                img_s[n][(resolution, alpha)] = rate
                cells.append(f"{rate:>19.1f}")
            for n in names[1:]:
                pairs = zip(times[base], times[n], strict=True)
                r = [b / a for a, b in pairs] if args.cond else [a / b for a, b in pairs]
                medians[n].append(summary(r)[0])
                ratios.append(f"{fmt_ratio(r):>22}")
            label = f"{resolution}² {'fade' if alpha < 1 else 'stable'}"
            print(f"{label:<10} | " + " | ".join(cells) + " | " + " | ".join(ratios), flush=True)
    within = "variant time / unconditional time" if args.cond else "baseline time / variant time"
    print(f"\nimg/s: medians over rounds; ratios: {within} within a round, median (min–max).")
    images = stage_images()
    if not args.quick:
        total = {n: sum(images[k] / img_s[n][k] for k in images) for n in names}
        kimg = sum(images.values()) / 1000
        print(f"\ncpu-demo's training steps ({kimg:g}k images, weighted by its phase lengths), seconds at these rates:")
        for n in names:
            if args.cond:
                print(f"  {n:<14} {total[n]:7.0f} s   {total[n] / total[base]:.2f}× the unconditional step")
            else:
                print(f"  {n:<14} {total[n]:7.0f} s   {total[base] / total[n]:.2f}× the baseline")
    if args.bf16:
        _bf16_verdict(medians["bf16"], None if args.quick else total[base] / total["bf16"])
    else:
        _targets(medians, cond=args.cond)
    print(f"\n({time.perf_counter() - started:.0f} s; a shared machine: rerun if the min–max ranges are wide)")


def _targets(medians: dict[str, list[float]], *, cond: bool) -> None:
    """Each variant's target over the stages' median ratios: the conditional step's cost, or the speed-up."""
    print("\nTargets:")
    for n in medians:
        lo, hi = min(medians[n]), max(medians[n])
        if cond:
            verdict = "MET" if hi <= MAX_COND_COST else "NOT MET"
            print(f"  {n} ≤ {MAX_COND_COST:.2f}× the unconditional step at every stage: {verdict} (medians {lo:.2f}×–{hi:.2f}×)")
        else:
            verdict = "MET" if lo >= 1.05 else "NOT MET"
            print(f"  {n} ≥ 1.05× the baseline at every stage: {verdict} (medians {lo:.2f}×–{hi:.2f}×)")


def _bf16_verdict(stage_medians: list[float], main_job: float | None) -> None:
    """Whether the training script's `--precision bf16` warning on a CPU (given unless it has AMX tiles) is right here."""
    fast = cpu_bf16_is_fast()
    # Over the main job's steps when measured, else (--quick) the stages' median ratio.
    speedup = main_job if main_job is not None else sorted(stage_medians)[len(stage_medians) // 2]
    right = (speedup > 1.0) == fast
    warns = "does not warn" if fast else "warns that it is slower"
    print("\nTarget:")
    print(
        f"  --precision bf16 {warns} on this CPU (AMX tiles: {'yes' if fast else 'no'}), and bf16 is {speedup:.2f}× "
        f"as fast as fp32 here: {'MET' if right else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
