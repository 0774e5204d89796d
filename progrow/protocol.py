"""The protocol a user's network offers so progrow can grow it, and the checks that explain what is missing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from progrow.state import is_power_of_two

__all__ = [
    "GrowableNetwork",
    "GrowableGenerator",
    "GrowableDiscriminator",
    "check_generator",
    "check_discriminator",
]


@runtime_checkable
class GrowableNetwork(Protocol):
    """What both sides offer: the resolutions they can run at and their feature maps per resolution."""

    resolutions: Sequence[int]  # ascending, each twice the one before, e.g. (4, 8, 16, …, 1024)

    def channels(self, resolution: int) -> int:
        """Number of feature maps at `resolution` (produced by G / consumed by D)."""
        ...


@runtime_checkable
class GrowableGenerator(GrowableNetwork, Protocol):
    """A generator that produces features resolution by resolution.

    `features(z, until=R)` yields `(resolution, h)` for every resolution from the lowest up to and
    including `R`, lazily and in ascending order, with `h` of shape `[N, channels(resolution), res, res]`.
    progrow turns the last one or two of them into images with its toRGB layers.
    """

    def features(self, z: Tensor, *, until: int, **kwargs: Any) -> Iterator[tuple[int, Tensor]]:
        """Yield `(resolution, features [N, C, res, res])` for each resolution up to `until`."""
        ...


@runtime_checkable
class GrowableDiscriminator(GrowableNetwork, Protocol):
    """A discriminator made of blocks that halve the resolution, and a head that scores the lowest one.

    `block(R)` exists for every resolution but the lowest and maps `[N, channels(R), R, R]` to
    `[N, channels(R/2), R/2, R/2]`; `head(h)` maps `[N, channels(lowest), lowest, lowest]` to scores
    `[N]` or `[N, 1]` (keyword arguments, such as labels, are passed through to it).
    """

    def block(self, resolution: int) -> nn.Module:
        """The module that takes features at `resolution` down to `resolution // 2`."""
        ...

    def head(self, x: Tensor, **kwargs: Any) -> Tensor:
        """Scores `[N]` or `[N, 1]` from features at the lowest resolution."""
        ...


_SHARED = ("resolutions", "channels")
_GENERATOR_MEMBERS = _SHARED + ("features",)
_DISCRIMINATOR_MEMBERS = _SHARED + ("block", "head")


def _check(net: Any, side: str, members: tuple[str, ...], protocol: str) -> tuple[int, ...]:
    name = type(net).__name__
    missing = [m for m in members if not hasattr(net, m)]
    not_callable = [m for m in members if m != "resolutions" and hasattr(net, m) and not callable(getattr(net, m))]
    if missing or not_callable:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if not_callable:
            parts.append(f"not callable: {', '.join(not_callable)}")
        raise TypeError(
            f"{name} cannot be grown as a {side}: {'; '.join(parts)}. "
            f"A {side} must offer {', '.join(members)} (see progrow.{protocol})."
        )
    if not isinstance(net, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module so that its parameters are registered, got {type(net)!r}")
    return check_resolutions(net.resolutions, owner=f"{name}.resolutions")


def check_resolutions(resolutions: Any, *, owner: str = "resolutions") -> tuple[int, ...]:
    """Validate an ascending sequence of powers of two, each twice the one before; return it as a tuple."""
    try:
        res = tuple(resolutions)
    except TypeError:
        raise ValueError(f"{owner}: expected a sequence of resolutions, got {resolutions!r}") from None
    if not res:
        raise ValueError(f"{owner}: expected at least one resolution, got none")
    bad = [r for r in res if not is_power_of_two(r)]
    if bad:
        raise ValueError(f"{owner}: every resolution must be a power of two, got {bad[0]!r} in {res}")
    for lo, hi in pairwise(res):
        if hi != 2 * lo:
            raise ValueError(f"{owner}: expected ascending resolutions each twice the one before, got {lo} then {hi}")
    return res


def check_generator(net: Any) -> tuple[int, ...]:
    """Raise `TypeError` listing what `net` lacks to be a `GrowableGenerator`; return its resolutions."""
    return _check(net, "generator", _GENERATOR_MEMBERS, "GrowableGenerator")


def check_discriminator(net: Any) -> tuple[int, ...]:
    """Raise `TypeError` listing what `net` lacks to be a `GrowableDiscriminator`; return its resolutions."""
    return _check(net, "discriminator", _DISCRIMINATOR_MEMBERS, "GrowableDiscriminator")
