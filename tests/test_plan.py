"""`plan_batch_sizes`: planned batches fit, the next allowed batch does not, multiples hold, a too-small budget is named."""

from __future__ import annotations

import pytest

import progrow as pg
from progrow.adapters.progan.plan import PlanningRun, plan_preset, planning_options
from progrow.adapters.progan.presets import get_preset
from progrow.memory import BudgetError, parse_bytes


def _opts():
    return planning_options(get_preset("cpu-demo"), precision="fp32")


def _fresh_measure():
    return PlanningRun(_opts(), num_classes=0, img_channels=3, fake=True).measure()


@pytest.fixture(scope="module")
def plan():
    return plan_preset(_opts(), 40 * 2**20, margin=0.0)[0]


def test_every_planned_batch_fits_and_the_next_one_does_not(plan):
    assert plan.usable_bytes == 40 * 2**20
    batches = [row.batch_size for row in plan.rows]
    assert batches == sorted(batches, reverse=True) and batches[-1] < batches[0]
    recount = _fresh_measure()  # a new count, in another order: the same bytes
    for row in reversed(plan.rows):
        assert not row.capped
        assert row.peak_bytes <= plan.usable_bytes < row.next_bytes
        assert recount(row.resolution, row.batch_size) == row.peak_bytes
        assert recount(row.resolution, row.batch_size + 1) == row.next_bytes
    assert plan.schedule.batch_size_per_res == {row.resolution: row.batch_size for row in plan.rows}
    assert plan.schedule.lr_per_res == get_preset("cpu-demo").schedule.lr_per_res  # learning rates unchanged


def _linear(r: int, b: int) -> int:
    return 10_000 + 3 * r * r * b + (b * b if r == 32 else 0)  # one resolution bends upwards


@pytest.mark.parametrize(("ranks", "pow2", "max_batch"), [(1, False, None), (3, False, None), (4, True, None), (2, False, 64)])
def test_batches_are_multiples_of_the_ranks_and_respect_pow2_and_the_cap(ranks, pow2, max_batch):
    schedule = pg.ScheduleConfig(final_resolution=64)
    plan = pg.plan_batch_sizes(_linear, schedule, 1_000_000, ranks=ranks, pow2=pow2, max_batch=max_batch, margin=0.1)
    assert plan.usable_bytes == 900_000
    step = (lambda b: 2 * b) if pow2 else (lambda b: b + ranks)
    for row in plan.rows:
        assert row.batch_size % ranks == 0 and row.per_rank == row.batch_size // ranks
        assert not pow2 or row.batch_size & (row.batch_size - 1) == 0
        assert _linear(row.resolution, row.per_rank) == row.peak_bytes <= plan.usable_bytes
        if row.capped:
            assert row.batch_size == max_batch - max_batch % ranks and row.next_bytes is None
        else:
            assert _linear(row.resolution, step(row.batch_size) // ranks) > plan.usable_bytes
    assert plan.schedule.batch_multiple == ranks
    assert max_batch is None or any(row.capped for row in plan.rows)


def test_lr_scaling_is_applied_only_when_asked():
    schedule = pg.ScheduleConfig(final_resolution=8, batch_size=16, lr=1e-3)
    linear = pg.plan_batch_sizes(_linear, schedule, 100_000, lr_scaling="linear", margin=0)
    for row in linear.rows:
        assert linear.schedule.lr_at(row.resolution) == pytest.approx(1e-3 * row.batch_size / 16)


def test_a_budget_too_small_for_batch_1_names_the_resolution_and_the_bytes():
    schedule = pg.ScheduleConfig(final_resolution=64)
    need = _linear(64, 1)
    with pytest.raises(BudgetError, match=rf"at 64²: a step of batch 1 needs {need:,} bytes") as info:
        pg.plan_batch_sizes(_linear, schedule, need - 1, margin=0)
    assert (info.value.resolution, info.value.needed_bytes) == (64, need)
    with pytest.raises(BudgetError, match=r"at 4²: a step of batch 1 needs [\d,]+ bytes") as real:
        plan_preset(_opts(), 2**20)  # 1 MiB: not even the cpu-demo's weights and Adam states
    assert real.value.needed_bytes > 2**20 * 0.85


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80GiB", 80 * 2**30),
        ("80GB", 80 * 10**9),
        ("80 GiB", 80 * 2**30),
        ("8e10", 8 * 10**10),
        ("512MiB", 2**29),
        ("1.5TB", 15 * 10**11),
    ],
)
def test_budgets_parse(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    ("text", "message"), [("lots", "cannot read 'lots'"), ("-80GiB", "positive"), ("0", "positive"), ("80 XB", "cannot read")]
)
def test_bad_budgets_are_refused_naming_the_option(text, message):
    with pytest.raises(ValueError, match=f"^--memory: .*{message}"):
        parse_bytes(text, option="--memory")
