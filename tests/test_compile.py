"""torch.compile sees one graph per phase: alpha is a buffer, so stepping it through a fade never recompiles."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

import progrow as pg
from progrow.adapters.progan import ProGANDiscriminator, ProGANGenerator


@pytest.fixture
def no_recompiles():
    torch._dynamo.reset()
    yield
    torch._dynamo.config.error_on_recompile = False
    torch._dynamo.reset()


def test_stepping_alpha_through_a_fade_does_not_recompile(no_recompiles):
    G = pg.ProgressiveGenerator(ProGANGenerator(resolution=16, latent_dim=16, fmap_base=64, fmap_max=16))
    D = pg.ProgressiveDiscriminator(ProGANDiscriminator(resolution=16, fmap_base=64, fmap_max=16))
    sched = pg.ProgressiveScheduler(
        pg.ScheduleConfig(start_resolution=8, final_resolution=16, fade_kimg=0.02, stable_kimg=0.004, batch_size=4)
    )
    pg.bind(sched, G, D)
    Gc, Dc = torch.compile(G, backend="eager"), torch.compile(D, backend="eager")
    while sched.state.phase != "fade":
        sched.advance()
    z = torch.randn(4, 16)
    Dc(Gc(z))  # first compile of the fade's graphs
    torch._dynamo.config.error_on_recompile = True  # any recompile from here on raises
    alphas = []
    while sched.state.phase == "fade":
        images = Gc(z)
        torch.testing.assert_close(images, G(z), rtol=0, atol=0)
        torch.testing.assert_close(Dc(images), D(images), rtol=0, atol=0)
        alphas.append(sched.state.alpha)
        sched.advance()
    assert len(set(alphas)) >= 5  # alpha really changed, five times or more


def test_one_graph_without_breaks():
    G = pg.ProgressiveGenerator(ProGANGenerator(resolution=16, latent_dim=16, fmap_base=64, fmap_max=16))
    G.set_state(pg.GrowthState(16, alpha=0.5))
    explanation = torch._dynamo.explain(G)(torch.randn(2, 16))
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
