"""Tests for progrow.ema.EMA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from progrow.ema import EMA


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))


def _perturb(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))


def _assert_ema_equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Bit for bit: the EMA is `torch.lerp(ema, param, 1 − β)` per weight."""
    assert torch.equal(actual, expected), (actual - expected).abs().max()


def test_single_update_formula():
    model = _model()
    ema = EMA(model, beta=0.9)
    old = [p.detach().clone() for p in ema.module.parameters()]
    _perturb(model, 1)
    ema.update(model)
    assert ema.num_updates == 1
    for e, o, p in zip(ema.module.parameters(), old, model.parameters(), strict=True):
        expected = torch.lerp(o, p.detach(), 1 - 0.9)
        _assert_ema_equal(e, expected)
        assert not torch.equal(e, p.detach())  # actually averaged, not copied


def test_several_updates_with_changing_params():
    model = _model(2)
    beta = 0.75
    ema = EMA(model, beta=beta)
    for step in range(5):
        _perturb(model, 10 + step)
        # Reference from the shadow's own previous value, so last-bit rounding differences don't accumulate.
        previous = [e.detach().clone() for e in ema.module.parameters()]
        ema.update(model)
        assert ema.num_updates == step + 1
        for e, o, p in zip(ema.module.parameters(), previous, model.parameters(), strict=True):
            _assert_ema_equal(e, torch.lerp(o, p.detach(), 1 - beta))
            assert not torch.equal(e, o)


def test_beta_one_freezes_and_beta_zero_copies():
    model = _model(3)
    frozen = EMA(model, beta=1.0)
    copier = EMA(model, beta=0.0)
    before = [p.detach().clone() for p in frozen.module.parameters()]
    _perturb(model, 4)
    frozen.update(model)
    copier.update(model)
    for f, b, c, p in zip(frozen.module.parameters(), before, copier.module.parameters(), model.parameters(), strict=True):
        assert torch.equal(f, b)
        assert torch.equal(c, p.detach())


def test_weights_equal_to_their_shadow_stay_bit_exact():
    """An untrained weight (a block not grown into yet) keeps its shadow exactly, update after update."""
    model = _model(5)
    ema = EMA(model, beta=0.999)
    for _ in range(200):
        ema.update(model)
    for e, p in zip(ema.module.parameters(), model.parameters(), strict=True):
        assert torch.equal(e, p.detach())
    # The textbook form drifts in the last bits here, so the check above is not vacuous.
    drifted = [p.detach().clone() for p in model.parameters()]
    for _ in range(200):
        drifted = [0.999 * d + (1 - 0.999) * p.detach() for d, p in zip(drifted, model.parameters(), strict=True)]
    assert not all(torch.equal(d, p.detach()) for d, p in zip(drifted, model.parameters(), strict=True))


@pytest.mark.parametrize(("half_life", "batch", "k"), [(10.0, 32, 5), (0.5, 64, 3)])
def test_half_life_step_response(half_life, batch, k):
    lin = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
    ema = EMA(lin, half_life_kimg=half_life)
    beta = 0.5 ** (batch / (1000.0 * half_life))
    assert ema.beta_for(batch) == pytest.approx(beta, rel=1e-12)
    with torch.no_grad():
        lin.weight.fill_(1.0)  # a step from 0 to 1
    for _ in range(k):
        ema.update(lin, batch_size=batch)
    expected = 1.0 - 0.5 ** (k * batch / (1000.0 * half_life))
    torch.testing.assert_close(ema.module.weight, torch.full((1, 3), expected), rtol=1e-6, atol=1e-7)


def test_half_life_requires_batch_size():
    model = _model()
    ema = EMA(model, half_life_kimg=10.0)
    with pytest.raises(ValueError, match="batch_size"):
        ema.update(model)
    assert ema.num_updates == 0


def test_fixed_beta_ignores_batch_size():
    model = _model()
    ema = EMA(model, beta=0.5)
    assert ema.beta_for(128) == 0.5
    assert ema.beta_for() == 0.5


@pytest.mark.parametrize("kwargs", [{}, {"beta": 0.99, "half_life_kimg": 10.0}])
def test_exactly_one_of_beta_and_half_life(kwargs):
    with pytest.raises(ValueError, match="beta"):
        EMA(_model(), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"beta": 1.5}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"half_life_kimg": 0.0}, "half_life_kimg"),
        ({"half_life_kimg": -1.0}, "half_life_kimg"),
    ],
)
def test_out_of_range_settings_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        EMA(_model(), **kwargs)


def test_persistent_buffers_copied_not_averaged():
    model = _model(5)
    ema = EMA(model, beta=0.9)
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.arange(5, dtype=torch.float32))
        bn.running_var.fill_(7.0)
    bn.num_batches_tracked.fill_(42)
    ema.update(model)
    shadow_bn = ema.module[1]
    assert torch.equal(shadow_bn.running_mean, torch.arange(5, dtype=torch.float32))
    assert torch.equal(shadow_bn.running_var, torch.full((5,), 7.0))
    assert shadow_bn.num_batches_tracked.item() == 42
    # The shadow's buffers are its own tensors, not aliases of the model's.
    assert shadow_bn.running_mean.data_ptr() != bn.running_mean.data_ptr()
    with torch.no_grad():
        bn.running_mean.fill_(-1.0)
    assert torch.equal(shadow_bn.running_mean, torch.arange(5, dtype=torch.float32))


class _WithNonPersistent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.register_buffer("stat", torch.zeros(3))
        self.register_buffer("alpha", torch.tensor(0.0), persistent=False)


def test_non_persistent_buffers_not_copied():
    model = _WithNonPersistent()
    ema = EMA(model, beta=0.5)
    with torch.no_grad():
        model.alpha.fill_(0.7)
        model.stat.fill_(2.0)
    ema.update(model)
    assert ema.module.alpha.item() == 0.0
    assert torch.equal(ema.module.stat, torch.full((3,), 2.0))


def test_state_dict_round_trip():
    model = _model(6)
    ema = EMA(model, beta=0.8)
    for step in range(3):
        _perturb(model, 20 + step)
        with torch.no_grad():
            model[1].running_mean.add_(1.0)
        ema.update(model)
    state = ema.state_dict()
    assert state["beta"] == 0.8 and state["half_life_kimg"] is None and state["num_updates"] == 3

    fresh = EMA(_model(7), beta=0.8)
    assert not torch.equal(fresh.module[0].weight, ema.module[0].weight)
    fresh.load_state_dict(state)
    assert fresh.num_updates == 3
    for (name, a), (_, b) in zip(ema.module.state_dict().items(), fresh.module.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # The restored EMA keeps averaging identically.
    _perturb(model, 30)
    ema.update(model)
    fresh.update(model)
    for a, b in zip(ema.module.parameters(), fresh.module.parameters(), strict=True):
        assert torch.equal(a, b)
    assert fresh.num_updates == 4


def test_load_state_dict_missing_keys_raise():
    ema = EMA(_model(), beta=0.9)
    with pytest.raises(ValueError, match="num_updates"):
        ema.load_state_dict({"module": ema.module.state_dict()})


def test_shadow_is_eval_and_frozen_and_model_untouched():
    model = _model(8)
    model.train()
    ema = EMA(model, beta=0.9)
    assert ema.module is not model
    assert not ema.module.training
    assert all(not m.training for m in ema.module.modules())
    assert all(not p.requires_grad for p in ema.module.parameters())
    for e, p in zip(ema.module.parameters(), model.parameters(), strict=True):
        assert e.data_ptr() != p.data_ptr()
        assert torch.equal(e, p.detach())

    _perturb(model, 9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ema.update(model)
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training


def test_update_is_not_recorded_by_autograd():
    model = _model(10)
    ema = EMA(model, beta=0.9)
    out = model(torch.randn(3, 4)).sum()
    ema.update(model)
    for e in ema.module.parameters():
        assert e.grad_fn is None and not e.requires_grad
    out.backward()  # the model's graph is intact
    assert all(p.grad is not None for p in model.parameters())


def test_update_with_mismatched_model_raises():
    ema = EMA(_model(), beta=0.9)
    with pytest.raises(ValueError, match="parameters"):
        ema.update(nn.Linear(4, 2))
