"""One training iteration: a discriminator update, a generator update and the G EMA, at one growth state."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

import progrow as pg
from progrow.data import to_float

from .distributed import all_reduce_grads
from .options import Options
from .run import Run, batch_size

__all__ = ["train_step", "update"]


def train_step(run: Run, state: pg.GrowthState) -> dict[str, Tensor]:
    """This rank's next minibatch of reals, then `update` at `state` (the wrappers are bound to it); detached losses."""
    images, labels = run.sampler.next_batch(state.resolution, batch_size(state), device=run.opts.device)
    return update(run, state, to_float(images), labels)


def update(run: Run, state: pg.GrowthState, reals: Tensor, real_labels: Tensor | None = None) -> dict[str, Tensor]:
    """One D and one G update on `reals` `[n, C, R, R]` in [-1, 1] (faded here to `state`), then the EMA.

    Non-finite gradients skip an update and are counted in `run` (`last_step_ok`, `skipped_steps`, `bad_streak`).
    Returns the detached losses and the D loss's terms (`d_<term>`).
    """
    opts = run.opts
    n = batch_size(state) // opts.dist.world_size
    reals = pg.fade_reals(reals, state)
    if opts.channels_last:
        reals = reals.contiguous(memory_format=torch.channels_last)
    d_loss_fn, g_loss_fn = run.losses
    D = run.D_forward

    # Discriminator: no generator graph, no generator gradients.
    run.G.requires_grad_(False)
    with _autocast(opts):
        labels = _fake_labels(run, n)
        with torch.no_grad():
            _, fakes = _generate(run, n, labels)
        regularize = run.d_steps % opts.preset.r1_interval == 0
        critic = _ScoreCritic(D)
        d_out = d_loss_fn(opts.preset, critic, reals, fakes, regularize=regularize, resolution=state.resolution)
        d_loss = d_out.loss
        if run.num_classes:  # auxiliary classifier on reals and fakes, as the official conditional loss
            real_out, fake_out = critic.calls[:2]
            d_loss = d_loss + _class_loss(real_out, real_labels) + _class_loss(fake_out, labels)
    d_ok = _optimizer_step(run, d_loss, list(run.D.parameters()), run.opt_d)
    run.d_steps += 1
    run.G.requires_grad_(True)

    # Generator: no discriminator weight gradients.
    run.D.requires_grad_(False)
    with _autocast(opts):
        labels = _fake_labels(run, n)
        z, fakes = _generate(run, n, labels)
        scores = D(fakes)
        g_out = g_loss_fn(scores[:, :1])
        g_loss = g_out.loss
        if run.anchor is not None:  # held to the previous stage's G_ema (--stage-anchor)
            kwargs = {} if labels is None else {"labels": labels}
            g_loss = g_loss + run.anchor(fakes, z, state, source=run.ema.module, **kwargs)
        if run.num_classes:
            g_loss = g_loss + _class_loss(scores, labels)
    g_ok = _optimizer_step(run, g_loss, list(run.G.parameters()), run.opt_g)
    run.D.requires_grad_(True)

    run.scaler.update()
    run.ema.update(run.G)
    run.last_step_ok = d_ok and g_ok
    if run.last_step_ok:
        run.bad_streak = 0
    else:
        run.skipped_steps += 1
        run.bad_streak += 1
    run.d_terms.update(d_out.terms)  # a lazily skipped R1 reports its last value: the same keys every step
    stats = {f"d_{k}": v for k, v in run.d_terms.items()}
    stats.update(d_loss=d_loss.detach(), g_loss=g_loss.detach())
    return stats


def _fake_labels(run: Run, n: int) -> Tensor | None:
    """Labels `[n]` for the fakes, drawn from the real ones (None when unconditional)."""
    if run.label_pool is None:
        return None
    return run.label_pool[torch.randint(len(run.label_pool), (n,))].to(run.opts.device)


def _generate(run: Run, n: int, labels: Tensor | None) -> tuple[Tensor, Tensor]:
    """Fresh latents `[n, latent]` and their fakes `[n, C, R, R]`."""
    z = torch.randn(n, run.opts.preset.latent_dim, device=run.opts.device)
    return z, run.G_forward(z) if labels is None else run.G_forward(z, labels=labels)


class _ScoreCritic:
    """D's score column `[N, 1]` for the loss; keeps D's whole outputs `[N, 1 + classes]` of the loss's calls.

    Every `DLoss` calls the critic on the reals first and on the fakes second (`losses.DLoss`), so a
    conditional step reads the class logits of those two forward passes instead of running D on both
    batches again.
    """

    def __init__(self, D: Callable[[Tensor], Tensor]) -> None:
        self._D = D
        self.calls: list[Tensor] = []

    def __call__(self, x: Tensor) -> Tensor:
        out = self._D(x)
        self.calls.append(out)
        return out[:, :1]


def _class_loss(scores: Tensor, labels: Tensor | None) -> Tensor:
    """The auxiliary classifier's cross-entropy: class logits are the scores after the first `[N, 1 + classes]`."""
    if labels is None:
        raise ValueError("conditional training needs labels for every image")
    return F.cross_entropy(scores[:, 1:].float(), labels)


def _autocast(opts: Options) -> contextlib.AbstractContextManager:
    if opts.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if opts.precision == "bf16" else torch.float16
    return torch.autocast(device_type=opts.device.type, dtype=dtype)


def _optimizer_step(run: Run, loss: Tensor, params: list[torch.nn.Parameter], opt: torch.optim.Optimizer) -> bool:
    """Backward, average over ranks, step; True if the update was applied.

    Non-finite gradients skip the update (on every rank alike, as the averaged gradients are equal
    everywhere); with fp16 the GradScaler does this itself.
    """
    opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    all_reduce_grads(params, run.opts.dist)
    if run.scaler.is_enabled():
        run.scaler.step(opt)
        return True
    grads = [p.grad for p in params if p.grad is not None]
    finite = bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()) if grads else True
    if finite:
        opt.step()
    else:
        opt.zero_grad(set_to_none=True)
    return finite
