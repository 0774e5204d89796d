"""Does progressive growing pay off? Four GANs trained for equal CPU time, scored by the paper's SWD.

    python benchmarks/quality.py                      # 32², both datasets, the default budget
    python benchmarks/quality.py --resolution 64      # the 64² variant (cpu-demo-64 preset, larger budget)
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
against the dataset's level), which shows whether a new stage loses what the earlier ones learned.
The floor is the SWD between two disjoint halves of the real images. Results: a table and verdicts on
stdout, `quality.json`, `swd.png` (SWD against CPU-seconds) and `samples-<dataset>.png` in `--out`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
VARIANTS = ("progan", "progan-flat", "dcgan", "dcgan-grown")
DATASETS = ("shapes", "digits")
GROWING = {"progan": True, "progan-flat": False, "dcgan": False, "dcgan-grown": True}
PRESET_AT = {32: "cpu-demo", 64: "cpu-demo-64"}
DEFAULT_BUDGET = {32: 600.0, 64: 2400.0}  # CPU-seconds per variant (about one cpu-demo run's)
EVAL_FRACTIONS = (0.0625, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)


# ----------------------------------------------------------------------------------------------- data
def render_digits(out: Path, *, num_images: int, resolution: int, seed: int = 0) -> Path:
    """Write `num_images` MNIST-like digit PNGs (`R×R`, RGB) and their labels (`dataset.json`) to `out`."""
    from PIL import Image, ImageDraw, ImageFont

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    big = 4 * resolution  # drawn at 4× and reduced with LANCZOS: anti-aliased strokes
    labels = []
    for i in range(num_images):
        digit = int(rng.integers(10))
        size = int(big * rng.uniform(0.55, 0.85))
        font = ImageFont.load_default(size=size)
        ink = tuple(int(v) for v in rng.uniform(170, 255, size=3))  # light, slightly tinted strokes
        ground = tuple(int(v) for v in rng.uniform(0, 50, size=3))  # on a dark ground
        glyph = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(glyph)
        stroke = int(rng.integers(0, max(2, size // 14)))
        draw.text((big / 2, big / 2), str(digit), fill=255, font=font, anchor="mm", stroke_width=stroke, stroke_fill=255)
        glyph = glyph.rotate(
            float(rng.uniform(-15, 15)),
            resample=Image.BICUBIC,
            translate=tuple(float(v) for v in rng.uniform(-0.08, 0.08, size=2) * big),
        )
        image = Image.composite(Image.new("RGB", (big, big), ink), Image.new("RGB", (big, big), ground), glyph)
        name = f"{i:06d}.png"
        image.resize((resolution, resolution), Image.LANCZOS).save(out / name)
        labels.append([name, digit])
    (out / "dataset.json").write_text(json.dumps({"labels": labels}))
    return out


def prepare_data(name: str, root: Path, *, resolution: int, num_images: int) -> Path:
    """The multi-resolution cache of dataset `name` under `root` (built once)."""
    from progrow.data import build_cache

    cache = root / f"{name}-{resolution}-{num_images}"
    if (cache / "meta.json").is_file():
        return cache
    if name == "shapes":
        source: Any = f"synthetic:0:{num_images}"
    else:
        folder = root / f"{name}-png-{resolution}-{num_images}"
        if folder.exists():
            shutil.rmtree(folder)
        source = render_digits(folder, num_images=num_images, resolution=resolution)
    build_cache(source, cache, resolution=resolution)
    return cache


def real_halves(num_images: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint sets of `n` real images (a fixed permutation): the reference set and the floor's."""
    order = np.random.default_rng(12345).permutation(num_images)
    return np.sort(order[:n]), np.sort(order[n : 2 * n])


def real_images(cache: Path, resolution: int, index: np.ndarray) -> Tensor:
    """The real images `index` of the cache's level `resolution` as uint8 `[n, 3, R, R]`."""
    from progrow.data import MultiResDataset

    images = torch.from_numpy(np.ascontiguousarray(MultiResDataset(cache).level(resolution)[index]))
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images


# --------------------------------------------------------------------------------------- the DCGAN
class DCGANGenerator(nn.Module):
    """The PyTorch DCGAN tutorial's generator for any `resolution` ≥ 8: `[N, nz, 1, 1] -> [N, nc, R, R]`."""

    def __init__(self, resolution: int, *, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        doublings = int(math.log2(resolution)) - 3  # 4 → 8 → … → R/2 by the middle layers
        width = ngf * 2**doublings
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(doublings):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.nz = nz

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z.view(len(z), -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """The PyTorch DCGAN tutorial's discriminator for any `resolution` ≥ 8: `[N, nc, R, R] -> [N, 1, 1, 1]`."""

    def __init__(self, resolution: int, *, ndf: int = 64, nc: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for _ in range(int(math.log2(resolution)) - 3):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


def dcgan_init(m: nn.Module) -> None:
    """The tutorial's initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02) and zero bias."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------- training
class Trainer:
    """One variant: `step()` trains one minibatch; `sample(z)` gives images at the current stage; `state`."""

    state: Any
    kimg: float

    def step(self) -> None:
        raise NotImplementedError

    def sample(self, z: Tensor, state: Any = None) -> Tensor:
        raise NotImplementedError


class ProGANTrainer(Trainer):
    """The reference training script's own pieces (`build_run`, `train_step`), driven step by step."""

    def __init__(
        self, cache: Path, *, preset: str, flat: bool, seed: int, work: Path, phase_kimg: float | None, overrides: dict[str, Any]
    ) -> None:
        from progrow.adapters.progan import train as T
        from progrow.adapters.progan.distributed import DistInfo
        from progrow.data import MultiResDataset

        argv = [
            "--preset",
            preset,
            "--data",
            str(cache),
            "--out",
            str(work),
            "--device",
            "cpu",
            "--kimg",
            "1000000",
            "--seed",
            str(seed),
        ]
        argv += ["--no-growing"] if flat else []
        argv += ["--phase-kimg", str(phase_kimg)] if phase_kimg else []
        opts = T.resolve_options(T.build_parser().parse_args(argv), DistInfo())
        opts.preset = apply_overrides(opts.preset, overrides)
        self.T, self.run = T, T.build_run(opts, MultiResDataset(cache))
        self.latent_dim = opts.preset.latent_dim

    @property
    def state(self) -> Any:
        return self.run.scheduler.state

    @property
    def kimg(self) -> float:
        return self.run.scheduler.nimg / 1000

    def step(self) -> None:
        state = self.run.scheduler.state
        self.T.train_step(self.run, state)
        self.run.scheduler.advance(state.batch_size)

    def sample(self, z: Tensor, state: Any = None) -> Tensor:
        G = self.run.ema.module
        with torch.no_grad():
            return G(z, state or self.state)  # an explicit state leaves the scheduler's binding alone


class DCGANTrainer(Trainer):
    """The tutorial's training loop: BCE on D's sigmoid, Adam(2e-4, β = (0.5, 0.999)), batch 64; optionally grown."""

    def __init__(
        self, cache: Path, *, resolution: int, grow: bool, seed: int, schedule: Any, batch_size: int = 64, lr: float = 2e-4
    ) -> None:
        import progrow as pg
        from progrow.adapters.sequential import growable_discriminator, growable_generator
        from progrow.data import ImageSampler, MultiResDataset

        torch.manual_seed(seed)
        dataset = MultiResDataset(cache)
        netG = DCGANGenerator(resolution, nc=dataset.num_channels)
        netD = DCGANDiscriminator(resolution, nc=dataset.num_channels)
        netG.apply(dcgan_init)
        netD.apply(dcgan_init)
        self.latent_dim = netG.nz
        self.grow = grow
        if grow:
            self.G: nn.Module = pg.ProgressiveGenerator(growable_generator(netG.main), img_channels=dataset.num_channels)
            self.D: nn.Module = pg.ProgressiveDiscriminator(growable_discriminator(netD.main), img_channels=dataset.num_channels)
            config = schedule.replace(
                batch_size=batch_size, batch_size_per_res={}, lr=lr, lr_per_res={}, total_kimg=1e6, reset_optimizers="never"
            )
        else:
            self.G, self.D = netG, netD
            config = pg.ScheduleConfig(
                start_resolution=resolution, final_resolution=resolution, stable_kimg=1e6, batch_size=batch_size, lr=lr
            )
        self.scheduler = pg.ProgressiveScheduler(config)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.999))
        if grow:
            pg.bind(self.scheduler, self.G, self.D, self.opt_g, self.opt_d)
        self.sampler = ImageSampler(dataset, seed=seed, mirror=True)
        self.criterion = nn.BCELoss()
        self.pg = pg

    @property
    def state(self) -> Any:
        return self.scheduler.state

    @property
    def kimg(self) -> float:
        return self.scheduler.nimg / 1000

    def step(self) -> None:
        state = self.scheduler.state
        n = state.batch_size
        images, _ = self.sampler.next_batch(state.resolution, n)
        real = self.pg.fade_reals(self.pg.to_float(images), state) if self.grow else self.pg.to_float(images)
        ones, zeros = torch.ones(n), torch.zeros(n)
        self.D.zero_grad()
        err_real = self.criterion(self.D(real).view(-1), ones)
        err_real.backward()
        fake = self.G(torch.randn(n, self.latent_dim))
        err_fake = self.criterion(self.D(fake.detach()).view(-1), zeros)
        err_fake.backward()
        self.opt_d.step()
        self.G.zero_grad()
        err_g = self.criterion(self.D(fake).view(-1), ones)
        err_g.backward()
        self.opt_g.step()
        self.scheduler.advance(n)

    def sample(self, z: Tensor, state: Any = None) -> Tensor:
        G = copy.deepcopy(self.G)  # batch statistics, as the tutorial samples; the copy keeps BN buffers untouched
        with torch.no_grad():
            return G(z, state or self.state) if self.grow else G(z)


def apply_overrides(preset: Any, overrides: dict[str, Any]) -> Any:
    """`preset` with fields replaced: `{"fmap_max": 128, "schedule.batch_size": 32}` (for tuning experiments)."""
    schedule = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("schedule.")}
    top = {k: v for k, v in overrides.items() if not k.startswith("schedule.")}
    if schedule:
        top["schedule"] = preset.schedule.replace(**schedule)
    return replace(preset, **top) if top else preset


# -------------------------------------------------------------------------------------- evaluation
def generate(trainer: Trainer, n: int, resolution: int, *, state: Any = None, upscale: bool = True) -> Tensor:
    """`n` images uint8 `[n, 3, R, R]` from fixed latents at `state` (default: now), upscaled to `resolution`."""
    from progrow.metrics.images import to_uint8_rgb

    z = torch.randn(n, trainer.latent_dim, generator=torch.Generator().manual_seed(2020))
    out = torch.cat([to_uint8_rgb(trainer.sample(chunk, state)) for chunk in z.split(100)])
    factor = resolution // out.shape[-1]
    if upscale and factor > 1:
        out = out.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
    return out


def border_step(images: Tensor) -> float:
    """Mean |outermost − next pixel| across the four image borders of uint8 `[N, C, R, R]`: a 1-px frame shows here.

    The same measure one pixel further in is the image's own texture; real images have about the same value at
    both places, a generator that draws a frame has a much larger one at the border.
    """
    x = images.float()
    steps = [x[:, :, 0] - x[:, :, 1], x[:, :, -1] - x[:, :, -2], x[:, :, :, 0] - x[:, :, :, 1], x[:, :, :, -1] - x[:, :, :, -2]]
    return round(float(torch.stack([s.abs().mean() for s in steps]).mean()), 3)


def level_swds(fakes: Tensor, cache: Path, real_index: np.ndarray) -> dict[str, float]:
    """SWD at every level of `fakes` `[n, 3, r, r]` down to 4² (box-filtered as the cache) vs the real levels."""
    from progrow.data.cache import box_downsample_u8
    from progrow.metrics.swd import swd

    out = {}
    current = fakes.numpy()
    while True:
        r = current.shape[-1]
        out[str(r)] = round(swd(torch.from_numpy(current), real_images(cache, r, real_index), min_resolution=r)["swd"], 3)
        if r <= 4:
            return out
        current = box_downsample_u8(current)


def train_variant(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one variant for `spec["budget"]` CPU-seconds; its SWD curve, stage-end levels and final samples."""
    from progrow.metrics.msssim import ms_ssim_diversity
    from progrow.metrics.swd import swd

    torch.set_num_threads(spec["threads"])
    cache, res, variant = Path(spec["cache"]), spec["resolution"], spec["variant"]
    from progrow.data import MultiResDataset

    real_index, _ = real_halves(len(MultiResDataset(cache)), spec["samples"])
    reals = real_images(cache, res, real_index)
    work = Path(spec["work"])
    trainer = make_trainer(variant, cache, spec, work)
    budget = spec["budget"]
    marks = [f * budget for f in spec.get("fractions", EVAL_FRACTIONS)]
    cpu, steps, points, stage_ends = 0.0, 0, [], []
    started = time.perf_counter()
    while marks:
        before = trainer.state
        t0 = time.process_time()
        trainer.step()
        cpu += time.process_time() - t0
        steps += 1
        after = trainer.state
        if GROWING[variant] and after.stage != before.stage:  # the stage that just ended, at its last state
            levels = level_swds(generate(trainer, spec["samples"], res, state=before, upscale=False), cache, real_index)
            stage_ends.append(
                {"resolution": before.resolution, "cpu_s": round(cpu, 1), "kimg": round(trainer.kimg, 3), "levels": levels}
            )
        if cpu >= marks[0]:
            marks.pop(0)
            fakes = generate(trainer, spec["samples"], res)
            scores = swd(fakes, reals)
            state = trainer.state
            points.append(
                {
                    "cpu_s": round(cpu, 1),
                    "kimg": round(trainer.kimg, 3),
                    "resolution": state.resolution,
                    "alpha": round(state.alpha, 3),
                    **{k: round(v, 3) for k, v in scores.items()},
                }
            )
            print(
                f"  {spec['dataset']:>6} {variant:<12} {cpu:7.0f} CPU-s {trainer.kimg:7.1f} kimg  "
                f"{state.resolution:>3}² α={state.alpha:.2f}  swd {scores['swd']:.1f}",
                flush=True,
            )
    state = trainer.state
    final = generate(trainer, spec["samples"], res, upscale=False)
    result: dict[str, Any] = {
        "variant": variant,
        "dataset": spec["dataset"],
        "points": points,
        "steps": steps,
        "cpu_s": round(cpu, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "final_resolution_reached": state.resolution,
        "final_alpha": round(state.alpha, 3),
        "ms_ssim": round(ms_ssim_diversity(final, num_pairs=min(2000, 4 * len(final))), 4),
    }
    if GROWING[variant]:
        levels = level_swds(final, cache, real_index) if state.resolution == res else {}
        stage_ends.append(
            {
                "resolution": state.resolution,
                "cpu_s": round(cpu, 1),
                "kimg": round(trainer.kimg, 3),
                "levels": levels,
                "budget_end": True,
            }
        )
        result["stage_ends"] = stage_ends
    if spec.get("inception_weights"):
        result.update(fidelity_scores(trainer, state, cache, spec["samples"], spec["inception_weights"]))
    np.save(work / "samples.npy", final[:64].numpy())
    return result


def make_trainer(variant: str, cache: Path, spec: dict[str, Any], work: Path) -> Trainer:
    if variant.startswith("progan"):
        return ProGANTrainer(
            cache,
            preset=spec["preset"],
            flat=variant == "progan-flat",
            seed=spec["seed"],
            work=work / "run",
            phase_kimg=spec.get("phase_kimg"),
            overrides=spec.get("overrides", {}),
        )
    from progrow.adapters.progan.presets import get_preset

    if variant == "dcgan":  # flat: no schedule of the preset's
        return DCGANTrainer(cache, resolution=spec["resolution"], grow=False, seed=spec["seed"], schedule=None)
    schedule = apply_overrides(get_preset(spec["preset"]), spec.get("overrides", {})).schedule
    if spec.get("phase_kimg"):
        k = spec["phase_kimg"]
        schedule = schedule.replace(fade_kimg=k, stable_kimg=k, fade_kimg_per_res={}, stable_kimg_per_res={})
    return DCGANTrainer(cache, resolution=spec["resolution"], grow=True, seed=spec["seed"], schedule=schedule)


class _Sampler(nn.Module):
    """A trainer's current generator as `generator(z, state) -> [N, C, R, R]` in [-1, 1], for torch-fidelity."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        object.__setattr__(self, "trainer", trainer)  # not a submodule: eval() here must not reach it
        self.latent_dim = trainer.latent_dim

    def forward(self, z: Tensor, state: Any) -> Tensor:
        return self.trainer.sample(z, state)  # type: ignore[operator]


def fidelity_scores(trainer: Trainer, state: Any, cache: Path, n: int, weights: str) -> dict[str, float]:
    """FID and KID of `n` images of the trainer's generator at `state` against the cache, with local InceptionV3 weights."""
    from progrow.metrics.fidelity import compute_metrics

    scores = compute_metrics(
        _Sampler(trainer),
        state,
        cache,
        metrics=("fid", "kid"),
        num_samples=n,
        weights_path=weights,
        device="cpu",
        cache_dir=str(cache / "fidelity-cache"),
    )
    return {k: round(float(v), 4) for k, v in scores.items()}


# ------------------------------------------------------------------------------------ orchestration
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


def verdicts(dataset: str, results: dict[str, dict[str, Any]], floor: float) -> list[str]:
    """The printed verdict lines for one dataset."""
    final = {v: r["points"][-1]["swd"] for v, r in results.items()}
    lines = [f"{dataset}: final SWD (floor {floor:.1f}): " + ", ".join(f"{v} {s:.1f}" for v, s in final.items())]

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


def write_plot(results: dict[str, dict[str, dict[str, Any]]], floors: dict[str, float], path: Path) -> bool:
    """SWD against CPU-seconds, one panel per dataset, the floor dashed; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (dataset, by_variant) in zip(axes[0], results.items(), strict=False):
        for variant, r in by_variant.items():
            ax.plot([p["cpu_s"] for p in r["points"]], [p["swd"] for p in r["points"]], marker="o", ms=3, label=variant)
        ax.axhline(floors[dataset], color="grey", ls="--", lw=1, label="real vs real")
        ax.set(title=dataset, xlabel="training CPU-seconds", ylabel="SWD ×10³ (lower is better)", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


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
    p.add_argument("--images", type=int, default=10_000, help="images per dataset (default: 10000)")
    p.add_argument("--jobs", type=int, default=2, help="variants trained at once, each in its own process (0: in this process)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per variant (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of every variant (default: 0)")
    p.add_argument("--phase-kimg", type=float, default=None, help="override every phase length of the progressive variants")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override a preset field for every variant, e.g. fmap_max=128 or schedule.batch_size=32 (tuning)",
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
        raise SystemExit(f"error: unknown dataset or variant {', '.join(bad)}; datasets {DATASETS}, variants {VARIANTS}")
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    res, preset = args.resolution, PRESET_AT[args.resolution]
    budget = args.budget if args.budget is not None else DEFAULT_BUDGET[res]
    images, samples, jobs, phase_kimg = args.images, args.samples, args.jobs, args.phase_kimg
    if args.quick:  # every code path, with a few hundred images, short phases and seconds of training
        budget, images, samples, jobs, phase_kimg = 2.0, 128, 32, 0, 0.016
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"quality: {res}², {budget:.0f} training CPU-seconds per variant, {args.threads} thread(s) each, "
        f"{samples} samples per SWD; {platform.node()} ({os.cpu_count()} CPUs), load {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    caches = {d: prepare_data(d, out / "data", resolution=res, num_images=images) for d in datasets}
    from progrow.data import MultiResDataset
    from progrow.metrics.swd import swd

    floors, real_borders, reference_sets = {}, {}, {}
    for d, cache in caches.items():
        a, b = real_halves(len(MultiResDataset(cache)), samples)
        reference_sets[d] = real_images(cache, res, a)
        floors[d] = round(swd(real_images(cache, res, b), reference_sets[d])["swd"], 3)
        real_borders[d] = border_step(reference_sets[d][:64])
    specs = [
        {
            "variant": v,
            "dataset": d,
            "cache": str(caches[d]),
            "resolution": res,
            "budget": budget,
            "samples": samples,
            "threads": args.threads,
            "seed": args.seed,
            "preset": preset,
            "overrides": overrides,
            "phase_kimg": phase_kimg,
            "inception_weights": args.inception_weights,
            "work": str(out / d / v),
            "fractions": [0.5, 1.0] if args.quick else list(EVAL_FRACTIONS),
        }
        for d in datasets
        for v in variants
    ]
    for spec in specs:
        if spec["variant"] == "dcgan":  # the flat DCGAN uses no preset: its results stay valid when the preset changes
            spec.update(preset=None, overrides={}, phase_kimg=None)
    if jobs == 0:
        done = [run_worker(s, in_process=True, fresh=args.fresh) for s in specs]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            done = list(pool.map(lambda s: run_worker(s, in_process=False, fresh=args.fresh), specs))
    results: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in datasets}
    for spec, r in zip(specs, done, strict=False):
        samples_file = Path(spec["work"]) / "samples.npy"  # the 64 final images every variant saves
        r["border_step"] = border_step(torch.from_numpy(np.load(samples_file)))
        results[spec["dataset"]][spec["variant"]] = r

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
        for v in ("progan", "dcgan-grown"):
            if v in results[d]:
                ends = "; ".join(
                    f"{e['resolution']}² @ {e['cpu_s']:.0f} CPU-s: " + " ".join(f"{r}²={s:.1f}" for r, s in e["levels"].items())
                    for e in results[d][v]["stage_ends"]
                )
                print(f"         {v} stage ends: {ends}")
        report += verdicts(d, results[d], floors[d])
        write_samples(
            d,
            reference_sets[d],
            {v: np.load(Path(s["work"]) / "samples.npy") for s in specs if s["dataset"] == d for v in [s["variant"]]},
            out / f"samples-{d}.png",
        )
    print("\n" + "\n".join(report))
    plotted = write_plot(results, floors, out / "swd.png")
    summary = {
        "resolution": res,
        "budget_cpu_s": budget,
        "samples": samples,
        "floors": floors,
        "real_border_step": real_borders,
        "results": results,
        "verdicts": report,
        "overrides": overrides,
    }
    (out / "quality.json").write_text(json.dumps(summary, indent=1))
    print(
        f"\nwrote {out / 'quality.json'}, {out}/samples-*.png"
        + (f", {out / 'swd.png'}" if plotted else " (no plot: matplotlib missing)")
    )
    return summary


if __name__ == "__main__":
    main()
