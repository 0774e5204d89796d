"""benchmarks/shape_probes.py: its scenes are what it says, and its smoke mode trains, scores and draws end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import shape_probes  # noqa: E402


def test_palette_scenes_hold_one_shape_in_a_palette_colour_on_a_grey_ground() -> None:
    ds = shape_probes.PaletteShapes(num_images=200)
    kinds = set()
    for i in range(200):
        scene = ds._scene(i)
        assert len(scene.shapes) == 1
        shape = scene.shapes[0]
        kinds.add(shape.kind)
        assert ds.label(i) == shape_probes.KINDS.index(shape.kind)
        assert any(np.array_equal(shape.colour, c) for c in shape_probes.PALETTE)
        for ground in (scene.colour0, scene.colour1):
            assert ground[0] == ground[1] == ground[2] and 30.0 <= ground[0] <= 90.0
    assert kinds == set(shape_probes.KINDS)
    image = ds.render(0, 32)  # rendered by SyntheticShapes' own code: the centre pixel is the shape's colour
    shape = ds._scene(0).shapes[0]
    assert image.shape == (3, 32, 32) and image.dtype == np.uint8
    if shape.kind != "triangle":  # a circle or rectangle covers its centre
        cx, cy = shape.params[0], shape.params[1]
        np.testing.assert_allclose(image[:, int(cy * 32), int(cx * 32)], shape.colour, atol=1)


def test_rectangles_probe_draws_rectangles_only_and_builtin_is_progrows_set() -> None:
    rects = shape_probes.probe_dataset("rectangles", 100)
    assert {rects._scene(i).shapes[0].kind for i in range(100)} == {"rectangle"}
    builtin = shape_probes.probe_dataset("builtin", 10)
    assert type(builtin).__name__ == "SyntheticShapes"


EXPECTED = "expected some of builtin,palette,rectangles,palette-cond"


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--probes", "palette,squares"],
            f"error: --probes: unknown squares; {EXPECTED}",
        ),
        (["--probes", ","], f"error: --probes: unknown (empty); {EXPECTED}"),
        (["--threads", "0"], "error: --threads: expected an int ≥ 1, got 0"),
        (["--samples", "-1"], "error: --samples: expected an int ≥ 1, got -1"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        shape_probes.main([*argv, "--out", str(tmp_path / "p")])
    assert exc.value.code == 2
    assert capsys.readouterr().err == message + "\n"
    assert not (tmp_path / "p").exists()  # refused before anything is written


def test_quick_mode_trains_scores_and_draws(tmp_path: Path, capsys) -> None:
    out = tmp_path / "probes"
    results = shape_probes.main(["--quick", "--probes", "rectangles,palette-cond", "--out", str(out)])
    assert list(results) == ["rectangles", "palette-cond"]
    for r in results.values():
        assert r["kimg"] > 0 and r["cpu_s"] > 0 and r["swd"] > 0 and r["floor"] > 0
    labels = json.loads((out / "data" / "palette-cond" / "dataset.json").read_text())["labels"]
    assert len(labels) == 64 and {label for _, label in labels} <= {0, 1, 2}
    assert not (out / "data" / "rectangles" / "dataset.json").exists()  # unconditional probes have no labels
    sheet = Image.open(out / "probes.png")
    assert sheet.width == (2 * 4 * 34 + 8) * shape_probes.SCALE  # 4 tiles of 32 + 2 px border, twice, and the gap
    assert json.loads((out / "probes.json").read_text()) == results
    printed = capsys.readouterr().out
    assert "rectangles" in printed and "real vs real" in printed
    cond = results["palette-cond"]  # the final D's classifier, read back from the run's checkpoint
    assert 0 <= cond["d_kind_real"] <= 1 and 0 <= cond["d_kind_fake"] <= 1 and "d_kind_real" not in results["rectangles"]
    assert "D's classifier names the kind of" in printed
    D = shape_probes.final_discriminator(out / "palette-cond")
    assert D is not None
    saved = torch.load(sorted((out / "palette-cond" / "checkpoints").glob("*.pt"))[-1], weights_only=False)["D"]
    assert all(torch.equal(v, saved[k]) for k, v in D.state_dict().items())
    before = np.asarray(Image.open(out / "probes.png"))
    again = shape_probes.main(["--quick", "--probes", "rectangles", "--out", str(out)])  # finished runs are reused
    assert again["rectangles"]["cpu_s"] == results["rectangles"]["cpu_s"]
    # the sheet still shows both finished probes, with the same tiles, though this call ran one
    np.testing.assert_array_equal(np.asarray(Image.open(out / "probes.png")), before)
    # a finished run without checkpoints (G_ema exported, checkpoints removed) still scores; the classifier line says why not
    for ckpt in (out / "palette-cond" / "checkpoints").iterdir():
        ckpt.unlink()
    capsys.readouterr()
    later = shape_probes.main(["--quick", "--probes", "palette-cond", "--out", str(out)])
    assert later["palette-cond"]["swd"] == results["palette-cond"]["swd"]
    missing = f"(no checkpoint in {out / 'palette-cond' / 'checkpoints'}: no discriminator to read the kinds)"
    assert missing in capsys.readouterr().out


class _RedCritic(torch.nn.Module):
    """Scores `[N, 1 + 3]`: class 0 when the image's mean red channel is above 0, else class 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, 0].mean(dim=(1, 2))
        logits = torch.stack([red, torch.zeros_like(red), -red], dim=1)
        return torch.cat([torch.zeros_like(red)[:, None], logits], dim=1)


def test_kind_accuracy_reads_the_class_logits_after_the_score_of_images_in_minus_one_to_one() -> None:
    images = torch.zeros(10, 3, 32, 32, dtype=torch.uint8)
    images[:6, 0] = 200  # red above the middle grey: class 0; the others (red 0 → -1): class 2
    labels = torch.tensor([0, 0, 0, 0, 1, 2, 2, 2, 2, 0])  # 4 right of the first 6, 3 right of the last 4
    assert shape_probes.kind_accuracy(_RedCritic(), images, labels, batch=4) == pytest.approx(7 / 10)
