"""Tests for progrow.losses, mostly on a linear critic whose input gradient is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from progrow.losses import (
    LossOutput,
    gradient_penalty,
    logistic_d_loss,
    logistic_g_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    r1_penalty,
    wgan_g_loss,
    wgan_gp_d_loss,
)

SHAPE = (2, 3, 3)  # C, H, W of the toy images
D = 2 * 3 * 3


class LinearCritic:
    """d(x) = x.flatten(1) @ w + b; its input gradient is w for every sample."""

    def __init__(self, seed: int = 0, scale: float = 0.7, keepdim: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = (torch.randn(D, generator=g) * scale).requires_grad_(True)
        self.b = torch.tensor(0.3, requires_grad=True)
        self.keepdim = keepdim

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w + self.b
        return s[:, None] if self.keepdim else s

    def norm(self) -> float:
        return math.sqrt(sum(v * v for v in self.w.detach().tolist()))

    def params(self):
        return [self.w, self.b]


def _batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *SHAPE, generator=g), torch.randn(n, *SHAPE, generator=g)


def _scores(d: LinearCritic, x: torch.Tensor) -> list[float]:
    w = d.w.detach().tolist()
    b = d.b.item()
    return [sum(a * c for a, c in zip(row, w, strict=True)) + b for row in x.flatten(1).tolist()]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


# --------------------------------------------------------------------------------------------------
# Penalties
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keepdim", [False, True])
def test_gradient_penalty_on_linear_critic(keepdim):
    torch.manual_seed(0)
    d = LinearCritic(seed=1, keepdim=keepdim)
    reals, fakes = _batch(5, 2)
    gp = gradient_penalty(d, reals, fakes)
    assert gp.shape == (5,)
    expected = (d.norm() - 1.0) ** 2
    torch.testing.assert_close(gp, torch.full((5,), expected), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("target", [1.0, 750.0, 0.5])
def test_gradient_penalty_with_target(target):
    torch.manual_seed(1)
    d = LinearCritic(seed=3, scale=2.0)
    reals, fakes = _batch(4, 4)
    gp = gradient_penalty(d, reals, fakes, target=target)
    expected = (d.norm() - target) ** 2 / target**2
    torch.testing.assert_close(gp, torch.full((4,), expected), rtol=1e-6, atol=1e-6)


def test_gradient_penalty_uses_one_uniform_interpolate_per_sample():
    torch.manual_seed(2)
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return 0.5 * x.flatten(1).square().sum(dim=1)

    reals, fakes = _batch(6, 5)
    gp = gradient_penalty(critic, reals, fakes)
    (mixed,) = seen
    assert mixed.shape == reals.shape
    diff = (fakes - reals).flatten(1)
    for n in range(6):
        # Recover u from the first element, then every element of the sample must use the same u.
        u = ((mixed[n].flatten()[0] - reals[n].flatten()[0]) / diff[n, 0]).item()
        assert 0.0 <= u <= 1.0
        torch.testing.assert_close(mixed[n].flatten(), reals[n].flatten() + u * diff[n], rtol=1e-5, atol=1e-5)
        # The critic's input gradient is x̂ itself, so the penalty is (‖x̂‖ − 1)².
        norm = math.sqrt(sum(v * v for v in mixed[n].flatten().tolist()))
        assert gp[n].item() == pytest.approx((norm - 1.0) ** 2, rel=1e-5)
    # Different samples get different u (continuous distribution).
    us = [((mixed[n].flatten()[0] - reals[n].flatten()[0]) / diff[n, 0]).item() for n in range(6)]
    assert len({round(u, 6) for u in us}) == 6


def test_gradient_penalty_is_differentiable_wrt_critic():
    torch.manual_seed(3)
    d = LinearCritic(seed=6)
    reals, fakes = _batch(3, 7)
    gradient_penalty(d, reals, fakes).mean().backward()
    w = d.w.detach()
    nrm = d.norm()
    expected = 2.0 * (nrm - 1.0) * w / nrm  # d/dw (‖w‖ − 1)²
    torch.testing.assert_close(d.w.grad, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("keepdim", [False, True])
def test_r1_penalty_on_linear_critic(keepdim):
    d = LinearCritic(seed=8, keepdim=keepdim)
    reals, _ = _batch(4, 9)
    r1 = r1_penalty(d, reals)
    assert r1.shape == (4,)
    expected = sum(v * v for v in d.w.detach().tolist())
    torch.testing.assert_close(r1, torch.full((4,), expected), rtol=1e-6, atol=1e-6)
    assert r1.grad_fn is not None
    assert d.w.grad is None


# --------------------------------------------------------------------------------------------------
# WGAN-GP
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keepdim", [False, True])
def test_wgan_gp_d_loss_total_and_terms(keepdim):
    torch.manual_seed(4)
    d = LinearCritic(seed=10, keepdim=keepdim)
    reals, fakes = _batch(6, 11)
    out = wgan_gp_d_loss(d, reals, fakes)
    assert isinstance(out, LossOutput)
    real_s, fake_s = _scores(d, reals), _scores(d, fakes)
    wass = _mean(fake_s) - _mean(real_s)
    gp = (d.norm() - 1.0) ** 2
    drift = _mean(s * s for s in real_s)
    expected = wass + 10.0 * gp + 0.001 * drift
    assert out.loss.shape == ()
    assert out.loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert set(out.terms) == {"wasserstein", "gradient_penalty", "drift", "real_score", "fake_score"}
    assert out.terms["wasserstein"].item() == pytest.approx(wass, rel=1e-5, abs=1e-6)
    assert out.terms["gradient_penalty"].item() == pytest.approx(gp, rel=1e-5, abs=1e-6)
    assert out.terms["drift"].item() == pytest.approx(drift, rel=1e-5, abs=1e-6)
    assert out.terms["real_score"].item() == pytest.approx(_mean(real_s), rel=1e-5, abs=1e-6)
    assert out.terms["fake_score"].item() == pytest.approx(_mean(fake_s), rel=1e-5, abs=1e-6)
    for value in out.terms.values():
        assert value.shape == () and value.grad_fn is None and not value.requires_grad


def test_wgan_gp_d_loss_custom_weights_and_disabled_terms():
    torch.manual_seed(5)
    d = LinearCritic(seed=12)
    reals, fakes = _batch(4, 13)
    real_s, fake_s = _scores(d, reals), _scores(d, fakes)
    wass = _mean(fake_s) - _mean(real_s)
    out = wgan_gp_d_loss(d, reals, fakes, gp_weight=0.0, drift_weight=0.0)
    assert out.loss.item() == pytest.approx(wass, rel=1e-5, abs=1e-6)
    assert "gradient_penalty" not in out.terms and "drift" not in out.terms
    out = wgan_gp_d_loss(d, reals, fakes, gp_weight=2.0, drift_weight=0.5, gp_target=3.0)
    expected = wass + 2.0 * (d.norm() - 3.0) ** 2 / 9.0 + 0.5 * _mean(s * s for s in real_s)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_wgan_gp_drift_is_mean_not_sum():
    torch.manual_seed(6)
    d = LinearCritic(seed=14)
    reals, fakes = _batch(4, 15)
    single = wgan_gp_d_loss(d, reals, fakes)
    doubled = wgan_gp_d_loss(d, torch.cat([reals, reals]), torch.cat([fakes, fakes]))
    torch.testing.assert_close(doubled.terms["drift"], single.terms["drift"], rtol=1e-6, atol=0)
    torch.testing.assert_close(doubled.loss, single.loss, rtol=1e-5, atol=1e-6)


def test_wgan_gp_d_loss_detaches_fakes_and_does_not_call_backward():
    torch.manual_seed(7)
    d = LinearCritic(seed=16)
    g_param = torch.tensor(1.5, requires_grad=True)
    reals, base = _batch(4, 17)
    fakes = g_param * base
    out = wgan_gp_d_loss(d, reals, fakes)
    assert out.loss.grad_fn is not None
    assert d.w.grad is None and d.b.grad is None and g_param.grad is None
    out.loss.backward()
    assert g_param.grad is None
    assert d.w.grad is not None and d.b.grad is not None


def test_wgan_g_loss():
    scores = torch.tensor([0.5, -2.0, 3.25, 1.0], requires_grad=True)
    out = wgan_g_loss(scores)
    assert isinstance(out, LossOutput)
    assert out.loss.item() == pytest.approx(-(0.5 - 2.0 + 3.25 + 1.0) / 4)
    assert out.loss.grad_fn is not None and scores.grad is None
    assert set(out.terms) == {"g_loss"}
    assert out.terms["g_loss"].item() == out.loss.item()
    torch.testing.assert_close(wgan_g_loss(scores[:, None]).loss, out.loss, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# LSGAN
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keepdim", [False, True])
def test_lsgan_d_loss(keepdim):
    d = LinearCritic(seed=18, keepdim=keepdim)
    reals, fakes = _batch(5, 19)
    out = lsgan_d_loss(d, reals, fakes)
    real_term = _mean((s - 1.0) ** 2 for s in _scores(d, reals))
    fake_term = _mean(s * s for s in _scores(d, fakes))
    assert out.loss.item() == pytest.approx(real_term + fake_term, rel=1e-5, abs=1e-6)
    assert set(out.terms) == {"real_loss", "fake_loss"}
    assert out.terms["real_loss"].item() == pytest.approx(real_term, rel=1e-5, abs=1e-6)
    assert out.terms["fake_loss"].item() == pytest.approx(fake_term, rel=1e-5, abs=1e-6)
    assert out.loss.grad_fn is not None and d.w.grad is None


def test_lsgan_g_loss():
    scores = torch.tensor([[0.5], [-2.0], [3.0]], requires_grad=True)
    out = lsgan_g_loss(scores)
    assert out.loss.item() == pytest.approx(((0.5 - 1) ** 2 + (-2.0 - 1) ** 2 + (3.0 - 1) ** 2) / 3)
    assert out.terms["g_loss"].item() == out.loss.item()
    assert out.loss.grad_fn is not None and scores.grad is None
    torch.testing.assert_close(lsgan_g_loss(scores[:, 0]).loss, out.loss, rtol=0, atol=0)


def test_lsgan_d_loss_detaches_fakes():
    d = LinearCritic(seed=20)
    g_param = torch.tensor(0.8, requires_grad=True)
    reals, base = _batch(3, 21)
    lsgan_d_loss(d, reals, g_param * base).loss.backward()
    assert g_param.grad is None and d.w.grad is not None


# --------------------------------------------------------------------------------------------------
# Logistic
# --------------------------------------------------------------------------------------------------


def _softplus(t: float) -> float:
    return math.log1p(math.exp(t))


@pytest.mark.parametrize("keepdim", [False, True])
def test_logistic_d_loss(keepdim):
    d = LinearCritic(seed=22, keepdim=keepdim)
    reals, fakes = _batch(5, 23)
    out = logistic_d_loss(d, reals, fakes)
    real_term = _mean(_softplus(-s) for s in _scores(d, reals))
    fake_term = _mean(_softplus(s) for s in _scores(d, fakes))
    assert out.loss.item() == pytest.approx(real_term + fake_term, rel=1e-5, abs=1e-6)
    assert set(out.terms) == {"real_loss", "fake_loss"}
    assert out.terms["real_loss"].item() == pytest.approx(real_term, rel=1e-5, abs=1e-6)
    assert out.terms["fake_loss"].item() == pytest.approx(fake_term, rel=1e-5, abs=1e-6)
    assert out.loss.grad_fn is not None and d.w.grad is None


@pytest.mark.parametrize("keepdim", [False, True])
def test_logistic_d_loss_with_r1(keepdim):
    gamma = 10.0
    d = LinearCritic(seed=24, keepdim=keepdim)
    reals, fakes = _batch(4, 25)
    out = logistic_d_loss(d, reals, fakes, r1_gamma=gamma)
    base = _mean(_softplus(-s) for s in _scores(d, reals)) + _mean(_softplus(s) for s in _scores(d, fakes))
    sq_norm = sum(v * v for v in d.w.detach().tolist())
    assert out.loss.item() == pytest.approx(base + gamma / 2 * sq_norm, rel=1e-5, abs=1e-5)
    assert out.terms["r1_penalty"].item() == pytest.approx(sq_norm, rel=1e-5)
    assert d.w.grad is None
    # The R1 term is trainable: its gradient w.r.t. w is gamma·w on top of the logistic part.
    out.loss.backward()
    with_r1 = d.w.grad.clone()
    d.w.grad = None
    logistic_d_loss(d, reals, fakes).loss.backward()
    torch.testing.assert_close(with_r1 - d.w.grad, gamma * d.w.detach(), rtol=1e-5, atol=1e-5)


def test_logistic_d_loss_detaches_fakes_and_leaves_reals_alone():
    d = LinearCritic(seed=26)
    g_param = torch.tensor(1.2, requires_grad=True)
    reals, base = _batch(3, 27)
    logistic_d_loss(d, reals, g_param * base, r1_gamma=1.0).loss.backward()
    assert g_param.grad is None and d.w.grad is not None
    assert not reals.requires_grad and reals.grad is None


def test_logistic_g_loss():
    scores = torch.tensor([0.5, -2.0, 3.0], requires_grad=True)
    out = logistic_g_loss(scores)
    assert out.loss.item() == pytest.approx(_mean(_softplus(-s) for s in (0.5, -2.0, 3.0)), rel=1e-6)
    assert out.terms["g_loss"].item() == out.loss.item()
    assert out.loss.grad_fn is not None and scores.grad is None
    torch.testing.assert_close(logistic_g_loss(scores[:, None]).loss, out.loss, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# Score shapes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [wgan_g_loss, lsgan_g_loss, logistic_g_loss])
@pytest.mark.parametrize("shape", [(4, 2), (2, 2, 1), ()])
def test_g_losses_reject_bad_score_shapes(fn, shape):
    with pytest.raises(ValueError, match="shape"):
        fn(torch.zeros(shape))


@pytest.mark.parametrize("fn", [wgan_gp_d_loss, lsgan_d_loss, logistic_d_loss])
def test_d_losses_reject_two_column_scores(fn):
    def critic(x):
        s = x.flatten(1).sum(dim=1, keepdim=True)
        return torch.cat([s, -s], dim=1)  # [N, 2]

    reals, fakes = _batch(3, 28)
    with pytest.raises(ValueError, match="shape"):
        fn(critic, reals, fakes)


@pytest.mark.parametrize("fn", [gradient_penalty, r1_penalty])
def test_penalties_reject_two_column_scores(fn):
    def critic(x):
        s = x.flatten(1).sum(dim=1, keepdim=True)
        return torch.cat([s, -s], dim=1)

    reals, fakes = _batch(3, 29)
    with pytest.raises(ValueError, match="shape"):
        fn(critic, reals, fakes) if fn is gradient_penalty else fn(critic, reals)


@pytest.mark.parametrize("fn", [wgan_gp_d_loss, lsgan_d_loss, logistic_d_loss])
def test_d_losses_same_for_flat_and_column_scores(fn):
    torch.manual_seed(8)
    flat, col = LinearCritic(seed=30), LinearCritic(seed=30, keepdim=True)
    reals, fakes = _batch(4, 31)
    torch.manual_seed(9)
    a = fn(flat, reals, fakes)
    torch.manual_seed(9)
    b = fn(col, reals, fakes)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-6, atol=1e-6)
    assert a.terms.keys() == b.terms.keys()
