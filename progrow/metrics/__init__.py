"""Metrics per growth stage: FID / KID / IS through torch-fidelity, SWD and MS-SSIM as in the paper.

```python
from progrow.metrics import evaluate
scores = evaluate(["fid", "swd"], G_ema, state, "data/cache", num_samples=10_000,
                  weights_path="weights-inception-2015-12-05-6726825d.pth", device="cuda")
# {"fid": …, "swd": …, "swd_64": …, "swd_32": …, "swd_16": …}; log them as fid@64, swd@64, …
```

Modules: `images` (the generated and real sides as uint8 RGB), `inception` (InceptionV3 weights: where,
identity, `MissingWeightsError`), `fidelity` (`compute_metrics`, the real-statistics cache), `swd`,
`msssim`, `registry` (`METRICS`, `evaluate`, `evaluate_images`), `reference` (`real_vs_real`: each metric's
value for real images against real images, cached). torch-fidelity is imported on first use only.
"""

from progrow.metrics.fidelity import FIDELITY_METRICS, FidelityMetric, compute_image_metrics, compute_metrics, real_cache_name
from progrow.metrics.images import GeneratedImages, RealImages, Reals, evaluating, to_uint8_rgb
from progrow.metrics.inception import (
    WEIGHTS_FILE_NAME,
    MissingWeightsError,
    default_weights_file,
    write_random_inception_weights,
)
from progrow.metrics.msssim import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_diversity, ssim
from progrow.metrics.reference import real_vs_real
from progrow.metrics.registry import METRICS, Metric, evaluate, evaluate_images, register_metric
from progrow.metrics.swd import laplacian_pyramid, swd

__all__ = [
    # registry
    "METRICS",
    "Metric",
    "evaluate",
    "evaluate_images",
    "register_metric",
    # real-vs-real values
    "real_vs_real",
    # torch-fidelity metrics
    "compute_metrics",
    "compute_image_metrics",
    "FidelityMetric",
    "FIDELITY_METRICS",
    "real_cache_name",
    "MissingWeightsError",
    "WEIGHTS_FILE_NAME",
    "default_weights_file",
    "write_random_inception_weights",
    # the two sides
    "GeneratedImages",
    "RealImages",
    "Reals",
    "evaluating",
    "to_uint8_rgb",
    # paper metrics
    "swd",
    "laplacian_pyramid",
    "ms_ssim",
    "ms_ssim_diversity",
    "ssim",
    "MS_SSIM_WEIGHTS",
]
