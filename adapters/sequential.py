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
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from progrow.meta import declared_in_channels, meta_forward
from progrow.state import is_power_of_two

__all__ = [
    "SequentialGenerator",
    "SequentialDiscriminator",
    "growable_generator",
    "growable_discriminator",
    "TopBlock",
    "HeadActivation",
]

# What happens at the top resolution when the dropped RGB layer also changed the resolution.
TopBlock = Literal["mirror", "drop"] | nn.Module
# Whether the discriminator keeps the parameter-free activation after its score layer (e.g. a Sigmoid).
HeadActivation = Literal["keep", "drop"]

_HINT = (
    "If your network does not follow this pattern, write it to progrow's protocol instead "
    "(progrow.GrowableGenerator / GrowableDiscriminator; README: 'Make your own network growable')."
)
_NORMS = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
    nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
)  # fmt: skip
_TRACE_BATCH = 2  # BatchNorm in training mode needs more than one value per channel
_INFER_RESOLUTIONS = tuple(2**k for k in range(2, 11))  # 4 … 1024


# ------------------------------------------------------------------------------------------- tracing
@dataclass(frozen=True)
class _Layer:
    """One leaf layer of the user's Sequential with the shapes it saw in the trace (batch of 2)."""

    path: str  # its index inside the Sequential, dotted for nested Sequentials: "3", "1.0"
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def label(self) -> str:
        """How errors name it: `layer 12 (ConvTranspose2d)`."""
        return f"layer {self.path} ({type(self.module).__name__})"

    @property
    def in_res(self) -> int | None:
        """Side of the square feature maps it takes, None when its input is not `[N, C, H, W]`."""
        return _res(self.in_shape)

    @property
    def out_res(self) -> int | None:
        """Side of the square feature maps it produces, None when its output is not `[N, C, H, W]`."""
        return _res(self.out_shape)

    @property
    def out_channels(self) -> int:
        """Channels (or features) of its output."""
        return self.out_shape[1]

    @property
    def is_weight_layer(self) -> bool:
        """A conv, linear or other layer with parameters that is not a normalisation or PReLU."""
        return _has_parameters(self.module) and not isinstance(self.module, _NORMS + (nn.PReLU,))


def _res(shape: tuple[int, ...]) -> int | None:
    return shape[-1] if len(shape) == 4 and shape[-1] == shape[-2] else None


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _fmt(shape: tuple[int, ...]) -> str:
    return "[N, " + ", ".join(str(s) for s in shape[1:]) + "]"


def _leaves(seq: nn.Module, owner: str, role: str) -> list[tuple[str, nn.Module]]:
    """The Sequential's leaf layers in order with their dotted index paths (nested Sequentials are opened)."""
    if not isinstance(seq, nn.Sequential):
        inner = [name for name, child in seq.named_children() if isinstance(child, nn.Sequential)]
        where = f"; it holds one at .{inner[0]}: pass {role}.{inner[0]}" if len(inner) == 1 else ""
        raise TypeError(f"{owner}: expected an nn.Sequential, got {type(seq).__name__}{where}. {_HINT}")

    def walk(module: nn.Sequential, prefix: str) -> Iterator[tuple[str, nn.Module]]:
        for name, child in module.named_children():
            if isinstance(child, nn.Sequential):
                yield from walk(child, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", child

    leaves = list(walk(seq, ""))
    if not leaves:
        raise ValueError(f"{owner}: the Sequential has no layers")
    return leaves


class _TraceError(ValueError):
    """A layer failed in the trace; `traced` holds the layers before it."""

    def __init__(self, message: str, traced: list[_Layer]) -> None:
        super().__init__(message)
        self.traced = traced


def _trace(leaves: Sequence[tuple[str, nn.Module]], shape: tuple[int, ...], owner: str) -> list[_Layer]:
    """Run the layers one by one on a meta batch of `shape`; record what each takes and gives."""
    x = torch.empty(shape, device="meta")
    traced: list[_Layer] = []
    for path, module in leaves:
        label = f"layer {path} ({type(module).__name__})"
        c_in = getattr(module, "in_channels", None)
        f_in = getattr(module, "in_features", None)
        if isinstance(c_in, int) and x.dim() >= 3 and x.shape[1] != c_in:  # the meta device does not check all of these
            raise _TraceError(f"{owner}: {label} takes {c_in} channels but gets {_fmt(tuple(x.shape))}. {_HINT}", traced)
        if isinstance(f_in, int) and x.shape[-1] != f_in:
            raise _TraceError(f"{owner}: {label} takes {f_in} features but gets {_fmt(tuple(x.shape))}. {_HINT}", traced)
        try:
            y = meta_forward(module, x, cpu_fallback=True)  # on zeros on the CPU where meta lacks an operation
        except Exception as exc:  # noqa: BLE001 - any failure is reported with the layer that raised it
            raise _TraceError(f"{owner}: {label} fails on input {_fmt(tuple(x.shape))}: {exc}. {_HINT}", traced) from None
        if not isinstance(y, Tensor):
            raise _TraceError(f"{owner}: {label} returned {type(y).__name__}, expected a tensor. {_HINT}", traced)
        traced.append(_Layer(path, module, tuple(x.shape), tuple(y.shape)))
        x = y
    return traced


# ---------------------------------------------------------------------------------------- building
def _named(layers: Sequence[_Layer], extra: Sequence[nn.Module] = (), *, after: int = -1) -> nn.Sequential:
    """A Sequential of the user's layers named by their paths (`"3"`, `"1_0"`), fresh ones as `new_0`, …

    `extra` modules are inserted after position `after` of `layers` (-1: before all of them).
    """
    items = [(layer.path.replace(".", "_"), layer.module) for layer in layers]
    fresh = [(f"new_{i}", m) for i, m in enumerate(extra)]
    return nn.Sequential(OrderedDict(items[: after + 1] + fresh + items[after + 1 :]))


def _fresh_conv_like(layer: _Layer, channels: int, owner: str) -> nn.Module:
    """A new conv of `layer`'s kind and geometry mapping `channels` to `channels` (fresh default init)."""
    m = layer.module
    if type(m) not in (nn.Conv2d, nn.ConvTranspose2d):
        raise ValueError(
            f"{owner}: top_block='mirror' builds a fresh nn.Conv2d / nn.ConvTranspose2d like the RGB layer "
            f"{layer.label}, which is neither; pass top_block='drop' or a module of your own. {_HINT}"
        )
    assert isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    kw = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, bias=m.bias is not None, padding_mode=m.padding_mode)
    if isinstance(m, nn.ConvTranspose2d):
        kw["output_padding"] = m.output_padding
    new = type(m)(channels, channels, m.kernel_size, **kw)  # type: ignore[arg-type]
    return new.to(device=m.weight.device, dtype=m.weight.dtype)


def _fresh_copy(module: nn.Module) -> nn.Module:
    """A new instance of a normalisation / activation layer: deep-copied, then its parameters reset."""
    new = copy.deepcopy(module)
    for m in new.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return new


def _check_top_block(block: nn.Module, c_in: int, r_in: int, r_out: int, owner: str) -> int:
    """Trace a top block on `[N, c_in, r_in, r_in]`; it must give `r_out` × `r_out` features. Returns its channels."""
    out = _trace([("top_block", block)], (_TRACE_BATCH, c_in, r_in, r_in), owner)[-1]
    if out.out_res != r_out:
        raise ValueError(
            f"{owner}: top_block maps [N, {c_in}, {r_in}, {r_in}] to {_fmt(out.out_shape)}; expected [N, C, {r_out}, {r_out}]"
        )
    return out.out_channels


def _check_img_channels(c: int, img_channels: int | None, layer: _Layer, what: str, owner: str) -> int:
    if img_channels is None:
        if c not in (1, 3):
            raise ValueError(
                f"{owner}: {layer.label} {what} {c} channels; expected an RGB (3) or grayscale (1) image "
                f"(the adapter replaces that layer by progrow's {'toRGB' if 'out' in what else 'fromRGB'}). "
                f"Pass img_channels={c} if that is intended. {_HINT}"
            )
        return c
    if c != img_channels:
        raise ValueError(f"{owner}: {layer.label} {what} {c} channels; expected img_channels={img_channels}. {_HINT}")
    return c


def _check_top_block_option(top_block: object, owner: str) -> None:
    if not (isinstance(top_block, nn.Module) or top_block in ("mirror", "drop")):
        raise ValueError(f"{owner}: top_block must be 'mirror', 'drop' or an nn.Module, got {top_block!r}")


# --------------------------------------------------------------------------------------- generator
class SequentialGenerator(nn.Module):
    """A generator to progrow's protocol made of a user's Sequential's layers: a stem, then one block per 2×.

    `features(z, until=R)` takes latents `[N, latent_dim]` (or `[N, latent_dim, 1, 1]`) and yields
    `(r, [N, channels(r), r, r])` for every resolution up to `R`. Build it with `growable_generator`.
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
    ) -> None:
        super().__init__()
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


# ----------------------------------------------------------------------------------- discriminator
class SequentialDiscriminator(nn.Module):
    """A discriminator to progrow's protocol made of a user's Sequential's layers: one block per ½, and a head.

    `block(R)` maps `[N, channels(R), R, R]` to `[N, channels(R/2), R/2, R/2]`; `head(x)` maps the lowest
    resolution's features to scores `[N, 1]`. Build it with `growable_discriminator`.
    """

    def __init__(
        self,
        blocks: dict[int, nn.Sequential],
        head: nn.Sequential,
        channels: dict[int, int],
        *,
        img_channels: int,
        dropped: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleDict({str(r): blocks[r] for r in sorted(blocks, reverse=True)})
        self.final = head
        self.resolutions = tuple(sorted(channels))
        self._channels = dict(channels)
        self.img_channels = img_channels
        self.dropped = dropped  # the user's layers left out (RGB-in and its activation, …), for the record

    def channels(self, resolution: int) -> int:
        """Feature maps consumed at `resolution`."""
        return self._channels[resolution]

    def block(self, resolution: int) -> nn.Module:
        """`[N, C(R), R, R] -> [N, C(R/2), R/2, R/2]`."""
        return self.blocks[str(resolution)]

    def head(self, x: Tensor) -> Tensor:
        """Scores `[N, 1]` from the lowest resolution's features `[N, C, r, r]`."""
        return self.final(x).reshape(x.shape[0], -1)

    def extra_repr(self) -> str:
        return f"resolutions={self.resolutions}, dropped={list(self.dropped)}"


def growable_discriminator(
    seq: nn.Module,
    *,
    resolution: int | None = None,
    img_channels: int | None = None,
    top_block: TopBlock = "mirror",
    head_activation: HeadActivation = "keep",
) -> SequentialDiscriminator:
    """A protocol discriminator from a DCGAN-style `nn.Sequential` (images `[N, 1 or 3, R, R]` → one score each).

    The Sequential starts with its RGB-in conv, halves the resolution with strided convs or pooling, and
    ends in a score layer that gives one value per image (`Conv2d(C, 1, 4)` on 4×4, or `Flatten` +
    `Linear(…, 1)`), optionally followed by an activation (Sigmoid; `head_activation="drop"` leaves it out,
    e.g. for WGAN losses). The RGB-in conv and the activation right after it are dropped; every other
    layer is reused as it is. `resolution` (the image size the network was written for) is inferred when
    exactly one power of two from 4 to 1024 ends in one score per image. See the module docstring for
    `top_block`.
    """
    owner = "growable_discriminator"
    _check_top_block_option(top_block, owner)
    if head_activation not in ("keep", "drop"):
        raise ValueError(f"{owner}: head_activation must be 'keep' or 'drop', got {head_activation!r}")
    leaves = _leaves(seq, owner, "netD")
    first_path, first = leaves[0]
    c_in = getattr(first, "in_channels", None)
    if not isinstance(first, nn.modules.conv._ConvNd) or not isinstance(c_in, int):
        raise ValueError(
            f"{owner}: layer {first_path} ({type(first).__name__}) should be the RGB-in conv that takes the "
            f"images; expected an nn.Conv2d. {_HINT}"
        )
    img_channels = _check_img_channels(c_in, img_channels, _Layer(first_path, first, (), ()), "takes", owner)
    if resolution is None:
        resolution = _infer_resolution(leaves, c_in, owner)
    elif not is_power_of_two(resolution) or resolution < 4:
        raise ValueError(f"{owner}: resolution must be a power of two ≥ 4, got {resolution!r}")
    try:
        layers = _trace(leaves, (_TRACE_BATCH, c_in, resolution, resolution), owner)
    except _TraceError as exc:  # often the consequence of an earlier layer that did not halve: name that one
        for layer in exc.traced[1:]:
            r_in, r_out = layer.in_res, layer.out_res
            if r_in is not None and r_out is not None and r_out > 1 and r_out not in (r_in, r_in // 2):
                raise _resolution_error(layer, r_in, owner) from None
        raise

    # The RGB-in stage: the first conv and the parameter-free layers up to the next weight layer.
    nxt = next((i for i, layer in enumerate(layers) if i > 0 and layer.is_weight_layer), None)
    if nxt is None:
        raise ValueError(f"{owner}: the Sequential has no layer after its RGB-in conv {layers[0].label}. {_HINT}")
    stage = layers[:nxt]
    after = stage[-1].out_res
    if after not in (resolution, resolution // 2):
        raise ValueError(
            f"{owner}: {stage[-1].label} leaves {_fmt(stage[-1].out_shape)} after the RGB-in conv; expected "
            f"{resolution}×{resolution} or exactly half of it ({resolution // 2}×{resolution // 2}). {_HINT}"
        )
    rest = layers[nxt:]
    blocks, head_start, lowest = _split_discriminator(rest, after, owner)
    head_layers = rest[head_start:]
    _check_score(head_layers, owner)
    dropped_tail: tuple[str, ...] = ()
    if head_activation == "drop":
        head_layers, dropped_tail = _without_final_activation(head_layers)
    channels = {r: b[0].in_shape[1] for r, b in blocks.items()}
    channels[lowest] = head_layers[0].in_shape[1]
    built = {r: _named(b) for r, b in blocks.items()}
    top = _discriminator_top(stage, resolution, channels, top_block, owner)
    if top is not None:
        built[resolution] = top
    dropped = tuple(layer.label for layer in stage) + dropped_tail
    return SequentialDiscriminator(built, _named(head_layers), channels, img_channels=img_channels, dropped=dropped)


def _without_final_activation(head: list[_Layer]) -> tuple[list[_Layer], tuple[str, ...]]:
    """The head less the parameter-free, shape-preserving layers after its score layer, and their labels."""
    last = max(i for i, layer in enumerate(head) if layer.is_weight_layer)
    tail = [layer for layer in head[last + 1 :] if not _has_parameters(layer.module) and layer.out_shape == layer.in_shape]
    return [layer for layer in head if layer not in tail], tuple(layer.label for layer in tail)


def _discriminator_top(
    stage: list[_Layer], resolution: int, channels: dict[int, int], top_block: TopBlock, owner: str
) -> nn.Sequential | None:
    """The block at the input resolution when the RGB-in stage also halved it: mirror, the user's, or none.

    Adds `channels[resolution]` when a block is returned.
    """
    after = stage[-1].out_res
    assert after is not None
    if after == resolution:
        if isinstance(top_block, nn.Module):
            raise ValueError(
                f"{owner}: top_block is only used when the RGB-in conv also halves the resolution, but "
                f"{stage[-1].label} leaves {resolution}×{resolution}; leave top_block at 'mirror'"
            )
        return None
    if top_block == "drop":
        return None
    c = stage[0].out_channels
    if isinstance(top_block, nn.Module):
        c = declared_in_channels(top_block) or c
        block = nn.Sequential(OrderedDict(top_block=top_block))
    else:  # mirror: a fresh conv like the RGB-in conv (C → C), then fresh copies of the rest of its stage
        extra = [_fresh_conv_like(stage[0], c, owner)] + [_fresh_copy(layer.module) for layer in stage[1:]]
        block = nn.Sequential(OrderedDict((f"new_{i}", m) for i, m in enumerate(extra)))
    out_c = _check_top_block(block, c, resolution, after, owner)
    if out_c != channels[after]:
        raise ValueError(
            f"{owner}: top_block produces {out_c} channels but the layers after the RGB-in conv take {channels[after]}"
        )
    channels[resolution] = c
    return block


def _infer_resolution(leaves: Sequence[tuple[str, nn.Module]], c_in: int, owner: str) -> int:
    """The one power of two (4 … 1024) at which the Sequential ends in one score per image."""
    fits = []
    for r in _INFER_RESOLUTIONS:
        try:
            out = _trace(leaves, (_TRACE_BATCH, c_in, r, r), owner)[-1].out_shape
        except ValueError:
            continue
        if len(out) >= 2 and int(torch.Size(out[1:]).numel()) == 1:
            fits.append(r)
    if len(fits) == 1:
        return fits[0]
    if fits:
        raise ValueError(f"{owner}: the Sequential gives one score per image at several resolutions {fits}; pass resolution=")
    raise ValueError(
        f"{owner}: at no resolution from 4 to 1024 does the Sequential end in one score per image [N, 1]; pass "
        f"resolution= (the image size it was written for) to see which layer differs. {_HINT}"
    )


def _split_discriminator(rest: Sequence[_Layer], top: int, owner: str) -> tuple[dict[int, list[_Layer]], int, int]:
    """Cut the layers after the RGB-in stage into halving blocks and a head.

    A run gathers the layers at one input resolution up to and including the one that leaves it; a weight
    layer after that starts the next run. A parameter-free layer that collapses spatial features to 1×1 or
    a vector (global pooling, Flatten) starts a run of its own. Each run must halve the resolution exactly
    once (a block); the first run that does not begins the head.
    Returns the blocks by input resolution, the index where the head starts, and the lowest resolution.
    """
    runs: list[list[int]] = []
    for i, layer in enumerate(rest):
        if runs:
            run, prev = runs[-1], rest[runs[-1][-1]]
            if layer.is_weight_layer:  # a new run once the current one has left its resolution
                starts = prev.out_res != rest[run[0]].in_res
            else:  # global pooling / Flatten after spatial features starts the head
                starts = _collapsed(layer) and not _collapsed(prev)
            if not starts:
                run.append(i)
                continue
        runs.append([i])
    blocks: dict[int, list[_Layer]] = {}
    expected = top
    for run in runs:
        layers = [rest[i] for i in run]
        out = layers[-1].out_res
        if out is not None and out == expected // 2 and out > 1:
            for layer in layers:  # one halving, and no detour through other resolutions
                if layer.out_res not in (expected, expected // 2):
                    raise _resolution_error(layer, expected, owner)
            blocks[expected] = layers
            expected //= 2
            continue
        if out is not None and out not in (1, expected):
            bad = next(layer for layer in layers if layer.out_res not in (expected, expected // 2))
            raise _resolution_error(bad, expected, owner)
        if not is_power_of_two(expected):
            raise ValueError(f"{owner}: the head starts at {expected}×{expected}; expected a power of two. {_HINT}")
        return blocks, run[0], expected
    last = rest[-1]
    raise _no_score_error(last, last.out_shape[1], last.out_res, owner)


def _collapsed(layer: _Layer) -> bool:
    return layer.out_res is None or layer.out_res == 1


def _resolution_error(layer: _Layer, expected: int, owner: str) -> ValueError:
    got = "no square feature maps" if layer.out_res is None else f"{layer.out_res}×{layer.out_res}"
    return ValueError(
        f"{owner}: {layer.label} changes the resolution from {layer.in_res}×{layer.in_res} to {got} "
        f"({_fmt(layer.out_shape)}); expected each block to halve it exactly once ({expected} → {expected // 2}). {_HINT}"
    )


def _check_score(head: Sequence[_Layer], owner: str) -> None:
    """The head must end in a weight layer giving one value per image, followed at most by activations."""
    last = head[-1]
    weight = [layer for layer in head if layer.is_weight_layer]
    per_image = int(torch.Size(last.out_shape[1:]).numel())
    if not weight or per_image != 1:
        raise _no_score_error(last, head[0].in_shape[1], head[0].in_res, owner)


def _no_score_error(last: _Layer, c: int, r: int | None, owner: str) -> ValueError:
    example = f"Conv2d({c}, 1, {r})" if r is not None else f"Linear({c}, 1)"
    return ValueError(
        f"{owner}: no final score layer: the Sequential ends with {last.label} giving {_fmt(last.out_shape)}; "
        f"expected a last conv or linear layer that gives one score per image (e.g. {example}). {_HINT}"
    )
