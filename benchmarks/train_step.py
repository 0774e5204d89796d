"""One WGAN-GP training iteration (D step + G step + G EMA): progrow against a plain PyTorch ProGAN.

    python benchmarks/train_step.py            # every stage 4² → 64², fade and stable: about 8 minutes on 2 CPU cores
    python benchmarks/train_step.py --quick    # a smoke run (about 4 minutes; too few rounds to judge)

The shared small config: latent 128, feature maps min(2048 / 2^(log2 R − 1), 128) (128 up to 32², 64 at
64²), minibatch 16, WGAN-GP λ = 10 + drift 0.001, Adam(0.001, β = 0, 0.99, ε = 1e-8), G EMA β = 0.999,
minibatch stddev (group 4), pixelwise norm, equalized learning rate, fade alpha 0.5.

- **progrow**: the training script's own run and step: `build_run` (the reference ProGAN networks in
  `ProgressiveGenerator` / `ProgressiveDiscriminator`, `pg.EMA`, its Adam `make_adam`: PyTorch's fused
  kernel) and `update`, the body of `train_step` once the minibatch is read: `pg.fade_reals`, fakes under
  `no_grad` (and G frozen) in the D step, D frozen (`requires_grad_(False)`) in the G step, the
  non-finite-gradient check, `pg.wgan_gp_d_loss` / `pg.wgan_g_loss`, `pg.EMA` (one `lerp` pass). The
  reals come from the pool below, not the run's sampler; the wrappers are set to the stage's state.
- **plain**: a hand-written ProGAN of the same architecture and parameter count, in `plain_progan.py` (its own
  equalized conv / linear, pixel norm, minibatch stddev, toRGB / fromRGB and fade), trained the
  straightforward way: the fakes of the D step are made with the generator graph recorded (then
  `.detach()`ed, as in the PyTorch DCGAN tutorial and pro-gan-pth), and the G step backpropagates into
  the discriminator's weights as well; default `torch.optim.Adam` (a loop over the weights on a CPU)
  and the textbook EMA loop `ema.copy_(β·ema + (1 − β)·p)`.
- **no wrappers** (4² only): the progrow loop calling `net.features` + toRGB and fromRGB + `net.head`
  directly instead of the wrappers: the same modules, parameters, optimizers and EMA.

Speed: per stage, the variants run in one process, interleaved (A B, B A, …), one block of steps each
per round (about a second of steps); ratios are taken within a round; median (min–max) over rounds.
Peak RSS: each (variant, stage) runs alone in a fresh subprocess (imports, models, optimizers, 3
iterations), which reads its own high-water mark `VmHWM` (not `ru_maxrss`: Linux carries that over
fork + exec from the large parent); also shown, the rise of the peak above the RSS after the models were built.

Anchor: pro-gan-pth (the most-installed ProGAN port on PyPI) is probed; the output says whether it runs
with this torch and, if not, why. `--anchor-path DIR` adds a `pip install --no-deps --target DIR
pro-gan-pth` folder to the import path.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

import progrow as pg
from progrow.adapters.progan.distributed import DistInfo
from progrow.adapters.progan.options import Options
from progrow.adapters.progan.step import update
from progrow.adapters.progan.train import build_parser, build_run, resolve_options
from progrow.data import MultiResDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import current_rss_mib, fmt_ratio, interleave, machine_header, peak_rss_mib, peak_rss_subprocess, summary  # noqa: E402
from plain_progan import (  # noqa: E402
    ALPHA,
    BATCH,
    BETAS,
    DRIFT,
    EMA_BETA,
    EPS,
    FMAP_BASE,
    FMAP_MAX,
    GP,
    LATENT,
    LR,
    TOP,
    PlainLoop,
    nf,
)

STAGES = [(4, 1.0)] + [(r, a) for r in (8, 16, 32, 64) for a in (ALPHA, 1.0)]


# ------------------------------------------------------------------------------------------- progrow
def progrow_options(seed: int, work: Path) -> Options:
    """The training script's options for the shared config (a tiny synthetic cache stands in for the data)."""
    cache = work / "cache"
    if not (cache / "meta.json").is_file():
        pg.build_cache("synthetic:0:8", cache, resolution=4)  # the sampler is built, never read: the reals are the pool's
    args = build_parser().parse_args(["--data", str(cache), "--out", str(work / "run"), "--device", "cpu", "--seed", str(seed)])
    opts = resolve_options(args, DistInfo())
    schedule = opts.preset.schedule.replace(final_resolution=TOP, batch_size=BATCH, batch_size_per_res={}, lr=LR, lr_per_res={})
    opts.preset = replace(
        opts.preset,
        resolution=TOP,
        schedule=schedule,
        latent_dim=LATENT,
        fmap_base=FMAP_BASE,
        fmap_max=FMAP_MAX,
        mbstd_group_size=4,
        adam_betas=BETAS,
        adam_eps=EPS,
        loss="wgan-gp",
        gp_weight=GP,
        drift_weight=DRIFT,
        ema_beta=EMA_BETA,
    )
    return opts


class ProgrowLoop:
    """The training script's own run (`build_run`) and step (`update`: `train_step` after reading the minibatch)."""

    def __init__(self, resolution: int, alpha: float, *, wrappers: bool = True, seed: int = 0) -> None:
        self._work = tempfile.TemporaryDirectory(prefix="progrow-bench-")
        self.run = build_run(progrow_options(seed, Path(self._work.name)), MultiResDataset(Path(self._work.name) / "cache"))
        self.state = pg.GrowthState(resolution, alpha=alpha, batch_size=BATCH, lr=LR)
        for module in (self.run.G, self.run.D, self.run.ema.module):
            module.set_state(self.state)
        if not wrappers:  # the same modules, called directly (stable 4² only: features + toRGB, fromRGB + head)
            if (resolution, alpha) != (4, 1.0):
                raise ValueError("the no-wrapper loop exists for the stable 4² stage only")
            G, D = self.run.G, self.run.D
            to_rgb, from_rgb = G.to_rgb["4"], D.from_rgb["4"]
            self.run.G_forward = lambda z: to_rgb(next(G.net.features(z, until=4))[1])
            self.run.D_forward = lambda x: D.net.head(from_rgb(x))

    def step(self, reals: torch.Tensor) -> None:
        update(self.run, self.state, reals)

    def num_params(self) -> tuple[int, int]:
        return sum(p.numel() for p in self.run.G.parameters()), sum(p.numel() for p in self.run.D.parameters())


# ------------------------------------------------------------------------------------------- drivers
def make_loop(variant: str, resolution: int, alpha: float):
    if variant == "progrow":
        return ProgrowLoop(resolution, alpha)
    if variant == "nowrap":
        return ProgrowLoop(resolution, alpha, wrappers=False)
    if variant == "plain":
        return PlainLoop(resolution, alpha)
    raise ValueError(variant)


def reals_pool(resolution: int, n: int = 4) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.rand(BATCH, 3, resolution, resolution, generator=gen) * 2 - 1 for _ in range(n)]


def block_of(loop, pool: list[torch.Tensor], steps: int):
    counter = [0]

    def run() -> None:
        for _ in range(steps):
            loop.step(pool[counter[0] % len(pool)])
            counter[0] += 1

    return run


def rss_child(variant: str, resolution: int, alpha: float, steps: int) -> None:
    """Subprocess entry: build one variant, note the RSS, run `steps` iterations, print the peak as JSON."""
    loop = make_loop(variant, resolution, alpha)
    pool = reals_pool(resolution)
    built = current_rss_mib()
    for i in range(steps):
        loop.step(pool[i % len(pool)])
    print(json.dumps({"built_mib": built, "peak_mib": peak_rss_mib()}))


def stage_label(resolution: int, alpha: float) -> str:
    return f"{resolution}² {'fade' if alpha < 1 else 'stable'}"


# ------------------------------------------------------------------------------------------- anchor
def probe_pro_gan_pth(anchor_path: str | None) -> str:
    """Whether pro-gan-pth imports and runs one forward at 4² with this torch; a sentence either way."""
    if anchor_path:
        sys.path.insert(0, anchor_path)
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("pro-gan-pth")
        except PackageNotFoundError:
            ver = "?"
        import pro_gan_pytorch.networks as pgn  # noqa: F401
    except ImportError:
        return (
            "pro-gan-pth: not installed, so not in the table. To probe it without touching torch: "
            "`pip install --no-deps --target /tmp/pgpth pro-gan-pth==3.4` and `--anchor-path /tmp/pgpth` "
            "(its requirements pin torch==1.10.0, numpy==1.21.4, tensorboard, opencv: never install them here)."
        )
    problems = []
    try:
        import pro_gan_pytorch.gan  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        problems.append(f"`pro_gan_pytorch.gan` (the ProGAN training class) does not import: {type(exc).__name__}: {exc}")
    try:
        G = pgn.Generator(depth=int(math.log2(TOP)), latent_size=LATENT)
        G(torch.randn(BATCH, LATENT), 2, 1.0)
    except Exception as exc:  # noqa: BLE001
        why = (
            (
                " (EqualizedConvTranspose2d.forward calls the private torch method `_ConvTransposeNd._output_padding` "
                "without the `num_spatial_dims` argument newer torch requires)"
            )
            if "num_spatial_dims" in str(exc)
            else ""
        )
        problems.append(f"its Generator fails at the first forward: {type(exc).__name__}: {exc}{why}")
    if problems:
        return (
            f"pro-gan-pth {ver}: cannot run with torch {torch.__version__}, so not in the table; "
            + "; ".join(problems)
            + ". It pins torch==1.10.0."
        )
    return (
        f"pro-gan-pth {ver}: runs with torch {torch.__version__}, but is not wired into this table yet "
        "(this benchmark was written while it could not run)."
    )


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: few rounds, few RSS steps")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per stage (default 10; --quick 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--anchor-path", default=None, help="a folder holding pro_gan_pytorch (pip install --no-deps --target)")
    p.add_argument("--no-rss", action="store_true", help="skip the peak RSS subprocesses")
    p.add_argument("--_rss", nargs=4, metavar=("VARIANT", "RES", "ALPHA", "STEPS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._rss:
        variant, res, alpha, steps = args._rss
        rss_child(variant, int(res), float(alpha), int(steps))
        return 0

    rounds = args.rounds or (3 if args.quick else 10)
    start = time.perf_counter()
    print(machine_header("train_step.py: progrow vs plain PyTorch ProGAN, one D+G iteration + EMA"), flush=True)
    g_p, d_p = ProgrowLoop(4, 1.0).num_params()
    g_b, d_b = PlainLoop(4, 1.0).num_params()
    same = "equal" if (g_p, d_p) == (g_b, d_b) else "DIFFERENT"
    print(
        f"# config: latent {LATENT}, fmaps {', '.join(f'{r}²:{nf(r)}' for r in (4, 8, 16, 32, 64))}, batch {BATCH}, "
        f"WGAN-GP λ {GP:g} + drift {DRIFT:g}, Adam {LR:g} β {BETAS}, EMA {EMA_BETA}; parameters G {g_p:,} / D {d_p:,} "
        f"(plain: {g_b:,} / {d_b:,}, {same}); {rounds} interleaved rounds per stage",
        flush=True,
    )
    anchor = probe_pro_gan_pth(args.anchor_path)

    # Wrapper overhead at 4²: same modules, same loop, wrappers vs direct calls.
    loops = {"progrow": make_loop("progrow", 4, 1.0), "nowrap": make_loop("nowrap", 4, 1.0)}
    pool = reals_pool(4)
    wsteps = 10 if args.quick else 20
    t = interleave({k: block_of(v, pool, wsteps) for k, v in loops.items()}, rounds=rounds * 2, warmup=1)
    overhead = [a / b - 1 for a, b in zip(t["progrow"], t["nowrap"], strict=True)]
    print(f"  4² wrapper overhead: {fmt_ratio([100 * o for o in overhead], '+.1f', ' %')}", file=sys.stderr, flush=True)

    rows = []
    for res, alpha in STAGES:
        loops = {"progrow": make_loop("progrow", res, alpha), "plain": make_loop("plain", res, alpha)}
        pool = reals_pool(res)
        probe = time.perf_counter()
        loops["plain"].step(pool[0])
        per_step = time.perf_counter() - probe
        steps = max(1, min(20, round((0.5 if args.quick else 1.0) / max(per_step, 1e-3))))
        t = interleave({k: block_of(v, pool, steps) for k, v in loops.items()}, rounds=rounds, warmup=1)
        ips = {k: [steps * BATCH / s for s in v] for k, v in t.items()}
        speedup = [b / a for a, b in zip(t["progrow"], t["plain"], strict=True)]
        rows.append(dict(stage=stage_label(res, alpha), steps=steps, ips=ips, speedup=speedup))
        print(f"  {stage_label(res, alpha)}: {steps} steps/block, speedup {fmt_ratio(speedup)}", file=sys.stderr, flush=True)

    rss = {}
    if not args.no_rss:
        rss_steps = "2" if args.quick else "3"
        for res, alpha in STAGES:
            for variant in ("plain", "progrow"):
                rss[(res, alpha, variant)] = peak_rss_subprocess(
                    __file__,
                    ["--_rss", variant, str(res), str(alpha), rss_steps]
                    + (["--threads", str(args.threads)] if args.threads else []),
                )
            print(f"  RSS {stage_label(res, alpha)} done", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------------------------------ table
    print()
    head = (
        f"{'stage':<11} | {'progrow img/s':>13} | {'plain img/s':>11} | {'speedup progrow/plain':>24} | "
        f"{'peak RSS progrow':>16} | {'peak RSS plain':>14} | {'RSS ratio':>9} | {'step rise progrow/plain':>23}"
    )
    print(head)
    print("|".join("-" * len(c) for c in head.split("|")))
    speed_ok, rss_ok = [], []
    for (res, alpha), row in zip(STAGES, rows, strict=True):
        speed_ok.append(summary(row["speedup"])[0] >= 1.05)
        cells = [
            f"{row['stage']:<11}",
            f"{summary(row['ips']['progrow'])[0]:>13.1f}",
            f"{summary(row['ips']['plain'])[0]:>11.1f}",
            f"{fmt_ratio(row['speedup']):>24}",
        ]
        if rss:
            a, b = rss[(res, alpha, "progrow")], rss[(res, alpha, "plain")]
            rss_ok.append(a["peak_mib"] <= 1.05 * b["peak_mib"])
            rise = f"{a['peak_mib'] - a['built_mib']:.0f} / {b['peak_mib'] - b['built_mib']:.0f} MiB"
            cells += [
                f"{a['peak_mib']:>12.0f} MiB",
                f"{b['peak_mib']:>10.0f} MiB",
                f"{a['peak_mib'] / b['peak_mib']:>8.3f}×",
                f"{rise:>23}",
            ]
        else:
            cells += [f"{'-':>16}", f"{'-':>14}", f"{'-':>9}", f"{'-':>23}"]
        print(" | ".join(cells))
    print(
        f"\nimg/s: medians over rounds (one D step + one G step + EMA = {BATCH} images). Speedup: plain time / "
        "progrow time within each round, median (min–max). Peak RSS: VmHWM of a fresh process per cell "
        "(imports, models, optimizers, 3 iterations); step rise: peak minus the RSS after building the models."
    )
    print(
        f"4² wrapper overhead (progrow wrappers vs the same loop calling net.features + toRGB / fromRGB + "
        f"net.head directly; {wsteps} steps per block, {2 * rounds} rounds): "
        f"{fmt_ratio([100 * o for o in overhead], '+.1f', ' %')}"
    )

    # -------------------------------------------------------------------------------------- verdicts
    print("\nTargets:")
    slow = [row["stage"] for row, ok in zip(rows, speed_ok, strict=True) if not ok]
    med = [summary(r["speedup"])[0] for r in rows]
    if not slow:
        print(
            f"  progrow ≥ 1.05× plain img/s at every stage: MET (medians {min(med):.2f}×–{max(med):.2f}×): "
            "no generator graph in the D step and no discriminator weight gradients in the G step (the bulk "
            "from 16² up), fused Adam and a one-pass EMA (the bulk at 4²–8², where an iteration is tens of ms)."
        )
    else:
        print(
            f"  progrow ≥ 1.05× plain img/s at every stage: NOT MET at {', '.join(slow)} "
            f"(medians {min(med):.2f}×–{max(med):.2f}×). The D step (three D forwards and the GP double "
            "backward) is the same work in both and most of an iteration; what progrow saves is the "
            "generator's graph in the D step, the discriminator's weight gradients in the G step, and, "
            f"what weighs at 4² (a {1000 * BATCH / summary(rows[0]['ips']['plain'])[0]:.0f} ms iteration), "
            "per-weight optimizer and EMA loops (fused Adam, one lerp pass)."
        )
    noisy = [row["stage"] for row in rows if max(row["speedup"]) / min(row["speedup"]) > 1.3]
    if noisy:
        print(
            f"  (noise: the speedup's min–max spans more than 30 % at {', '.join(noisy)}: the machine was busy "
            "during those rounds; the medians there are less certain)"
        )
    med_o = summary(overhead)[0]
    verdict = "MET" if med_o <= 0.03 else "NOT MET"
    print(
        f"  wrapper overhead at 4² ≤ 3 %: {verdict} (median {100 * med_o:+.1f} %; the wrappers add a few "
        "Python calls, a shape check and, per fade, a lerp; 4² is where that weighs most)."
    )
    if rss:
        bad = [row["stage"] for row, ok in zip(rows, rss_ok, strict=True) if not ok]
        verdict = "MET at every stage" if not bad else f"NOT MET at {', '.join(bad)}"
        print(f"  peak RSS ≤ plain + 5 %: {verdict}.")
    else:
        print("  peak RSS ≤ plain + 5 %: not measured (--no-rss).")
    print(f"  anchor: {anchor}")
    print(f"\n({time.perf_counter() - start:.0f} s; a shared machine: rerun if the min–max ranges are wide)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
