"""`progrow.StageAnchor`: G's image, box-filtered to the previous resolution, held to the previous stage's copy."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from run_helpers import assert_same_run, final_checkpoint

import progrow as pg
from progrow.adapters.progan.networks import ProGANGenerator
from progrow.adapters.progan.presets import get_preset
from progrow.adapters.progan.train import main as train_main


def _generator(seed: int = 0) -> pg.ProgressiveGenerator:
    torch.manual_seed(seed)
    return pg.ProgressiveGenerator(ProGANGenerator(resolution=32, latent_dim=32, fmap_base=128, fmap_max=32))


def _state(resolution: int, stage: int, alpha: float = 1.0) -> pg.GrowthState:
    return pg.GrowthState(resolution, alpha=alpha, stage=stage)


def _perturb(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_no_term_in_the_first_stage_or_at_weight_zero() -> None:
    G = _generator()
    z = torch.randn(4, 32)
    anchor = pg.StageAnchor(weight=3.0)
    term = anchor(G(z, _state(4, 0)), z, _state(4, 0), source=G)
    assert term.shape == () and term.item() == 0.0 and anchor.snapshot is None and anchor.stage == 0
    off = pg.StageAnchor(weight=0.0)
    state = _state(8, 1)
    assert off(G(z, state), z, state, source=G).item() == 0.0


@pytest.mark.parametrize("levels", ["previous", "all"])
def test_the_term_is_the_weighted_mse_against_the_frozen_copy_of_the_stage_start(levels) -> None:  # type: ignore[no-untyped-def]
    G = _generator()
    ema = pg.EMA(G, beta=0.9)
    anchor = pg.StageAnchor(weight=2.5, levels=levels, start_resolution=4)
    state = _state(16, 2, alpha=0.4)
    z = torch.randn(6, 32)
    previous = ema.module(z, pg.GrowthState(8)).detach()  # the copy is taken at the first call: this picture
    _perturb(G, 1)  # G moves away from its EMA, then the EMA moves too: the copy must not follow
    fakes = G(z, state)
    term = anchor(fakes, z, state, source=ema.module)
    _perturb(ema.module, 2)
    expected = F.mse_loss(F.avg_pool2d(fakes, 2), previous)
    if levels == "all":
        expected = expected + F.mse_loss(F.avg_pool2d(fakes, 4), F.avg_pool2d(previous, 2))
    assert torch.allclose(term, 2.5 * expected, rtol=1e-6, atol=0) and term.item() > 0
    again = anchor(fakes, z, state, source=ema.module)  # same stage: the same copy, whatever the EMA did since
    assert torch.equal(again, term)
    snapshot = anchor.snapshot
    assert snapshot is not None and not snapshot.training
    assert all(not p.requires_grad for p in snapshot.parameters())
    G.zero_grad()
    term.backward()
    assert all(p.grad is None for p in snapshot.parameters())
    grads = [p.grad for p in G.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)  # the term reaches G


def test_at_alpha_zero_an_unchanged_generator_matches_its_copy() -> None:
    G = _generator()
    anchor = pg.StageAnchor(weight=1.0)
    state = _state(16, 2, alpha=0.0)
    z = torch.randn(5, 32)
    term = anchor(G(z, state), z, state, source=G)  # alpha 0: the 8² image, nearest-upsampled
    assert term.item() < 1e-12


def test_a_new_stage_takes_a_new_copy() -> None:
    G = _generator()
    anchor = pg.StageAnchor(weight=1.0)
    z = torch.randn(3, 32)
    anchor(G(z, _state(8, 1)), z, _state(8, 1), source=G)
    first = anchor.snapshot
    _perturb(G, 3)
    anchor(G(z, _state(16, 2, 0.1)), z, _state(16, 2, 0.1), source=G)
    assert anchor.stage == 2 and anchor.snapshot is not first
    assert first is not None and anchor.snapshot is not None
    for (name, a), b in zip(anchor.snapshot.state_dict().items(), G.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_state_dict_round_trip_anchors_to_the_saved_copy() -> None:
    G = _generator()
    anchor = pg.StageAnchor(weight=1.5, levels="all")
    state = _state(16, 2, alpha=0.7)
    z = torch.randn(4, 32)
    anchor(G(z, state), z, state, source=G)
    saved = anchor.state_dict()
    _perturb(G, 4)  # the source a resumed run passes has moved on since the stage began
    resumed = pg.StageAnchor(weight=1.5, levels="all")
    resumed.load_state_dict(saved)
    fakes = G(z, state)
    assert torch.equal(resumed(fakes, z, state, source=G), anchor(fakes, z, state, source=G))
    assert resumed.state_dict()["stage"] == 2
    fresh = pg.StageAnchor(weight=1.5, levels="all")  # without the saved copy it would anchor to the moved G
    assert not torch.equal(fresh(fakes, z, state, source=G), anchor(fakes, z, state, source=G))
    first = pg.StageAnchor(weight=1.0)
    first.load_state_dict(pg.StageAnchor(weight=1.0).state_dict())  # nothing taken yet
    assert first.stage is None and first.state_dict() == {"stage": None, "snapshot": None}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": -1.0}, "StageAnchor.weight: expected a finite number ≥ 0, got -1.0"),
        ({"weight": math.nan}, "StageAnchor.weight: expected a finite number ≥ 0, got nan"),
        ({"weight": math.inf}, "StageAnchor.weight: expected a finite number ≥ 0, got inf"),
        ({"weight": True}, "StageAnchor.weight: expected a finite number ≥ 0, got True"),
        ({"weight": 1.0, "levels": "coarse"}, "StageAnchor.levels: expected 'previous' or 'all', got 'coarse'"),
        ({"weight": 1.0, "start_resolution": 0}, "StageAnchor.start_resolution: expected an int ≥ 1, got 0"),
    ],
)
def test_bad_options_name_the_field(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as info:
        pg.StageAnchor(**kwargs)
    assert str(info.value) == message


def test_bad_state_and_mismatched_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="expected a dict with 'stage' and 'snapshot', got list"):
        pg.StageAnchor(weight=1.0).load_state_dict([])  # type: ignore[arg-type]
    G = _generator()
    anchor = pg.StageAnchor(weight=1.0)
    z = torch.randn(2, 32)
    with pytest.raises(ValueError, match=r"box-filtered to 8² is \(2, 3, 4, 4\), the previous stage's image is \(2, 3, 8, 8\)"):
        anchor(G(z, pg.GrowthState(8)), z, _state(16, 2), source=G)  # fakes of the wrong resolution


_FAST = ["--preset", "cpu-demo", "--phase-kimg", "0.064", "--tick-kimg", "0.064", "--data", "synthetic:0:64"]


def test_training_script_resumed_mid_stage_equals_an_uninterrupted_run(tmp_path) -> None:
    # 64-image phases at batch 32: 4² takes 2 steps, the 8² fade 2 more; --kimg 0.096 stops inside the fade,
    # after the copy of the 4² stage's G_ema was taken. The resumed run must anchor to that copy, not to the
    # G_ema it finds at the resume.
    fast = [*_FAST, "--stage-anchor", "4", "--stage-anchor-levels", "all"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main([*fast, "--out", str(straight), "--kimg", "0.192"]) == 0
    assert train_main([*fast, "--out", str(split), "--kimg", "0.096"]) == 0
    mid = final_checkpoint(split)
    assert mid["nimg"] == 96 and mid["anchor"]["stage"] == 1 and mid["anchor"]["snapshot"] is not None
    assert train_main([*fast, "--out", str(split), "--kimg", "0.192"]) == 0
    assert_same_run(final_checkpoint(straight), final_checkpoint(split))


def test_training_script_anchor_changes_only_the_generator_from_the_second_stage(tmp_path) -> None:
    plain, anchored = tmp_path / "plain", tmp_path / "anchored"
    assert train_main([*_FAST, "--out", str(plain), "--kimg", "0.128", "--stage-anchor", "0"]) == 0
    assert train_main([*_FAST, "--out", str(anchored), "--kimg", "0.128", "--stage-anchor", "4"]) == 0
    a, b = final_checkpoint(plain), final_checkpoint(anchored)
    assert a["anchor"] is None and b["anchor"]["stage"] == 1
    assert any(not torch.equal(v, b["G"][k]) for k, v in a["G"].items())  # the 8² steps differ
    stage_end = sorted((plain / "checkpoints").glob("checkpoint-*.pt"))
    assert stage_end  # the 4² stage end is the same in both runs: no term in the first stage
    first_a = torch.load(stage_end[0], weights_only=True)
    first_b = torch.load(anchored / "checkpoints" / stage_end[0].name, weights_only=True)
    assert first_a["nimg"] == 64
    for name, value in first_a["G"].items():
        assert torch.equal(value, first_b["G"][name]), name


def test_anchor_is_off_in_the_paper_presets_and_its_fields_are_checked() -> None:
    for name in ("paper-1024", "official-1024"):
        assert get_preset(name).stage_anchor == 0.0
    assert get_preset("cpu-demo").stage_anchor == get_preset("cpu-demo-64").stage_anchor == 16.0
    with pytest.raises(ValueError, match="stage_anchor expected a finite number ≥ 0, got -0.5"):
        replace(get_preset("cpu-demo"), stage_anchor=-0.5)
    with pytest.raises(ValueError, match="stage_anchor_levels expected 'previous' or 'all', got 'some'"):
        replace(get_preset("cpu-demo"), stage_anchor_levels="some")  # type: ignore[arg-type]


def test_a_run_made_without_the_anchor_resumes_only_with_stage_anchor_zero(tmp_path, capsys) -> None:
    out = ["--out", str(tmp_path / "run")]
    assert train_main([*_FAST, *out, "--kimg", "0.064", "--stage-anchor", "0"]) == 0  # as cpu-demo runs made before it
    assert train_main([*_FAST, *out, "--kimg", "0.128"]) == 2  # the preset's anchor: another training
    assert "differing keys: preset.stage_anchor." in capsys.readouterr().err
    assert train_main([*_FAST, *out, "--kimg", "0.128", "--stage-anchor", "0"]) == 0
    assert final_checkpoint(tmp_path / "run")["nimg"] == 128
