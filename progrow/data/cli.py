"""Command line: `python -m progrow.data SOURCE OUT --resolution R` builds a multi-resolution cache."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from progrow.data.cache import CachePlan, build_cache
from progrow.data.dataset import MultiResDataset
from progrow.data.errors import DataError
from progrow.data.resize import CROP_POLICIES
from progrow.data.sources import CHANNEL_POLICIES, IMAGE_EXTENSIONS, open_source
from progrow.state import is_power_of_two

__all__ = ["main", "build_parser"]

_POLICY = f"""\
sources:
  a folder      every {", ".join("*" + e for e in IMAGE_EXTENSIONS)} below it (any letter case), sorted by relative path
  a .zip        a StyleGAN2-ADA dataset zip: its images sorted by name
  synthetic     the built-in SyntheticShapes dataset; synthetic:SEED:N picks seed and count (default 0 and 10000)
  A dataset.json at the root of a folder or zip, {{"labels": [["path.png", int], ...]}}, gives labels.

per image, in this order:
  orientation   the EXIF orientation tag is applied
  mode          grayscale (L, LA, 16-bit I;16 / I) stays 1 channel; P, CMYK and other modes become RGB;
                alpha (RGBA, LA, P with transparency) is composited over white; 16-bit values are
                divided by 257 and rounded (65535 -> 255), never clipped
  channels      keep: 1 channel if every image is grayscale, else RGB for all (gray repeated);
                rgb: always 3 channels
  crop          center: the largest centred square; none: non-square images are an error
  resize        Pillow LANCZOS to RESOLUTION (any factor); smaller images are an error unless --upscale

levels:
  RESOLUTION, RESOLUTION/2, ..., MIN_RESOLUTION; each lower level is the 2x2 box filter of the one above
  in integers, rounding half up: (a + b + c + d + 2) // 4. Files: OUT/meta.json, OUT/level_R.u8
  (raw uint8 [N, C, R, R]), OUT/labels.npy. The cache is built in OUT.tmp-PID and renamed when complete.
"""


def _power_of_two(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not is_power_of_two(value):
        raise argparse.ArgumentTypeError(f"expected a power of two (4, 8, 16, …, 1024), got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int ≥ 1, got {text!r}")
    return value


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser (every option's help states its default)."""
    parser = argparse.ArgumentParser(
        prog=prog or "python -m progrow.data",
        description="Build a multi-resolution uint8 cache of an image dataset for progressive GAN training.",
        epilog=_POLICY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SOURCE", help="an image folder, a StyleGAN2-ADA .zip, or synthetic[:SEED:N]")
    parser.add_argument("out", metavar="OUT", help="output folder; must not exist or be empty")
    parser.add_argument(
        "--resolution", required=True, type=_power_of_two, metavar="R", help="top resolution, a power of two (required)"
    )
    parser.add_argument("--min-resolution", type=_power_of_two, default=4, metavar="R", help="lowest level stored (default: 4)")
    parser.add_argument(
        "--crop",
        choices=CROP_POLICIES,
        default="center",
        help="center: crop the largest centred square; none: non-square images are an error (default: center)",
    )
    parser.add_argument(
        "--channels",
        choices=CHANNEL_POLICIES,
        default="keep",
        help="keep: 1 channel if every image is grayscale, else RGB; rgb: always 3 channels (default: keep)",
    )
    parser.add_argument(
        "--upscale",
        action="store_true",
        help="enlarge images smaller than R with LANCZOS instead of failing (default: off)",
    )
    parser.add_argument(
        "--bad-images",
        choices=("error", "skip"),
        default="error",
        help="images that cannot be decoded: error lists them all and writes nothing; skip leaves them out "
        "and records them in meta.json (default: error)",
    )
    parser.add_argument(
        "--max-images",
        type=_positive_int,
        default=None,
        metavar="N",
        help="use only the first N images in source order (default: all)",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command line with `argv` (default `sys.argv[1:]`); the exit status (0, or 2 for bad input)."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return exc.code if isinstance(exc.code, int) else 2
    progress = _progress if sys.stderr.isatty() else None
    if args.min_resolution > args.resolution:
        print(
            f"{parser.prog}: error: --min-resolution: expected at most --resolution ({args.resolution}), "
            f"got {args.min_resolution}",
            file=sys.stderr,
        )
        return 2
    try:
        with open_source(args.source, max_images=args.max_images):
            pass
    except DataError as exc:
        print(f"{parser.prog}: error: SOURCE {exc}", file=sys.stderr)
        return 2
    try:
        out = build_cache(
            args.source,
            args.out,
            resolution=args.resolution,
            min_resolution=args.min_resolution,
            crop=args.crop,
            channels=args.channels,
            upscale=args.upscale,
            max_images=args.max_images,
            bad_images=args.bad_images,
            progress=progress,
            on_plan=_announce,
        )
        dataset = MultiResDataset(out)
    except (DataError, OSError) as exc:
        if progress:
            print(file=sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted; nothing was written to {args.out}", file=sys.stderr)
        return 130
    if progress:
        print(file=sys.stderr)
    res = dataset.resolutions
    size = sum(dataset.level(r).nbytes for r in res)
    labels = "no labels" if dataset.labels is None else "labels"
    print(
        f"{out}: {dataset.num_images} images, {dataset.num_channels} channel(s), {labels}, "
        f"{res[0]}..{res[-1]} px ({len(res)} levels, {size / 2**20:.1f} MiB), {dataset.content_hash[:19]}… "
        f"from {dataset.source}"
    )
    return 0


def _announce(plan: CachePlan) -> None:
    print(plan.describe(), file=sys.stderr, flush=True)


def _progress(done: int, total: int) -> None:
    if done == total or done % 100 == 0:
        print(f"\r{done}/{total} images", end="", file=sys.stderr, flush=True)
