"""The failures a new user meets (issue 12's "Found" list): each one clear line, exit 2, before anything is built."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from run_helpers import one_thread_env

from progrow.adapters.cli import main as progrow_main
from progrow.adapters.progan import dataset as progan_dataset
from progrow.adapters.progan import train as T
from progrow.adapters.progan.presets import get_preset
from progrow.checkpoint import latest_checkpoint
from progrow.data import DataError, build_cache
from progrow.data.stale import remove_stale_temporaries

FAST = ["--preset", "cpu-demo", "--phase-kimg", "0.032", "--tick-kimg", "0.032"]


def _one_error(err: str) -> str:
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two caches of different content, a run trained on the first one, and a run trained on synthetic:0:64."""
    root = tmp_path_factory.mktemp("resume")
    cache_a = build_cache("synthetic:0:64", root / "cache-a", resolution=32)
    cache_b = build_cache("synthetic:1:64", root / "cache-b", resolution=32)
    on_cache, on_synthetic = root / "on-cache", root / "on-synthetic"
    assert T.main([*FAST, "--data", str(cache_a), "--out", str(on_cache), "--kimg", "0.032"]) == 0
    assert T.main([*FAST, "--data", "synthetic:0:64", "--out", str(on_synthetic), "--kimg", "0.032"]) == 0
    return {"a": cache_a, "b": cache_b, "on_cache": on_cache, "on_synthetic": on_synthetic, "root": root}


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if a model or a cache is built."""

    def forbidden(*args, **kwargs):
        raise AssertionError("built something before refusing")

    monkeypatch.setattr(T, "build_run", forbidden)
    monkeypatch.setattr(progan_dataset, "build_cache", forbidden)


@pytest.mark.parametrize(
    "given, saved_kind", [("synthetic", "cache"), ("b", "cache"), ("b", "synthetic"), ("synthetic:0:128", "synthetic")]
)
def test_resume_with_another_data_source_is_refused_before_anything_is_built(runs, given, saved_kind, nothing_built, capsys):
    out = runs["on_cache"] if saved_kind == "cache" else runs["on_synthetic"]
    data = str(runs[given]) if given in ("a", "b") else given
    capsys.readouterr()
    assert T.main([*FAST, "--data", data, "--out", str(out), "--kimg", "0.064"]) == 2
    line = _one_error(capsys.readouterr().err)
    saved = f"cache {runs['a'].resolve()} (sha256:" if saved_kind == "cache" else "synthetic:0:64,"
    given_text = {
        "synthetic": "synthetic:0:10000",
        "synthetic:0:128": "synthetic:0:128",
        "a": f"cache {runs['a'].resolve()}",
        "b": f"cache {runs['b'].resolve()}",
    }[given]
    assert line.startswith(f"error: --data: {latest_checkpoint(out / 'checkpoints')[0]} was trained on {saved}")
    assert f"but --data {data} is {given_text}" in line and "resume with the same data" in line


def _folder(root: Path, colour: int) -> Path:
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (colour, i * 40, 0)).save(root / f"{i}.png")
    return root


def test_resume_with_another_folder_is_refused_and_the_same_folder_resumes(tmp_path, capsys, monkeypatch):
    first, other = _folder(tmp_path / "first", 10), _folder(tmp_path / "other", 200)
    out = tmp_path / "run"
    assert T.main([*FAST, "--data", str(first), "--out", str(out), "--kimg", "0.032"]) == 0
    capsys.readouterr()
    built = []
    monkeypatch.setattr(T, "build_run", lambda *a, **k: built.append(1) or (_ for _ in ()).throw(AssertionError))
    assert T.main([*FAST, "--data", str(other), "--out", str(out), "--kimg", "0.064"]) == 2
    line = _one_error(capsys.readouterr().err)
    assert f"was trained on folder {first.resolve()}, but --data {other} is folder {other.resolve()}" in line
    assert not built
    monkeypatch.undo()
    assert T.main([*FAST, "--data", str(out / "dataset"), "--out", str(out), "--kimg", "0.064"]) == 0  # its own cache: same data


def test_a_text_file_is_not_a_checkpoint(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes\n")
    assert progrow_main(["generate", "--from", str(text), "--out", str(tmp_path / "out")]) == 2
    line = _one_error(capsys.readouterr().err)
    assert line == (
        f"error: --from: {text}: not a checkpoint (a torch.save file starts with a zip or pickle header; "
        "this one starts with b'thes')"
    )
    assert "weights_only" not in line


def test_generate_label_on_an_unconditional_generator(runs, tmp_path, capsys):
    assert progrow_main(["generate", "--from", str(runs["on_synthetic"]), "--out", str(tmp_path / "o"), "--label", "3"]) == 2
    assert _one_error(capsys.readouterr().err) == (
        "error: --label 3: the generator is unconditional (trained without --cond); leave --label out"
    )
    assert not (tmp_path / "o").exists()


def test_inception_weights_as_a_text_file(tmp_path, capsys):
    text = tmp_path / "weights.txt"
    text.write_text("not weights")
    assert T.main([*FAST, "--out", str(tmp_path / "run"), "--inception-weights", str(text)]) == 2
    line = _one_error(capsys.readouterr().err)
    assert line.startswith(f"error: --inception-weights: {text.resolve()} is not a torch state dict file")
    assert "weights-inception-2015-12-05-6726825d.pth" in line and "Please file an issue" not in line


def test_train_on_small_images_names_the_flags_that_train_has(tmp_path, capsys):
    src = tmp_path / "small"
    src.mkdir()
    Image.new("RGB", (16, 16)).save(src / "tiny.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "run"
    assert T.main([*FAST, "--data", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert _one_error(err) == "error: 2 of 2 images cannot be used, so nothing was written:"
    assert "1 too small for 32×32 (--upscale enlarges them, or choose a lower target resolution):" in err
    assert f"{src / 'tiny.png'} is 16×16, smaller than the target 32×32" in err
    assert "1 cannot be read (--bad-images skip leaves them out):" in err and f"{src / 'broken.png'}: cannot read" in err
    assert "--resolution" not in err and "upscale=True" not in err and "bad_images=" not in err
    assert not out.exists()  # the failed run left no empty run folder


def test_every_problem_of_a_source_in_one_message(tmp_path):
    """A truncated image found only when decoding and a too-small one are reported together, not in rounds."""
    src = tmp_path / "mixed"
    src.mkdir()
    buf = src / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf)
    (src / "cut.png").write_bytes(buf.read_bytes()[: buf.stat().st_size // 2])  # header fine, pixels missing
    Image.new("RGB", (8, 8)).save(src / "small.png")
    Image.new("RGB", (64, 40)).save(src / "wide.png")
    with pytest.raises(DataError) as info:
        build_cache(src, tmp_path / "out", resolution=32, crop="none")
    message = str(info.value)
    assert message.splitlines()[0] == "3 of 4 images cannot be used, so nothing was written:"
    assert "1 not square, so they cannot become 32×32 (--crop center crops the largest centred square):" in message
    assert "1 too small for 32×32 (--upscale enlarges them" in message and "1 cannot be read (--bad-images skip" in message
    assert f"{src / 'cut.png'}: cannot read the image" in message
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("*.tmp-*"))


def test_stale_temporaries_of_dead_builds_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"cache.tmp-{dead.pid}"
    live = tmp_path / f"cache.tmp-{os.getppid()}"  # a running process: maybe a build in progress
    for folder in (stale, live):
        folder.mkdir()
        (folder / "level_4.u8").write_bytes(b"x" * 10)
    build_cache("synthetic:0:4", tmp_path / "cache", resolution=4)
    assert not stale.exists() and live.exists()
    assert remove_stale_temporaries(tmp_path / "cache") == []


def test_sigterm_during_a_cache_build_removes_its_temporary(tmp_path):
    out = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, "-m", "progrow", "dataset", "synthetic:0:200000", str(out), "--resolution", "16"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=one_thread_env(),
    )
    deadline = time.time() + 60
    while time.time() < deadline and not any(
        (p / "level_16.u8").is_file() and (p / "level_16.u8").stat().st_size for p in tmp_path.glob("cache.tmp-*")
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())


def test_kimg_reports_the_real_figure(tmp_path, capsys):
    batch = get_preset("cpu-demo").schedule.batch_size
    assert T.main([*FAST, "--data", "synthetic:0:64", "--out", str(tmp_path / "run"), "--kimg", "0.04"]) == 0
    shown = -(-40 // batch) * batch  # whole minibatches until 40 images are passed: 64 for minibatches of 32
    assert f"done: {shown / 1000:.3f} kimg;" in capsys.readouterr().out


@pytest.mark.parametrize("amx", [False, True])
def test_half_precision_on_a_cpu_warns_once_where_it_is_slow(amx, capsys, monkeypatch):
    from progrow.adapters.progan import options
    from progrow.adapters.progan.distributed import DistInfo

    monkeypatch.setattr(options, "cpu_bf16_is_fast", lambda: amx)

    def warnings(precision: str) -> str:
        T.resolve_options(T.build_parser().parse_args(["--precision", precision, "--device", "cpu"]), DistInfo())
        return capsys.readouterr().err

    err = warnings("bf16")
    if amx:  # bf16 convolutions in AMX tiles beat fp32: nothing to warn of
        assert err == ""
    else:
        assert err.count("warning:") == 1
        assert "--precision bf16 on a CPU is slower than fp32 on a CPU without AMX tiles, as this one" in err
    err = warnings("fp16")
    assert err.count("warning:") == 1 and "--precision fp16 on a CPU is much slower than fp32 there" in err
    assert warnings("fp32") == "" and warnings("auto") == ""
    second_rank = DistInfo(rank=1, local_rank=1, world_size=2)
    quiet = T.resolve_options(T.build_parser().parse_args(["--precision", "bf16", "--device", "cpu"]), second_rank)
    assert quiet.precision == "bf16" and capsys.readouterr().err == ""  # only rank 0 speaks


def test_metrics_without_weights_keeps_swd_names_the_flag_and_the_real_file(runs, tmp_path, capsys, monkeypatch):
    import urllib.error

    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "urlopen", lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("offline")))
    out = tmp_path / "scores.json"
    code = progrow_main(
        [
            "metrics",
            "--from",
            str(runs["on_synthetic"]),
            "--data",
            str(runs["on_synthetic"] / "dataset"),
            "--metrics",
            "fid,swd",
            "--samples",
            "16",
            "--json",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    line = _one_error(captured.err)
    assert line.startswith("error: fid: InceptionV3 weights for FID/KID/IS are not available")
    assert "--inception-weights /path/to/weights-inception-2015-12-05-6726825d.pth" in line and "weights_path" not in line
    assert "swd" in captured.out and json.loads(out.read_text())["swd"] > 0


def test_metrics_shows_torch_fidelity_progress_on_a_terminal(runs, tmp_path, capsys, monkeypatch):
    from progrow.metrics import write_random_inception_weights

    weights = write_random_inception_weights(tmp_path / "w.pth")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert (
        progrow_main(
            [
                "fid",
                "--from",
                str(runs["on_synthetic"]),
                "--data",
                str(runs["on_synthetic"] / "dataset"),
                "--samples",
                "16",
                "--inception-weights",
                str(weights),
                "--device",
                "cpu",
                "--no-reference",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "16/16" in err and "error:" not in err


def test_python_m_progrow_and_version(tmp_path):
    env = one_thread_env()
    version = subprocess.run([sys.executable, "-m", "progrow", "--version"], capture_output=True, text=True, env=env)
    import progrow

    assert version.returncode == 0 and version.stdout == f"progrow {progrow.__version__}\n"
    helped = subprocess.run([sys.executable, "-m", "progrow", "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "generate" in helped.stdout
