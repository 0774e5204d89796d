"""Make torchgan's DCGAN networks growable: `pg.ProgressiveGenerator(growable_generator(DCGANGenerator()))`.

Optional extra `torchgan` (tested with torchgan 0.1.0, the current release). The adapter imports torchgan's
`DCGANGenerator` / `DCGANDiscriminator` and hands their `nn.Sequential` layers to
`progrow.adapters.sequential`, so the networks keep torchgan's modules and weights (its Kaiming init,
its nonlinearity and batchnorm options); only the RGB layers are replaced by progrow's toRGB / fromRGB.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

try:
    import torchgan
    from torchgan.models import DCGANDiscriminator, DCGANGenerator
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "progrow.adapters.torchgan needs torchgan: pip install progrow-gan[torchgan] (or pip install torchgan)"
    ) from exc

from .sequential import (
    HeadActivation,
    SequentialDiscriminator,
    SequentialGenerator,
    TopBlock,
)
from .sequential import (
    growable_discriminator as _sequential_discriminator,
)
from .sequential import (
    growable_generator as _sequential_generator,
)

__all__ = ["growable_generator", "growable_discriminator", "TESTED_VERSIONS"]

TESTED_VERSIONS = ("0.1.0",)  # torchgan releases the adapter is tested against
TORCHGAN_VERSION = str(getattr(torchgan, "__version__", "unknown")).lstrip("v")


def growable_generator(generator: DCGANGenerator, *, top_block: TopBlock = "mirror") -> SequentialGenerator:
    """A protocol generator from a torchgan `DCGANGenerator` (latents `[N, encoding_dims]`), reusing its layers.

    torchgan's last transposed conv doubles the resolution while producing the image, so by default the
    top resolution gets a fresh block like it (`top_block`, see `progrow.adapters.sequential`).
    """
    _check_type(generator, DCGANGenerator, "growable_generator")
    seq = nn.Sequential(OrderedDict(model=generator.model))  # errors then name layers `model.3.0`, as torchgan does
    return _sequential_generator(seq, latent_dim=generator.encoding_dims, img_channels=generator.ch, top_block=top_block)


def growable_discriminator(
    discriminator: DCGANDiscriminator, *, top_block: TopBlock = "mirror", head_activation: HeadActivation = "keep"
) -> SequentialDiscriminator:
    """A protocol discriminator from a torchgan `DCGANDiscriminator` (scores `[N, 1]`), reusing its layers.

    torchgan ends its discriminator with `disc` (a 4×4 conv to one channel and `last_nonlinearity`);
    `head_activation="drop"` leaves that nonlinearity out. Errors name layers by torchgan's attribute
    paths (`model.1.0`, `disc.0`).
    """
    _check_type(discriminator, DCGANDiscriminator, "growable_discriminator")
    seq = nn.Sequential(OrderedDict(model=discriminator.model, disc=discriminator.disc))
    return _sequential_discriminator(
        seq, img_channels=discriminator.input_dims, top_block=top_block, head_activation=head_activation
    )


def _check_type(net: object, expected: type, owner: str) -> None:
    if not isinstance(net, expected):
        raise TypeError(
            f"{owner}: expected a torchgan {expected.__name__}, got {type(net).__name__}; for a plain nn.Sequential "
            "use progrow.adapters.sequential, for anything else write to progrow's protocol"
        )
    label_type = getattr(net, "label_type", "none")
    if label_type != "none":
        raise ValueError(
            f"{owner}: torchgan conditional networks (label_type={label_type!r}) are not supported; expected "
            "label_type='none'. Write a conditional network to progrow's protocol (labels reach the discriminator's head)"
        )
