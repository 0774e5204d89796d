"""benchmarks/quality.py: its smoke mode runs every variant end to end, and its verdict arithmetic is exact."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _quality_data  # noqa: E402
import _quality_eval  # noqa: E402
import _quality_seeds  # noqa: E402
import quality  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    threads = torch.get_num_threads()
    summary = quality.main(["--quick", "--out", str(out)])  # in this process, with one torch thread per variant
    assert torch.get_num_threads() == threads  # given back: later tests compare in-process runs with subprocesses
    return out, summary


def test_quick_mode_trains_and_scores_every_variant_on_both_datasets(quick):
    out, summary = quick
    assert set(summary["results"]) == set(quality.DATASETS)
    for dataset, by_variant in summary["results"].items():
        assert summary["floors"][dataset] > 0
        assert list(by_variant) == list(quality.VARIANTS)
        for variant, result in by_variant.items():
            assert result["cpu_s"] >= summary["budget_cpu_s"]  # trained until the budget was spent
            assert [p["cpu_s"] >= 0 for p in result["points"]] == [True, True]  # the quick mode's two evaluations
            assert result["points"][0]["cpu_s"] <= result["points"][1]["cpu_s"]
            assert result["final_resolution_reached"] == 32
            if _quality_eval.GROWING[variant]:
                ends = result["stage_ends"]
                assert [e["resolution"] for e in ends] == [4, 8, 16, 32]  # three stage ends, then the budget's end
                assert [sorted(map(int, e["levels"])) for e in ends] == [[4], [4, 8], [4, 8, 16], [4, 8, 16, 32]]
            else:
                assert "stage_ends" not in result
    saved = json.loads((out / "quality.json").read_text())
    assert saved["verdicts"] == summary["verdicts"]
    assert saved["machine"].endswith(f"({os.cpu_count()} CPUs)") and len(saved["machine"]) > len(" (1 CPUs)")
    assert any("progan < progan-flat" in line for line in summary["verdicts"])
    assert any("growing vs not" in line or "never reaches" in line for line in summary["verdicts"])


def test_quick_mode_writes_the_plot_and_one_sample_sheet_per_dataset(quick):
    out, _ = quick
    assert Image.open(out / "swd.png").size[0] > 0
    for dataset in quality.DATASETS:
        sheet = Image.open(out / f"samples-{dataset}.png")
        # real + four variants, 6×6 tiles of 64 px (32² images enlarged 2×) with 2 px gaps, 12 px between panels
        assert sheet.size == (5 * (6 * 64 + 5 * 2 + 12) - 12, 6 * 64 + 5 * 2 + 14)


def test_a_second_run_reuses_finished_variants(quick, capsys):
    out, summary = quick
    again = quality.main(["--quick", "--out", str(out)])
    assert capsys.readouterr().out.count("reused") == len(quality.DATASETS) * len(quality.VARIANTS)
    assert again["results"] == summary["results"]


def test_time_to_interpolates_the_first_crossing():
    points = [{"cpu_s": 10, "swd": 100.0}, {"cpu_s": 20, "swd": 60.0}, {"cpu_s": 30, "swd": 20.0}, {"cpu_s": 40, "swd": 50.0}]
    assert quality.time_to(points, 100.0) == 10.0
    assert quality.time_to(points, 80.0) == 15.0
    assert quality.time_to(points, 20.0) == 30.0
    assert quality.time_to(points, 19.9) is None


def test_level_regressions_name_every_level_that_got_worse():
    ends = [
        {"resolution": 8, "levels": {"8": 30.0, "4": 20.0}},
        {"resolution": 16, "levels": {"16": 40.0, "8": 29.0, "4": 21.5}},
        {"resolution": 32, "levels": {"32": 50.0, "16": 40.0, "8": 29.0, "4": 21.5}},
    ]
    assert quality.level_regressions(ends) == ["4² after the 16² stage: 21.5 > 20.0"]


def test_border_step_measures_a_one_pixel_frame():
    flat = torch.full((2, 3, 8, 8), 100, dtype=torch.uint8)
    assert _quality_eval.border_step(flat) == 0.0
    framed = flat.clone()
    framed[:, :, 0, :] = 140  # a bright top row: a step of 40 on one border of four
    assert _quality_eval.border_step(framed) == 10.0


def test_rendered_digits_are_labelled_pngs(tmp_path):
    _quality_data.render_digits(tmp_path, num_images=12, resolution=32, seed=3)
    labels = json.loads((tmp_path / "dataset.json").read_text())["labels"]
    assert [name for name, _ in labels] == [f"{i:06d}.png" for i in range(12)]
    assert all(0 <= digit <= 9 for _, digit in labels)
    image = Image.open(tmp_path / "000000.png")
    assert image.size == (32, 32) and image.mode == "RGB"


def test_stage_sheet_puts_real_images_before_every_stage_end_grid(tmp_path):
    import stage_sheet

    from progrow.adapters.progan.train import main as train_main

    run = tmp_path / "run"
    args = ["--preset", "cpu-demo", "--phase-kimg", "0.064", "--tick-kimg", "0.032", "--data", "synthetic:0:128"]
    assert train_main([*args, "--out", str(run), "--kimg", "0.192"]) == 0
    ends = stage_sheet.stage_end_ticks(run / "log.jsonl")
    assert [(e["resolution"], e["kimg"]) for e in ends] == [(4, 0.064), (8, 0.192)]  # 4² ends at 0.064; the run at 0.192
    sheet = Image.open(stage_sheet.main([str(run), str(tmp_path / "sheet.png")]))
    grid = Image.open(run / "grids" / "grid-000000192.png")  # 16 images of 8², each enlarged to 64 px: 4×4 tiles
    assert grid.size == (256, 256)
    assert sheet.size == (3 * 256 + 2 * 8, 256 + 14)  # real, 4², 8²: each 256 px high, 8 px apart, a caption above


def test_stable_means_average_the_second_half_of_each_stable_phase():
    def point(res, alpha, **levels):
        return {"resolution": res, "alpha": alpha, "levels": {k[1:]: v for k, v in levels.items()}}

    trace = [
        point(4, 1.0, l4=90.0),
        point(4, 1.0, l4=30.0),
        point(4, 1.0, l4=10.0),
        point(8, 0.5, l8=500.0, l4=500.0),  # a fade: left out
        point(8, 1.0, l8=70.0, l4=60.0),
        point(8, 1.0, l8=20.0, l4=14.0),
        point(8, 1.0, l8=10.0, l4=16.0),
    ]
    means = quality.stable_means(trace)
    assert means == [
        {"resolution": 4, "levels": {"4": 20.0}, "points": 2},
        {"resolution": 8, "levels": {"8": 15.0, "4": 15.0}, "points": 2},
    ]
    assert quality.level_regressions(means) == []
    assert quality.stable_means([]) == []


def test_quick_mode_traces_the_levels_of_the_growing_variants(quick):
    out, summary = quick
    for by_variant in summary["results"].values():
        for variant, result in by_variant.items():
            if not _quality_eval.GROWING[variant]:
                assert "trace" not in result
                continue
            kimg = [t["kimg"] for t in result["trace"]]
            assert kimg == sorted(kimg) and len(kimg) >= 1
            # one point per 0.1 kimg trained (the quick trace interval; its minibatches are far smaller), so
            # the count is exact on any machine although the CPU-seconds budget decides how far the run gets
            trained = result["stage_ends"][-1]["kimg"] / 0.1
            assert len(kimg) in {math.floor(trained - 1e-9), math.floor(trained + 1e-9)}
            assert all(k >= (i + 1) * 0.1 - 1e-9 for i, k in enumerate(kimg))
            for t in result["trace"]:  # every level the generator has at that point, down to 4²
                assert sorted(map(int, t["levels"])) == [4 * 2**i for i in range(t["resolution"].bit_length() - 2)]
    assert sorted(summary["level_floors"]["shapes"], key=int) == ["4", "8", "16", "32"]
    assert Image.open(out / "levels.png").size[0] > 0


def test_fade_spans_run_from_a_stages_first_point_to_its_first_at_alpha_one():
    trace = [
        {"kimg": 4.0, "resolution": 4, "alpha": 1.0},
        {"kimg": 8.0, "resolution": 8, "alpha": 0.0},
        {"kimg": 12.0, "resolution": 8, "alpha": 0.5},
        {"kimg": 16.0, "resolution": 8, "alpha": 1.0},
        {"kimg": 20.0, "resolution": 8, "alpha": 1.0},
        {"kimg": 24.0, "resolution": 16, "alpha": 0.0},
        {"kimg": 28.0, "resolution": 16, "alpha": 0.5},  # the budget ended mid-fade
    ]
    assert quality.fade_spans(trace) == [(8.0, 16.0), (24.0, 28.0)]


def test_progan_args_reach_the_training_options_and_are_part_of_the_settings(tmp_path, capsys):
    out = str(tmp_path / "q")
    base = ["--quick", "--out", out, "--datasets", "shapes", "--variants", "progan,dcgan"]
    quality.main([*base, "--progan-arg=--channels-last"])
    spec = json.loads((tmp_path / "q" / "shapes" / "progan" / "spec.json").read_text())
    assert spec["progan_args"] == ["--channels-last"]
    assert "progan_args" not in json.loads((tmp_path / "q" / "shapes" / "dcgan" / "spec.json").read_text())
    capsys.readouterr()
    quality.main(base)  # without the argument: the progan variant is retrained, the DCGAN reused
    assert capsys.readouterr().out.count("reused") == 1
    with pytest.raises(SystemExit):  # the training script's own parser refuses what it does not know
        quality.main([*base, "--fresh", "--progan-arg=--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("r1_interval=0", "error: --set: preset 'cpu-demo': r1_interval expected an int ≥ 1, got 0"),
        ("no_such_field=1", "error: --set: ProGANPreset.__init__() got an unexpected keyword argument 'no_such_field'"),
        ("r1_interval=four", "error: --set 'r1_interval=four': the value is not JSON"),
    ],
)
def test_a_bad_set_is_one_error_line_with_exit_2_before_any_work(tmp_path, capsys, item, message):
    with pytest.raises(SystemExit) as exc:
        quality.main(["--quick", "--out", str(tmp_path / "q"), "--set", item])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "q").exists()  # refused before the data or any variant


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--level-samples", "6000"], "--level-samples: expected 2 to 5000 (two disjoint sets of the --images 10000), got 6000"),
        (["--samples", "1", "--images", "100"], "--samples: expected 2 to 50 (two disjoint sets of the --images 100), got 1"),
    ],
)
def test_sample_counts_that_leave_no_two_disjoint_real_sets_are_refused_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        quality.main(["--out", str(tmp_path / "q"), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"
    assert not (tmp_path / "q").exists()


def test_the_stage_ends_and_the_end_are_scored_with_the_level_samples_and_the_trace_with_the_samples(tmp_path, monkeypatch):
    scored: list[tuple[int, int]] = []  # (generated, real) images of every level scoring while training
    original = _quality_eval.level_swds

    def recording(fakes, cache, real_index):
        scored.append((len(fakes), len(real_index)))
        return original(fakes, cache, real_index)

    monkeypatch.setattr(_quality_eval, "level_swds", recording)
    summary = quality.main(["--quick", "--out", str(tmp_path / "q"), "--datasets", "shapes", "--variants", "progan"])
    result = summary["results"]["shapes"]["progan"]
    assert (summary["samples"], summary["level_samples"]) == (32, 48)  # the quick mode's
    assert scored.count((48, 48)) == len(result["stage_ends"]) == 4  # three stage ends and the end
    assert scored.count((32, 32)) == len(result["trace"]) and len(scored) == 4 + len(result["trace"])
    cache = next((tmp_path / "q" / "data").glob("shapes-*"))
    a, b = _quality_data.real_halves(128, 48)  # the quick mode's 128 images
    assert summary["level_floors"]["shapes"] == original(_quality_data.real_images(cache, 32, b), cache, a)
    assert summary["trace_floors"]["shapes"] != summary["level_floors"]["shapes"]


def _seed_result(final_swd: float, ends: list[tuple[int, dict[str, float]]], *, cpu: float = 600.0) -> dict:
    """A progan result of one seed: two points, the given stage ends (the last one the budget's end), a one-point trace."""
    stage_ends = [
        {"resolution": r, "cpu_s": cpu / 4 * (i + 1), "kimg": 10.0 * (i + 1), "levels": levels}
        for i, (r, levels) in enumerate(ends)
    ]
    stage_ends[-1]["budget_end"] = True
    return {
        "variant": "progan",
        "dataset": "shapes",
        "points": [
            {"cpu_s": cpu / 2, "kimg": 20.0, "resolution": 8, "alpha": 0.5, "swd": 2 * final_swd},
            {"cpu_s": cpu, "kimg": 40.0, "resolution": 16, "alpha": 1.0, "swd": final_swd},
        ],
        "steps": 101,
        "cpu_s": cpu,
        "wall_s": 2 * cpu,
        "final_resolution_reached": 16,
        "final_alpha": 1.0,
        "ms_ssim": 0.1,
        "border_step": 1.0,
        "final_levels": ends[-1][1],
        "stage_ends": stage_ends,
        "trace": [{"kimg": 8.0, "cpu_s": 50.0, "resolution": 4, "alpha": 1.0, "levels": {"4": final_swd}}],
    }


def test_the_mean_over_seeds_averages_every_score_curve_stage_end_and_trace():
    a = _seed_result(40.0, [(4, {"4": 90.0}), (8, {"8": 36.0, "4": 46.0}), (16, {"16": 24.0, "8": 34.0, "4": 40.0})])
    b = _seed_result(50.0, [(4, {"4": 110.0}), (8, {"8": 42.0, "4": 52.0}), (16, {"16": 21.0, "8": 37.0, "4": 43.0})])
    b["points"][0].update(resolution=4, alpha=1.0)  # the second seed is behind at the first point
    mean = _quality_seeds.mean_result([a, b])
    assert mean["final_swds"] == [40.0, 50.0]
    assert [p["swd"] for p in mean["points"]] == [90.0, 45.0]
    assert (mean["points"][0]["resolution"], mean["points"][0]["alpha"]) == (4, 1.0)  # the least advanced seed's
    assert [e["levels"] for e in mean["stage_ends"]] == [
        {"4": 100.0},
        {"8": 39.0, "4": 49.0},
        {"16": 22.5, "8": 35.5, "4": 41.5},
    ]
    assert mean["stage_ends"][-1]["budget_end"] and "budget_end" not in mean["stage_ends"][0]
    assert mean["trace"] == [{"kimg": 8.0, "cpu_s": 50.0, "resolution": 4, "alpha": 1.0, "levels": {"4": 45.0}}]
    assert (mean["steps"], mean["ms_ssim"], mean["final_levels"]) == (101, 0.1, {"16": 22.5, "8": 35.5, "4": 41.5})
    assert _quality_seeds.mean_result([a]) == a  # one seed: its result unchanged, no final_swds


def test_the_verdicts_judge_the_means_and_name_each_seeds_own_outcome():
    # seed 0 loses 8² at the 16² stage end (36.0 → 37.0); seed 1 gains 4.0 there; the mean gains
    s0 = _seed_result(40.0, [(8, {"8": 36.0, "4": 46.0}), (16, {"16": 24.0, "8": 37.0, "4": 40.0})])
    s1 = _seed_result(50.0, [(8, {"8": 42.0, "4": 52.0}), (16, {"16": 21.0, "8": 38.0, "4": 43.0})])
    per_seed = {0: {"progan": s0}, 7: {"progan": s1}}
    mean = {"progan": _quality_seeds.mean_result([s0, s1])}
    lines = _quality_seeds.annotate(
        quality.verdicts("shapes", mean, 12.0), {s: quality.verdicts("shapes", r, 12.0) for s, r in per_seed.items()}
    )
    assert lines[0] == "shapes: final SWD (floor 12.0), means over 2 seeds (min–max): progan 45.0 (40.0–50.0)"
    assert lines[1] == (
        "  [PASS] progan: no pyramid level worse at a stage end than at the previous one — per seed: 0 FAIL, 7 PASS"
    )


@pytest.mark.parametrize(("text", "seeds"), [("0", [0]), ("0,1,2", [0, 1, 2]), (" 3, 5", [3, 5])])
def test_seeds_parse_from_a_comma_separated_list(text, seeds):
    assert _quality_seeds.parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,1", "error: --seed: expected distinct integers ≥ 0, got '1,1'"),
        ("0,-1", "error: --seed: expected distinct integers ≥ 0, got '0,-1'"),
        ("0,,1", "error: --seed: expected one or more integers ≥ 0, comma-separated, got '0,,1'"),
        ("a", "error: --seed: expected one or more integers ≥ 0, comma-separated, got 'a'"),
    ],
)
def test_a_bad_seed_list_is_one_error_line_with_exit_2_before_any_work(tmp_path, capsys, text, message):
    with pytest.raises(SystemExit) as exc:
        quality.main(["--quick", "--out", str(tmp_path / "q"), "--seed", text])
    assert exc.value.code == 2
    assert capsys.readouterr().err == message + "\n"
    assert not (tmp_path / "q").exists()


def test_quick_mode_with_two_seeds_trains_each_variant_per_seed_and_reports_their_means(tmp_path, capsys):
    out = tmp_path / "q"
    base = ["--quick", "--out", str(out), "--datasets", "shapes", "--variants", "progan"]
    summary = quality.main([*base, "--seed", "0,4"])
    assert sorted(p.name for p in (out / "shapes").iterdir()) == ["progan", "progan-seed4"]
    assert json.loads((out / "shapes" / "progan-seed4" / "spec.json").read_text())["seed"] == 4
    assert summary["seeds"] == [0, 4] and set(summary["per_seed"]) == {"0", "4"}
    runs = [summary["per_seed"][s]["shapes"]["progan"] for s in ("0", "4")]
    mean = summary["results"]["shapes"]["progan"]
    assert mean["final_swds"] == [r["points"][-1]["swd"] for r in runs]
    assert mean["points"][-1]["swd"] == round(sum(mean["final_swds"]) / 2, 3)
    assert runs[0]["points"] != runs[1]["points"]  # the seeds trained different networks
    (check,) = [line for line in summary["verdicts"] if line.lstrip().startswith("[")]  # the level verdict
    assert check.split(" — per seed: ")[1] in {f"0 {a}, 4 {b}" for a in ("PASS", "FAIL") for b in ("PASS", "FAIL")}
    assert json.loads((out / "quality.json").read_text())["per_seed"] == summary["per_seed"]
    capsys.readouterr()
    again = quality.main([*base, "--seed", "4"])  # one of them alone: reused, and reported as it is
    assert capsys.readouterr().out.count("reused") == 1
    assert again["results"]["shapes"] == summary["per_seed"]["4"]["shapes"] and "per_seed" not in again
