"""`warm_start`: fit a stage's new layers to the previous stage before its fade, so that the fade blends two
pictures of the same image rather than an image and noise.

In the paper's fade the new block starts from its initial weights: at alpha = 0 it is ignored, and as alpha
rises it is trained while it is mixed in. On a small budget the two paths do not agree by the end of the
fade: the new path alone is no image, the old path is pushed to complement it, and what the previous stage
learned collapses late in the fade (benchmarks/README.md, "level traces"). A warm start fits the new
generator block and its toRGB so that `G(z, alpha=1)` reproduces `G(z, alpha=0)` (the previous stage's image,
upsampled), and the new discriminator block and its fromRGB so that `block(R)(from_rgb[R](x))` reproduces
`from_rgb[R/2](downsample2x(x))` (the features the previous stage's D saw), by a few hundred Adam steps on
those new weights only. Weights the previous stage had are not touched, so alpha = 0 still reproduces the
previous stage bit for bit; the fade then starts from two paths that already agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from progrow.blend import downsample2x, upsample2x
from progrow.ema import EMA
from progrow.progressive import ProgressiveDiscriminator, ProgressiveGenerator
from progrow.state import GrowthState

__all__ = ["WarmStart", "warm_start", "new_parameters"]

# One warm-start batch: the network's input, or the input and keyword arguments for the forward (labels, …).
Batch = Tensor | tuple[Tensor, Mapping[str, Any]]


@dataclass(frozen=True)
class WarmStart:
    """What `warm_start` did: the weights it fitted and the fit's loss on the first batch before and after."""

    side: Literal["generator", "discriminator"]
    resolution: int  # the stage whose new layers were fitted
    parameters: tuple[str, ...]  # names of the fitted parameters (in `module.named_parameters()`)
    steps: int  # Adam steps taken (one per batch)
    loss_before: float  # the fit's loss on the first batch with the initial weights
    loss_after: float  # the same, after the last step


def new_parameters(module: ProgressiveGenerator | ProgressiveDiscriminator, resolution: int, sample: Batch) -> list[str]:
    """Names of the parameters the stage at `resolution` uses and the stage at `resolution // 2` does not.

    Found by autograd on `sample` (a small batch of the module's input at either stage: latents for a
    generator, images `[N, C, resolution, resolution]` for a discriminator): what gets a gradient at
    `resolution` (alpha = 1) but none at `resolution // 2`. For the generator these are the new block and
    `to_rgb[resolution]`; for the discriminator `from_rgb[resolution]` and `block(resolution)`.
    """
    _check_stage(module, resolution)
    x, kwargs = _unpack(sample)
    named = [(n, p) for n, p in module.named_parameters()]
    used: list[set[str]] = []
    for state, inp in ((GrowthState(resolution), x), (GrowthState(resolution // 2), _previous_input(module, x))):
        with _trainable([p for _, p in named]):
            out = module(inp, state, **kwargs)
            grads = torch.autograd.grad(out.float().sum(), [p for _, p in named], allow_unused=True)
        used.append({n for (n, _), g in zip(named, grads, strict=True) if g is not None})
    return [n for n, _ in named if n in used[0] and n not in used[1]]


def warm_start(
    module: ProgressiveGenerator | ProgressiveDiscriminator,
    resolution: int,
    batches: Iterable[Batch],
    *,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.5, 0.99),
    ema: EMA[ProgressiveGenerator] | None = None,
) -> WarmStart:
    """Fit the new layers of the stage at `resolution` to the previous stage, one Adam step per batch.

    `batches`: for a `ProgressiveGenerator`, latents `[N, latent]` (or `(latents, forward kwargs)`); for a
    `ProgressiveDiscriminator`, real images `[N, C, resolution, resolution]` in [-1, 1]. The generator's new
    weights are fitted by the MSE of `G(z, alpha=1)` to `G(z, alpha=0)`; the discriminator's by the relative
    MSE of `block(R)(from_rgb[R](x))` to `from_rgb[R/2](downsample2x(x))`. Only the new weights change
    (`new_parameters`); with `ema`, the generator's fitted weights are copied into its shadow. Call it when
    the fade into `resolution` begins, before its first training step (a fresh Adam is used here, so the
    training optimizer's state is left as it is).
    """
    _check_stage(module, resolution)
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        raise ValueError("warm_start: batches is empty; give at least one batch")
    names = new_parameters(module, resolution, first)
    if not names:
        raise ValueError(
            f"warm_start: the {module.side} has no parameters that resolution {resolution} uses and "
            f"{resolution // 2} does not; nothing to fit"
        )
    params = [module.get_parameter(n) for n in names]
    opt = torch.optim.Adam(params, lr=lr, betas=betas)
    loss_fn = _generator_fit if isinstance(module, ProgressiveGenerator) else _discriminator_fit
    before: float | None = None
    steps = 0
    with _trainable(params):
        for batch in _chain(first, iterator):
            loss = loss_fn(module, resolution, batch)
            if before is None:  # the first batch with the initial weights
                before = float(loss.detach())
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            opt.step()
            steps += 1
    for p in params:
        p.grad = None
    with torch.no_grad():
        after = float(loss_fn(module, resolution, first))
        if ema is not None:
            for n, p in zip(names, params, strict=True):
                ema.module.get_parameter(n).copy_(p)
    assert before is not None  # the first batch was trained on
    return WarmStart(module.side, resolution, tuple(names), steps, before, after)  # type: ignore[arg-type]


def _generator_fit(G: nn.Module, resolution: int, batch: Batch) -> Tensor:
    """MSE of the new path's image `G(z, alpha=1)` to the previous stage's `G(z, alpha=0)`.

    `G(z, alpha=0)` is the previous stage's image upsampled, bit for bit (`fade` at alpha 0 returns its
    old image), so the target is computed at `resolution // 2` without running the new block.
    """
    z, kwargs = _unpack(batch)
    with torch.no_grad():
        target = upsample2x(G(z, GrowthState(resolution // 2), **kwargs))
    return F.mse_loss(G(z, GrowthState(resolution), **kwargs).float(), target.float())


def _discriminator_fit(D: Any, resolution: int, batch: Batch) -> Tensor:
    """Relative MSE of `block(R)(from_rgb[R](x))` to `from_rgb[R/2](downsample2x(x))`."""
    x, _ = _unpack(batch)
    if x.dim() != 4 or x.shape[1] != D.img_channels or x.shape[-2:] != (resolution, resolution):
        raise ValueError(
            f"warm_start: expected discriminator batches [N, {D.img_channels}, {resolution}, {resolution}], got {list(x.shape)}"
        )
    with torch.no_grad():
        target = D.from_rgb[str(resolution // 2)](downsample2x(x)).float()
    new = D.net.block(resolution)(D.from_rgb[str(resolution)](x)).float()
    return F.mse_loss(new, target) / target.pow(2).mean().clamp_min(1e-8)


def _check_stage(module: Any, resolution: int) -> None:
    if not isinstance(module, (ProgressiveGenerator, ProgressiveDiscriminator)):
        raise TypeError(f"warm_start: expected a ProgressiveGenerator or ProgressiveDiscriminator, got {type(module).__name__}")
    if resolution not in module.resolutions or resolution // 2 not in module.resolutions:
        raise ValueError(
            f"warm_start: resolution {resolution} has no previous stage in the {module.side}'s resolutions "
            f"{module.resolutions}; a warm start fits the layers of a stage that fades in (not the first one)"
        )


def _unpack(batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
    if isinstance(batch, Tensor):
        return batch, {}
    if isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[0], Tensor) and isinstance(batch[1], Mapping):
        return batch[0], batch[1]
    raise TypeError(f"warm_start: expected each batch to be a Tensor or (Tensor, kwargs dict), got {type(batch).__name__}")


def _previous_input(module: Any, x: Tensor) -> Tensor:
    """The input at the previous stage: the same latents for a generator, the images downsampled for a discriminator."""
    return downsample2x(x) if isinstance(module, ProgressiveDiscriminator) else x


def _chain(first: Batch, rest: Iterable[Batch]) -> Iterable[Batch]:
    yield first
    yield from rest


class _trainable:
    """Inside the block every parameter in `params` requires grad; their flags are restored afterwards."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.flags: list[bool] = []

    def __enter__(self) -> None:
        self.flags = [p.requires_grad for p in self.params]
        for p in self.params:
            p.requires_grad_(True)

    def __exit__(self, *exc: object) -> None:
        for p, flag in zip(self.params, self.flags, strict=True):
            p.requires_grad_(flag)
