"""progrow: Progressive Growing of GANs (Karras et al., ICLR 2018) for any PyTorch generator and discriminator.

The public API is listed here once; everything else is internal.
"""

from progrow.binding import bind
from progrow.blend import downsample2x, fade, fade_reals, resize_to, upsample2x
from progrow.config import SCHEDULE_PRESETS, ResetPolicy, ScheduleConfig
from progrow.data import DataError, ImageSampler, MultiResDataset, SyntheticShapes, build_cache, to_float
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
from progrow.metrics import MissingWeightsError, compute_metrics, evaluate, ms_ssim, swd
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

__version__ = "0.1.0.dev0"

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
    "to_float",
    "to_uint8",
    "to_pil",
    "SyntheticShapes",
    "DataError",
    # metrics (more in progrow.metrics)
    "evaluate",
    "compute_metrics",
    "swd",
    "ms_ssim",
    "MissingWeightsError",
    # training helpers
    "EMA",
    "set_lr",
    "reset_optimizer",
    "__version__",
]
