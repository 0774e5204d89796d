"""FID, KID and IS of a generator at one growth stage, through torch-fidelity's `calculate_metrics`.

Generated side: `GeneratedImages` (the generator at `state`, own seeded latents, uint8 RGB). Real side:
`RealImages` over the dataset's level at `state.resolution`. Statistics and features of the real side are
cached on disk by torch-fidelity under an `input2_cache_name` that holds everything they depend on —
the dataset's content hash, the resolution, the number of real images and the identity of the
InceptionV3 weights — so the second FID at a stage extracts the generated side only, and a rebuilt
dataset (new content hash) never meets stale statistics.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import urllib.error
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args

import torch
from torch import Tensor, nn

from progrow.metrics.images import (
    DeviceLike,
    GeneratedImages,
    Labels,
    RealImages,
    Reals,
    check_image_batch,
    open_reals,
    real_subset,
    resolve_device,
)
from progrow.metrics.inception import (
    MissingWeightsError,
    check_weights_file,
    default_weights_file,
    missing_weights_message,
    weights_identity,
)
from progrow.state import GrowthState

__all__ = [
    "FidelityMetric",
    "FIDELITY_METRICS",
    "FIDELITY_KEYS",
    "compute_metrics",
    "compute_image_metrics",
    "fidelity_cache_dir",
    "real_cache_name",
]

FidelityMetric = Literal["fid", "kid", "is"]
FIDELITY_METRICS: tuple[FidelityMetric, ...] = get_args(FidelityMetric)
PathLike = Union[str, "os.PathLike[str]"]

_FLAGS = {"fid": "fid", "kid": "kid", "is": "isc"}  # progrow name → torch-fidelity keyword
# The result keys of each metric.
FIDELITY_KEYS: dict[str, tuple[str, ...]] = {"fid": ("fid",), "kid": ("kid", "kid_std"), "is": ("is", "is_std")}


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int ≥ {minimum}, got {value!r}")
    return value


def fidelity_cache_dir(cache_dir: PathLike | None = None) -> Path:
    """The folder torch-fidelity caches real statistics in: `cache_dir`, else `$TORCH_HOME/fidelity_cache` (its rule)."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(torch.hub._get_torch_home()) / "fidelity_cache"


def real_cache_name(content_hash: str, resolution: int, num_real: int, weights_id: str) -> str:
    """torch-fidelity's `input2_cache_name` for a real side: `progrow-<content>-r<R>-n<N>-w<weights>`."""
    content = content_hash.split(":", 1)[-1][:32]
    return f"progrow-{content}-r{resolution}-n{num_real}-w{weights_id[:16]}"


def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics:
        raise ValueError(f"metrics: expected a non-empty sequence of {FIDELITY_METRICS}, got {metrics!r}")
    bad = [m for m in metrics if m not in FIDELITY_METRICS]
    if bad:
        raise ValueError(f"metrics: unknown {bad}; expected some of {FIDELITY_METRICS}")
    return tuple(dict.fromkeys(metrics))


def compute_metrics(
    generator: nn.Module,
    state: GrowthState,
    reals: Reals,
    *,
    metrics: Sequence[FidelityMetric] = ("fid",),
    num_samples: int = 10_000,
    num_real: int | None = None,
    batch_size: int = 64,
    device: DeviceLike = None,
    weights_path: PathLike | None = None,
    cache_dir: PathLike | None = None,
    latent_dim: int | None = None,
    seed: int = 0,
    labels: Labels = None,
    kid_subset_size: int = 1000,
    verbose: bool = False,
) -> dict[str, float]:
    """FID / KID / IS of `generator` at `state` against `reals` at `state.resolution`, by torch-fidelity.

    - `generator`: called as `generator(z [n, latent_dim], state)` (a `ProgressiveGenerator`, an EMA copy),
      output in [-1, 1] with 1 or 3 channels; run in eval mode, its modes and growth state restored after.
    - `reals`: a `progrow.data` cache folder, a `MultiResDataset`, or uint8 images `[N, C, R, R]` at the
      state's resolution. `num_real` of them are used (default: `min(num_samples, N)`; all of them, or a
      fixed seeded subset independent of `seed`). During a fade (alpha < 1) the reals are still the level
      at `state.resolution`, not faded reals: metrics are meant for the stable end of a stage.
    - `num_samples` generated images (FID needs ≥ 2) from latents seeded by `seed`; `labels` for a
      conditional generator (a number of classes, or a pool such as the dataset's labels).
    - `device`: where InceptionV3 runs, `cpu` or `cuda[:N]` (default: the generator's device), passed to
      torch-fidelity as `cuda=`.
    - `weights_path`: torch-fidelity's InceptionV3 state dict (`feature_extractor_weights_path`); without it
      the file is taken from (or downloaded to) `$TORCH_HOME/hub/checkpoints/`; offline and absent, a
      `MissingWeightsError` says how to supply it.
    - `cache_dir`: torch-fidelity's `cache_root` (default `$TORCH_HOME/fidelity_cache`).
    - `kid_subset_size`: capped at the smaller side's count; IS uses `min(10, num_samples)` splits.

    Returns `{"fid": …}`, `{"kid": …, "kid_std": …}`, `{"is": …, "is_std": …}` for the metrics asked.
    """
    names = _check_metrics(metrics)
    if not isinstance(state, GrowthState):
        raise TypeError(f"state: expected a progrow.GrowthState, got {type(state).__name__}")
    num_samples = _positive_int("num_samples", num_samples, 2)
    weights_path = _check_options(batch_size, kid_subset_size, verbose, cache_dir, weights_path)
    fakes = GeneratedImages(generator, state, latent_dim=latent_dim, seed=seed, labels=labels, device=device)

    from torch_fidelity import GenerativeModelModuleWrapper

    generated = {
        "input1": GenerativeModelModuleWrapper(fakes, fakes.latent_dim, "normal", 0, make_eval=False),
        "input1_model_num_samples": num_samples,
    }
    return _calculate(
        names,
        generated,
        num_samples,
        fakes.device,
        reals,
        state.resolution,
        num_real=num_real,
        batch_size=batch_size,
        weights_path=weights_path,
        cache_dir=cache_dir,
        seed=seed,
        kid_subset_size=kid_subset_size,
        verbose=verbose,
    )


def compute_image_metrics(
    images: Tensor,
    reals: Reals,
    resolution: int,
    *,
    metrics: Sequence[FidelityMetric] = ("fid",),
    num_real: int | None = None,
    batch_size: int = 64,
    device: DeviceLike = None,
    weights_path: PathLike | None = None,
    cache_dir: PathLike | None = None,
    seed: int = 0,
    kid_subset_size: int = 1000,
    verbose: bool = False,
) -> dict[str, float]:
    """FID / KID / IS of uint8 images `[N, C, R, R]` (C = 1 or 3, N ≥ 2) in place of a generator's, against `reals`.

    Everything else is `compute_metrics`'s: the same real subset at `resolution` (`num_real`, default
    `min(N, len(reals))`) and statistics cache, the same options and results; the N images are the
    generated side as they are (gray repeated to RGB). `device` defaults to the CPU.
    """
    names = _check_metrics(metrics)
    check_image_batch(images, resolution, caller="compute_image_metrics")
    weights_path = _check_options(batch_size, kid_subset_size, verbose, cache_dir, weights_path)
    images = images.detach().cpu()
    generated = {"input1": RealImages(images, torch.arange(len(images)))}
    return _calculate(
        names,
        generated,
        len(images),
        resolve_device(device, None),
        reals,
        resolution,
        num_real=num_real,
        batch_size=batch_size,
        weights_path=weights_path,
        cache_dir=cache_dir,
        seed=seed,
        kid_subset_size=kid_subset_size,
        verbose=verbose,
    )


def _check_options(
    batch_size: int, kid_subset_size: int, verbose: bool, cache_dir: PathLike | None, weights_path: PathLike | None
) -> Path | None:
    """Validate the options shared by both entry points; the checked weights file (or None)."""
    _positive_int("batch_size", batch_size)
    _positive_int("kid_subset_size", kid_subset_size, 2)
    if not isinstance(verbose, bool):
        raise ValueError(f"verbose: expected a bool, got {verbose!r}")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise ValueError(f"cache_dir: expected a folder path or None, got {type(cache_dir).__name__}")
    if weights_path is None:
        return None
    if not isinstance(weights_path, (str, os.PathLike)):
        raise ValueError(f"weights_path: expected a file path or None, got {type(weights_path).__name__}")
    return check_weights_file(weights_path)


def _calculate(
    names: tuple[str, ...],
    generated: dict[str, Any],
    num_samples: int,
    device: torch.device,
    reals: Reals,
    resolution: int,
    *,
    num_real: int | None,
    batch_size: int,
    weights_path: Path | None,
    cache_dir: PathLike | None,
    seed: int,
    kid_subset_size: int,
    verbose: bool,
) -> dict[str, float]:
    """One `calculate_metrics` call: `generated` (torch-fidelity's `input1…` keywords, `num_samples` images) against the reals."""
    images, content_hash = open_reals(reals, resolution)
    available = len(images)
    num_real = min(num_samples, available) if num_real is None else _positive_int("num_real", num_real, 2)
    if num_real > available:
        raise ValueError(f"num_real: {num_real} requested, the real set has {available} images")
    if num_real < 2:
        raise ValueError(f"num_real: FID/KID need ≥ 2 real images, the real set has {available}")
    real_set = RealImages(images, real_subset(available, num_real))

    from torch_fidelity import calculate_metrics

    cuda = device.type == "cuda"
    kwargs = dict(
        **generated,
        input2=real_set,
        input2_cache_name=real_cache_name(content_hash, resolution, num_real, weights_identity(weights_path)),
        cuda=cuda,
        batch_size=batch_size,
        feature_extractor_weights_path=None if weights_path is None else str(weights_path),
        cache_root=None if cache_dir is None else os.fspath(cache_dir),
        cache=True,
        rng_seed=seed,
        save_cpu_ram=True,  # no DataLoader worker processes: the real side is an in-memory memmap
        kid_subset_size=min(kid_subset_size, num_samples, num_real),
        isc_splits=min(10, num_samples),
        verbose=verbose,
        **{_FLAGS[name]: True for name in names},
    )
    on_device = torch.cuda.device(device) if cuda else contextlib.nullcontext()
    try:
        with on_device:
            raw = calculate_metrics(**kwargs)
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, refused connections, …
        if weights_path is not None or default_weights_file().is_file():
            raise  # not a failed download of the weights
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        reason = (
            f"no weights file was given, {default_weights_file()} does not exist, and the download failed "
            f"({type(exc).__name__}: {cause})"
        )
        raise MissingWeightsError(missing_weights_message(reason), reason=reason) from None

    from torch_fidelity import (
        KEY_METRIC_FID,
        KEY_METRIC_ISC_MEAN,
        KEY_METRIC_ISC_STD,
        KEY_METRIC_KID_MEAN,
        KEY_METRIC_KID_STD,
    )

    out: dict[str, float] = {}
    if "fid" in names:
        out["fid"] = float(raw[KEY_METRIC_FID])
    if "kid" in names:
        out["kid"], out["kid_std"] = float(raw[KEY_METRIC_KID_MEAN]), float(raw[KEY_METRIC_KID_STD])
    if "is" in names:
        out["is"], out["is_std"] = float(raw[KEY_METRIC_ISC_MEAN]), float(raw[KEY_METRIC_ISC_STD])
    return out
