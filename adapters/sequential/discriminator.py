"""`growable_discriminator`: a DCGAN-style `nn.Sequential` discriminator cut into one block per resolution."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from progrow.meta import declared_in_channels
from progrow.state import is_power_of_two

from .rgb import UserStyleRGB
from .trace import (
    _HINT,
    _INFER_RESOLUTIONS,
    _TRACE_BATCH,
    HeadActivation,
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
    _TraceError,
)

__all__ = ["SequentialDiscriminator", "growable_discriminator"]


# ----------------------------------------------------------------------------------- discriminator
class SequentialDiscriminator(nn.Module):
    """A discriminator to progrow's protocol made of a user's Sequential's layers: one block per ½, and a head.

    `block(R)` maps `[N, channels(R), R, R]` to `[N, channels(R/2), R/2, R/2]`; `head(x)` maps the lowest
    resolution's features to scores `[N, 1]`. Build it with `growable_discriminator`. `user_from_rgb`
    makes fromRGB layers like the left-out RGB-in conv (see `UserStyleRGB`):
    `pg.ProgressiveDiscriminator(d, from_rgb=d.user_from_rgb)`.
    """

    def __init__(
        self,
        blocks: dict[int, nn.Sequential],
        head: nn.Sequential,
        channels: dict[int, int],
        *,
        img_channels: int,
        dropped: tuple[str, ...] = (),
        user_from_rgb: UserStyleRGB | None = None,
    ) -> None:
        super().__init__()
        self.user_from_rgb = user_from_rgb  # an RGBFactory in the user's style
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
    # fromRGB in the user's style: their RGB-in conv, then its activations (not a pooling that halves).
    following = [layer.module for layer in stage[1:] if layer.out_shape == layer.in_shape]
    return SequentialDiscriminator(
        built, _named(head_layers), channels,
        img_channels=img_channels, dropped=dropped, user_from_rgb=UserStyleRGB(stage[0].module, following),
    )  # fmt: skip


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
