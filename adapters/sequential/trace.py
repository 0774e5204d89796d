"""Tracing a `Sequential` layer by layer on the meta device, and the checks and copies that build blocks from it."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from progrow.meta import meta_forward

__all__ = ["TopBlock", "HeadActivation"]

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
