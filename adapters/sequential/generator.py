"""`growable_generator`: a DCGAN-style `nn.Sequential` generator cut into one block per resolution."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from progrow.state import is_power_of_two

from .rgb import UserStyleRGB
from .trace import (
    _HINT,
    _TRACE_BATCH,
    TopBlock,
    _check_img_channels,
    _check_top_block,
    _check_top_block_option,
    _fmt,
    _fresh_conv_like,
    _fresh_copy,
    _has_parameters,
    _Layer,
    _leaves,
    _named,
    _trace,
)

__all__ = ["SequentialGenerator", "growable_generator"]


# --------------------------------------------------------------------------------------- generator
class SequentialGenerator(nn.Module):
    """A generator to progrow's protocol made of a user's Sequential's layers: a stem, then one block per 2×.

    `features(z, until=R)` takes latents `[N, latent_dim]` (or `[N, latent_dim, 1, 1]`) and yields
    `(r, [N, channels(r), r, r])` for every resolution up to `R`. Build it with `growable_generator`.
    `user_to_rgb` makes toRGB layers like the left-out RGB layer (see `UserStyleRGB`):
    `pg.ProgressiveGenerator(g, to_rgb=g.user_to_rgb)`.
    """

    def __init__(
        self,
        stem: nn.Sequential,
        blocks: dict[int, nn.Sequential],
        channels: dict[int, int],
        *,
        latent_dim: int,
        conv_input: bool,
        img_channels: int,
        dropped: tuple[str, ...] = (),
        user_to_rgb: UserStyleRGB | None = None,
    ) -> None:
        super().__init__()
        self.user_to_rgb = user_to_rgb  # an RGBFactory in the user's style (None: no RGB layer was left out)
        self.stem = stem
        self.blocks = nn.ModuleDict({str(r): b for r, b in blocks.items()})
        self.resolutions = tuple(sorted(channels))
        self._channels = dict(channels)
        self.latent_dim = latent_dim
        self.conv_input = conv_input  # the stem starts with a conv on [N, latent_dim, 1, 1]
        self.img_channels = img_channels
        self.dropped = dropped  # the user's layers left out (RGB-out and its activation), for the record

    def channels(self, resolution: int) -> int:
        """Feature maps produced at `resolution`."""
        return self._channels[resolution]

    def features(self, z: Tensor, *, until: int) -> Iterator[tuple[int, Tensor]]:
        """Yield `(r, [N, C(r), r, r])` for r = lowest … `until` from latents `[N, latent_dim]`."""
        h = z.reshape(z.shape[0], -1)
        if self.conv_input:
            h = h[:, :, None, None]
        h = self.stem(h)
        yield self.resolutions[0], h
        for r in self.resolutions[1:]:
            if r > until:
                return
            h = self.blocks[str(r)](h)
            yield r, h

    def extra_repr(self) -> str:
        return f"resolutions={self.resolutions}, latent_dim={self.latent_dim}, dropped={list(self.dropped)}"


def growable_generator(
    seq: nn.Module,
    *,
    latent_dim: int | None = None,
    img_channels: int | None = None,
    top_block: TopBlock = "mirror",
) -> SequentialGenerator:
    """A protocol generator from a DCGAN-style `nn.Sequential` (latent → image `[N, 1 or 3, R, R]`).

    The Sequential maps latents `[N, latent_dim, 1, 1]` (first layer a conv) or `[N, latent_dim]` (first
    layer a Linear, e.g. followed by `nn.Unflatten`) to images, doubling the resolution with
    `ConvTranspose2d(…, stride=2)` or `Upsample` + conv, and ends in an RGB conv plus an optional output
    activation (Tanh). Nested Sequentials are opened. The RGB conv and its activation are dropped; every
    other layer is reused as it is. `latent_dim` and `img_channels` are read from the first and last
    layers when not given (given, they are checked). See the module docstring for `top_block`.
    """
    owner = "growable_generator"
    _check_top_block_option(top_block, owner)
    leaves = _leaves(seq, owner, "netG")
    first_path, first = leaves[0]
    declared = getattr(first, "in_channels", getattr(first, "in_features", None))
    if latent_dim is None:
        if not isinstance(declared, int):
            raise ValueError(
                f"{owner}: cannot read the latent size from layer {first_path} ({type(first).__name__}); pass latent_dim="
            )
        latent_dim = declared
    elif isinstance(declared, int) and declared != latent_dim:
        kind = "input features" if hasattr(first, "in_features") else "input channels"
        raise ValueError(
            f"{owner}: layer {first_path} ({type(first).__name__}) takes {declared} {kind} but latent_dim={latent_dim}"
        )
    conv_input = isinstance(first, nn.modules.conv._ConvNd)
    layers = _trace(leaves, (_TRACE_BATCH, latent_dim, 1, 1) if conv_input else (_TRACE_BATCH, latent_dim), owner)

    # The RGB-out layer: the last weight layer; only shape-preserving, parameter-free layers may follow it.
    weight_idx = [i for i, layer in enumerate(layers) if layer.is_weight_layer]
    if not weight_idx:
        raise ValueError(f"{owner}: the Sequential has no conv or linear layer. {_HINT}")
    k = weight_idx[-1]
    rgb = layers[k]
    for layer in layers[k + 1 :]:
        if _has_parameters(layer.module) or layer.out_shape != layer.in_shape:
            raise ValueError(
                f"{owner}: {layer.label} follows the RGB layer {rgb.label} and changes {_fmt(layer.in_shape)} to "
                f"{_fmt(layer.out_shape)}; expected only an output activation (Tanh, Sigmoid) after the last conv. {_HINT}"
            )
    if rgb.out_res is None:
        raise ValueError(
            f"{owner}: the last weight layer {rgb.label} gives {_fmt(rgb.out_shape)}; expected square images "
            f"[N, C, R, R]. {_HINT}"
        )
    img_channels = _check_img_channels(rgb.out_channels, img_channels, rgb, "outputs", owner)

    groups = _group_generator(layers[:k], rgb, owner)
    top = rgb.out_res
    dropped = tuple(layer.label for layer in layers[k:])
    channels = {r: g[-1].out_channels for r, g in groups.items()}
    blocks_top, more_dropped = _generator_top(groups, channels, rgb, top, top_block, owner)
    dropped += more_dropped
    lowest = min(groups)
    blocks = {r: _named(g) for r, g in groups.items() if r != lowest}
    if blocks_top is not None:
        blocks[top] = blocks_top
    return SequentialGenerator(
        _named(groups[lowest]), blocks, channels,
        latent_dim=latent_dim, conv_input=conv_input, img_channels=img_channels, dropped=dropped,
        user_to_rgb=UserStyleRGB(rgb.module, [layer.module for layer in layers[k + 1 :]]),
    )  # fmt: skip


def _group_generator(layers: Sequence[_Layer], rgb: _Layer, owner: str) -> dict[int, list[_Layer]]:
    """Group the layers before the RGB layer by the resolution they produce: the stem, then one group per 2×."""
    groups: dict[int, list[_Layer]] = {}
    stem: list[_Layer] = []
    current: int | None = None
    for layer in layers:
        r = layer.out_res
        if current is None:
            stem.append(layer)
            if r is not None and r > 1:
                if not is_power_of_two(r):
                    raise ValueError(
                        f"{owner}: {layer.label} produces {r}×{r} features; expected a power-of-two lowest "
                        f"resolution such as 4×4. {_HINT}"
                    )
                current = r
                groups[r] = stem
            continue
        if r == current:
            groups[r].append(layer)
        elif r == 2 * current:
            current = r
            groups[r] = [layer]
        else:
            got = "no square feature maps" if r is None else f"{r}×{r}"
            raise ValueError(
                f"{owner}: {layer.label} changes the resolution from {current}×{current} to {got} "
                f"({_fmt(layer.out_shape)}); expected each resolution change to double it exactly "
                f"({current} → {2 * current}). {_HINT}"
            )
    if current is None:
        raise ValueError(f"{owner}: no layer before the RGB layer {rgb.label} produces feature maps larger than 1×1. {_HINT}")
    if rgb.out_res not in (current, 2 * current):
        raise ValueError(
            f"{owner}: the RGB layer {rgb.label} changes the resolution from {current}×{current} to "
            f"{rgb.out_res}×{rgb.out_res}; expected it to keep it or double it exactly. {_HINT}"
        )
    return groups


def _generator_top(
    groups: dict[int, list[_Layer]], channels: dict[int, int], rgb: _Layer, top: int, top_block: TopBlock, owner: str
) -> tuple[nn.Sequential | None, tuple[str, ...]]:
    """The top resolution's block when the RGB layer was its only weight layer: mirror, drop, or the user's.

    Updates `groups` and `channels` in place; returns the new block (None: keep `groups` as they are) and
    the labels of further layers left out.
    """
    top_group = groups.get(top, [])
    if any(layer.is_weight_layer for layer in top_group):
        if isinstance(top_block, nn.Module):
            raise ValueError(
                f"{owner}: top_block is only used when the RGB layer was the top resolution's only conv, but "
                f"{top}×{top} keeps its own layers; leave top_block at 'mirror'"
            )
        return None, ()
    lower = [r for r in groups if r < top]
    if not lower:
        raise ValueError(
            f"{owner}: once the RGB layer {rgb.label} is dropped, nothing is left below {top}×{top}; expected "
            f"layers that produce lower-resolution features before it. {_HINT}"
        )
    below = max(lower)
    below_layers = groups[below]
    convs = [i for i, layer in enumerate(below_layers) if layer.is_weight_layer]
    if not convs:
        raise ValueError(
            f"{owner}: the {below}×{below} block has no conv of its own; expected a conv (or linear) layer at "
            f"every resolution. {_HINT}"
        )
    c = channels[below]
    groups.pop(top, None)
    channels.pop(top, None)
    left_out = tuple(layer.label for layer in top_group)
    if top_block == "drop":
        return None, left_out
    if isinstance(top_block, nn.Module):
        block = nn.Sequential(OrderedDict(top_block=top_block))
        channels[top] = _check_top_block(top_block, c, below, top, owner)
        return block, left_out
    # mirror: the top group's own parameter-free layers (an Upsample), a fresh conv like the RGB layer, and
    # fresh copies of what follows the last conv one resolution lower (BatchNorm, activation)
    extra = [_fresh_conv_like(rgb, c, owner)] + [_fresh_copy(layer.module) for layer in below_layers[convs[-1] + 1 :]]
    block = _named(top_group, extra, after=len(top_group) - 1)
    channels[top] = _check_top_block(block, c, below, top, owner)
    return block, ()
