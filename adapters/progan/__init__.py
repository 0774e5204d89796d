"""The reference ProGAN (Karras et al., ICLR 2018), built only from progrow's public API.

`networks` holds the paper's generator and discriminator; `presets` the training configurations;
`train` the training script (`python -m progrow.adapters.progan.train`).
"""

from .networks import ProGANDiscriminator, ProGANGenerator, feature_maps

__all__ = ["ProGANGenerator", "ProGANDiscriminator", "feature_maps"]
