"""The metric registry: `METRICS` by name and `evaluate(names, generator, state, reals, **options)`.

`evaluate_images(names, images, reals, resolution, **options)` scores given images as if generated.

```python
scores = evaluate(["fid", "swd"], G_ema, state, "data/cache", num_samples=10_000, weights_path="inception.pth")
log({f"{k}@{state.resolution}": v for k, v in scores.items()})     # fid@64, swd@64, swd_64@64, …
```

FID, KID and IS share one torch-fidelity call (one feature extraction); SWD and MS-SSIM share one set of
generated images. Options go to the metrics that take them; an option no registered metric takes is an
error (torch-fidelity would ignore it silently).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from progrow.metrics.fidelity import FIDELITY_METRICS, FidelityMetric, compute_image_metrics, compute_metrics
from progrow.metrics.images import GeneratedImages, RealImages, Reals, check_image_batch, open_reals, real_subset
from progrow.metrics.msssim import ms_ssim_diversity
from progrow.metrics.swd import swd
from progrow.state import GrowthState

__all__ = ["Metric", "METRICS", "register_metric", "evaluate", "evaluate_images", "check_options", "SHARED_OPTIONS"]

# Options every metric accepts (the generated side and the sample count).
SHARED_OPTIONS = ("num_samples", "batch_size", "device", "latent_dim", "seed", "labels")
_FIDELITY_OPTIONS = ("num_real", "weights_path", "cache_dir", "kid_subset_size", "verbose")
_SWD_OPTIONS = ("descriptors_per_image", "patch_size", "num_projections", "num_repeats", "min_resolution")
_MS_SSIM_OPTIONS = ("num_pairs",)
_GENERATOR_OPTIONS = ("latent_dim", "labels")  # meaningless when images stand in for a generator
_DEFAULT_SAMPLES = 10_000


@dataclass(frozen=True)
class Metric:
    """A registered metric: `compute(generator, state, reals, **options) -> {key: value}` and the options it takes."""

    compute: Callable[..., dict[str, float]]
    options: tuple[str, ...]
    description: str = ""


def _fidelity(name: FidelityMetric) -> Callable[..., dict[str, float]]:
    def compute(generator: nn.Module, state: GrowthState, reals: Reals, **options: Any) -> dict[str, float]:
        return compute_metrics(generator, state, reals, metrics=(name,), **options)

    compute.__name__ = f"compute_{name}"
    return compute


def _generated(generator: nn.Module | None, state: GrowthState, options: dict[str, Any], n: int) -> Tensor:
    assert generator is not None, "no generator and no images"
    source = GeneratedImages(
        generator,
        state,
        latent_dim=options.get("latent_dim"),
        seed=options.get("seed", 0),
        labels=options.get("labels"),
        device=options.get("device"),
    )
    return source.sample(n, batch_size=options.get("batch_size", 64))


def _swd_of(
    fakes: Tensor | None, generator: nn.Module | None, state: GrowthState, reals: Reals, options: dict[str, Any]
) -> dict[str, float]:
    images, _ = open_reals(reals, state.resolution)
    n = min(options.get("num_samples", _DEFAULT_SAMPLES), len(images))
    real = RealImages(images, real_subset(len(images), n)).all()
    fake = fakes[:n] if fakes is not None else _generated(generator, state, options, n)
    kwargs = {k: options[k] for k in _SWD_OPTIONS if k in options}
    return swd(fake, real, seed=options.get("seed", 0), **kwargs)


def _ms_ssim_of(
    fakes: Tensor | None, generator: nn.Module | None, state: GrowthState, options: dict[str, Any]
) -> dict[str, float]:
    fake = fakes if fakes is not None else _generated(generator, state, options, options.get("num_samples", _DEFAULT_SAMPLES))
    kwargs = {k: options[k] for k in _MS_SSIM_OPTIONS if k in options}
    return {"ms_ssim": ms_ssim_diversity(fake, seed=options.get("seed", 0), **kwargs)}


def _compute_swd(generator: nn.Module, state: GrowthState, reals: Reals, **options: Any) -> dict[str, float]:
    """SWD between `min(num_samples, len(reals))` generated images and as many reals (a fixed seeded subset)."""
    return _swd_of(None, generator, state, reals, options)


def _compute_ms_ssim(generator: nn.Module, state: GrowthState, reals: Reals, **options: Any) -> dict[str, float]:
    """Mean MS-SSIM of `num_pairs` random pairs of `num_samples` generated images (`reals` is not used)."""
    return _ms_ssim_of(None, generator, state, options)


METRICS: dict[str, Metric] = {
    "fid": Metric(_fidelity("fid"), SHARED_OPTIONS + _FIDELITY_OPTIONS, "Fréchet Inception Distance (torch-fidelity)"),
    "kid": Metric(_fidelity("kid"), SHARED_OPTIONS + _FIDELITY_OPTIONS, "Kernel Inception Distance, mean and std"),
    "is": Metric(_fidelity("is"), SHARED_OPTIONS + _FIDELITY_OPTIONS, "Inception Score, mean and std"),
    "swd": Metric(_compute_swd, SHARED_OPTIONS + _SWD_OPTIONS, "sliced Wasserstein distance ×10³ per pyramid level"),
    "ms_ssim": Metric(_compute_ms_ssim, SHARED_OPTIONS + _MS_SSIM_OPTIONS, "MS-SSIM of random generated pairs"),
}


def register_metric(
    name: str, compute: Callable[..., dict[str, float]], *, options: Iterable[str] = (), description: str = ""
) -> None:
    """Add a metric `compute(generator, state, reals, **options) -> {key: value}`; `ValueError` if `name` is taken."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_metric: name expected a non-empty str, got {name!r}")
    if name in METRICS:
        raise ValueError(f"register_metric: a metric named {name!r} is already registered")
    if not callable(compute):
        raise TypeError(f"register_metric: compute expected a callable, got {type(compute).__name__}")
    METRICS[name] = Metric(compute, SHARED_OPTIONS + tuple(o for o in options if o not in SHARED_OPTIONS), description)


def _check_names(names: Iterable[str]) -> list[str]:
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError(f"evaluate: names is empty; known metrics: {', '.join(METRICS)}")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"evaluate: unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(METRICS)}")
    return names


def check_options(options: dict[str, Any], *, caller: str = "evaluate") -> None:
    """`ValueError` for an option no registered metric takes, or a bad `num_samples` / `batch_size`."""
    for key, minimum in (("num_samples", 2), ("batch_size", 1)):
        value = options.get(key, minimum)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{caller}: {key} expected an int ≥ {minimum}, got {value!r}")
    known = {o for metric in METRICS.values() for o in metric.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{caller}: unknown option(s) {', '.join(unknown)}; metrics take: {', '.join(sorted(known))}")


def evaluate(
    names: Iterable[str],
    generator: nn.Module,
    state: GrowthState,
    reals: Reals,
    **options: Any,
) -> dict[str, float]:
    """Run the metrics `names` (e.g. `["fid", "swd"]`) on `generator` at `state` against `reals`.

    Returns one flat dict: `fid`, `kid`/`kid_std`, `is`/`is_std`, `swd` and `swd_<R>` per level, `ms_ssim`.
    Every option must be one that some registered metric takes (a typo is a `ValueError` listing them);
    each metric receives the options it takes. `num_samples` (default 10,000) counts generated images
    for every metric.
    """
    names = _check_names(names)
    check_options(options)
    out: dict[str, float] = {}
    fidelity = [m for m in FIDELITY_METRICS if m in names]
    if fidelity:
        taken = METRICS["fid"].options
        out.update(compute_metrics(generator, state, reals, metrics=fidelity, **{k: v for k, v in options.items() if k in taken}))
    fakes: Tensor | None = None
    if "swd" in names and "ms_ssim" in names:  # one set of generated images for both
        fakes = _generated(generator, state, options, options.get("num_samples", _DEFAULT_SAMPLES))
    for name in names:
        taken_options = {k: v for k, v in options.items() if k in METRICS[name].options}
        if name == "swd":
            out.update(_swd_of(fakes, generator, state, reals, taken_options))
        elif name == "ms_ssim":
            out.update(_ms_ssim_of(fakes, generator, state, taken_options))
        elif name not in fidelity:
            out.update(METRICS[name].compute(generator, state, reals, **taken_options))
    return out


def evaluate_images(names: Iterable[str], images: Tensor, reals: Reals, resolution: int, **options: Any) -> dict[str, float]:
    """Run the built-in metrics `names` on uint8 images `[n, C, R, R]` standing in for n generated images.

    Each metric scores the images exactly as `evaluate` scores n generated ones (`num_samples` = n, not
    an option here): the same real subset of `reals` at `resolution`, the same seeded draws, the same
    options; `latent_dim` and `labels`, which only a generator uses, are ignored. A metric added with
    `register_metric` needs a generator to call, so it is left out of the result (not an error).
    """
    names = _check_names(names)
    if "num_samples" in options:
        raise ValueError("evaluate_images: num_samples is the number of images given; it is not an option here")
    check_options(options, caller="evaluate_images")
    check_image_batch(images, resolution, caller="evaluate_images")
    images = images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images  # gray as RGB, as generated
    options = {k: v for k, v in options.items() if k not in _GENERATOR_OPTIONS}
    out: dict[str, float] = {}
    fidelity = [n for n in names if n in FIDELITY_METRICS]
    if fidelity:
        taken = METRICS["fid"].options
        out.update(
            compute_image_metrics(images, reals, resolution, metrics=fidelity, **{k: v for k, v in options.items() if k in taken})
        )
    state = GrowthState(resolution)
    options["num_samples"] = len(images)
    for name in names:
        taken_options = {k: v for k, v in options.items() if k in METRICS[name].options}
        if name == "swd":
            out.update(_swd_of(images, None, state, reals, taken_options))
        elif name == "ms_ssim":
            out.update(_ms_ssim_of(images, None, state, taken_options))
    return out
