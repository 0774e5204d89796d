"""The real-vs-real value of each metric (its floor, or the dataset's own IS / MS-SSIM), cached on disk.

```python
floor = real_vs_real(["fid", "swd"], "cache/", 64, num_samples=10_000, weights_path="inception.pth")
# {"num_samples": 10000, "fid": …, "swd": …, "swd_64": …, "swd_32": …, "swd_16": …}
```

What `evaluate` would give a generator whose samples are real images. The dataset's level at the
resolution is split by `real_halves`, one fixed seeded permutation: set A, its first n images, is the very
subset `evaluate` scores a generator against (n = `num_samples`); set B, the next n, plays the generator
and goes through the same code (`evaluate_images`): FID / KID of B against A, IS of B, SWD of B against
A, MS-SSIM of pairs of B. With fewer than 2·`num_samples` images, n = len // 2, as `"num_samples"` says.
A metric added with `register_metric` has no real-vs-real value and is absent from the result.

Each metric's values are a small JSON file in the folder of the FID statistics (`cache_dir`, default
`$TORCH_HOME/fidelity_cache`), named and keyed by everything they depend on: the dataset's content hash,
the resolution, n, the metric and the options that change its value (the Inception weights' sha256 for
fid/kid/is; the seed for kid/is/swd/ms_ssim; `kid_subset_size`; SWD's descriptor settings; `num_pairs`).
The files are written atomically; one that cannot be read, or holds another key, is computed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from progrow.metrics.fidelity import FIDELITY_KEYS, FIDELITY_METRICS, compute_image_metrics, fidelity_cache_dir
from progrow.metrics.images import RealImages, Reals, open_reals, real_halves
from progrow.metrics.inception import check_weights_file, weights_identity
from progrow.metrics.msssim import ms_ssim_diversity
from progrow.metrics.registry import METRICS, SHARED_OPTIONS, check_options, evaluate_images
from progrow.metrics.swd import swd

__all__ = ["real_vs_real", "reference_key", "reference_file"]

_FORMAT = 1  # part of every key: raise it when a computation changes, and older files are no longer read
# The built-in metrics with a real-vs-real value, and the function whose defaults their own options take.
_DEFAULTS_OF: dict[str, Callable[..., Any]] = {
    "fid": compute_image_metrics,
    "kid": compute_image_metrics,
    "is": compute_image_metrics,
    "swd": swd,
    "ms_ssim": ms_ssim_diversity,
}


def _setting(function: Callable[..., Any], name: str, options: dict[str, Any]) -> Any:
    return options[name] if name in options else inspect.signature(function).parameters[name].default


def reference_key(name: str, content_hash: str, resolution: int, num_samples: int, **options: Any) -> dict[str, Any]:
    """Everything the real-vs-real value of metric `name` depends on, as a JSON-able dict (`options`: `evaluate`'s)."""
    if name not in _DEFAULTS_OF:
        raise ValueError(f"reference_key: {name!r} has no real-vs-real value; those that have: {', '.join(_DEFAULTS_OF)}")
    function = _DEFAULTS_OF[name]
    key: dict[str, Any] = {
        "format": _FORMAT,
        "metric": name,
        "content": content_hash,
        "resolution": resolution,
        "num_samples": num_samples,
    }
    if name in FIDELITY_METRICS:
        weights = options.get("weights_path")
        key["weights"] = weights_identity(None if weights is None else check_weights_file(weights))
    if name != "fid":  # FID of two fixed sets draws nothing
        key["seed"] = _setting(function, "seed", options)
    if name == "kid":
        key["kid_subset_size"] = min(_setting(function, "kid_subset_size", options), num_samples)
    own = [o for o in METRICS[name].options if o not in SHARED_OPTIONS] if name in ("swd", "ms_ssim") else []
    key.update({o: _setting(function, o, options) for o in own})
    return key


def reference_file(key: dict[str, Any], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The JSON file of `key`: `<cache>/progrow-rvr-<metric>-<content>-r<R>-n<N>-<sha256 of the key>.json`."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    content = str(key["content"]).split(":", 1)[-1][:32]
    name = f"progrow-rvr-{key['metric']}-{content}-r{key['resolution']}-n{key['num_samples']}-{digest}.json"
    return fidelity_cache_dir(cache_dir) / name


def _read(path: Path, key: dict[str, Any]) -> dict[str, float] | None:
    """The values cached in `path` under `key`, or None (no file, unreadable, corrupt, another key)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError: bad JSON, bad UTF-8
        return None
    values = record.get("values") if isinstance(record, dict) and record.get("key") == key else None
    if not isinstance(values, dict) or not values:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
        return None
    return {str(k): float(v) for k, v in values.items()}


def _write(path: Path, key: dict[str, Any], values: dict[str, float]) -> None:
    """Write `{"key": …, "values": …}` to a temporary name and rename it over `path`; a failure is a warning."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"key": key, "values": values}, indent=1))
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        warnings.warn(f"real_vs_real: could not cache the {key['metric']} reference in {path.parent}: {exc}", stacklevel=3)


def real_vs_real(names: Iterable[str], reals: Reals, resolution: int, *, num_samples: int, **options: Any) -> dict[str, float]:
    """The value of each metric in `names` with real images `[n, C, R, R]` for the generator (see the module).

    `reals`: a `progrow.data` cache folder, a `MultiResDataset`, or uint8 images at `resolution`.
    `options` are `evaluate`'s (`seed`, `weights_path`, `cache_dir`, `device`, SWD's settings, …);
    `latent_dim`, `labels` and `num_real` have no use here (both sets hold n images). Values come from the
    cache when there; missing ones are computed (fid/kid/is in one torch-fidelity call) and cached.

    Returns `{"num_samples": n, …}` with the keys `evaluate` gives (`fid`, `kid`/`kid_std`, `is`/`is_std`,
    `swd` and `swd_<R>`, `ms_ssim`), in the order of `names`. `ValueError` for an unknown metric or
    option, or a level with fewer than 4 images.
    """
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    unknown = [n for n in names if n not in METRICS]
    if not names or unknown:
        raise ValueError(f"real_vs_real: unknown or no metric(s) {unknown or names}; known: {', '.join(METRICS)}")
    check_options({**options, "num_samples": num_samples}, caller="real_vs_real")
    images, content_hash = open_reals(reals, resolution)
    total = len(images)
    n = min(num_samples, total // 2)
    if n < 2:
        raise ValueError(f"real_vs_real: the {resolution}² real set has {total} images; two disjoint sets of at least 2 need 4")
    cache_dir = options.get("cache_dir")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise ValueError(f"real_vs_real: cache_dir expected a folder path or None, got {type(cache_dir).__name__}")
    keys = {name: reference_key(name, content_hash, resolution, n, **options) for name in names if name in _DEFAULTS_OF}
    found = {name: _read(reference_file(key, cache_dir), key) for name, key in keys.items()}
    missing = [name for name, values in found.items() if values is None]
    if missing:
        _, second = real_halves(total, n)
        fakes = RealImages(images, second).all()  # uint8 RGB [n, 3, R, R]
        options = {k: v for k, v in options.items() if k != "num_real"}
        fidelity = [name for name in missing if name in FIDELITY_METRICS]
        for group in ([fidelity] if fidelity else []) + [[name] for name in missing if name not in FIDELITY_METRICS]:
            scores = evaluate_images(group, fakes, reals, resolution, **options)
            for name in group:
                values = {k: scores[k] for k in FIDELITY_KEYS[name]} if name in FIDELITY_METRICS else scores
                _write(reference_file(keys[name], cache_dir), keys[name], values)
                found[name] = values
    out: dict[str, float] = {"num_samples": n}
    for cached in found.values():
        out.update(cached or {})
    return out
