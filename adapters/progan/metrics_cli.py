"""`progrow metrics` / `progrow fid`: metrics of a trained generator at one resolution against a dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import progrow as pg
from progrow.adapters.progan.generate import load_any
from progrow.checkpoint import CheckpointError
from progrow.data import DataError, MultiResDataset
from progrow.metrics import METRICS, evaluate

__all__ = ["metrics_main", "fid_main"]


def _parser(prog: str, default_metrics: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Metrics of G_ema against the real images of the same resolution.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--from", dest="source", required=True, help="run folder, generator.safetensors export, or checkpoint .pt")
    p.add_argument("--data", required=True, help="dataset cache (made by `progrow dataset`, or a run's dataset/ folder)")
    p.add_argument("--metrics", default=default_metrics, help=f"comma-separated: {', '.join(METRICS)}")
    p.add_argument("--resolution", type=int, default=None,
                   help="evaluate at this resolution, stable (default: the resolution and alpha the generator was saved at)")
    p.add_argument("--samples", type=int, default=10_000, help="generated images")
    p.add_argument("--inception-weights", default=None, help="local InceptionV3 weights (torch-fidelity's pt_inception-2015-12-05)")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--seed", type=int, default=0, help="latent seed")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


def _run(argv: Optional[Sequence[str]], prog: str, default_metrics: str) -> int:
    args = _parser(prog, default_metrics).parse_args(argv)
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if not names or unknown:
        print(f"error: --metrics: unknown or no metric(s) {unknown or names}; available: {', '.join(METRICS)}", file=sys.stderr)
        return 2
    try:
        G = load_any(args.source, device=args.device)
        dataset = MultiResDataset(args.data)
    except (ValueError, FileNotFoundError, CheckpointError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = G.growth_state if args.resolution is None else pg.GrowthState(args.resolution)
    assert state is not None
    if state.resolution not in dataset.resolutions:
        print(f"error: --data: {args.data} has no {state.resolution}² level (has {dataset.resolutions})", file=sys.stderr)
        return 2
    options = {"num_samples": args.samples, "device": args.device, "seed": args.seed}
    if any(n in ("fid", "kid", "is") for n in names):
        options["weights_path"] = args.inception_weights
    try:
        scores = evaluate(names, G, state, dataset, **options)
    except Exception as exc:  # noqa: BLE001 — reported as one line, e.g. missing Inception weights
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'metric':<12} {'value':>14}   ({state.resolution}², alpha {state.alpha:g}, {args.samples} samples)")
    for key, value in scores.items():
        print(f"{key:<12} {value:>14.6f}")
    if args.json:
        record = {"source": args.source, "data": args.data, "resolution": state.resolution, "alpha": state.alpha,
                  "samples": args.samples, **scores}
        Path(args.json).write_text(json.dumps(record, indent=2))
    return 0


def metrics_main(argv: Optional[Sequence[str]] = None) -> int:
    """`progrow metrics`."""
    return _run(argv, "progrow metrics", "fid,swd")


def fid_main(argv: Optional[Sequence[str]] = None) -> int:
    """`progrow fid`: `progrow metrics --metrics fid`."""
    return _run(argv, "progrow fid", "fid")
