"""`progrow metrics` / `progrow fid`: metrics of a trained generator at one resolution against a dataset."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import progrow as pg
from progrow.data import DataError, MultiResDataset
from progrow.metrics import METRICS
from progrow.metrics.fidelity import FIDELITY_METRICS
from progrow.metrics.inception import check_weights_file
from progrow.state import is_power_of_two

from ..cli_help import HelpFormatter
from ..devices import resolve_device
from .generate import MAX_SEED, LoadError, check_output_file, load_any
from .metric_groups import evaluate_groups, reference_groups

__all__ = ["metrics_main", "fid_main", "build_parser"]

_DESCRIPTIONS = {
    "metrics": "Metrics of G_ema against the real images of the same resolution, each beside its real-vs-real value.",
    "fid": "FID (Fréchet Inception Distance, torch-fidelity's InceptionV3) of G_ema against the real images of the\n"
    "same resolution. `progrow metrics` computes the others (KID, IS, SWD, MS-SSIM).",
}


def build_parser(prog: str = "progrow metrics", *, fid: bool = False) -> argparse.ArgumentParser:
    """The options of `progrow metrics`, or of `progrow fid` (`fid=True`: no `--metrics`)."""
    p = argparse.ArgumentParser(prog=prog, description=_DESCRIPTIONS["fid" if fid else "metrics"], formatter_class=HelpFormatter)
    p.add_argument("--from", dest="source", required=True, help="run folder, generator.safetensors export, or checkpoint .pt")
    p.add_argument("--data", required=True, help="dataset cache (made by `progrow dataset`, or a run's dataset/ folder)")
    if not fid:
        p.add_argument("--metrics", default="fid,swd", help=f"comma-separated: {', '.join(METRICS)}")
    p.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="evaluate at this resolution, stable (default: the resolution and alpha the generator was saved at)",
    )
    p.add_argument("--samples", type=int, default=10_000, help="generated images (at least 2)")
    p.add_argument(
        "--inception-weights",
        default=None,
        help="local InceptionV3 weights for fid/kid/is (torch-fidelity's pt_inception-2015-12-05 state dict, "
        "the file weights-inception-2015-12-05-6726825d.pth; default: torch-fidelity's download cache)",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--seed", type=int, default=0, help=f"latent seed, 0..{MAX_SEED}")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="leave out the 'real vs real' column: each metric for two disjoint sets of the dataset's reals (as many "
        "as --samples each), what a perfect generator would score. The first time for a dataset, resolution "
        "and sample count it costs as much as the metrics themselves; then it is read from "
        "$TORCH_HOME/fidelity_cache",
    )
    return p


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace, names: list[str]) -> str | None:
    """The first problem of the command line that needs no model or dataset, or None."""
    unknown = [m for m in names if m not in METRICS]
    if not names or unknown:
        return f"--metrics: unknown or no metric(s) {unknown or names}; available: {', '.join(METRICS)}"
    if args.resolution is not None and (not is_power_of_two(args.resolution) or not 4 <= args.resolution <= 1024):
        return f"--resolution: expected a power of two in 4..1024, got {args.resolution}"
    if args.samples < 2:
        return f"--samples: expected an int ≥ 2, got {args.samples}"
    if not 0 <= args.seed <= MAX_SEED:
        return f"--seed: expected an int in 0..{MAX_SEED}, got {args.seed}"
    if args.json is not None:
        problem = check_output_file(args.json, "--json")
        if problem:
            return problem
    data = Path(args.data)
    if not data.exists():
        return f"--data: {data}: no such dataset cache folder"
    if not data.is_dir():
        return f"--data: {data} is a file; expected a dataset cache folder (made by `progrow dataset`)"
    if args.inception_weights is not None:
        weights = Path(args.inception_weights)
        if not weights.is_file():
            what = " is a folder; expected the weights file" if weights.is_dir() else ": no such file"
            return f"--inception-weights: {weights}{what}"
        try:
            check_weights_file(weights, option="--inception-weights")
        except ValueError as exc:
            return str(exc)
    return None


def _run(argv: Sequence[str] | None, prog: str, *, fid: bool) -> int:
    args = build_parser(prog, fid=fid).parse_args(argv)
    names = ["fid"] if fid else [m.strip() for m in args.metrics.split(",") if m.strip()]
    problem = _check(args, names)
    if problem:
        return _fail(problem)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        G = load_any(args.source, device=str(device))
    except LoadError as exc:
        return _fail(str(exc))
    try:
        dataset = MultiResDataset(args.data)
    except DataError as exc:
        return _fail(f"--data: {exc}")
    state = G.growth_state if args.resolution is None else pg.GrowthState(args.resolution)
    assert state is not None
    if state.resolution not in dataset.resolutions:
        option = "--resolution" if args.resolution is not None else "--data"
        return _fail(f"{option}: {args.data} has no {state.resolution}² level (has {', '.join(map(str, dataset.resolutions))})")
    options: dict[str, Any] = {"num_samples": args.samples, "device": device, "seed": args.seed}
    if any(n in FIDELITY_METRICS for n in names):
        options.update(weights_path=args.inception_weights, verbose=sys.stderr.isatty())  # torch-fidelity's progress bars
    scores, errors = evaluate_groups(names, G, state, dataset, **options)
    reference: dict[str, float] | None = None
    warnings: dict[str, str] = {}
    scored = [n for n in names if not any(n in group.split(",") for group in errors)]
    if scored and not args.no_reference:
        reference, warnings = reference_groups(scored, dataset, state.resolution, **options)
    if scores:
        _print_table(scores, reference, state, args.samples, dataset.num_images)
    if args.json and scores:
        record = {
            "source": args.source,
            "data": args.data,
            "resolution": state.resolution,
            "alpha": state.alpha,
            "samples": args.samples,
            **scores,
            **({"errors": errors} if errors else {}),
        }
        if reference is not None:
            record["real_vs_real"] = reference
            if warnings:
                record["real_vs_real_errors"] = warnings
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2))
    for group, message in warnings.items():
        print(f"warning: real vs real: {group}: {message.removeprefix('real_vs_real: ')}", file=sys.stderr)
    for group, message in errors.items():
        print(f"error: {group}: {message}", file=sys.stderr)
    return 2 if errors else 0


def _print_table(
    scores: dict[str, float], reference: dict[str, float] | None, state: pg.GrowthState, samples: int, num_images: int
) -> None:
    """The scores, one a line, with the real-vs-real value beside each (`—` where there is none) unless `reference` is None."""
    where = f"({state.resolution}², alpha {state.alpha:g}, {samples} samples)"
    if reference is None:
        print(f"{'metric':<12} {'value':>14}   {where}")
        for key, value in scores.items():
            print(f"{key:<12} {value:>14.6f}")
        return
    print(f"{'metric':<12} {'value':>14} {'real vs real':>14}   {where}")
    for key, value in scores.items():
        floor = f"{reference[key]:>14.6f}" if key in reference else f"{'—':>14}"
        print(f"{key:<12} {value:>14.6f} {floor}")
    count = int(reference.get("num_samples", samples))
    if count < samples:
        print(
            f"real vs real: two sets of {count} reals (the {state.resolution}² level has {num_images} images, "
            f"fewer than 2 × {samples})"
        )


def metrics_main(argv: Sequence[str] | None = None) -> int:
    """`progrow metrics`."""
    return _run(argv, "progrow metrics", fid=False)


def fid_main(argv: Sequence[str] | None = None) -> int:
    """`progrow fid`: `progrow metrics --metrics fid`."""
    return _run(argv, "progrow fid", fid=True)
