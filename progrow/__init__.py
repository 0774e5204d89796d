"""progrow: Progressive Growing of GANs (Karras et al., ICLR 2018) for any PyTorch generator and discriminator.

The public API is listed here once (`__all__`). Two subpackages have more public names, in their own
`__all__`: `progrow.data` (image sources, `open_source`, `box_downsample_u8`, `Crop`, `Channels`) and
`progrow.metrics` (the metric registry `METRICS` / `Metric`, `GeneratedImages`, `RealImages`, SSIM and
the Laplacian pyramid, InceptionV3 weight files) and `progrow.memory` (the planner's parts: `SAFETY_MARGIN`,
`to_fake`, `format_bytes`, `free_memory`, …). Everything else is internal.
"""

from progrow._version import __version__
from progrow.anchor import AnchorLevels, StageAnchor
from progrow.binding import bind
from progrow.blend import downsample2x, fade, fade_reals, resize_to, upsample2x
from progrow.checkpoint import (
    CheckpointError,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)
from progrow.config import SCHEDULE_PRESETS, ResetPolicy, ScheduleConfig
from progrow.data import DataError, ImageSampler, MultiResDataset, Prefetcher, SyntheticShapes, build_cache, to_float
from progrow.ema import EMA
from progrow.images import to_pil, to_uint8
from progrow.layers import EqualizedConv2d, EqualizedLinear, FromRGB, MinibatchStdDev, PixelNorm, ToRGB
from progrow.losses import (
    LossOutput,
    gradient_penalty,
    logistic_d_loss,
    logistic_g_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    r1_penalty,
    wgan_g_loss,
    wgan_gp_d_loss,
)
from progrow.memory import (
    BatchPlan,
    BudgetError,
    CountingMeasure,
    CudaMeasure,
    MemoryCounter,
    gan_training_step,
    parse_bytes,
    plan_batch_sizes,
)
from progrow.metrics import MissingWeightsError, compute_metrics, evaluate, ms_ssim, register_metric, swd
from progrow.optim import reset_optimizer, set_lr
from progrow.progressive import ProgressiveDiscriminator, ProgressiveGenerator, RGBFactory
from progrow.protocol import (
    GrowableDiscriminator,
    GrowableGenerator,
    GrowableNetwork,
    check_discriminator,
    check_generator,
)
from progrow.scheduler import Listener, PhaseSpan, ProgressiveScheduler
from progrow.state import GrowthState, Phase
from progrow.warm import WarmStart, new_parameters, warm_start

__all__ = [
    # protocol
    "GrowableNetwork",
    "GrowableGenerator",
    "GrowableDiscriminator",
    "check_generator",
    "check_discriminator",
    # growth wrappers
    "ProgressiveGenerator",
    "ProgressiveDiscriminator",
    "RGBFactory",
    # state and schedule
    "GrowthState",
    "Phase",
    "ScheduleConfig",
    "ResetPolicy",
    "SCHEDULE_PRESETS",
    "ProgressiveScheduler",
    "PhaseSpan",
    "Listener",
    "bind",
    # layers
    "EqualizedConv2d",
    "EqualizedLinear",
    "PixelNorm",
    "MinibatchStdDev",
    "ToRGB",
    "FromRGB",
    # resampling and blending
    "upsample2x",
    "downsample2x",
    "fade",
    "fade_reals",
    "resize_to",
    # losses
    "LossOutput",
    "gradient_penalty",
    "r1_penalty",
    "wgan_gp_d_loss",
    "wgan_g_loss",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "logistic_d_loss",
    "logistic_g_loss",
    # data pipeline (more in progrow.data)
    "build_cache",
    "MultiResDataset",
    "ImageSampler",
    "Prefetcher",
    "to_float",
    "SyntheticShapes",
    "DataError",
    # metrics (more in progrow.metrics)
    "evaluate",
    "compute_metrics",
    "swd",
    "ms_ssim",
    "MissingWeightsError",
    "register_metric",
    # images
    "to_uint8",
    "to_pil",
    # checkpoints
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "prune_checkpoints",
    "checkpoint_path",
    "capture_rng_state",
    "restore_rng_state",
    "CheckpointError",
    # memory planning (more in progrow.memory)
    "plan_batch_sizes",
    "BatchPlan",
    "BudgetError",
    "MemoryCounter",
    "CountingMeasure",
    "CudaMeasure",
    "gan_training_step",
    "parse_bytes",
    # training helpers
    "EMA",
    "warm_start",
    "WarmStart",
    "StageAnchor",
    "AnchorLevels",
    "new_parameters",
    "set_lr",
    "reset_optimizer",
    "__version__",
]
