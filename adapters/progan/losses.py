"""The loss pairs a preset can name: `LOSSES[name] = (d_loss, g_loss)`; an unknown name is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from torch import Tensor

import progrow as pg
from progrow.losses import Critic

from .presets import ProGANPreset

__all__ = ["LOSSES", "DLoss", "GLoss", "losses_for"]


class DLoss(Protocol):
    """`d_loss(preset, critic, reals, fakes, regularize=…, resolution=…)`: the critic maps `[N, C, R, R]` to `[N, 1]`.

    `regularize` is False on the steps a lazy R1 (`preset.r1_interval` > 1) skips. `resolution` is the
    stage's (the training step passes it), for settings that differ by stage (`preset.r1_gamma_at`). The
    critic's first call is on the reals (or a detached copy of them) and its second on the fakes: a
    conditional training step reads the class logits of those two calls (tested for every loss in `LOSSES`).
    """

    def __call__(
        self,
        p: ProGANPreset,
        critic: Critic,
        reals: Tensor,
        fakes: Tensor,
        /,
        *,
        regularize: bool = True,
        resolution: int | None = None,
    ) -> pg.LossOutput: ...


# `g_loss(scores)`: the generator's loss from the critic's scores `[N, 1]` of its images.
GLoss = Callable[[Tensor], pg.LossOutput]


def _wgan_gp_d(
    p: ProGANPreset, critic: Critic, reals: Tensor, fakes: Tensor, *, regularize: bool = True, resolution: int | None = None
) -> pg.LossOutput:
    return pg.wgan_gp_d_loss(critic, reals, fakes, gp_weight=p.gp_weight, drift_weight=p.drift_weight)


def _lsgan_d(
    p: ProGANPreset, critic: Critic, reals: Tensor, fakes: Tensor, *, regularize: bool = True, resolution: int | None = None
) -> pg.LossOutput:
    return pg.lsgan_d_loss(critic, reals, fakes)


def _logistic_d(
    p: ProGANPreset, critic: Critic, reals: Tensor, fakes: Tensor, *, regularize: bool = True, resolution: int | None = None
) -> pg.LossOutput:
    # Lazy R1 (StyleGAN2): on every `r1_interval`-th step, weighted by the interval, so its mean weight is γ.
    gamma = p.r1_gamma_at(resolution)
    return pg.logistic_d_loss(critic, reals, fakes, r1_gamma=gamma * p.r1_interval if regularize else 0.0)


LOSSES: dict[str, tuple[DLoss, GLoss]] = {
    "wgan-gp": (_wgan_gp_d, pg.wgan_g_loss),  # the paper's: WGAN-GP with the drift term
    "lsgan": (_lsgan_d, pg.lsgan_g_loss),
    "logistic": (_logistic_d, pg.logistic_g_loss),  # non-saturating, with R1 on the reals
}


def losses_for(name: str) -> tuple[DLoss, GLoss]:
    """The `(d_loss, g_loss)` pair called `name`; `ValueError` naming the known ones otherwise."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"loss: unknown {name!r}; expected one of {', '.join(LOSSES)}") from None
