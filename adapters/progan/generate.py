"""`generate` (N images) and `interpolate` (a latent walk as a PNG strip and a GIF) from a run, checkpoint or export."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

import progrow as pg
from progrow.checkpoint import CheckpointError, latest_checkpoint
from progrow.images import to_pil, to_uint8
from progrow.metrics.images import resolve_latent_dim

from ..cli_help import HelpFormatter
from .export import generator_from_checkpoint, load_generator

__all__ = [
    "load_any",
    "generate_main",
    "interpolate_main",
    "slerp",
    "build_generate_parser",
    "build_interpolate_parser",
    "LoadError",
    "check_output_file",
    "check_output_folder",
]

MAX_SEED = 2**32 - 1


class LoadError(ValueError):
    """`--from` names nothing a generator can be loaded from; the message starts with `--from:`."""


def load_any(source: str, *, device: str = "cpu") -> pg.ProgressiveGenerator:
    """G_ema from a run folder (its export, else its newest checkpoint), a `.safetensors` export, or a `.pt` checkpoint.

    Anything that cannot be loaded is a `LoadError` (a `ValueError`) whose message starts with `--from:`.
    """
    try:
        return _load_any(source, device=device)
    except LoadError:
        raise
    except (ValueError, FileNotFoundError, CheckpointError, KeyError, OSError, RuntimeError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(text if text.startswith("--from") else f"--from: {text}") from None


def _load_any(source: str, *, device: str) -> pg.ProgressiveGenerator:
    path = Path(source)
    if path.is_dir():
        if (path / "generator.safetensors").is_file():
            return load_generator(path / "generator", device=device)[0]
        found = latest_checkpoint(path / "checkpoints")
        if found is None:
            raise LoadError(f"--from: {path} holds neither generator.safetensors nor a readable checkpoint")
        return generator_from_checkpoint(found[0], device=device)[0]
    if path.suffix == ".safetensors" or path.with_suffix(".safetensors").is_file() and path.suffix != ".pt":
        return load_generator(path, device=device)[0]
    if path.is_file():
        return generator_from_checkpoint(path, device=device)[0]
    raise LoadError(f"--from: {path}: no such run folder, export or checkpoint")


def _latents(G: pg.ProgressiveGenerator, seeds: Sequence[int]) -> torch.Tensor:
    dim = resolve_latent_dim(G, None)
    return torch.stack([torch.randn(dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


def _labels(G: pg.ProgressiveGenerator, n: int, label: int | None) -> dict:
    classes = getattr(G.net, "num_classes", 0)
    if not classes:
        return {}
    labels = torch.full((n,), label if label is not None else 0, dtype=torch.long)
    return {"labels": labels}


def _check_label(G: pg.ProgressiveGenerator, label: int | None) -> str | None:
    """Why `--label` does not fit the generator (unconditional, or out of its classes), or None."""
    if label is None:
        return None
    classes = getattr(G.net, "num_classes", 0)
    if not classes:
        return f"--label {label}: the generator is unconditional (trained without --cond); leave --label out"
    if not 0 <= label < classes:
        return f"--label: expected a class in 0..{classes - 1}, got {label}"
    return None


def check_output_file(text: str, option: str) -> str | None:
    """Why `text` cannot be written as a file (it is a folder, or a parent is a file), or None."""
    path = Path(text)
    if path.is_dir():
        return f"{option}: {path} is a folder; expected a file name"
    return _parents_problem(path, option)


def check_output_folder(text: str, option: str) -> str | None:
    """Why `text` cannot be used as an output folder (it, or a parent, is a file), or None."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        return f"{option}: {path} is a file; expected a folder"
    return _parents_problem(path, option)


def _parents_problem(path: Path, option: str) -> str | None:
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else f"{option}: {path} cannot be created: {parent} is a file"
    return None


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latent vectors `[D]` (the norm is interpolated linearly)."""
    na, nb = a.norm(), b.norm()
    ua, ub = a / na, b / nb
    omega = torch.arccos((ua * ub).sum().clamp(-1, 1))
    if omega.abs() < 1e-6:
        direction = torch.lerp(ua, ub, t)
    else:
        direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    return direction * torch.lerp(na, nb, t)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _load_or_none(source: str) -> pg.ProgressiveGenerator | None:
    """`load_any`, with a failure printed as one error line (None then)."""
    try:
        return load_any(source)
    except LoadError as exc:
        _fail(str(exc))
        return None


def build_generate_parser() -> argparse.ArgumentParser:
    """The options of `progrow generate`."""
    p = argparse.ArgumentParser(
        prog="progrow generate",
        description="Write images sampled from a trained generator (G_ema).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--from", dest="source", required=True, help="run folder, generator.safetensors export, or checkpoint .pt")
    p.add_argument("--out", required=True, help="folder for the PNG files")
    p.add_argument("--n", type=int, default=16, help="number of images")
    p.add_argument("--seed", type=int, default=0, help=f"image i uses latent seed SEED + i (0..{MAX_SEED})")
    p.add_argument("--label", type=int, default=None, help="class label for a conditional generator")
    return p


def build_interpolate_parser() -> argparse.ArgumentParser:
    """The options of `progrow interpolate`."""
    p = argparse.ArgumentParser(
        prog="progrow interpolate",
        description="A latent interpolation through the given seeds, as a PNG strip and an animated GIF.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--from", dest="source", required=True, help="run folder, generator.safetensors export, or checkpoint .pt")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated latent seeds to pass through (at least two)")
    p.add_argument("--steps", type=int, default=8, help="frames between two consecutive seeds")
    p.add_argument("--out", required=True, help="output PNG strip; the GIF is written beside it (same name, .gif)")
    p.add_argument("--label", type=int, default=None, help="class label for a conditional generator")
    return p


def generate_main(argv: Sequence[str] | None = None) -> int:
    """`progrow generate`: the exit code (2 for bad input, with one `error:` line)."""
    args = build_generate_parser().parse_args(argv)
    if args.n < 1:
        return _fail(f"--n: expected an int ≥ 1, got {args.n}")
    if not 0 <= args.seed <= MAX_SEED - args.n + 1:
        return _fail(f"--seed: expected an int in 0..{MAX_SEED - args.n + 1} (seeds SEED..SEED+N-1), got {args.seed}")
    problem = check_output_folder(args.out, "--out")
    if problem:
        return _fail(problem)
    G = _load_or_none(args.source)
    if G is None:
        return 2
    problem = _check_label(G, args.label)
    if problem:
        return _fail(problem)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed, args.seed + args.n))
    with torch.no_grad():
        images = to_uint8(G(_latents(G, seeds), **_labels(G, args.n, args.label))).cpu()
    for seed, image in zip(seeds, images, strict=True):
        to_pil(image).save(out / f"seed{seed:06d}.png")
    print(f"wrote {args.n} images of {images.shape[-1]}² to {out}")
    return 0


def interpolate_main(argv: Sequence[str] | None = None) -> int:
    """`progrow interpolate`: the exit code (2 for bad input, with one `error:` line)."""
    args = build_interpolate_parser().parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        return _fail(f"--seeds: expected comma-separated ints, got {args.seeds!r}")
    if len(seeds) < 2:
        return _fail(f"--seeds: expected at least two seeds, got {args.seeds!r}")
    if not all(0 <= s <= MAX_SEED for s in seeds):
        return _fail(f"--seeds: expected seeds in 0..{MAX_SEED}, got {args.seeds!r}")
    if args.steps < 1:
        return _fail(f"--steps: expected an int ≥ 1, got {args.steps}")
    problem = check_output_file(args.out, "--out")
    if problem:
        return _fail(problem)
    G = _load_or_none(args.source)
    if G is None:
        return 2
    problem = _check_label(G, args.label)
    if problem:
        return _fail(problem)
    keys = _latents(G, seeds)
    frames = [slerp(keys[i], keys[i + 1], k / args.steps) for i in range(len(seeds) - 1) for k in range(args.steps)]
    frames.append(keys[-1])
    z = torch.stack(frames)
    with torch.no_grad():
        images = to_uint8(G(z, **_labels(G, len(frames), args.label))).cpu()
    strip = torch.cat(list(images), dim=-1)  # [C, H, W·frames]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    to_pil(strip).save(out)
    pil_frames = [to_pil(im) for im in images]
    gif = out.with_suffix(".gif")
    pil_frames[0].save(gif, save_all=True, append_images=pil_frames[1:], duration=80, loop=0)
    print(f"wrote {len(frames)} frames to {out} and {gif}")
    return 0
