"""Does progressive growing pay off? Four GANs trained for equal CPU time, scored by the paper's SWD.

    python benchmarks/quality.py                      # 32², both datasets, the default budget
    python benchmarks/quality.py --resolution 64      # the 64² variant (cpu-demo-64 preset, larger budget)
    python benchmarks/quality.py --seed 0,1,2         # three seeds each: verdicts on the means, every seed's beside
    python benchmarks/quality.py --quick              # smoke mode: seconds, meaningless numbers

Variants, each trained for the same CPU time (user + system seconds of the training process, measured
with `time.process_time()` around the training steps only; evaluation is not counted):
- `progan`       the reference ProGAN, progressive (the `cpu-demo` preset, as `progrow train` runs it);
- `progan-flat`  the same networks and preset with `--no-growing` (the paper's non-progressive baseline);
- `dcgan`        a plain DCGAN written here the way the PyTorch tutorial writes it (transposed convs,
                 BatchNorm, BCE, Adam 2e-4 β₁ 0.5, batch 64), trained flat at the final resolution;
- `dcgan-grown`  that same DCGAN made growable by `progrow.adapters.sequential` and grown by progrow's
                 scheduler over the preset's phases (the plug-in question: does adding progrow help?).

Datasets: `shapes` (progrow's `SyntheticShapes`) and `digits` (the digits 0–9 rendered with Pillow's
bundled font, MNIST-like: light strokes on a dark ground, random size, slant, position and colour).

Each variant is scored at several points of its budget by the sliced Wasserstein distance (×10³, the
paper's Laplacian-pyramid patch SWD) between generated and real images at the final resolution (images
of an earlier stage are upscaled with nearest neighbours, as a fade at alpha = 0 would show them), and
at the end by MS-SSIM diversity (and FID/KID with `--inception-weights`) and the border step (a 1-px
frame shows as a step between the outermost pixels and their neighbours far above the real images').
Progressive variants are also scored at every stage end at every resolution they had (generated images box-filtered to that level
against the dataset's level), which shows whether a new stage loses what the earlier ones learned, and
every `--trace-kimg` images along the way (the level trace: how far a fade throws each level back, and
how much a level moves between two evaluations of one stable phase, the scale a stage-end comparison
is read on). The floor is the SWD between two disjoint halves of the real images (per level, too).
Results: a table and verdicts on stdout, `quality.json`, `swd.png` (SWD against CPU-seconds),
`levels.png` (the level traces) and `samples-<dataset>.png` in `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from _quality_data import prepare_data, real_halves, real_images
from _quality_eval import EVAL_FRACTIONS, GROWING, border_step, level_swds, train_variant
from _quality_seeds import annotate, mean_result, parse_seeds, work_name
from _quality_trainers import apply_overrides
from _timing import cpu_model
from torch import Tensor

VARIANTS = ("progan", "progan-flat", "dcgan", "dcgan-grown")
DATASETS = ("shapes", "digits")
PRESET_AT = {32: "cpu-demo", 64: "cpu-demo-64"}
DEFAULT_BUDGET = {32: 600.0, 64: 2400.0}  # CPU-seconds per variant (about one cpu-demo run's)


def run_worker(spec: dict[str, Any], *, in_process: bool, fresh: bool = False) -> dict[str, Any]:
    """Train one variant in a fresh process (its CPU time is its own) or, with `in_process`, here.

    A variant whose folder already holds the result of the same spec is not trained again (`--fresh` to
    retrain), so an interrupted benchmark continues where it stopped.
    """
    work = Path(spec["work"])
    spec_file, result_file = work / "spec.json", work / "result.json"
    if not fresh and result_file.is_file() and spec_file.is_file():
        if json.loads(spec_file.read_text()) == spec:
            print(f"  {spec['dataset']:>6} {spec['variant']:<12} reused {result_file}", flush=True)
            return json.loads(result_file.read_text())
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    spec_file.write_text(json.dumps(spec))
    if in_process:
        result = train_variant(spec)
        result_file.write_text(json.dumps(result))
        return result
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"])}
    done = subprocess.run([sys.executable, __file__, "--worker", str(work / "spec.json")], env=env)
    if done.returncode != 0:
        raise SystemExit(f"error: the {spec['variant']} worker on {spec['dataset']} failed (exit {done.returncode})")
    return json.loads((work / "result.json").read_text())


def time_to(points: Sequence[dict[str, Any]], target: float) -> float | None:
    """CPU-seconds at which the SWD curve first reaches `target` (linear between evaluations); None if never."""
    prev = None
    for p in points:
        if p["swd"] <= target:
            if prev is None or prev["swd"] == p["swd"]:
                return float(p["cpu_s"])
            t = (prev["swd"] - target) / (prev["swd"] - p["swd"])
            return float(prev["cpu_s"] + t * (p["cpu_s"] - prev["cpu_s"]))
        prev = p
    return None


def level_regressions(stage_ends: Sequence[dict[str, Any]]) -> list[str]:
    """Every level whose SWD at a stage end is worse than at the previous stage end (`"16² after 32²: 12.1 > 11.0"`)."""
    out = []
    for prev, cur in zip(stage_ends, stage_ends[1:], strict=False):
        for r, value in prev["levels"].items():
            now = cur["levels"].get(r)
            if now is not None and now > value:
                out.append(f"{r}² after the {cur['resolution']}² stage: {now:.1f} > {value:.1f}")
    return out


def stable_means(trace: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage, each level's mean SWD over the second half of its stable-phase trace points (stage order)."""
    by_res: dict[int, list[dict[str, Any]]] = {}
    for t in trace:
        if t["alpha"] >= 1.0:
            by_res.setdefault(t["resolution"], []).append(t)
    out = []
    for r, pts in sorted(by_res.items()):
        tail = pts[len(pts) // 2 :]
        levels = {k: round(sum(p["levels"][k] for p in tail) / len(tail), 3) for k in tail[0]["levels"]}
        out.append({"resolution": r, "levels": levels, "points": len(tail)})
    return out


def verdicts(dataset: str, results: dict[str, dict[str, Any]], floor: float) -> list[str]:
    """The printed verdict lines for one dataset."""
    final = {v: r["points"][-1]["swd"] for v, r in results.items()}
    seeds = next((len(r["final_swds"]) for r in results.values() if "final_swds" in r), 1)
    lines = [
        f"{dataset}: final SWD (floor {floor:.1f})"
        + (f", means over {seeds} seeds (min–max)" if seeds > 1 else "")
        + ": "
        + ", ".join(
            f"{v} {s:.1f}" + (f" ({min(r['final_swds']):.1f}–{max(r['final_swds']):.1f})" if "final_swds" in r else "")
            for (v, s), r in zip(final.items(), results.values(), strict=True)
        )
    ]

    def check(ok: bool, text: str) -> None:
        lines.append(f"  [{'PASS' if ok else 'FAIL'}] {text}")

    if {"progan", "progan-flat", "dcgan"} <= set(final):
        check(
            final["progan"] < final["progan-flat"],
            f"progan < progan-flat at equal CPU time ({final['progan']:.1f} vs {final['progan-flat']:.1f})",
        )
        check(
            final["progan"] < final["dcgan"], f"progan < dcgan at equal CPU time ({final['progan']:.1f} vs {final['dcgan']:.1f})"
        )
    for v in ("progan", "dcgan-grown"):
        if v in results:
            regress = level_regressions(results[v]["stage_ends"])
            check(
                not regress,
                f"{v}: no pyramid level worse at a stage end than at the previous one"
                + (f" ({'; '.join(regress)})" if regress else ""),
            )
            means = stable_means(results[v].get("trace", []))
            if len(means) > 1:  # is a regression the stage's level, or one evaluation's luck?
                worse = level_regressions(means)
                lines.append(
                    f"  {v}, each level's mean over the second half of every stable phase: "
                    + (f"worse after a stage: {'; '.join(worse)}" if worse else "no level worse after a stage")
                )
    if "dcgan" in final:
        target = final["dcgan"]
        times = {v: time_to(r["points"], target) for v, r in results.items()}
        lines.append(
            f"  CPU-s to reach the flat DCGAN's final SWD {target:.1f}: "
            + ", ".join(f"{v} {'never' if t is None else f'{t:.0f}'}" for v, t in times.items())
        )
    for grown, flat in (("progan", "progan-flat"), ("dcgan-grown", "dcgan")):
        if grown in results and flat in results:
            target = final[flat]
            t_flat, t_grown = time_to(results[flat]["points"], target), time_to(results[grown]["points"], target)
            if t_grown is None or t_flat is None:
                lines.append(f"  {grown} never reaches {flat}'s final SWD {target:.1f} within the budget: no speed-up")
            else:
                ratio = t_flat / t_grown
                lines.append(
                    f"  growing vs not, time to {flat}'s final SWD {target:.1f}: {grown} {t_grown:.0f} CPU-s, "
                    f"{flat} {t_flat:.0f} CPU-s → {ratio:.2f}× ({'reaches' if ratio >= 2 else 'below'} the paper's 2×)"
                )
    return lines


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write_plot(
    results: dict[str, dict[str, dict[str, Any]]],
    floors: dict[str, float],
    path: Path,
    *,
    per_seed: Sequence[dict[str, dict[str, dict[str, Any]]]] = (),
) -> bool:
    """SWD against CPU-seconds, one panel per dataset, the floor dashed; False without matplotlib.

    With `per_seed` (every seed's results), `results` are their means and each seed's curve is drawn thin.
    """
    plt = _pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (dataset, by_variant) in zip(axes[0], results.items(), strict=False):
        for variant, r in by_variant.items():
            label = f"{variant} (mean of {len(per_seed)} seeds)" if per_seed else variant
            (line,) = ax.plot([p["cpu_s"] for p in r["points"]], [p["swd"] for p in r["points"]], marker="o", ms=3, label=label)
            for seed_results in per_seed:
                pts = seed_results[dataset][variant]["points"]
                ax.plot([p["cpu_s"] for p in pts], [p["swd"] for p in pts], lw=0.7, alpha=0.45, color=line.get_color())
        ax.axhline(floors[dataset], color="grey", ls="--", lw=1, label="real vs real")
        ax.set(title=dataset, xlabel="training CPU-seconds", ylabel="SWD ×10³ (lower is better)", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_level_plot(results: dict[str, dict[str, dict[str, Any]]], floors: dict[str, dict[str, float]], path: Path) -> bool:
    """Every pyramid level's SWD against kimg, one panel per (dataset, growing variant): fades shaded, stage ends dashed.

    `floors[dataset][level]` (real vs real at that level) is drawn dotted in the level's colour. False
    without matplotlib or without a trace.
    """
    panels = [(d, v, r) for d, by_variant in results.items() for v, r in by_variant.items() if r.get("trace")]
    plt = _pyplot()
    if plt is None or not panels:
        return False
    cols = 2 if len(panels) > 2 else len(panels)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4 * rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (dataset, variant, r) in zip(axes.flat, panels, strict=False):
        trace = r["trace"]
        levels = sorted({k for t in trace for k in t["levels"]}, key=int)
        for i, level in enumerate(levels):
            pts = [(t["kimg"], t["levels"][level]) for t in trace if level in t["levels"]]
            colour = colours[i % len(colours)]
            ax.plot(*zip(*pts, strict=True), marker="o", ms=2, lw=1, color=colour, label=f"{level}²")
            if level in floors.get(dataset, {}):
                ax.axhline(floors[dataset][level], color=colour, ls=":", lw=1)
        for start, end in fade_spans(trace):
            ax.axvspan(start, end, color="grey", alpha=0.15, lw=0)
        for e in r.get("stage_ends", []):
            if not e.get("budget_end"):
                ax.axvline(e["kimg"], color="grey", ls="--", lw=1)
        ax.set(title=f"{dataset}: {variant}", xlabel="kimg", ylabel="SWD ×10³ of each level", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="level", ncols=len(levels))
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    title = "SWD of every pyramid level along training", "(shaded: fades; dashed: stage ends; dotted: real vs real)"
    fig.suptitle(("\n" if cols == 1 else " ").join(title))  # one line is wider than one panel
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def fade_spans(trace: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    """`(start, end)` kimg of every fade in a level trace: a stage's first point to its first point at alpha 1."""
    spans = []
    for r in sorted({t["resolution"] for t in trace}):
        points = [t for t in trace if t["resolution"] == r]
        if points[0]["alpha"] < 1.0:
            stable = [t["kimg"] for t in points if t["alpha"] >= 1.0]
            spans.append((points[0]["kimg"], stable[0] if stable else points[-1]["kimg"]))
    return spans


def write_samples(dataset: str, reals: Tensor, samples: dict[str, np.ndarray], path: Path, *, n: int = 36) -> None:
    """One PNG: a 6×6 grid of real images next to one grid per variant, each captioned."""
    from PIL import Image, ImageDraw

    panels = {"real": reals[:n].numpy(), **{v: s[:n] for v, s in samples.items()}}
    side = int(math.isqrt(n))
    res = reals.shape[-1]
    scale = max(1, 64 // res)
    cell, gap, caption = res * scale, 2, 14
    width = side * cell + (side - 1) * gap
    canvas = Image.new("RGB", (len(panels) * (width + 12) - 12, width + caption), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, (name, images) in enumerate(panels.items()):
        x0 = k * (width + 12)
        draw.text((x0, 0), f"{dataset}: {name}", fill=(0, 0, 0))
        for i in range(min(n, len(images))):
            tile = Image.fromarray(np.transpose(images[i], (1, 2, 0))).resize((cell, cell), Image.NEAREST)
            canvas.paste(tile, (x0 + (i % side) * (cell + gap), caption + (i // side) * (cell + gap)))
    canvas.save(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=32, choices=sorted(PRESET_AT), help="final resolution (default: 32)")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)} (default: all)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)} (default: all)")
    p.add_argument(
        "--budget", type=float, default=None, help="training CPU-seconds per variant (default: 600 at 32², 2400 at 64²)"
    )
    p.add_argument("--samples", type=int, default=1000, help="generated and real images per SWD (default: 1000)")
    p.add_argument(
        "--level-samples",
        type=int,
        default=4000,
        help="generated and real images per SWD of a pyramid level at the stage ends and the end (default: 4000)",
    )
    p.add_argument("--images", type=int, default=10_000, help="images per dataset (default: 10000)")
    p.add_argument("--jobs", type=int, default=2, help="variants trained at once, each in its own process (0: in this process)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per variant (default: 1)")
    p.add_argument(
        "--seed",
        default="0",
        help="seed of every variant; several, comma-separated (0,1,2), train each variant once per seed and judge "
        "the verdicts on the means over the seeds, each seed's own outcome beside them (default: 0)",
    )
    p.add_argument("--phase-kimg", type=float, default=None, help="override every phase length of the progressive variants")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override a preset field for every variant, e.g. fmap_max=128 or schedule.batch_size=32 (tuning)",
    )
    p.add_argument(
        "--progan-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to the reference training script's options in the progan variants, e.g. --progan-arg=--channels-last",
    )
    p.add_argument(
        "--trace-kimg",
        type=float,
        default=4.0,
        help="score every pyramid level of the growing variants every this many kimg (default: 4; 0: stage ends only)",
    )
    p.add_argument("--inception-weights", default=None, help="InceptionV3 weights: also FID and KID at the end")
    p.add_argument("--out", default="runs/quality", help="output folder (default: runs/quality)")
    p.add_argument("--fresh", action="store_true", help="retrain variants whose results of the same settings are in --out")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke mode: tiny data, phases and budget, in this process (seconds; meaningless numbers)",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def parse_overrides(items: Sequence[str], preset: str) -> dict[str, Any]:
    """`--set FIELD=JSON` items as `{field: value}`, checked against `preset` up front (one `error:` line, exit 2)."""
    from progrow.adapters.progan.presets import get_preset

    overrides: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except ValueError as exc:
            _usage_error(f"--set {item!r}: the value is not JSON ({exc})")
    try:
        apply_overrides(get_preset(preset), overrides)
    except (TypeError, ValueError) as exc:  # an unknown field, or a value the preset refuses
        _usage_error(f"--set: {exc}")
    return overrides


def _usage_error(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.worker:
        spec = json.loads(Path(args.worker).read_text())
        result = train_variant(spec)
        (Path(args.worker).parent / "result.json").write_text(json.dumps(result))  # written last: marks it done
        return result
    datasets = [d for d in args.datasets.split(",") if d]
    variants = [v for v in args.variants.split(",") if v]
    bad = [d for d in datasets if d not in DATASETS] + [v for v in variants if v not in VARIANTS]
    if bad:
        _usage_error(f"unknown dataset or variant {', '.join(bad)}; datasets {DATASETS}, variants {VARIANTS}")
    try:
        seeds = parse_seeds(args.seed)
    except ValueError as exc:
        _usage_error(f"--seed: {exc}")
    res, preset = args.resolution, PRESET_AT[args.resolution]
    overrides = parse_overrides(args.set, preset)
    budget = args.budget if args.budget is not None else DEFAULT_BUDGET[res]
    images, samples, level_samples = args.images, args.samples, args.level_samples
    jobs, phase_kimg, trace_kimg = args.jobs, args.phase_kimg, args.trace_kimg
    if args.quick:  # every code path, with a few hundred images, short phases and seconds of training
        budget, images, samples, level_samples, jobs, phase_kimg, trace_kimg = 2.0, 128, 32, 48, 0, 0.016, 0.1
    for name, n in (("--samples", samples), ("--level-samples", level_samples)):
        if n < 2 or 2 * n > images:  # two disjoint sets of real images: the reference and the floor's
            _usage_error(f"{name}: expected 2 to {images // 2} (two disjoint sets of the --images {images}), got {n}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = f"{cpu_model()} ({os.cpu_count()} CPUs)"  # SWD at a CPU-second budget depends on it: name it
    print(
        f"quality: {res}², {budget:.0f} training CPU-seconds per variant, {args.threads} thread(s) each, "
        f"{samples} samples per SWD ({level_samples} per level at the stage ends)"
        + (f", seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else "")
        + f"; {machine}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    caches = {d: prepare_data(d, out / "data", resolution=res, num_images=images) for d in datasets}
    from progrow.data import MultiResDataset
    from progrow.metrics.swd import swd

    floors, level_floors, trace_floors, real_borders, reference_sets = {}, {}, {}, {}, {}
    for d, cache in caches.items():
        a, b = real_halves(len(MultiResDataset(cache)), samples)
        reference_sets[d] = real_images(cache, res, a)
        floors[d] = round(swd(real_images(cache, res, b), reference_sets[d])["swd"], 3)
        trace_floors[d] = level_swds(real_images(cache, res, b), cache, a)  # each level's real vs real, as the trace
        if level_samples == samples:
            level_floors[d] = trace_floors[d]
        else:  # as the stage ends are scored
            a, b = real_halves(len(MultiResDataset(cache)), level_samples)
            level_floors[d] = level_swds(real_images(cache, res, b), cache, a)
        real_borders[d] = border_step(reference_sets[d][:64])
    specs = [
        {
            "variant": v,
            "dataset": d,
            "cache": str(caches[d]),
            "resolution": res,
            "budget": budget,
            "samples": samples,
            "level_samples": level_samples,
            "threads": args.threads,
            "seed": seed,
            "preset": preset,
            "overrides": overrides,
            "phase_kimg": phase_kimg,
            "inception_weights": args.inception_weights,
            "work": str(out / d / work_name(v, seed)),
            "fractions": [0.5, 1.0] if args.quick else list(EVAL_FRACTIONS),
            "trace_kimg": trace_kimg if GROWING[v] else None,
        }
        for seed in seeds
        for d in datasets
        for v in variants
    ]
    for spec in specs:
        if spec["variant"] == "dcgan":  # the flat DCGAN uses no preset: its results stay valid when the preset changes
            spec.update(preset=None, overrides={}, phase_kimg=None)
        if args.progan_arg and spec["variant"].startswith("progan"):  # absent otherwise: earlier results stay reusable
            spec["progan_args"] = list(args.progan_arg)
        if spec["variant"] == "dcgan-grown":  # toRGB / fromRGB in the DCGAN's style (results before it differ)
            spec["rgb_layers"] = "user-style"
    if jobs == 0:
        done = [run_worker(s, in_process=True, fresh=args.fresh) for s in specs]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            done = list(pool.map(lambda s: run_worker(s, in_process=False, fresh=args.fresh), specs))
    per_seed: dict[int, dict[str, dict[str, dict[str, Any]]]] = {s: {d: {} for d in datasets} for s in seeds}
    for spec, r in zip(specs, done, strict=False):
        samples_file = Path(spec["work"]) / "samples.npy"  # the 64 final images every variant saves
        r["border_step"] = border_step(torch.from_numpy(np.load(samples_file)))
        per_seed[spec["seed"]][spec["dataset"]][spec["variant"]] = r
    results = {d: {v: mean_result([per_seed[s][d][v] for s in seeds]) for v in variants} for d in datasets}

    print(
        f"\n{'dataset':<8} {'variant':<12} {'swd':>7} {'swd@' + str(res):>8} {'swd@16':>7} {'ms-ssim':>8} {'border':>7} "
        f"{'kimg':>7} {'steps':>6} {'CPU-s':>6} {'wall-s':>7}  reached"
    )
    report: list[str] = []
    for d in datasets:
        print(f"{d:<8} {'real/real':<12} {floors[d]:>7.1f} {'':>8} {'':>7} {'':>8} {real_borders[d]:>7.1f}")
        for v, r in results[d].items():
            last = r["points"][-1]
            print(
                f"{d:<8} {v:<12} {last['swd']:>7.1f} {last.get(f'swd_{res}', float('nan')):>8.1f} "
                f"{last.get('swd_16', float('nan')):>7.1f} {r['ms_ssim']:>8.4f} {r['border_step']:>7.1f} "
                f"{last['kimg']:>7.1f} {r['steps']:>6} "
                f"{r['cpu_s']:>6.0f} {r['wall_s']:>7.0f}  {r['final_resolution_reached']}² α={r['final_alpha']:g}"
            )
        finals = [
            f"{v} " + " ".join(f"{r}²={s:.1f}" for r, s in res_["final_levels"].items())
            for v, res_ in results[d].items()
            if res_.get("final_levels")  # results of earlier versions have none
        ]
        print("         levels at the end: " + "; ".join(finals))
        print("         levels real vs real: " + " ".join(f"{r}²={v:.1f}" for r, v in level_floors[d].items()))
        if len(seeds) > 1:
            print(f"         the rows above are means over the seeds {', '.join(map(str, seeds))}; final SWD per seed: ", end="")
            print("; ".join(f"{v} " + " ".join(f"{s:.1f}" for s in r["final_swds"]) for v, r in results[d].items()))
        for v in ("progan", "dcgan-grown"):
            if v in results[d]:
                ends = "; ".join(
                    f"{e['resolution']}² @ {e['cpu_s']:.0f} CPU-s: " + " ".join(f"{r}²={s:.1f}" for r, s in e["levels"].items())
                    for e in results[d][v]["stage_ends"]
                )
                print(f"         {v} stage ends: {ends}")
        lines = verdicts(d, results[d], floors[d])
        if len(seeds) > 1:
            lines = annotate(lines, {s: verdicts(d, per_seed[s][d], floors[d]) for s in seeds})
        report += lines
        shown = [s for s in specs if s["dataset"] == d and s["seed"] == seeds[0]]  # the first seed's samples
        write_samples(
            d,
            reference_sets[d],
            {s["variant"]: np.load(Path(s["work"]) / "samples.npy") for s in shown},
            out / f"samples-{d}.png",
        )
    print("\n" + "\n".join(report))
    plotted = write_plot(results, floors, out / "swd.png", per_seed=list(per_seed.values()) if len(seeds) > 1 else ())
    traced = write_level_plot(results, trace_floors, out / "levels.png")
    summary = {
        "resolution": res,
        "budget_cpu_s": budget,
        "samples": samples,
        "level_samples": level_samples,
        "machine": machine,
        "floors": floors,
        "level_floors": level_floors,
        "trace_floors": trace_floors,
        "real_border_step": real_borders,
        "seeds": seeds,
        "results": results,
        "verdicts": report,
        "overrides": overrides,
    }
    if len(seeds) > 1:
        summary["per_seed"] = {str(s): r for s, r in per_seed.items()}
    (out / "quality.json").write_text(json.dumps(summary, indent=1))
    print(
        f"\nwrote {out / 'quality.json'}, {out}/samples-*.png"
        + (f", {out / 'swd.png'}" if plotted else " (no plot: matplotlib missing)")
        + (f", {out / 'levels.png'}" if traced else "")
    )
    return summary


if __name__ == "__main__":
    main()
