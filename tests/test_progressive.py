"""Growth wrappers beyond the adapter contract (tests/test_adapter_protocol.py): the fade, binding, state, bad input."""

from __future__ import annotations

import pytest
import torch
from nets import (
    ProtocolDiscriminator,
    ProtocolGenerator,
    StackDiscriminator,
    StackGenerator,
    plain_discriminator_stack,
    plain_generator_stack,
)
from torch import nn

import progrow as pg

Z = 16


def protocol_pair():
    return pg.ProgressiveGenerator(ProtocolGenerator(Z)), pg.ProgressiveDiscriminator(ProtocolDiscriminator())


def stack_pair():
    return (
        pg.ProgressiveGenerator(StackGenerator(plain_generator_stack(Z))),
        pg.ProgressiveDiscriminator(StackDiscriminator(plain_discriminator_stack())),
    )


PAIRS = {"protocol": protocol_pair, "plain-stack": stack_pair}


@pytest.fixture(params=sorted(PAIRS))
def pair(request):
    return PAIRS[request.param]()


def test_alpha_one_ignores_the_old_path(pair):
    G, D = pair
    z, x = torch.randn(8, Z), torch.randn(8, 3, 8, 8)
    state = pg.GrowthState(8, alpha=1.0)
    g_before, d_before = G(z, state), D(x, state)
    with torch.no_grad():
        G.to_rgb["4"].weight.mul_(-3.0).add_(1.0)
        D.from_rgb["4"].weight.mul_(-3.0).add_(1.0)
    assert torch.equal(G(z, state), g_before)
    assert torch.equal(D(x, state), d_before)
    # … whereas during the fade the old path does matter
    assert not torch.equal(G(z, pg.GrowthState(8, alpha=0.5)), g_before)


def test_fade_is_the_paper_lerp_of_both_paths():
    G, D = protocol_pair()
    z = torch.randn(4, Z)
    old = pg.upsample2x(G(z, pg.GrowthState(8)))
    new = G(z, pg.GrowthState(16))
    got = G(z, pg.GrowthState(16, alpha=0.25))
    torch.testing.assert_close(got, old + 0.25 * (new - old), rtol=1e-6, atol=1e-6)
    x = torch.randn(4, 3, 16, 16)
    h_old = D.from_rgb["8"](pg.downsample2x(x))
    h_new = D.net.block(16)(D.from_rgb["16"](x))
    h = h_old + 0.25 * (h_new - h_old)
    expected = D.net.head(D.net.block(8)(h))
    torch.testing.assert_close(D(x, pg.GrowthState(16, alpha=0.25)), expected, rtol=1e-5, atol=1e-6)


def test_every_stage_built_at_construction_and_keyed_by_resolution():
    G, D = protocol_pair()
    g_keys, d_keys = set(G.state_dict()), set(D.state_dict())
    for r in (4, 8, 16, 32):
        assert f"to_rgb.{r}.weight" in g_keys and f"from_rgb.{r}.weight" in d_keys
    assert not any("alpha" in k for k in g_keys | d_keys)  # growth state is not a weight
    n_params = sum(p.numel() for p in G.parameters())
    opt = torch.optim.Adam(G.parameters())
    for res in (4, 8, 16, 32):
        G(torch.randn(2, Z), pg.GrowthState(res))
    assert sum(p.numel() for p in G.parameters()) == n_params
    assert {id(p) for p in G.parameters()} == {id(p) for g in opt.param_groups for p in g["params"]}


def test_head_keyword_arguments_reach_the_discriminator_head():
    D = pg.ProgressiveDiscriminator(ProtocolDiscriminator(num_classes=3))
    x = torch.randn(4, 3, 8, 8)
    s = pg.GrowthState(8)
    a = D(x, s, labels=torch.tensor([0, 1, 2, 0]))
    b = D(x, s, labels=torch.tensor([1, 2, 0, 1]))
    assert not torch.equal(a, b)


def test_bind_keeps_modules_and_optimizers_in_step():
    G, D = protocol_pair()
    cfg = pg.ScheduleConfig(
        start_resolution=4,
        final_resolution=16,
        fade_kimg=0.01,
        stable_kimg=0.01,
        batch_size=4,
        lr_per_res={8: 0.5, 16: 0.25},
        lr=1.0,
        reset_optimizers="stage",
    )
    sched = pg.ProgressiveScheduler(cfg)
    opt = torch.optim.Adam(G.parameters(), lr=123.0)
    unbind = pg.bind(sched, G, D, opt)
    assert G.growth_state == pg.GrowthState(4) and opt.param_groups[0]["lr"] == 1.0
    # one Adam step fills the optimizer state
    G(torch.randn(4, Z)).mean().backward()
    opt.step()
    assert len(opt.state) > 0
    while sched.state.stage == 0:
        sched.advance()
    state = sched.state
    assert G.growth_state == pg.GrowthState(state.resolution, alpha=state.alpha) == D.growth_state
    assert len(opt.state) == 0 and opt.param_groups[0]["lr"] == 0.5  # reset at the new stage
    out = G(torch.randn(4, Z))  # no explicit state: the bound one
    assert out.shape == (4, 3, 8, 8)
    assert D(out).shape == (4, 1)
    unbind()
    sched.advance(100)
    assert G.growth_state.resolution == 8  # no longer follows


def test_load_state_dict_moves_bound_modules_without_resetting_optimizers():
    G, _ = protocol_pair()
    cfg = pg.ScheduleConfig(
        start_resolution=4, final_resolution=16, fade_kimg=0.01, stable_kimg=0.01, batch_size=4, reset_optimizers="phase"
    )
    trained = pg.ProgressiveScheduler(cfg)
    trained.advance(35)
    sched = pg.ProgressiveScheduler(cfg)
    opt = torch.optim.Adam(G.parameters())
    pg.bind(sched, G, opt)
    G(torch.randn(4, Z)).mean().backward()
    opt.step()
    sched.load_state_dict(trained.state_dict())
    assert G.growth_state == pg.GrowthState(16, alpha=0.5)
    assert len(opt.state) > 0


def test_custom_rgb_factories_are_used():
    made = []

    def to_rgb(c_in: int, c_out: int) -> nn.Module:
        made.append((c_in, c_out))
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.Tanh())

    G = pg.ProgressiveGenerator(ProtocolGenerator(Z), to_rgb=to_rgb, img_channels=1)
    assert made == [(32, 1), (24, 1), (16, 1), (8, 1)]
    out = G(torch.randn(2, Z), pg.GrowthState(16, alpha=0.5))
    assert out.shape == (2, 1, 16, 16) and out.abs().max() <= 1
    D = pg.ProgressiveDiscriminator(ProtocolDiscriminator(), from_rgb=lambda i, o: nn.Conv2d(i, o, 1), img_channels=1)
    assert D(out, pg.GrowthState(16, alpha=0.5)).shape == (2, 1)


def test_wrapper_state_is_a_buffer_that_follows_the_state():
    G, _ = protocol_pair()
    G.set_state(pg.GrowthState(16, alpha=0.75))
    assert G.alpha.item() == 0.75 and G.growth_state.phase == "fade"
    G.set_state(pg.GrowthState(16))
    assert G.alpha.item() == 1.0


def test_an_explicit_state_is_for_that_call_only():
    G, D = protocol_pair()
    z, bound, other = torch.randn(4, Z), pg.GrowthState(16, alpha=0.75), pg.GrowthState(8, alpha=0.25)
    fresh_g, fresh_d = protocol_pair()
    fresh_g.load_state_dict(G.state_dict())
    fresh_d.load_state_dict(D.state_dict())
    with torch.no_grad():
        expected = fresh_g(z, other), fresh_d(fresh_g(z, other), other)
        assert fresh_g.growth_state is None and fresh_d.growth_state is None  # unbound stays unbound
        for module in (G, D):
            module.set_state(bound)
        images = G(z, other)
        assert torch.equal(images, expected[0]) and torch.equal(D(images, other), expected[1])
    for module in (G, D):
        assert module.growth_state == bound and module.alpha.item() == 0.75  # the bound state, alpha buffer included
    assert G(z).shape == (4, 3, 16, 16)
    with G.at(other):
        assert G.growth_state == other
    assert G.growth_state == bound


# ------------------------------------------------------------------------------------------ bad input
class Incomplete(nn.Module):
    resolutions = (4, 8)

    def channels(self, resolution):
        return 8


def test_missing_protocol_members_raise_type_error_listing_them():
    with pytest.raises(TypeError, match=r"Incomplete cannot be grown as a generator: missing features"):
        pg.ProgressiveGenerator(Incomplete())
    with pytest.raises(TypeError, match=r"missing block, head"):
        pg.ProgressiveDiscriminator(Incomplete())
    with pytest.raises(TypeError, match=r"missing resolutions, channels, features"):
        pg.ProgressiveGenerator(nn.Linear(2, 2))


def test_protocols_are_runtime_checkable():
    assert isinstance(ProtocolGenerator(), pg.GrowableGenerator)
    assert isinstance(ProtocolDiscriminator(), pg.GrowableDiscriminator)
    assert isinstance(ProtocolDiscriminator(), pg.GrowableNetwork)
    assert not isinstance(ProtocolGenerator(), pg.GrowableDiscriminator)
    assert not isinstance(nn.Linear(2, 2), pg.GrowableGenerator)


def test_non_module_network_is_refused():
    class NotAModule:
        resolutions = (4,)

        def channels(self, r):
            return 4

        def features(self, z, *, until):
            yield 4, z

    with pytest.raises(TypeError, match="torch.nn.Module"):
        pg.ProgressiveGenerator(NotAModule())


@pytest.mark.parametrize(
    "resolutions, message",
    [((4, 12), "power of two"), ((4, 16), "twice the one before"), ((8, 4), "twice the one before"), ((), "at least one")],
)
def test_bad_resolutions_are_refused(resolutions, message):
    net = ProtocolGenerator()
    net.resolutions = resolutions
    with pytest.raises(ValueError, match=message):
        pg.ProgressiveGenerator(net)


def test_discriminator_channels_that_do_not_chain_fail_at_construction():
    net = ProtocolDiscriminator()
    net.widths[8] = 20  # block(16) still produces 24 channels, block(8) still takes 24
    with pytest.raises(ValueError, match=r"resolution 8: block\(8\) takes 24 channels but channels\(8\) = 20"):
        pg.ProgressiveDiscriminator(net)
    net = ProtocolDiscriminator()
    net.blocks["16"] = nn.Sequential(nn.Conv2d(16, 12, 3, padding=1), nn.AvgPool2d(2))
    with pytest.raises(ValueError, match=r"resolution 16: block\(16\) produces 12 channels but channels\(8\) = 24"):
        pg.ProgressiveDiscriminator(net)


def test_discriminator_block_that_does_not_halve_fails_at_construction():
    net = ProtocolDiscriminator()
    net.blocks["16"] = nn.Conv2d(16, 24, 3, padding=1)
    with pytest.raises(ValueError, match=r"block\(16\) should map \[N, 16, 16, 16\] to \[N, 24, 8, 8\], got \[1, 24, 16, 16\]"):
        pg.ProgressiveDiscriminator(net)


def test_generator_features_with_wrong_channels_name_the_resolution():
    net = ProtocolGenerator(Z)
    net.widths[16] = 10  # channels(16) now disagrees with what the conv produces
    G = pg.ProgressiveGenerator(net)
    G(torch.randn(2, Z), pg.GrowthState(8))  # lower stages unaffected
    with pytest.raises(
        ValueError, match=r"features at resolution 16: expected \[N, 10, 16, 16\] \(channels\(16\) = 10\), got \[2, 16, 16, 16\]"
    ):
        G(torch.randn(2, Z), pg.GrowthState(16))


def test_state_outside_the_network_is_a_value_error():
    G, D = protocol_pair()
    with pytest.raises(ValueError, match=r"resolution 64 is not one of the generator's resolutions \(4, 8, 16, 32\)"):
        G(torch.randn(2, Z), pg.GrowthState(64))
    with pytest.raises(ValueError, match="the first stage is stable only"):
        D(torch.randn(2, 3, 4, 4), pg.GrowthState(4, alpha=0.5))
    with pytest.raises(ValueError, match=r"expected images \[N, 3, 8, 8\] at resolution 8, got \[2, 3, 16, 16\]"):
        D(torch.randn(2, 3, 16, 16), pg.GrowthState(8))


def test_unbound_wrapper_without_state_explains_what_to_do():
    G, _ = protocol_pair()
    with pytest.raises(RuntimeError, match=r"progrow.bind"):
        G(torch.randn(2, Z))
