"""`ProgressiveGenerator` / `ProgressiveDiscriminator`: toRGB/fromRGB per resolution, resampling and fade-in."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from progrow.blend import downsample2x, fade, upsample2x
from progrow.layers import FromRGB, ToRGB
from progrow.meta import declared_in_channels, meta_forward
from progrow.protocol import check_discriminator, check_generator
from progrow.state import GrowthState

__all__ = ["ProgressiveGenerator", "ProgressiveDiscriminator", "RGBFactory"]

# Builds one toRGB / fromRGB layer: `factory(in_channels, out_channels) -> nn.Module`.
RGBFactory = Callable[[int, int], nn.Module]


class _GrowthWrapper(nn.Module):
    """Holds the growth state a wrapper runs at: a Python int resolution and an `alpha` tensor buffer.

    `alpha` lives in a buffer (not a Python float) so that `torch.compile` sees the same graph for every
    alpha of a fade; only a change of resolution or of phase changes the traced code path.

    The state reaches the wrapper one way: `set_state` binds it (what `progrow.bind` calls every step).
    `module(x, state)` runs at `state` for that call only (as `with module.at(state): module(x)`) and
    leaves the bound state as it was.
    """

    side = "network"
    alpha: Tensor  # the buffer registered in __init__

    def __init__(self, resolutions: tuple[int, ...]) -> None:
        super().__init__()
        self.resolutions = resolutions
        self.register_buffer("alpha", torch.ones(()), persistent=False)
        self._resolution: int | None = None
        self._fading = False  # what forward branches on: changes at phase boundaries only
        self._alpha_value = 1.0  # for reporting; never read in forward, so torch.compile does not guard on it

    @property
    def growth_state(self) -> GrowthState | None:
        """The resolution and alpha this wrapper runs at now (None before the first state)."""
        if self._resolution is None:
            return None
        return GrowthState(self._resolution, alpha=self._alpha_value)

    def set_state(self, state: GrowthState) -> None:
        """Run at `state.resolution` with `state.alpha` from now on (what `progrow.bind` calls every step)."""
        if not isinstance(state, GrowthState):
            raise TypeError(f"{type(self).__name__}.set_state: expected a GrowthState, got {type(state).__name__}")
        res = state.resolution
        if res not in self.resolutions:
            raise ValueError(
                f"{type(self).__name__}: the state's resolution {res} is not one of the {self.side}'s "
                f"resolutions {self.resolutions}"
            )
        if state.is_fading and res // 2 not in self.resolutions:
            raise ValueError(
                f"{type(self).__name__}: cannot fade into {res}, the {self.side} has no previous resolution "
                f"{res // 2} (resolutions {self.resolutions}); the first stage is stable only"
            )
        self._resolution = res
        self._fading = state.is_fading
        if state.alpha != self._alpha_value:
            self.alpha.fill_(state.alpha)
            self._alpha_value = state.alpha

    @contextlib.contextmanager
    def at(self, state: GrowthState) -> Iterator[None]:
        """Run at `state` inside the block; the bound state (or none) is back afterwards, alpha buffer included."""
        resolution, fading, alpha = self._resolution, self._fading, self._alpha_value
        self.set_state(state)
        try:
            yield
        finally:
            self._resolution, self._fading = resolution, fading
            if self._alpha_value != alpha:
                self.alpha.fill_(alpha)
                self._alpha_value = alpha

    def _run_at(self, state: GrowthState | None, run: Callable[..., Tensor], x: Tensor, **kwargs: Any) -> Tensor:
        """`run(x, **kwargs)` at `state` for this call only, or at the bound state when `state` is None."""
        if state is None:
            return run(x, **kwargs)
        with self.at(state):
            return run(x, **kwargs)

    def _bound(self) -> tuple[int, bool]:
        """The resolution and whether it fades, of the bound state."""
        if self._resolution is None:
            raise RuntimeError(
                f"{type(self).__name__} has no growth state: call it as module(x, state), or keep it in step "
                "with a scheduler through progrow.bind(scheduler, module)"
            )
        return self._resolution, self._fading

    def extra_repr(self) -> str:
        state = "unset" if self._resolution is None else f"{self._resolution}, alpha={self._alpha_value:.4f}"
        return f"resolutions={self.resolutions}, state={state}"


class ProgressiveGenerator(_GrowthWrapper):
    """Grows a `GrowableGenerator`: `G(z, state) -> images [N, img_channels, res, res]`.

    One toRGB per resolution is built at construction (so optimizers created once stay valid), keyed by
    resolution (`to_rgb.64.weight`). During a fade the output is
    `lerp(upsample2x(to_rgb[res/2](h_prev)), to_rgb[res](h_res), alpha)`, exactly as in the paper:
    alpha = 0 gives the previous stage's image upsampled, bit for bit.
    """

    side = "generator"
    net: Any  # the GrowableGenerator (nn.Module.__getattr__ would type its methods as Tensor | Module)

    def __init__(self, net: nn.Module, *, img_channels: int = 3, to_rgb: RGBFactory | None = None) -> None:
        resolutions = check_generator(net)
        super().__init__(resolutions)
        self.net = net
        self.img_channels = img_channels
        self._channels = _channel_table(net, resolutions, "generator")
        factory = to_rgb if to_rgb is not None else ToRGB
        self.to_rgb = nn.ModuleDict({str(r): factory(self._channels[r], img_channels) for r in resolutions})

    def forward(self, z: Tensor, state: GrowthState | None = None, **kwargs: Any) -> Tensor:
        """Generate `[N, img_channels, res, res]` images from latents `z` at `state` (or the bound state)."""
        return self._run_at(state, self._generate, z, **kwargs)

    def _generate(self, z: Tensor, **kwargs: Any) -> Tensor:
        res, fading = self._bound()
        prev = res // 2 if fading else None
        h = h_prev = None
        expected = iter(self.resolutions)
        for r, features in self.net.features(z, until=res, **kwargs):
            want = next(expected, None)
            if r != want:
                raise RuntimeError(
                    f"{type(self.net).__name__}.features yielded resolution {r} where {want} was expected "
                    f"(ascending {self.resolutions}, stopping at until={res})"
                )
            _check_features(features, r, self._channels[r], type(self.net).__name__)
            if r == prev:
                h_prev = features
            h = features
            if r == res:
                break
        else:
            raise RuntimeError(f"{type(self.net).__name__}.features(until={res}) stopped before yielding resolution {res}")
        image = self.to_rgb[str(res)](h)
        if prev is not None:
            old = upsample2x(self.to_rgb[str(prev)](h_prev))
            image = fade(old, image, self.alpha.clone())  # a copy: autograd keeps it, set_state / at may refill alpha
        return image


class ProgressiveDiscriminator(_GrowthWrapper):
    """Grows a `GrowableDiscriminator`: `D(images [N, img_channels, res, res], state) -> scores`.

    One fromRGB per resolution is built at construction, keyed by resolution (`from_rgb.64.weight`).
    During a fade the features entering the lower resolution are
    `lerp(from_rgb[res/2](downsample2x(x)), block(res)(from_rgb[res](x)), alpha)`; the remaining blocks
    and the head follow. alpha = 0 gives the previous stage's score of the downsampled images, bit for bit.
    Keyword arguments (labels, …) go to the head.

    `check_blocks` runs every block once at construction on the `meta` device (no memory, no compute)
    to verify that block(R) maps channels(R) to channels(R/2) at half the resolution.
    """

    side = "discriminator"
    net: Any  # the GrowableDiscriminator (see ProgressiveGenerator.net)

    def __init__(
        self,
        net: nn.Module,
        *,
        img_channels: int = 3,
        from_rgb: RGBFactory | None = None,
        check_blocks: bool = True,
    ) -> None:
        resolutions = check_discriminator(net)
        super().__init__(resolutions)
        self.net = net
        self.img_channels = img_channels
        self._channels = _channel_table(net, resolutions, "discriminator")
        if check_blocks:
            for r in resolutions[1:]:
                _check_block(net, r, self._channels[r], self._channels[r // 2])
        factory = from_rgb if from_rgb is not None else FromRGB
        self.from_rgb = nn.ModuleDict({str(r): factory(img_channels, self._channels[r]) for r in resolutions})

    def forward(self, x: Tensor, state: GrowthState | None = None, **kwargs: Any) -> Tensor:
        """Score images `[N, img_channels, res, res]` at `state` (or the bound state): `[N]` or `[N, 1]`."""
        return self._run_at(state, self._score, x, **kwargs)

    def _score(self, x: Tensor, **kwargs: Any) -> Tensor:
        res, fading = self._bound()
        if x.dim() != 4 or x.shape[1] != self.img_channels or x.shape[-2:] != (res, res):
            raise ValueError(
                f"{type(self).__name__}: expected images [N, {self.img_channels}, {res}, {res}] at resolution "
                f"{res}, got {list(x.shape)}"
            )
        h = self.from_rgb[str(res)](x)
        if fading:
            h = self.net.block(res)(h)
            res //= 2
            h = fade(self.from_rgb[str(res)](downsample2x(x)), h, self.alpha.clone())  # see ProgressiveGenerator
        lowest = self.resolutions[0]
        while res > lowest:
            h = self.net.block(res)(h)
            res //= 2
        return self.net.head(h, **kwargs)


def _channel_table(net: Any, resolutions: tuple[int, ...], side: str) -> dict[int, int]:
    table = {}
    for r in resolutions:
        c = net.channels(r)
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ValueError(f"{type(net).__name__}.channels({r}): expected a positive int, got {c!r} ({side})")
        table[r] = c
    return table


def _check_features(h: Any, r: int, channels: int, owner: str) -> None:
    if not isinstance(h, Tensor) or h.dim() != 4 or h.shape[1] != channels or h.shape[-2:] != (r, r):
        got = list(h.shape) if isinstance(h, Tensor) else type(h).__name__
        raise ValueError(
            f"{owner}.features at resolution {r}: expected [N, {channels}, {r}, {r}] (channels({r}) = {channels}), got {got}"
        )


def _check_block(net: Any, r: int, c_in: int, c_out: int) -> None:
    """Verify `block(r)` maps `[1, c_in, r, r]` to `[1, c_out, r/2, r/2]`, on the meta device."""
    owner = type(net).__name__
    block = net.block(r)
    if not isinstance(block, nn.Module):
        raise TypeError(f"{owner}.block({r}): expected an nn.Module, got {type(block).__name__}")
    declared_in = declared_in_channels(block)
    if declared_in is not None and declared_in != c_in:
        raise ValueError(
            f"{owner}: channels do not chain at resolution {r}: block({r}) takes {declared_in} channels "
            f"but channels({r}) = {c_in}"
        )
    try:
        out = meta_forward(block, torch.empty(1, c_in, r, r, device="meta"))
    except (NotImplementedError, TypeError):
        return  # the block uses operations the meta device lacks; its shapes are checked at run time instead
    except RuntimeError as exc:
        raise ValueError(f"{owner}: block({r}) fails on features [N, {c_in}, {r}, {r}] (channels({r}) = {c_in}): {exc}") from None
    want = (c_out, r // 2, r // 2)
    if not isinstance(out, Tensor) or tuple(out.shape[1:]) != want:
        got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        if isinstance(out, Tensor) and out.dim() == 4 and out.shape[1] != c_out:
            raise ValueError(
                f"{owner}: channels do not chain at resolution {r}: block({r}) produces {out.shape[1]} channels "
                f"but channels({r // 2}) = {c_out}"
            )
        raise ValueError(f"{owner}: block({r}) should map [N, {c_in}, {r}, {r}] to [N, {c_out}, {r // 2}, {r // 2}], got {got}")
