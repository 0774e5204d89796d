"""Make a DCGAN-style `nn.Sequential` generator / discriminator growable, keeping its layers and their weights.

`growable_generator(netG.main)` and `growable_discriminator(netD.main)` trace the Sequential once with a
dummy batch on the `meta` device (no memory, no compute), cut it into one block per resolution at the
layers that double (G) or halve (D) the resolution, and drop the user's RGB-out (G) / RGB-in (D) layer,
whose job progrow's toRGB / fromRGB take over. Every other layer is the user's own module object, so its
weights are shared with the original network, never copied or re-initialised. The result speaks progrow's
protocol: `pg.ProgressiveGenerator(growable_generator(netG.main))`.

When the dropped RGB layer also changed the resolution (DCGAN's last transposed conv doubles 32² to 64²;
its first discriminator conv halves 64² to 32²), the top resolution would have no block of its own.
`top_block="mirror"` (the default) gives it a new one: a fresh conv of the RGB layer's kind and geometry
with C → C channels, followed by fresh copies of the normalisation / activation layers that follow the
corresponding conv in the user's network. `top_block="drop"` stops one resolution lower instead, and a
module of your own can be passed as the block.

progrow's default toRGB / fromRGB use the paper's equalized learning rate. For a plain network (DCGAN's
N(0, 0.02) weights and Adam 2e-4) pass the factories in your network's style instead, which keep its
output activation (Tanh) too: `pg.ProgressiveGenerator(g, to_rgb=g.user_to_rgb)` and
`pg.ProgressiveDiscriminator(d, from_rgb=d.user_from_rgb)` (`UserStyleRGB`).
"""

from .discriminator import SequentialDiscriminator, growable_discriminator
from .generator import SequentialGenerator, growable_generator
from .rgb import UserStyleRGB
from .trace import HeadActivation, TopBlock

__all__ = [
    "SequentialGenerator",
    "SequentialDiscriminator",
    "growable_generator",
    "growable_discriminator",
    "UserStyleRGB",
    "TopBlock",
    "HeadActivation",
]
