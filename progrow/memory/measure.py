"""Peak memory of one training step at a resolution and batch size: counted (any device, fake tensors too) or measured (CUDA).

A *step* is any callable `step(resolution, batch_size)` that runs one training iteration of the user's
loop at that resolution with that many images per device. `gan_training_step` builds one from progrow's
wrappers, a loss pair and the optimizers; `CountingMeasure` and `CudaMeasure` turn a step into the
`measure(resolution, batch_size) -> bytes` that `plan_batch_sizes` searches with.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor

from progrow.blend import fade_reals
from progrow.data.loader import to_float
from progrow.losses import LossOutput
from progrow.progressive import ProgressiveDiscriminator, ProgressiveGenerator
from progrow.state import GrowthState

from .count import MemoryCounter

__all__ = ["Step", "Measure", "CountingMeasure", "CudaMeasure", "OUT_OF_MEMORY", "gan_training_step"]

# `step(resolution, batch_size)`: one training iteration at `resolution` with `batch_size` images per device.
Step = Callable[[int, int], Any]
# `measure(resolution, batch_size) -> bytes`: the peak memory of one such step.
Measure = Callable[[int, int], int]
# What `CudaMeasure` reports for a step that ran out of device memory (more than any budget).
OUT_OF_MEMORY = 2**62

Precision = Literal["fp32", "bf16", "fp16"]
Phase = Literal["fade", "stable"]


class CountingMeasure:
    """`measure(resolution, batch)`: the counted peak (`MemoryCounter`) of one `step(resolution, batch)`.

    Whenever the resolution differs from the previous call's, the states of `optimizers` are cleared and
    one uncounted step runs at the new resolution first, so that what exists before a counted step —
    gradients of the weights used there, their optimizer states, the EMA — is what training holds in a
    stage (after its optimizer reset, as `reset_optimizers="stage"`, and one step), whatever was counted
    before. (Without that reset, training would also keep the states of earlier stages' toRGB / fromRGB
    layers: a few kilobytes.)
    `track` lists what lives before the step (modules, optimizers, an EMA), counted from its start. With
    `fake_mode` (a `torch._subclasses.fake_tensor.FakeTensorMode` the models were built in) every step runs
    inside that mode, without memory or arithmetic. `counts[(resolution, batch)]` keeps each finished counter
    (`peak_bytes`, `baseline_bytes`, `flops`).
    """

    def __init__(
        self, step: Step, *, track: Iterable[Any], optimizers: Iterable[torch.optim.Optimizer] = (), fake_mode: Any | None = None
    ) -> None:
        self.step = step
        self.optimizers = list(optimizers)
        self.track = list(track)
        self.fake_mode = fake_mode
        self.counts: dict[tuple[int, int], MemoryCounter] = {}
        self._last: int | None = None

    def __call__(self, resolution: int, batch_size: int) -> int:
        with self.fake_mode if self.fake_mode is not None else contextlib.nullcontext():
            if self._last != resolution:
                for opt in self.optimizers:
                    opt.state.clear()
                self._uncounted(resolution)
            counter = MemoryCounter()
            with counter:
                counter.track(*self.track)
                self.step(resolution, batch_size)
        self.counts[(resolution, batch_size)] = counter
        return counter.peak_bytes

    def _uncounted(self, resolution: int) -> None:
        with MemoryCounter(count_flops=False):  # answers the data-dependent reads of fake tensors
            self.step(resolution, 1)
        self._last = resolution


class CudaMeasure:
    """`measure(resolution, batch)`: `torch.cuda.max_memory_allocated` over one `step(resolution, batch)`.

    The peak statistics are reset right before the step, so the figure covers everything allocated on
    `device` during it, the weights and optimizer states included. A warm-up step per resolution comes
    first, after clearing `optimizers`' states, whenever the resolution changes (as in `CountingMeasure`). A
    step that runs out of memory reports `OUT_OF_MEMORY`.
    """

    def __init__(
        self, step: Step, *, optimizers: Iterable[torch.optim.Optimizer] = (), device: torch.device | str | int | None = None
    ) -> None:
        self.step = step
        self.optimizers = list(optimizers)
        self.device = torch.device("cuda") if device is None else torch.device(device)
        self.peaks: dict[tuple[int, int], int] = {}
        self._last: int | None = None

    def __call__(self, resolution: int, batch_size: int) -> int:
        try:
            if self._last != resolution:
                for opt in self.optimizers:
                    opt.state.clear()
                self.step(resolution, 1)
                self._last = resolution
            gc.collect()
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.step(resolution, batch_size)
            torch.cuda.synchronize(self.device)
            peak = int(torch.cuda.max_memory_allocated(self.device))
        except torch.cuda.OutOfMemoryError:
            peak = OUT_OF_MEMORY
        gc.collect()
        torch.cuda.empty_cache()
        self.peaks[(resolution, batch_size)] = peak
        return peak


def gan_training_step(
    G: ProgressiveGenerator,
    D: ProgressiveDiscriminator,
    *,
    d_loss: Callable[[Callable[[Tensor], Tensor], Tensor, Tensor], LossOutput],
    g_loss: Callable[[Tensor], LossOutput],
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    latent_dim: int,
    ema: Any | None = None,
    device: torch.device | str = "cpu",
    precision: Precision = "fp32",
    channels_last: bool = False,
    start_resolution: int | None = None,
    phase: Phase = "fade",
) -> Step:
    """A `step(resolution, batch)` of the usual progressive GAN iteration on progrow's wrappers.

    One step: a uint8 data batch `[batch, C, R, R]` made on `device` and mapped to [-1, 1]; the D update
    (`d_loss(critic, reals, fakes)`, e.g. `functools.partial(progrow.wgan_gp_d_loss, gp_weight=10)`, with its
    penalty; fakes from `G` under `no_grad`); the G update (`g_loss(D(G(z)))`, D frozen); `ema.update(G)`.
    It runs at a fade (alpha 0.5: both resolutions' toRGB / fromRGB, the faded reals — a superset of a
    stable step's tensors) unless `phase="stable"` or `resolution` is `start_resolution` (default: the
    wrappers' first), which has no fade. `precision` bf16 / fp16 runs under autocast, fp16 with a GradScaler.
    """
    start = G.resolutions[0] if start_resolution is None else start_resolution
    dev = torch.device(device)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext() if dtype is None else torch.autocast(device_type=dev.type, dtype=dtype)

    def optimize(loss: Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)

    def step(resolution: int, batch_size: int) -> None:
        fading = phase == "fade" and resolution != start
        state = GrowthState(resolution, alpha=0.5 if fading else 1.0)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        images = torch.randint(0, 256, (batch_size, G.img_channels, resolution, resolution), dtype=torch.uint8, device=dev)
        reals = fade_reals(to_float(images), state).contiguous(memory_format=memory_format)
        G.requires_grad_(False)
        with autocast():
            with torch.no_grad():
                fakes = G(torch.randn(batch_size, latent_dim, device=dev), state)
            d_out = d_loss(lambda x: D(x, state), reals, fakes)
        optimize(d_out.loss, opt_d)
        G.requires_grad_(True)
        D.requires_grad_(False)
        with autocast():
            g_out = g_loss(D(G(torch.randn(batch_size, latent_dim, device=dev), state), state))
        optimize(g_out.loss, opt_g)
        D.requires_grad_(True)
        scaler.update()
        if ema is not None:
            ema.update(G)

    return step
