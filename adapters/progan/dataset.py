"""The run's multi-resolution cache: `--data` built into `<out>/dataset` on first use, then checked against the run."""

from __future__ import annotations

from pathlib import Path

from progrow.data import MultiResDataset, build_cache, open_source
from progrow.data.cache import CachePlan

from .distributed import barrier
from .options import Options, UsageError

__all__ = ["open_dataset"]


def open_dataset(opts: Options) -> MultiResDataset:
    """The multi-resolution cache for `--data`, built into `<out>/dataset` on first use (announced first)."""
    spec = opts.data
    assert opts.source is not None  # resolve_options inspected --data
    if opts.source.kind == "cache":
        path = Path(spec)
        return _check_dataset(MultiResDataset(path), opts, path)
    cache = opts.out / "dataset"
    if opts.dist.is_main and not (cache / "meta.json").is_file():
        if opts.source.kind == "synthetic":
            print(
                f"note: --data {spec} is progrow's built-in demo set (drawn shapes), for trying the tool; "
                "pass --data with your images (a folder, a zip, or a `progrow dataset` cache) for real training",
                flush=True,
            )
        build_cache(
            spec,
            cache,
            resolution=opts.preset.resolution,
            crop=opts.crop,
            upscale=opts.upscale,
            bad_images=opts.bad_images,
            on_plan=_announce,
        )
    barrier(opts.dist)  # the other ranks wait for rank 0's cache
    dataset = MultiResDataset(cache)
    with open_source(spec) as src:
        if dataset.source != src.description:
            raise UsageError(f"--data: {opts.out} was trained on {dataset.source}, not {src.description}; use another --out")
    return _check_dataset(dataset, opts, cache)


def _announce(plan: CachePlan) -> None:
    print(f"dataset: {plan.describe()}", flush=True)


def _check_dataset(ds: MultiResDataset, opts: Options, path: Path) -> MultiResDataset:
    """`ds` has every level the schedule trains at, and labels if the run is conditional."""
    needed = opts.preset.schedule.resolutions
    missing = [r for r in needed if r not in ds.resolutions]
    if missing:
        raise UsageError(f"--data: {path} has levels {tuple(ds.resolutions)}, the preset needs {needed} (missing {missing})")
    if opts.cond and ds.labels is None:
        raise UsageError(f"--cond: {path} has no labels (a StyleGAN2-ADA zip with dataset.json provides them)")
    return ds
