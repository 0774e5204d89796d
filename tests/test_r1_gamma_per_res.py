"""R1's γ by stage resolution (`ProGANPreset.r1_gamma_per_res`): checked, serialised, used by each stage's D loss."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from run_helpers import FAST

import progrow as pg
from progrow.adapters.progan import presets
from progrow.adapters.progan.distributed import DistInfo
from progrow.adapters.progan.options import Options, build_parser, resolve_options
from progrow.adapters.progan.train import main as train_main

_DEMO = presets.PRESETS["cpu-demo"]  # the registry's own factory (tests below swap the registry's entry)


def _demo(**changes):
    return replace(_DEMO(), **changes)


def test_the_table_takes_json_keys_and_overrides_gamma_at_its_resolutions_only():
    preset = _demo(r1_gamma=0.1, r1_gamma_per_res={"32": 1, 8: 0.5})
    assert preset.r1_gamma_per_res == {8: 0.5, 32: 1.0}  # int keys, ascending
    assert [preset.r1_gamma_at(r) for r in (4, 8, 16, 32, None)] == [0.1, 0.5, 0.1, 1.0, 0.1]
    assert preset.to_dict()["r1_gamma_per_res"] == {"8": 0.5, "32": 1.0}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({64: 1.0}, r"r1_gamma_per_res: key 64 is not a resolution of the schedule; expected one of 4, 8, 16, 32"),
        ({"3x": 1.0}, r"r1_gamma_per_res: key '3x' is not a resolution"),
        ({True: 1.0}, r"r1_gamma_per_res: key True is not a resolution"),
        ({32: -1.0}, r"r1_gamma_per_res\[32\] expected a finite number ≥ 0, got -1.0"),
        ({32: float("inf")}, r"r1_gamma_per_res\[32\] expected a finite number ≥ 0, got inf"),
        ({32: "1"}, r"r1_gamma_per_res\[32\] expected a finite number ≥ 0, got '1'"),
        ([1.0], r"r1_gamma_per_res expected a mapping resolution -> γ, got list"),
    ],
)
def test_a_bad_table_is_refused_naming_the_preset_the_entry_and_what_was_expected(table, message):
    with pytest.raises(ValueError, match=r"preset 'cpu-demo': " + message):
        _demo(r1_gamma_per_res=table)


def test_a_bad_gamma_is_refused():
    with pytest.raises(ValueError, match=r"preset 'cpu-demo': r1_gamma expected a finite number ≥ 0, got nan"):
        _demo(r1_gamma=float("nan"))


def _identity(preset):
    opts = Options(preset, Path("."), "", "auto", torch.device("cpu"), "fp32", False, False, 0, False, False)
    return opts.identity()["preset"]


def test_an_empty_table_leaves_the_resume_identity_of_older_checkpoints():
    paper = presets.get_preset("paper-1024")
    assert paper.r1_gamma_per_res == {} and "r1_gamma_per_res" not in _identity(paper)
    assert _identity(presets.get_preset("cpu-demo"))["r1_gamma_per_res"] == {"32": 0.5}  # the demo's: 0.5 at 32²


def test_each_stage_s_discriminator_loss_uses_its_resolution_s_gamma(tmp_path, monkeypatch):
    """4² → 8², R1 on every D step: the penalty's weight is the table's at 8² and the preset's γ at 4²."""
    table = {8: 0.7}
    monkeypatch.setitem(presets.PRESETS, "cpu-demo", lambda: _demo(r1_interval=1, r1_gamma=0.1, r1_gamma_per_res=table))
    seen: list[tuple[int, float]] = []
    original = pg.logistic_d_loss

    def recording(critic, reals, fakes, *, r1_gamma=0.0):
        seen.append((reals.shape[-1], r1_gamma))
        return original(critic, reals, fakes, r1_gamma=r1_gamma)

    monkeypatch.setattr(pg, "logistic_d_loss", recording)
    assert train_main([*FAST, "--out", str(tmp_path / "run"), "--kimg", "0.192"]) == 0  # 4² stable, 8² fade
    assert {r for r, _ in seen} == {4, 8}
    assert all(g == (0.7 if r == 8 else 0.1) for r, g in seen), seen


def test_no_growing_trains_with_the_final_resolution_s_gamma(monkeypatch):
    monkeypatch.setitem(presets.PRESETS, "cpu-demo", lambda: _demo(r1_gamma=0.1, r1_gamma_per_res={8: 3.0, 32: 1.0}))
    args = build_parser().parse_args(["--preset", "cpu-demo", "--data", "synthetic", "--no-growing", "--out", "unused"])
    preset = resolve_options(args, DistInfo()).preset
    assert preset.schedule.resolutions == (32,)
    assert (preset.r1_gamma, preset.r1_gamma_per_res) == (1.0, {})
