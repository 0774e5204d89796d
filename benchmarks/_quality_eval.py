"""The quality benchmark's worker: train one variant for its CPU budget and score it along the way."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _quality_data import real_halves, real_images
from _quality_trainers import DCGANTrainer, ProGANTrainer, Trainer, apply_overrides
from torch import Tensor, nn

GROWING = {"progan": True, "progan-flat": False, "dcgan": False, "dcgan-grown": True}
EVAL_FRACTIONS = (0.0625, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)


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
    """Train one variant for `spec["budget"]` CPU-seconds; its SWD curve, stage-end levels and final samples.

    Runs with `spec["threads"]` torch threads and gives the caller its own count back (in-process runs,
    `--quick`, must not change the thread count, and so the floating-point results, of what runs next).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(spec["threads"])
    try:
        return _train_variant(spec)
    finally:
        torch.set_num_threads(previous)


def _train_variant(spec: dict[str, Any]) -> dict[str, Any]:
    from progrow.metrics.msssim import ms_ssim_diversity
    from progrow.metrics.swd import swd

    cache, res, variant = Path(spec["cache"]), spec["resolution"], spec["variant"]
    from progrow.data import MultiResDataset

    real_index, _ = real_halves(len(MultiResDataset(cache)), spec["samples"])
    reals = real_images(cache, res, real_index)
    # Stage ends and the final levels, which the level verdict compares, with more images than the trace:
    # at 8² and 4² a 1,000-image SWD moves by about ±2.5 from one set of images to the next.
    n_levels = spec.get("level_samples", spec["samples"])
    level_index, _ = real_halves(len(MultiResDataset(cache)), n_levels)
    work = Path(spec["work"])
    trainer = make_trainer(variant, cache, spec, work)
    budget = spec["budget"]
    marks = [f * budget for f in spec.get("fractions", EVAL_FRACTIONS)]
    cpu, steps, points, stage_ends, trace = 0.0, 0, [], [], []
    trace_kimg = spec.get("trace_kimg") or 0.0
    next_trace = trace_kimg
    started = time.perf_counter()
    while marks:
        before = trainer.state
        t0 = time.process_time()
        trainer.step()
        cpu += time.process_time() - t0
        steps += 1
        after = trainer.state
        if GROWING[variant] and after.stage != before.stage:  # the stage that just ended, at its last state
            levels = level_swds(generate(trainer, n_levels, res, state=before, upscale=False), cache, level_index)
            stage_ends.append(
                {"resolution": before.resolution, "cpu_s": round(cpu, 1), "kimg": round(trainer.kimg, 3), "levels": levels}
            )
        if trace_kimg and trainer.kimg >= next_trace:  # levels along the way; main() sets it for growing variants
            next_trace += trace_kimg
            levels = level_swds(generate(trainer, spec["samples"], res, state=after, upscale=False), cache, real_index)
            trace.append(
                {
                    "kimg": round(trainer.kimg, 3),
                    "cpu_s": round(cpu, 1),
                    "resolution": after.resolution,
                    "alpha": round(after.alpha, 3),
                    "levels": levels,
                }
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
    levels = {}
    if state.resolution == res:
        scored = final if n_levels == len(final) else generate(trainer, n_levels, res, upscale=False)
        levels = level_swds(scored, cache, level_index)
    result["final_levels"] = levels  # every variant's, so the grown ones' stage ends have a flat reference
    if GROWING[variant]:
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
        result["trace"] = trace
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
            extra_args=spec.get("progan_args", []),
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
