"""ProgressiveScheduler and ScheduleConfig: purity, alpha, exact boundaries, resume, presets, validation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import progrow as pg

kimg = st.floats(min_value=0.0, max_value=3.0, allow_nan=False).map(lambda v: round(v, 3))


@st.composite
def configs(draw):
    start = draw(st.sampled_from([4, 8]))
    final = start * 2 ** draw(st.integers(0, 3))
    resolutions = []
    r = start
    while r <= final:
        resolutions.append(r)
        r *= 2
    return pg.ScheduleConfig(
        start_resolution=start,
        final_resolution=final,
        fade_kimg=draw(kimg),
        stable_kimg=draw(kimg),
        fade_kimg_per_res=draw(st.dictionaries(st.sampled_from(resolutions[1:] or [start * 2]), kimg, max_size=2))
        if len(resolutions) > 1
        else {},
        batch_size=draw(st.integers(1, 33)),
        batch_size_per_res=draw(st.dictionaries(st.sampled_from(resolutions), st.integers(1, 40), max_size=3)),
        lr_per_res=draw(st.dictionaries(st.sampled_from(resolutions), st.floats(1e-5, 1e-2), max_size=2)),
        align_batches=draw(st.booleans()),
    )


@settings(max_examples=250, deadline=None)
@given(cfg=configs(), nimg=st.integers(0, 20_000), other=st.integers(0, 20_000))
def test_state_at_is_pure_and_alpha_is_well_formed(cfg, nimg, other):
    sched = pg.ProgressiveScheduler(cfg)
    first = sched.state_at(nimg)
    sched.advance(other + 1)  # moving the scheduler does not change what state_at answers
    assert sched.state_at(nimg) == first == pg.ProgressiveScheduler(cfg).state_at(nimg)
    assert 0.0 <= first.alpha <= 1.0
    assert (first.phase == "stable") == (first.alpha == 1.0)
    assert first.resolution in cfg.resolutions and first.nimg == nimg
    assert first.resolution == cfg.start_resolution * 2**first.stage
    assert first.lr == cfg.lr_at(first.resolution)
    assert 1 <= first.batch_size <= cfg.batch_size_at(first.resolution)
    span = sched.span_at(nimg)
    if span.phase == "fade":
        assert first.alpha == (nimg - span.start_nimg) / (span.end_nimg - span.start_nimg)
        # monotone within the fade, and exactly 1.0 once the fade is over
        later = min(nimg + other, span.end_nimg - 1)
        assert sched.state_at(later).alpha >= first.alpha
        end = sched.state_at(span.end_nimg)
        if sched.span_at(span.end_nimg).stage == span.stage:  # not when a 0-kimg stable phase was dropped
            assert end.alpha == 1.0 and end.phase == "stable" and end.resolution == first.resolution
        else:  # the next non-empty phase belongs to a later stage
            assert end.stage > span.stage and end.resolution > first.resolution


@settings(max_examples=200, deadline=None)
@given(cfg=configs())
def test_walking_with_the_scheduled_batch_lands_on_every_boundary(cfg):
    cfg = cfg.replace(align_batches=True)
    sched = pg.ProgressiveScheduler(cfg)
    visited = {0}
    while not sched.done:
        visited.add(sched.advance().nimg)
    boundaries = {s.start_nimg for s in sched.phases} | {sched.total_nimg}
    assert boundaries <= visited
    assert sched.nimg == sched.total_nimg


def test_batches_are_shortened_only_at_phase_ends():
    cfg = pg.ScheduleConfig(start_resolution=4, final_resolution=8, fade_kimg=1.0, stable_kimg=1.0, batch_size=7)
    sched = pg.ProgressiveScheduler(cfg)
    sizes = []
    while sched.nimg < 1000:
        sizes.append(sched.state.batch_size)
        sched.advance()
    assert sizes == [7] * 142 + [6]  # 142·7 = 994, then 6 lands exactly on 1000
    assert sched.state.phase == "fade" and sched.state.alpha == 0.0 and sched.state.resolution == 8
    unaligned = pg.ProgressiveScheduler(cfg.replace(align_batches=False))
    assert unaligned.state_at(994).batch_size == 7


def test_batch_multiple_keeps_every_batch_divisible():
    cfg = pg.ScheduleConfig(
        start_resolution=4,
        final_resolution=8,
        fade_kimg=1.003,
        stable_kimg=1.0,
        batch_size=8,
        batch_size_per_res={8: 4},
        batch_multiple=4,
    )
    sched = pg.ProgressiveScheduler(cfg)
    sizes, visited = [], []
    while not sched.done:
        sizes.append(sched.state.batch_size)
        visited.append(sched.advance().nimg)
    assert all(b % 4 == 0 for b in sizes)
    assert 1000 in visited  # 1000 is a multiple of 4: landed exactly
    assert 2004 in visited and 2003 not in visited  # 1003 images of fade: overshoots by 1 < batch_multiple
    with pytest.raises(ValueError, match=r"batch_size_per_res\[8\]: expected a multiple of batch_multiple \(4\), got 6"):
        cfg.replace(batch_size_per_res={8: 6})


def test_schedule_layout_and_totals():
    cfg = pg.ScheduleConfig(
        start_resolution=4, final_resolution=16, fade_kimg=2.0, stable_kimg=1.0, stable_kimg_per_res={8: 3.0}, total_kimg=20.0
    )
    sched = pg.ProgressiveScheduler(cfg)
    layout = [(s.resolution, s.phase, s.start_nimg, s.end_nimg) for s in sched.phases]
    assert layout == [
        (4, "stable", 0, 1000),
        (8, "fade", 1000, 3000),
        (8, "stable", 3000, 6000),
        (16, "fade", 6000, 8000),
        (16, "stable", 8000, None),
    ]
    assert sched.total_nimg == 20_000
    assert sched.state_at(2000).alpha == 0.5
    assert sched.state_at(50_000).resolution == 16 and sched.state_at(50_000).phase == "stable"
    assert pg.ProgressiveScheduler(cfg.replace(total_kimg=None)).total_nimg == 9000
    assert [sched.images_in(s) for s in sched.phases] == [1000, 2000, 3000, 2000, 12_000]  # the open phase to 20k
    cut = pg.ProgressiveScheduler(cfg.replace(total_kimg=4.0))  # ends inside the 8² stable phase
    assert [cut.images_in(s) for s in cut.phases] == [1000, 2000, 1000, 0, 0]
    assert sum(cut.images_in(s) for s in cut.phases) == cut.total_nimg


def test_zero_length_phases_are_skipped():
    cfg = pg.ScheduleConfig(start_resolution=4, final_resolution=16, fade_kimg=0.0, stable_kimg=1.0)
    sched = pg.ProgressiveScheduler(cfg)
    assert [s.phase for s in sched.phases] == ["stable", "stable", "stable"]
    assert sched.state_at(1000) == pg.GrowthState(8, stage=1, nimg=1000, batch_size=16, lr=1e-3)


def test_save_and_restore_reproduces_the_state():
    cfg = pg.ScheduleConfig.preset("official", final_resolution=32)
    a = pg.ProgressiveScheduler(cfg)
    for _ in range(5000):
        a.advance()
    saved = json.loads(json.dumps(a.state_dict()))  # survives JSON too
    b = pg.ProgressiveScheduler(cfg)
    b.load_state_dict(saved)
    assert b.nimg == a.nimg and b.state == a.state
    for _ in range(10):
        assert a.advance() == b.advance()


def test_restore_with_a_different_schedule_is_refused_naming_the_keys():
    a = pg.ProgressiveScheduler(pg.ScheduleConfig(final_resolution=64))
    a.advance(100)
    b = pg.ProgressiveScheduler(pg.ScheduleConfig(final_resolution=128, fade_kimg=600))
    with pytest.raises(
        ValueError, match=r"different schedule \(fade_kimg: saved 800.0 vs now 600, final_resolution: saved 64 vs now 128\)"
    ):
        b.load_state_dict(a.state_dict())
    assert b.nimg == 0  # nothing loaded
    b.load_state_dict(a.state_dict(), strict=False)
    assert b.nimg == 100


def test_listeners_hear_every_move():
    sched = pg.ProgressiveScheduler(pg.ScheduleConfig(final_resolution=8, fade_kimg=0.01, stable_kimg=0.01, batch_size=4))
    heard = []
    remove = sched.add_listener(lambda prev, new: heard.append((prev and prev.nimg, new.nimg)))
    sched.advance()
    sched.advance(3)
    remove()
    sched.advance()
    assert heard == [(None, 0), (0, 4), (4, 7)]


@pytest.mark.parametrize(
    "policy, expected",
    [("never", [False, False, False]), ("stage", [True, False, False]), ("phase", [True, True, False])],
)
def test_optimizer_reset_policy(policy, expected):
    sched = pg.ProgressiveScheduler(pg.ScheduleConfig(final_resolution=8, fade_kimg=1, stable_kimg=1, reset_optimizers=policy))
    stable4, fade8, fade8_later, stable8 = (sched.state_at(n) for n in (999, 1000, 1500, 2000))
    got = [
        sched.optimizer_reset_due(stable4, fade8),
        sched.optimizer_reset_due(fade8_later, stable8),
        sched.optimizer_reset_due(fade8, fade8_later),
    ]
    assert got == expected


def test_advance_validates_its_argument():
    sched = pg.ProgressiveScheduler()
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="positive int of images"):
            sched.advance(bad)
    with pytest.raises(ValueError, match="nimg: expected an int ≥ 0"):
        sched.state_at(-1)


# ------------------------------------------------------------------------------------ config & presets
def test_json_round_trip():
    cfg = pg.ScheduleConfig.preset("paper", total_kimg=15000.0, lr_per_res={1024: 2e-3})
    text = cfg.to_json()
    assert pg.ScheduleConfig.from_json(text) == cfg
    assert json.loads(text)["batch_size_per_res"] == {"256": 14, "512": 6, "1024": 3}


def test_paper_preset():
    cfg = pg.ScheduleConfig.preset("paper")
    assert (cfg.start_resolution, cfg.final_resolution, cfg.fade_kimg, cfg.stable_kimg) == (4, 1024, 800.0, 800.0)
    assert [cfg.batch_size_at(r) for r in cfg.resolutions] == [16] * 6 + [14, 6, 3]
    assert cfg.lr == 1e-3 and cfg.reset_optimizers == "stage"
    assert pg.ProgressiveScheduler(cfg).total_nimg == (800 + 8 * 1600) * 1000


def test_official_preset():
    cfg = pg.ScheduleConfig.preset("official")
    assert (cfg.fade_kimg, cfg.stable_kimg, cfg.total_kimg) == (600.0, 600.0, 12000.0)
    assert [cfg.batch_size_at(r) for r in cfg.resolutions] == [128, 128, 128, 64, 32, 16, 8, 4, 4]
    assert cfg.lr_at(512) == 1e-3 and cfg.lr_at(1024) == 1.5e-3
    assert cfg.reset_optimizers == "phase"


def test_presets_are_trimmed_to_the_chosen_resolutions():
    cfg = pg.ScheduleConfig.preset("official", final_resolution=64)
    assert cfg.batch_size_per_res == {4: 128, 8: 128, 16: 128, 32: 64, 64: 32} and cfg.lr_per_res == {}
    with pytest.raises(ValueError, match=r"unknown preset 'fast'; available: paper, official"):
        pg.ScheduleConfig.preset("fast")
    with pytest.raises(ValueError, match=r"unknown field\(s\) 'fade'"):
        pg.ScheduleConfig.preset("paper", fade=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(start_resolution=6), r"start_resolution: expected a power of two ≥ 2 \(4, 8, …, 1024\), got 6"),
        (dict(final_resolution=1000), r"final_resolution: expected a power of two ≥ 2"),
        (dict(start_resolution=64, final_resolution=32), r"final_resolution: expected ≥ start_resolution \(64\), got 32"),
        (dict(fade_kimg=-1.0), r"fade_kimg: expected a finite number ≥ 0 \(kimg\), got -1.0"),
        (dict(stable_kimg=float("nan")), r"stable_kimg: expected a finite number ≥ 0"),
        (dict(batch_size=0), r"batch_size: expected a positive int, got 0"),
        (dict(lr=0.0), r"lr: expected a finite number > 0, got 0.0"),
        (dict(total_kimg=-5), r"total_kimg: expected None or a finite number ≥ 0"),
        (dict(reset_optimizers="sometimes"), r"reset_optimizers: expected one of 'never', 'stage', 'phase', got 'sometimes'"),
        (
            dict(final_resolution=64, batch_size_per_res={128: 4}),
            r"batch_size_per_res\[128\]: resolution not in the schedule; allowed: 4, 8, 16, 32, 64",
        ),
        (dict(batch_size_per_res={8: 2.5}), r"batch_size_per_res\[8\]: expected a positive int, got 2.5"),
        (dict(fade_kimg_per_res={4: 1.0}), r"fade_kimg_per_res\[4\]: the first stage \(4\) has no fade"),
        (dict(lr_per_res={"12": 0.1}), r"lr_per_res: keys must be resolutions \(powers of two\), got '12'"),
        (dict(stable_kimg_per_res={"abc": 1}), r"stable_kimg_per_res: keys must be resolutions"),
    ],
)
def test_invalid_config_is_one_value_error_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pg.ScheduleConfig(**kwargs)


def test_all_problems_are_reported_together():
    with pytest.raises(ValueError) as info:
        pg.ScheduleConfig(start_resolution=3, fade_kimg=-1, batch_size=0)
    text = str(info.value)
    assert "start_resolution" in text and "fade_kimg" in text and "batch_size" in text


def test_unknown_json_key_is_refused():
    data = pg.ScheduleConfig().to_dict()
    data["fade_kimgs"] = 3
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'fade_kimgs'; allowed: align_batches, batch_multiple, batch_size"):
        pg.ScheduleConfig.from_dict(data)
    with pytest.raises(ValueError, match="not valid JSON"):
        pg.ScheduleConfig.from_json("{nope")


def test_growth_state_validation_and_derived_fields():
    s = pg.GrowthState(64, alpha=0.25, nimg=1500)
    assert (s.phase, s.is_fading, s.prev_resolution, s.kimg) == ("fade", True, 32, 1.5)
    assert s.lod(1024) == 4.75  # the official code's level of detail
    assert pg.GrowthState(64).prev_resolution is None and pg.GrowthState(64).lod(1024) == 4.0
    with pytest.raises(ValueError, match=r"GrowthState.alpha: expected a number in \[0, 1\], got 1.5"):
        pg.GrowthState(64, alpha=1.5)
    with pytest.raises(ValueError, match="GrowthState.resolution: expected a power of two, got 48"):
        pg.GrowthState(48)
