"""Lazy R1 (`ProGANPreset.r1_interval`): the penalty on every Nth discriminator step, weighted ×N, resumable."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from run_helpers import FAST, final_checkpoint
from torch import nn

import progrow as pg
from progrow.adapters.progan import presets
from progrow.adapters.progan.losses import LOSSES
from progrow.adapters.progan.train import main as train_main


@pytest.fixture
def lazy(monkeypatch):
    """`cpu-demo` with R1 on every third D step (the preset's own interval is 4)."""
    demo = presets.PRESETS["cpu-demo"]
    monkeypatch.setitem(presets.PRESETS, "cpu-demo", lambda: replace(demo(), r1_interval=3))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_a_bad_r1_interval_is_refused_naming_the_preset_and_the_field(bad):
    with pytest.raises(ValueError, match=r"preset 'cpu-demo': r1_interval expected an int ≥ 1, got"):
        replace(presets.get_preset("cpu-demo"), r1_interval=bad)


def test_the_penalty_is_weighted_by_the_interval_on_its_steps_and_absent_on_the_others():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 8 * 8, 1))
    reals, fakes = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    preset = replace(presets.get_preset("cpu-demo"), r1_interval=4)
    d_loss = LOSSES["logistic"][0]
    on = d_loss(preset, critic, reals, fakes, regularize=True)
    off = d_loss(preset, critic, reals, fakes, regularize=False)
    assert torch.equal(on.loss, pg.logistic_d_loss(critic, reals, fakes, r1_gamma=4 * preset.r1_gamma).loss)
    assert torch.equal(off.loss, pg.logistic_d_loss(critic, reals, fakes, r1_gamma=0.0).loss)
    assert "r1_penalty" in on.terms and "r1_penalty" not in off.terms
    assert on.loss > off.loss  # the penalty is there, and positive


def test_training_regularizes_every_third_step_and_logs_the_last_penalty_at_every_tick(tmp_path, monkeypatch, lazy):
    d_loss, g_loss = LOSSES["logistic"]
    flags: list[bool] = []

    def recording(*args, regularize, **kwargs):
        flags.append(regularize)
        return d_loss(*args, regularize=regularize, **kwargs)

    monkeypatch.setitem(LOSSES, "logistic", (recording, g_loss))
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.16"]) == 0  # 5 steps of 32 images
    assert flags == [True, False, False, True, False]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == [0.032, 0.064, 0.096, 0.128, 0.16]
    assert all(r["d_r1_penalty"] > 0 for r in records)  # the same keys at every tick, R1 step or not
    assert records[1]["d_r1_penalty"] == records[2]["d_r1_penalty"]  # steps 1 and 2 report step 0's penalty
    assert records[3]["d_r1_penalty"] != records[2]["d_r1_penalty"]


def _same_weights(a, b) -> bool:
    return all(torch.equal(a[part][k], b[part][k]) for part in ("G", "D") for k in a[part])


@pytest.mark.parametrize("keep_counter", [True, False])
def test_resuming_between_two_r1_steps_is_bit_for_bit_only_with_the_saved_step_count(tmp_path, monkeypatch, lazy, keep_counter):
    """Stopped after 4 steps (the next R1 is at step 6): the resumed run must skip R1 for one more step."""
    from progrow.adapters.progan import resume

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main([*FAST, "--out", str(straight), "--kimg", "0.224"]) == 0  # 7 steps: R1 at 0, 3, 6
    assert train_main([*FAST, "--out", str(split), "--kimg", "0.128"]) == 0
    assert final_checkpoint(split)["progress"]["d_steps"] == 4
    if not keep_counter:  # mutation: forget the count, so R1 runs at the resumed run's first step
        original = resume.restore

        def forgetful(run, payload):
            original(run, payload)
            run.d_steps = 0

        monkeypatch.setattr(resume, "restore", forgetful)
    assert train_main([*FAST, "--out", str(split), "--kimg", "0.224"]) == 0
    assert _same_weights(final_checkpoint(straight), final_checkpoint(split)) is keep_counter


def test_the_interval_is_part_of_a_runs_identity_only_when_it_is_not_1(tmp_path, monkeypatch, capsys):
    demo = presets.PRESETS["cpu-demo"]
    assert demo().r1_interval == 4
    out = tmp_path / "run"
    monkeypatch.setitem(presets.PRESETS, "cpu-demo", lambda: replace(demo(), r1_interval=1))
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.064"]) == 0
    assert "r1_interval" not in final_checkpoint(out)["identity"]["preset"]  # checkpoints made before the field still match
    monkeypatch.setitem(presets.PRESETS, "cpu-demo", demo)
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.128"]) == 2  # a run of the earlier cpu-demo is refused
    assert "differing keys: preset.r1_interval" in capsys.readouterr().err


def test_the_memory_planner_counts_a_step_with_r1_under_a_lazy_interval():
    """Every trial step regularizes: a lazy run's peak is its R1 step, which a plan must fit."""
    from progrow.adapters.progan.plan import PlanningRun, planning_options

    def counted(interval: int) -> list[int]:
        preset = replace(presets.get_preset("cpu-demo"), r1_interval=interval)
        planning = PlanningRun(planning_options(preset, precision="fp32"), num_classes=0, img_channels=3, fake=True)
        measure = planning.measure()
        return [measure(16, b) for b in (8, 12, 16)]  # three steps in a row: the 2nd and 3rd would skip R1

    assert counted(4) == counted(1)
