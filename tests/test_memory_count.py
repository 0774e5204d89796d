"""The planner's count of a training step's peak memory: against the profiler, linear in the batch, fake = real.

The count (`progrow.memory.MemoryCounter`) tracks live tensor storage at operator granularity. The
independent measurement is `torch.profiler`'s CPU memory events (every allocation and free of the CPU
allocator), plus the bytes of what existed before the step (weights, gradients, Adam states, EMA, the
stage anchor's copy), summed here without the counter. The profiler also sees what a kernel allocates and frees inside one
operator (oneDNN's reorder buffers in a convolution); the count cannot, which is what the planner's safety
margin is for. The agreement asserted is with the allocator's live bytes at the end of every operator, and
the count is checked never to exceed the allocator's overall peak.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterator

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from progrow.adapters.progan.plan import PlanningRun, planning_options
from progrow.adapters.progan.presets import get_preset
from progrow.memory import MemoryCounter, count_peak_bytes

RESOLUTIONS = (4, 8, 16, 32)
BATCHES = (4, 16, 64)


def _planning(fake: bool, *, loss: str | None = None) -> PlanningRun:
    preset = get_preset("cpu-demo")
    if loss is not None:
        preset = dataclasses.replace(preset, loss=loss)
    return PlanningRun(planning_options(preset, precision="fp32"), num_classes=0, img_channels=3, fake=fake)


def _existing_bytes(planning: PlanningRun) -> int:
    """Bytes of every distinct storage alive before a step: weights, grads, buffers, EMA, optimizer states, and the
    stage anchor's copy of G_ema (taken in the step that first reached this stage)."""
    run = planning.run
    copy = run.anchor.snapshot if run.anchor is not None else None

    def tensors() -> Iterator[torch.Tensor]:
        for module in (run.G, run.D, run.ema.module, *([copy] if copy is not None else [])):
            for p in module.parameters():
                yield p
                if p.grad is not None:
                    yield p.grad
            yield from module.buffers()
        for opt in (run.opt_g, run.opt_d):
            for state in opt.state.values():
                yield from (v for v in state.values() if isinstance(v, torch.Tensor))

    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors()}
    return sum(storages.values())


def _profiled_step(planning: PlanningRun, resolution: int, batch: int) -> tuple[int, int]:
    """(peak of live bytes at operator ends, overall peak) of one step, from the profiler's memory events."""
    base = _existing_bytes(planning)
    gc.collect()
    gc.disable()
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            planning.step(resolution, batch)
    finally:
        gc.enable()
    events = list(prof.profiler.kineto_results.events())
    cpu = torch._C._autograd.DeviceType.CPU
    memory = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]" and e.device_type() == cpu)
    op_ends = sorted(e.start_ns() + e.duration_ns() for e in events if e.name().startswith("aten::"))
    live = peak = at_ends = 0
    i = 0
    for end in op_ends:
        while i < len(memory) and memory[i][0] <= end:
            live += memory[i][1]
            peak = max(peak, live)
            i += 1
        at_ends = max(at_ends, live)
    for _, nbytes in memory[i:]:
        live += nbytes
        peak = max(peak, live)
    return base + at_ends, base + peak


@pytest.fixture(scope="module")
def real() -> PlanningRun:
    return _planning(fake=False)


def test_counted_peak_agrees_with_the_profiler_and_is_linear_in_the_batch(real):
    measure = real.measure()
    worst = 0.0
    for r in RESOLUTIONS:
        counts = []
        for b in BATCHES:
            counted = measure(r, b)
            at_ends, overall = _profiled_step(real, r, b)  # after a step at r, as the count
            assert abs(counted / at_ends - 1) < 0.10, (r, b, counted, at_ends)
            assert counted <= overall * 1.01, (r, b, counted, overall)  # the allocator also holds kernel workspaces
            worst = max(worst, abs(counted / at_ends - 1))
            counts.append(counted)
        assert counts[0] < counts[1] < counts[2]
        (b0, b1, b2), (c0, c1, c2) = BATCHES, counts
        on_line = c0 + (c2 - c0) * (b1 - b0) / (b2 - b0)  # the middle point on the line through the outer two
        assert abs(c1 / on_line - 1) < 0.03, (r, counts)
    print(f"largest count vs profiler (at operator ends) difference: {worst:.1%}")


@pytest.mark.parametrize("loss", ["logistic", "wgan-gp"])
def test_fake_count_equals_the_real_count(loss):
    real, fake = _planning(fake=False, loss=loss), _planning(fake=True, loss=loss)
    m_real, m_fake = real.measure(), fake.measure()
    sizes = [(4, 4), (8, 16), (16, 4), (32, 16)] if loss == "logistic" else [(8, 4), (32, 8)]
    for r, b in sizes:
        assert m_fake(r, b) == m_real(r, b), (loss, r, b)
        c_real, c_fake = m_real.counts[(r, b)], m_fake.counts[(r, b)]
        assert (c_fake.baseline_bytes, c_fake.flops) == (c_real.baseline_bytes, c_real.flops)
        assert c_real.flops > 0


def test_views_and_in_place_ops_count_one_storage_and_frees_are_seen():
    x = torch.zeros(1000)  # 4000 bytes, existing before the count

    def step() -> None:
        y = x.view(10, 100)[2:]  # a view: no new storage
        y.add_(1)  # in place: none either
        z = torch.ones(2000)  # 8000 bytes
        del z
        w = torch.ones(500)  # 2000 bytes, after z is freed
        del w

    counter = count_peak_bytes(step, track=[x])
    assert counter.baseline_bytes == 4000
    assert counter.peak_bytes == 4000 + 8000
    assert counter.current_bytes == 4000


def test_an_untracked_tensor_from_before_counts_from_the_start():
    x = torch.zeros(250)  # 1000 bytes, not tracked
    counter = MemoryCounter()
    with counter:
        a = torch.ones(500)  # 2000 bytes
        del a
        x.add_(1)  # first seen here: it was alive during `a` too
    assert counter.peak_bytes == 2000 + 1000


def test_gan_training_step_from_the_core_counts_the_same_on_fake_tensors():
    """A user's loop, built from the public pieces only: real and fake counts agree, and it plans."""
    import functools

    from torch._subclasses.fake_tensor import FakeTensorMode

    import progrow as pg
    from progrow.adapters.progan import ProGANDiscriminator, ProGANGenerator
    from progrow.memory import CountingMeasure, to_fake

    def build(fake_mode):
        torch.manual_seed(0)
        G = pg.ProgressiveGenerator(ProGANGenerator(resolution=16, latent_dim=32, fmap_base=64, fmap_max=32))
        D = pg.ProgressiveDiscriminator(ProGANDiscriminator(resolution=16, fmap_base=64, fmap_max=32))
        ema = pg.EMA(G, beta=0.99)
        if fake_mode is not None:
            to_fake(fake_mode, G, D, ema.module)
        with fake_mode if fake_mode is not None else contextlib.nullcontext():
            opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
            opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99))
        step = pg.gan_training_step(
            G,
            D,
            d_loss=functools.partial(pg.wgan_gp_d_loss, gp_weight=10.0),
            g_loss=pg.wgan_g_loss,
            opt_g=opt_g,
            opt_d=opt_d,
            ema=ema,
            latent_dim=32,
        )
        return CountingMeasure(step, track=[G, D, ema, opt_g, opt_d], optimizers=[opt_g, opt_d], fake_mode=fake_mode)

    real, fake = build(None), build(FakeTensorMode())
    assert [real(r, 8) for r in (4, 8, 16)] == [fake(r, 8) for r in (4, 8, 16)]
    plan = pg.plan_batch_sizes(fake, pg.ScheduleConfig(final_resolution=16), 8 * 2**20, margin=0)
    assert all(row.peak_bytes <= plan.usable_bytes < row.next_bytes for row in plan.rows)
