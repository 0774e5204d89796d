"""GAN losses of the paper and its comparisons. Each returns tensors; none calls `backward()`.

Discriminator losses take the discriminator as a callable `d(images) -> scores` (close over the growth
state: `lambda x: D(x, state)`), because the gradient penalties need to call it on new inputs. Fakes are
detached inside, so no generator graph is kept in the discriminator step. Generator losses take the
scores of the fakes. Scores may be `[N]` or `[N, 1]`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LossOutput",
    "gradient_penalty",
    "r1_penalty",
    "wgan_gp_d_loss",
    "wgan_g_loss",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "logistic_d_loss",
    "logistic_g_loss",
]

Critic = Callable[[Tensor], Tensor]


class LossOutput(NamedTuple):
    """A scalar `loss` to call `backward()` on, and its detached terms (`[]`-shaped means) for logging."""

    loss: Tensor
    terms: dict[str, Tensor]


def _flat(scores: Tensor) -> Tensor:
    if scores.dim() == 2 and scores.shape[1] == 1:
        return scores[:, 0]
    if scores.dim() != 1:
        raise ValueError(f"expected discriminator scores of shape [N] or [N, 1], got {list(scores.shape)}")
    return scores


def _input_gradient(d: Critic, x: Tensor) -> Tensor:
    """`∂ Σ d(x) / ∂x`, kept in the graph so a penalty on it can be trained: `[N, ...] -> [N, ...]`."""
    x = x.detach().requires_grad_(True)
    scores = _flat(d(x))
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad


def gradient_penalty(d: Critic, reals: Tensor, fakes: Tensor, *, target: float = 1.0) -> Tensor:
    """WGAN-GP penalty per sample, `(‖∇d(x̂)‖₂ − target)² / target²` at random interpolates: `[N]`.

    `x̂ = real + u·(fake − real)` with one `u ~ U(0, 1)` per sample (Gulrajani et al. 2017; the
    division by `target²` follows the official ProGAN code and is 1 for the default target).
    """
    u = torch.rand(reals.shape[0], *([1] * (reals.dim() - 1)), device=reals.device, dtype=reals.dtype)
    mixed = torch.lerp(reals.detach(), fakes.detach().to(reals.dtype), u)  # fakes may be bf16/fp16 under autocast
    grad = _input_gradient(d, mixed)
    norms = grad.flatten(1).float().norm(dim=1)
    return (norms - target).square() / (target * target)


def r1_penalty(d: Critic, reals: Tensor) -> Tensor:
    """R1 penalty per sample, `‖∇d(real)‖₂²` (Mescheder et al. 2018): `[N]`."""
    grad = _input_gradient(d, reals)
    return grad.flatten(1).float().square().sum(dim=1)


def wgan_gp_d_loss(
    d: Critic,
    reals: Tensor,
    fakes: Tensor,
    *,
    gp_weight: float = 10.0,
    drift_weight: float = 1e-3,
    gp_target: float = 1.0,
) -> LossOutput:
    """The paper's discriminator loss: `E[d(fake)] − E[d(real)] + λ·GP + ε·E[d(real)²]`.

    λ = `gp_weight` (10), ε = `drift_weight` (0.001, on the mean of the squared real scores, §A.1).
    """
    real = _flat(d(reals))
    fake = _flat(d(fakes.detach()))
    wasserstein = fake.mean() - real.mean()
    loss = wasserstein
    terms = {"wasserstein": wasserstein.detach()}
    if gp_weight:
        gp = gradient_penalty(d, reals, fakes, target=gp_target).mean()
        loss = loss + gp_weight * gp
        terms["gradient_penalty"] = gp.detach()
    if drift_weight:
        drift = real.float().square().mean()
        loss = loss + drift_weight * drift
        terms["drift"] = drift.detach()
    terms.update(real_score=real.detach().float().mean(), fake_score=fake.detach().float().mean())
    return LossOutput(loss, terms)


def wgan_g_loss(fake_scores: Tensor) -> LossOutput:
    """The WGAN generator loss, `−E[d(fake)]`."""
    loss = -_flat(fake_scores).mean()
    return LossOutput(loss, {"g_loss": loss.detach()})


def lsgan_d_loss(d: Critic, reals: Tensor, fakes: Tensor) -> LossOutput:
    """Least-squares discriminator loss (Mao et al. 2017, as in the official code): `E[(d(real) − 1)²] + E[d(fake)²]`."""
    real = _flat(d(reals))
    fake = _flat(d(fakes.detach()))
    real_term = (real - 1).square().mean()
    fake_term = fake.square().mean()
    loss = real_term + fake_term
    return LossOutput(loss, {"real_loss": real_term.detach(), "fake_loss": fake_term.detach()})


def lsgan_g_loss(fake_scores: Tensor) -> LossOutput:
    """Least-squares generator loss, `E[(d(fake) − 1)²]`."""
    loss = (_flat(fake_scores) - 1).square().mean()
    return LossOutput(loss, {"g_loss": loss.detach()})


def logistic_d_loss(d: Critic, reals: Tensor, fakes: Tensor, *, r1_gamma: float = 0.0) -> LossOutput:
    """Non-saturating logistic discriminator loss `E[softplus(d(fake))] + E[softplus(−d(real))]`, plus `γ/2·E[R1]`.

    With `r1_gamma > 0` the penalty reuses the real scores' forward pass (one discriminator call on reals).
    """
    reals = reals.detach().requires_grad_(bool(r1_gamma))
    real = _flat(d(reals))
    fake = _flat(d(fakes.detach()))
    real_term = F.softplus(-real).mean()
    fake_term = F.softplus(fake).mean()
    loss = real_term + fake_term
    terms = {"real_loss": real_term.detach(), "fake_loss": fake_term.detach()}
    if r1_gamma:
        (grad,) = torch.autograd.grad(real.sum(), reals, create_graph=True)
        r1 = grad.flatten(1).float().square().sum(dim=1).mean()
        loss = loss + 0.5 * r1_gamma * r1
        terms["r1_penalty"] = r1.detach()
    return LossOutput(loss, terms)


def logistic_g_loss(fake_scores: Tensor) -> LossOutput:
    """Non-saturating logistic generator loss, `E[softplus(−d(fake))]`."""
    loss = F.softplus(-_flat(fake_scores)).mean()
    return LossOutput(loss, {"g_loss": loss.detach()})
