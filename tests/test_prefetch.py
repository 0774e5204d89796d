"""`Prefetcher`: read-ahead on threads gives the batches `ImageSampler` gives, for any number of workers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import progrow as pg
from progrow.data import ImageSampler, MultiResDataset, Prefetcher, SyntheticShapes, build_cache


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> MultiResDataset:
    root = tmp_path_factory.mktemp("prefetch")
    return MultiResDataset(build_cache(SyntheticShapes(seed=3, num_images=37), root / "cache", resolution=16))


def _schedule() -> pg.ProgressiveScheduler:
    # 4² stable, fade to 8², 8² stable, …: batch sizes 7 / 5 / 3 and phase ends that cut batches short.
    config = pg.ScheduleConfig(
        start_resolution=4, final_resolution=16, fade_kimg=0.05, stable_kimg=0.04, batch_size=7, batch_size_per_res={8: 5, 16: 3}
    )
    return pg.ProgressiveScheduler(config)


def _run(dataset: MultiResDataset, workers: int, steps: int, *, off_plan_at: int = -1) -> list[tuple[np.ndarray, int]]:
    """Batches (images, state nimg) of a loop driven by a scheduler, read through a Prefetcher."""
    sched = _schedule()
    sampler = ImageSampler(dataset, seed=11, mirror=True)
    out = []
    with Prefetcher(
        sampler,
        plan=lambda n: (sched.state_at(n).resolution, sched.state_at(n).batch_size),
        position=lambda: sched.nimg,
        num_workers=workers,
    ) as prefetcher:
        for step in range(steps):
            state = sched.state
            batch = state.batch_size - 1 if step == off_plan_at else state.batch_size  # a request the plan did not foresee
            images, labels = prefetcher.next_batch(state.resolution, batch)
            assert labels is None
            out.append((images.numpy().copy(), sched.nimg))
            sched.advance(batch)
    return out


def _reference(dataset: MultiResDataset, steps: int, *, off_plan_at: int = -1) -> list[np.ndarray]:
    sched = _schedule()
    sampler = ImageSampler(dataset, seed=11, mirror=True)
    out = []
    for step in range(steps):
        state = sched.state
        batch = state.batch_size - 1 if step == off_plan_at else state.batch_size
        out.append(sampler.next_batch(state.resolution, batch)[0].numpy())
        sched.advance(batch)
    return out


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_batches_equal_the_sampler_for_any_number_of_workers(dataset, workers):
    steps = 40  # through 4², the fade into 8², 8², the fade into 16² (resolution and batch size change)
    got, expected = _run(dataset, workers, steps), _reference(dataset, steps)
    assert {g.shape[-1] for g, _ in got} == {4, 8, 16}
    for (g, _), e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_a_request_off_the_plan_still_gets_the_right_batch(dataset):
    got, expected = _run(dataset, 2, 20, off_plan_at=6), _reference(dataset, 20, off_plan_at=6)
    for (g, _), e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_state_dict_is_the_consumed_cursor_and_resumes_bit_for_bit(dataset):
    sched = _schedule()
    plan = lambda n: (sched.state_at(n).resolution, sched.state_at(n).batch_size)  # noqa: E731
    reference = ImageSampler(dataset, seed=11, mirror=True)
    with Prefetcher(
        ImageSampler(dataset, seed=11, mirror=True), plan=plan, position=lambda: sched.nimg, num_workers=2, depth=4
    ) as prefetcher:
        for _ in range(9):
            s = sched.state
            prefetcher.next_batch(s.resolution, s.batch_size)
            reference.next_batch(s.resolution, s.batch_size)
            sched.advance()
        assert prefetcher.state_dict() == reference.state_dict()  # not the cursor of the 4 batches read ahead
        assert prefetcher.sampler.state_dict() != reference.state_dict()
        saved, saved_nimg = prefetcher.state_dict(), sched.nimg
    resumed_sched = pg.ProgressiveScheduler(sched.config)
    resumed_sched.load_state_dict(sched.state_dict())
    assert resumed_sched.nimg == saved_nimg
    resumed = Prefetcher(
        ImageSampler(dataset, seed=11, mirror=True),
        plan=lambda n: (resumed_sched.state_at(n).resolution, resumed_sched.state_at(n).batch_size),
        position=lambda: resumed_sched.nimg,
        num_workers=2,
    )
    resumed.load_state_dict(saved)
    with resumed:
        for _ in range(6):
            s = resumed_sched.state
            a, _ = resumed.next_batch(s.resolution, s.batch_size)
            b, _ = reference.next_batch(s.resolution, s.batch_size)
            assert torch.equal(a, b)
            resumed_sched.advance()


def test_reads_run_on_background_threads(dataset, monkeypatch):
    threads = set()
    real = ImageSampler._gather

    def spy(self, *args, **kwargs):
        threads.add(threading.current_thread().name)
        time.sleep(0.002)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ImageSampler, "_gather", spy)
    _run(dataset, 2, 8)
    assert threads and all(name.startswith("progrow-data") for name in threads)
    threads.clear()
    _run(dataset, 0, 3)
    assert threads == {threading.current_thread().name}


def test_bad_arguments(dataset):
    sampler = ImageSampler(dataset)
    plan, position = (lambda n: (4, 2)), (lambda: 0)
    with pytest.raises(ValueError, match=r"Prefetcher.num_workers: expected an int ≥ 0, got -1"):
        Prefetcher(sampler, plan=plan, position=position, num_workers=-1)
    with pytest.raises(ValueError, match=r"Prefetcher.depth: expected an int ≥ 1 with workers, got 0"):
        Prefetcher(sampler, plan=plan, position=position, num_workers=2, depth=0)
    with Prefetcher(sampler, plan=plan, position=position, num_workers=1) as prefetcher:
        with pytest.raises(ValueError, match=r"built for device cpu, asked for meta"):
            prefetcher.next_batch(4, 2, device="meta")
        with pytest.raises(ValueError, match="no level at resolution 32"):
            prefetcher.next_batch(32, 2)
        assert prefetcher.state_dict() == ImageSampler(dataset).state_dict()  # nothing consumed by the errors
