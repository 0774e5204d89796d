"""The companion commands of the reference ProGAN: export round trip, generate, interpolate, `progrow`."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import progrow as pg
from progrow.adapters.cli import main as progrow_main
from progrow.adapters.progan.export import discriminator_from_checkpoint, generator_from_checkpoint, load_generator
from progrow.adapters.progan.train import main as train_main
from progrow.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("progan") / "run"
    args = [
        "--preset",
        "cpu-demo",
        "--phase-kimg",
        "0.064",
        "--tick-kimg",
        "0.064",
        "--data",
        "synthetic:0:128",
        "--out",
        str(out),
        "--kimg",
        "0.128",
    ]
    assert train_main(args) == 0
    return out


def test_export_round_trips_bit_for_bit_and_matches_the_checkpoint(run_dir):
    G, config = load_generator(run_dir / "generator")
    assert config["state"] == {"resolution": 8, "alpha": 1.0}  # 0.128 kimg = the start of the 8² stable phase
    from_ckpt, _ = generator_from_checkpoint(latest_checkpoint(run_dir / "checkpoints")[0])
    for (name, a), (_, b) in zip(G.state_dict().items(), from_ckpt.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    z = torch.randn(3, G.net.latent_dim)
    assert torch.equal(G(z), from_ckpt(z))
    assert G(z).shape == (3, 3, 8, 8)


def test_discriminator_from_checkpoint_scores_as_the_trained_one(run_dir, tmp_path):
    path, payload = latest_checkpoint(run_dir / "checkpoints")
    D, config = discriminator_from_checkpoint(path)
    assert not D.training and D.growth_state.resolution == 8 and D.growth_state.alpha == 1.0
    assert config["architecture"] == payload["architecture"]["discriminator"] and config["nimg"] == 128
    for name, value in D.state_dict().items():
        assert torch.equal(value, payload["D"][name]), name
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    scores = D(images)
    assert scores.shape == (4, 1)

    # A checkpoint written before D's arguments were stored rebuilds D from the preset in its identity.
    old = load_checkpoint(path)
    del old["architecture"]["discriminator"]
    save_checkpoint(old, tmp_path / "old.pt", update_latest=False)
    D_old, config_old = discriminator_from_checkpoint(tmp_path / "old.pt")
    assert config_old["architecture"] == config["architecture"]
    assert torch.equal(D_old(images), scores)

    del old["architecture"]
    save_checkpoint(old, tmp_path / "none.pt", update_latest=False)
    with pytest.raises(ValueError, match=r"none\.pt: not a ProGAN training checkpoint"):
        discriminator_from_checkpoint(tmp_path / "none.pt")


def test_generate_writes_pngs(run_dir, tmp_path):
    assert progrow_main(["generate", "--from", str(run_dir), "--n", "3", "--seed", "5", "--out", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.glob("*.png"))
    assert files == ["seed000005.png", "seed000006.png", "seed000007.png"]
    assert Image.open(tmp_path / files[0]).size == (8, 8)


def test_interpolate_writes_a_strip_and_a_gif(run_dir, tmp_path):
    out = tmp_path / "walk.png"
    assert (
        progrow_main(
            [
                "interpolate",
                "--from",
                str(run_dir / "generator.safetensors"),
                "--seeds",
                "1,2,3",
                "--steps",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert Image.open(out).size == (8 * 9, 8)  # 2 segments × 4 steps + the last key frame
    gif = Image.open(out.with_suffix(".gif"))
    assert gif.n_frames == 9


def test_interpolation_passes_through_the_seeds(run_dir):
    from progrow.adapters.progan.generate import slerp

    a, b = torch.randn(16), torch.randn(16)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    torch.testing.assert_close(mid.norm(), (a.norm() + b.norm()) / 2)


def test_bad_sources_and_commands(tmp_path, capsys):
    assert progrow_main(["generate", "--from", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--from: {tmp_path / 'nothing'}: no such run folder, export or checkpoint" in err and "Traceback" not in err
    assert progrow_main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert progrow_main(["--help"]) == 0
    assert "dataset" in capsys.readouterr().out


def test_export_is_safetensors_without_pickle(run_dir):
    data = (run_dir / "generator.safetensors").read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    assert data[8:9] == b"{" and b"to_rgb.8.weight" in data[8 : 8 + header_len]
    assert isinstance(load_generator(run_dir / "generator")[0], pg.ProgressiveGenerator)


def test_metrics_command_prints_a_table_and_writes_json(run_dir, tmp_path, capsys):
    import json

    from progrow.metrics import write_random_inception_weights

    weights = write_random_inception_weights(tmp_path / "inception.pth")
    out = tmp_path / "scores.json"
    code = progrow_main(
        [
            "metrics",
            "--from",
            str(run_dir),
            "--data",
            str(run_dir / "dataset"),
            "--metrics",
            "fid,swd",
            "--samples",
            "16",
            "--inception-weights",
            str(weights),
            "--json",
            str(out),
            "--no-reference",
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "fid" in table and "swd_8" in table and "(8², alpha 1, 16 samples)" in table and "real vs real" not in table
    scores = json.loads(out.read_text())
    assert scores["resolution"] == 8 and scores["fid"] > 0 and scores["swd"] > 0


def test_fid_command_bad_input(run_dir, tmp_path, capsys):
    assert progrow_main(["fid", "--from", str(run_dir), "--data", str(tmp_path / "none")]) == 2
    assert str(tmp_path / "none") in capsys.readouterr().err
    assert progrow_main(["metrics", "--from", str(run_dir), "--data", str(run_dir / "dataset"), "--metrics", "fidd"]) == 2
    assert "unknown or no metric(s) ['fidd']" in capsys.readouterr().err


def test_the_progrow_console_script_is_declared():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "progrow"]
    assert script.value == "progrow.adapters.cli:main" and script.load() is progrow_main
