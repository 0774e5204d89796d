"""The reference ProGAN: paper-exact networks, the training script end to end, resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from run_helpers import final_checkpoint

import progrow as pg
from progrow.adapters.progan import ProGANDiscriminator, ProGANGenerator, feature_maps
from progrow.adapters.progan.losses import LOSSES
from progrow.adapters.progan.train import main as train_main

PAPER_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def count(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def test_channels_per_resolution_are_the_papers():
    assert {r: feature_maps(r) for r in PAPER_CHANNELS} == PAPER_CHANNELS


def test_parameter_counts_match_table_2():
    G = pg.ProgressiveGenerator(ProGANGenerator())
    D = pg.ProgressiveDiscriminator(ProGANDiscriminator(), check_blocks=False)
    # Table 2 lists the networks at 1024²: every block plus the 1024² toRGB / fromRGB: 23.1M each.
    g = count(G.net, G.to_rgb["1024"])
    d = count(D.net, D.from_rgb["1024"])
    assert abs(g - 23.1e6) <= 0.05e6, g
    assert abs(d - 23.1e6) <= 0.05e6, d
    assert {r: G.net.channels(r) for r in G.resolutions} == PAPER_CHANNELS
    assert {r: D.net.channels(r) for r in D.resolutions} == PAPER_CHANNELS


def _small_pair(resolution=64, **kw):
    G = pg.ProgressiveGenerator(ProGANGenerator(resolution=resolution, latent_dim=32, fmap_base=256, fmap_max=32, **kw))
    D = pg.ProgressiveDiscriminator(ProGANDiscriminator(resolution=resolution, fmap_base=256, fmap_max=32))
    return G, D


def _one_iteration(G, D, state, batch, latent):
    """One WGAN-GP discriminator step and one generator step; returns the names of parameters with gradients."""
    reals = torch.randn(batch, 3, state.resolution, state.resolution)
    with torch.no_grad():
        fakes = G(torch.randn(batch, latent), state)
    d_out = pg.wgan_gp_d_loss(lambda x: D(x, state), reals, fakes)
    d_out.loss.backward()
    D.requires_grad_(False)
    g_out = pg.wgan_g_loss(D(G(torch.randn(batch, latent), state), state))
    g_out.loss.backward()
    D.requires_grad_(True)
    assert torch.isfinite(d_out.loss) and torch.isfinite(g_out.loss)
    return (
        {n for n, p in G.named_parameters() if p.grad is not None},
        {n for n, p in D.named_parameters() if p.grad is not None},
    )


def _active(names, res, fading, prefix_rgb, blocks):
    """Parameter names the stage at `res` should train."""
    rgb = {res} | ({res // 2} if fading else set())
    return {
        n
        for n in names
        if (n.startswith(f"{prefix_rgb}.") and int(n.split(".")[1]) in rgb)
        or (n.startswith(f"net.{blocks}.") and int(n.split(".")[2]) <= res)
        or not n.startswith((f"{prefix_rgb}.", f"net.{blocks}."))
    }


def _check_active_gradients(G, D, res, alpha, batch, latent):
    state = pg.GrowthState(res, alpha=alpha)
    g_grads, d_grads = _one_iteration(G, D, state, batch, latent)
    g_names = {n for n, _ in G.named_parameters()}
    d_names = {n for n, _ in D.named_parameters()}
    assert g_grads == _active(g_names, res, state.is_fading, "to_rgb", "blocks")
    assert d_grads == _active(d_names, res, state.is_fading, "from_rgb", "blocks")


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_every_active_parameter_gets_a_gradient_and_no_inactive_one(alpha):
    G, D = _small_pair(64)
    _check_active_gradients(G, D, 32, alpha, batch=4, latent=32)


def test_generator_padding_mode_reaches_every_3x3_conv_of_g_only():
    torch.manual_seed(0)
    kw = dict(resolution=16, latent_dim=32, fmap_base=64, fmap_max=16)
    zeros, reflect = ProGANGenerator(**kw), ProGANGenerator(**kw, padding_mode="reflect")
    convs = [m for m in reflect.modules() if isinstance(m, pg.EqualizedConv2d)]
    assert len(convs) == 5 and {c.padding_mode for c in convs} == {"reflect"}  # 4² conv + two per 8², 16²
    assert count(reflect) == count(zeros)  # padding adds no parameters
    reflect.load_state_dict(zeros.state_dict())
    z = torch.randn(2, 32)
    a, b = dict(zeros.features(z, until=16)), dict(reflect.features(z, until=16))
    assert not torch.equal(a[16], b[16])
    D = ProGANDiscriminator(resolution=16, fmap_base=64, fmap_max=16)
    assert {m.padding_mode for m in D.modules() if isinstance(m, pg.EqualizedConv2d)} == {"zeros"}


def test_g_padding_at_its_default_leaves_the_resume_identity_of_older_checkpoints():
    from dataclasses import replace
    from pathlib import Path

    from progrow.adapters.progan.options import Options
    from progrow.adapters.progan.presets import get_preset

    def identity(preset):
        opts = Options(preset, Path("."), "", "auto", torch.device("cpu"), "fp32", False, False, 0, False, False)
        return opts.identity()["preset"]

    paper = get_preset("paper-1024")
    assert paper.g_padding == "zeros" and "g_padding" not in identity(paper)
    assert identity(replace(paper, g_padding="reflect"))["g_padding"] == "reflect"


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_full_iteration_at_1024(alpha):
    G = pg.ProgressiveGenerator(ProGANGenerator())
    D = pg.ProgressiveDiscriminator(ProGANDiscriminator(), check_blocks=False)
    _check_active_gradients(G, D, 1024, alpha, batch=2, latent=512)


def test_generator_latents_are_pixel_normalized_and_features_follow_the_protocol():
    G, _ = _small_pair(16)
    z = torch.randn(3, 32)
    a = G(z, pg.GrowthState(16))
    b = G(z * 7.0, pg.GrowthState(16))  # PixelNorm on the latent: the scale of z does not matter
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert isinstance(G.net, pg.GrowableGenerator)
    assert [r for r, _ in G.net.features(z, until=8)] == [4, 8]


def test_conditional_networks():
    G = pg.ProgressiveGenerator(ProGANGenerator(resolution=16, latent_dim=8, num_classes=3, fmap_base=64, fmap_max=16))
    D = pg.ProgressiveDiscriminator(ProGANDiscriminator(resolution=16, num_classes=3, fmap_base=64, fmap_max=16))
    z, s = torch.randn(4, 8), pg.GrowthState(16)
    a = G(z, s, labels=torch.tensor([0, 1, 2, 0]))
    b = G(z, s, labels=torch.tensor([1, 2, 0, 1]))
    assert not torch.equal(a, b)
    assert D(a, s).shape == (4, 4)
    with pytest.raises(ValueError, match="needs labels"):
        G(z, s)


# ------------------------------------------------------------------------------------- training script
def _read_log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


FAST = ["--preset", "cpu-demo", "--phase-kimg", "0.064", "--tick-kimg", "0.064", "--data", "synthetic:0:256"]


def test_cpu_demo_runs_every_stage_then_resumes_instead_of_starting_over(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*FAST, "--out", str(out), "--kimg", "0.256"]
    assert train_main(args) == 0
    log = _read_log(out)
    assert [r["resolution"] for r in log][:1] == [4] and log[-1]["kimg"] == 0.256
    assert {r["resolution"] for r in log} == {4, 8, 16}  # 0.256 kimg = stable 4, fade 8, stable 8, fade 16
    assert all(r["skipped_steps"] == 0 for r in log)
    assert all(all(v == v for v in r.values() if isinstance(v, float)) for r in log)  # no NaN
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*.pt"))
    assert checkpoints and checkpoints[-1].name == "checkpoint-000000000256.pt"
    assert (out / "generator.safetensors").is_file() and (out / "generator.json").is_file()
    assert len(list((out / "grids").glob("*.png"))) == len(log)
    capsys.readouterr()

    # The same command again: resumes, finds nothing left to do.
    assert train_main(args) == 0
    assert "resumed from" in capsys.readouterr().out
    assert len(_read_log(out)) == len(log)

    # A longer run in the same folder continues from 0.256 kimg up to the final resolution.
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.512"]) == 0
    more = _read_log(out)[len(log) :]
    assert more[0]["kimg"] > 0.256 and more[-1]["kimg"] == 0.512 and more[-1]["resolution"] == 32


def test_bf16_autocast_step_has_finite_losses(tmp_path):
    out = tmp_path / "bf16"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.128", "--precision", "bf16"]) == 0
    log = _read_log(out)
    assert log and all(abs(r["d_loss"]) < 1e6 and abs(r["g_loss"]) < 1e6 for r in log)
    assert all(r["skipped_steps"] == 0 for r in log)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "/nonexistent/folder"], "--data: /nonexistent/folder: no such file or folder; expected an image folder"),
        (["--resume", "/nonexistent/ckpt.pt"], "--resume: /nonexistent/ckpt.pt: no such checkpoint file"),
        (["--kimg", "-1"], "--kimg: expected a number > 0, got -1.0"),
        (["--phase-kimg", "0"], "--phase-kimg: expected a number > 0"),
        (["--checkpoint-ticks", "0"], "--checkpoint-ticks: expected an int ≥ 1, got 0"),
        (["--metrics", "fid,fidd"], "--metrics: unknown metric(s) fidd; available: fid, kid, is, swd, ms_ssim"),
        (["--inception-weights", "/nonexistent/w.pth"], "--inception-weights: /nonexistent/w.pth: no such file"),
        (["--data-workers", "-1"], "--data-workers: expected an int ≥ 0, got -1"),
    ],
)
def test_bad_input_is_a_clear_error_before_any_model_is_built(tmp_path, capsys, extra, message):
    assert train_main(["--preset", "cpu-demo", "--out", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_resume_from_a_different_preset_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.064"]) == 0
    capsys.readouterr()
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.064", "--no-mirror"]) == 2
    err = capsys.readouterr().err
    assert "was made with a different configuration; differing keys: preset.mirror" in err


def _labelled_folder(root, n=16, size=8):
    from PIL import Image

    root.mkdir()
    labels = []
    for i in range(n):
        colour = (255, 0, 0) if i % 2 else (0, 0, 255)
        Image.new("RGB", (size, size), colour).save(root / f"img{i:02d}.png")
        labels.append([f"img{i:02d}.png", i % 2])
    (root / "dataset.json").write_text(json.dumps({"labels": labels}))
    return root


def test_conditional_training_on_a_labelled_folder(tmp_path):
    data = _labelled_folder(tmp_path / "imgs", size=32)
    out = tmp_path / "cond"
    args = [
        "--preset",
        "cpu-demo",
        "--phase-kimg",
        "0.032",
        "--tick-kimg",
        "0.032",
        "--data",
        str(data),
        "--out",
        str(out),
        "--kimg",
        "0.064",
        "--cond",
    ]
    assert train_main(args) == 0
    log = _read_log(out)
    assert log[-1]["kimg"] == 0.064 and all(r["skipped_steps"] == 0 for r in log)
    from progrow.adapters.progan.export import load_generator

    G, config = load_generator(out / "generator")
    assert config["architecture"]["num_classes"] == 2 and G.net.num_classes == 2


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("regularize", [True, False])
def test_every_d_loss_calls_the_critic_on_the_reals_then_the_fakes(loss, regularize):
    # The conditional step takes the class logits of these two calls (adapters/progan/step.py).
    from dataclasses import replace

    from progrow.adapters.progan.presets import get_preset

    torch.manual_seed(0)
    reals, fakes = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x.square().flatten(1).sum(1, keepdim=True)

    d_loss, _ = LOSSES[loss]
    d_loss(replace(get_preset("cpu-demo"), loss=loss), critic, reals, fakes, regularize=regularize)
    assert len(seen) >= 2 and torch.equal(seen[0], reals) and torch.equal(seen[1], fakes)


def test_a_conditional_step_runs_the_discriminator_once_per_batch(tmp_path):
    from progrow.adapters.progan.distributed import DistInfo
    from progrow.adapters.progan.run import batch_size
    from progrow.adapters.progan.step import update
    from progrow.adapters.progan.train import build_parser, build_run, resolve_options
    from progrow.data import MultiResDataset

    cache = tmp_path / "cache"
    pg.build_cache(str(_labelled_folder(tmp_path / "imgs", size=32)), cache, resolution=32)
    args = build_parser().parse_args(["--preset", "cpu-demo", "--device", "cpu", "--data", str(cache), "--cond"])
    opts = resolve_options(args, DistInfo())
    opts.out = tmp_path / "run"
    run = build_run(opts, MultiResDataset(cache))
    calls = []
    forward = run.D_forward

    def counted(x, **kwargs):
        calls.append(tuple(x.shape))
        return forward(x, **kwargs)

    run.D_forward = counted
    state = run.scheduler.state_at(0)
    n = batch_size(state)
    torch.manual_seed(0)
    stats = update(run, state, torch.rand(n, 3, 4, 4) * 2 - 1, torch.randint(2, (n,)))
    # D step: the reals (R1 reuses that pass) and the fakes, whose class logits the auxiliary loss reads; G step: the fakes.
    assert calls == [(n, 3, 4, 4)] * 3
    assert run.last_step_ok and torch.isfinite(stats["d_loss"]) and torch.isfinite(stats["g_loss"])


def test_no_growing_trains_at_the_final_resolution_only(tmp_path):
    out = tmp_path / "flat"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.048", "--no-growing", "--tick-kimg", "0.016"]) == 0
    assert {(r["resolution"], r["phase"]) for r in _read_log(out)} == {(32, "stable")}


def test_channels_last_is_the_cpu_default_and_can_be_turned_off():
    from progrow.adapters.progan.distributed import DistInfo
    from progrow.adapters.progan.train import build_parser, resolve_options

    def resolved(*extra: str) -> bool:
        args = build_parser().parse_args(["--preset", "cpu-demo", "--device", "cpu", *extra])
        return resolve_options(args, DistInfo()).channels_last

    assert resolved() is True
    assert resolved("--no-channels-last") is False
    assert resolved("--channels-last") is True


def test_default_cpu_training_holds_the_networks_in_channels_last(tmp_path):
    from progrow.adapters.progan.distributed import DistInfo
    from progrow.adapters.progan.train import build_parser, build_run, resolve_options
    from progrow.data import MultiResDataset

    cache = tmp_path / "cache"
    pg.build_cache("synthetic:0:8", cache, resolution=32)
    for extra, expected in (([], torch.channels_last), (["--no-channels-last"], torch.contiguous_format)):
        args = build_parser().parse_args(["--preset", "cpu-demo", "--device", "cpu", "--data", str(cache), *extra])
        opts = resolve_options(args, DistInfo())
        opts.out = tmp_path / f"run-{len(extra)}"
        run = build_run(opts, MultiResDataset(cache))
        kernels = [p for net in (run.G, run.D) for p in net.parameters() if p.dim() == 4 and p.shape[-1] == 3]
        assert len(kernels) > 4 and all(k.is_contiguous(memory_format=expected) for k in kernels)


@pytest.mark.parametrize("extra", [["--no-channels-last"], ["--precision", "fp16"]])
def test_contiguous_and_fp16_gradscaler_runs(tmp_path, extra):
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.096", *extra]) == 0
    log = _read_log(out)
    assert log[-1]["kimg"] == 0.096 and {r["resolution"] for r in log} == {4, 8}
    ckpt = final_checkpoint(out)
    if "--precision" in extra:
        assert ckpt["scaler"]["scale"] > 0  # the GradScaler's state is checkpointed


def test_data_errors_are_reported_before_training(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train_main(["--preset", "cpu-demo", "--out", str(tmp_path / "o1"), "--data", str(empty)]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "Traceback" not in err
    small = _labelled_folder(tmp_path / "small", n=4, size=8)  # 8² images, the preset needs 32²
    assert train_main(["--preset", "cpu-demo", "--out", str(tmp_path / "o2"), "--data", str(small)]) == 2
    err = capsys.readouterr().err
    assert "img00.png" in err and "32" in err


def test_a_run_folder_is_not_reused_for_other_data(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.016"]) == 0
    capsys.readouterr()
    other = [a if a != "synthetic:0:256" else "synthetic:1:256" for a in FAST]
    assert train_main([*other, "--out", str(out), "--kimg", "0.016"]) == 2
    assert "was trained on synthetic:0:256" in capsys.readouterr().err


@pytest.mark.slow
def test_compiled_generator_trains(tmp_path):
    out = tmp_path / "compiled"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.096", "--compile"]) == 0
    log = _read_log(out)
    assert log[-1]["kimg"] == 0.096 and all(r["skipped_steps"] == 0 for r in log)


def test_swd_at_every_stage_end_in_the_log_and_a_plot(tmp_path):
    out = tmp_path / "metrics"
    args = [*FAST, "--out", str(out), "--kimg", "0.32", "--metrics", "swd,ms_ssim", "--metric-samples", "32"]
    assert train_main(args) == 0
    log = _read_log(out)
    with_swd = [r for r in log if any(k.startswith("swd@") for k in r)]
    # stage ends at 0.064 (4²), 0.192 (8²) and the end of the run (16² fading in at 0.32)
    assert [(r["kimg"], r["resolution"]) for r in with_swd] == [(0.064, 4), (0.192, 8), (0.32, 16)]
    for r in with_swd:
        assert r[f"swd@{r['resolution']}"] > 0 and 0 <= r[f"ms_ssim@{r['resolution']}"] <= 1
    assert (out / "plots" / "swd.png").stat().st_size > 1000


def test_fid_at_a_stage_end_with_local_inception_weights(tmp_path):
    from progrow.metrics import write_random_inception_weights

    weights = write_random_inception_weights(tmp_path / "inception.pth")
    out = tmp_path / "fid"
    args = [
        *FAST,
        "--out",
        str(out),
        "--kimg",
        "0.064",
        "--metrics",
        "fid",
        "--metric-samples",
        "16",
        "--inception-weights",
        str(weights),
    ]
    assert train_main(args) == 0
    last = _read_log(out)[-1]
    assert last["fid@4"] > 0 and "metrics_error" not in last


def _offline_without_weights(tmp_path, monkeypatch):
    """No Inception weights in the hub cache, and the download fails as it does without network."""
    import urllib.error

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "urlopen", offline)


def test_a_failing_metric_is_logged_keeps_the_others_and_training_continues(tmp_path, capsys, monkeypatch):
    _offline_without_weights(tmp_path, monkeypatch)
    out = tmp_path / "broken"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.096", "--metrics", "fid,swd", "--metric-samples", "16"]) == 0
    err = capsys.readouterr().err
    assert "warning: metrics fid failed at 4²: InceptionV3 weights for FID/KID/IS are not available" in err
    assert "--inception-weights /path/to/weights-inception-2015-12-05-6726825d.pth" in err and "weights_path" not in err
    log = _read_log(out)
    assert log[-1]["kimg"] == 0.096
    failed = [r for r in log if "metrics_error" in r]
    assert failed and all(
        r["metrics_error"].startswith("fid: InceptionV3 weights") and r[f"swd@{r['resolution']}"] > 0 for r in failed
    )


def test_a_run_whose_only_metric_fails_writes_no_metric_plot(tmp_path, capsys, monkeypatch):
    _offline_without_weights(tmp_path, monkeypatch)
    out = tmp_path / "broken"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.064", "--metrics", "fid", "--metric-samples", "16"]) == 0
    assert any("metrics_error" in r for r in _read_log(out))
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["losses.png"]  # no metric plot, empty or not


def test_the_loss_registry_names_every_preset_loss_and_refuses_others():
    from typing import get_args

    from progrow.adapters.progan.losses import LOSSES, losses_for
    from progrow.adapters.progan.presets import LossName

    assert set(LOSSES) == set(get_args(LossName))
    assert losses_for("lsgan") is LOSSES["lsgan"]
    with pytest.raises(ValueError, match=r"loss: unknown 'hinge'; expected one of wgan-gp, lsgan, logistic"):
        losses_for("hinge")  # no silent fallback to the logistic loss
