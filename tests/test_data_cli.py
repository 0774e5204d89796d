"""progrow.data: bad input through the API and the `python -m progrow.data` command line."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from data_helpers import REPO, make_mixed_folder, run_cli, write_folder
from PIL import Image

from progrow.data import (
    DataError,
    ImageSampler,
    MultiResDataset,
    build_cache,
)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mixed_folder(tmp_path_factory.mktemp("mixed"))


# --------------------------------------------------------------------------------------------------
# bad input: API and CLI
# --------------------------------------------------------------------------------------------------


def test_cli_help_lists_every_option_with_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    out = " ".join(out.split())  # argparse wraps lines
    for text in (
        "--resolution",
        "--min-resolution",
        "(default: 4)",
        "--crop {center,none}",
        "(default: center)",
        "--channels {keep,rgb}",
        "(default: keep)",
        "--upscale",
        "(default: off)",
        "--max-images",
        "(default: all)",
        "LANCZOS",
        "(a + b + c + d + 2) // 4",
        "composited over white",
    ):
        assert text in out, text


def test_cli_builds_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str], mixed_folder: Path) -> None:
    argv = [str(mixed_folder), str(tmp_path / "c"), "--resolution", "8", "--max-images", "3", "--channels", "rgb"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0
    assert err.startswith(f"building {tmp_path / 'c'}: 3 images, 3 channel(s), levels 4..8 (2), 720 B (") and err.count("\n") == 1
    assert out.count("\n") == 1 and "3 images, 3 channel(s)" in out and "4..8" in out
    assert MultiResDataset(tmp_path / "c").num_images == 3


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "no_images",
        "zip_without_images",
        "too_small",
        "not_square",
        "not_power_of_two",
        "out_not_empty",
        "bad_synthetic",
    ],
)
def test_cli_bad_input_exits_2_with_message(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    src = tmp_path / "src"
    src.mkdir()
    args: list[str]
    if case == "missing":
        args, expect = [str(tmp_path / "absent"), out, "--resolution", "8"], [f"{tmp_path / 'absent'}: no such file or folder"]
    elif case == "empty":
        args, expect = ["", out, "--resolution", "8"], ["empty path"]
    elif case == "no_images":
        (src / "a.txt").write_text("x")
        args, expect = [str(src), out, "--resolution", "8"], [f"{src}: no images found", ".png"]
    elif case == "zip_without_images":
        with zipfile.ZipFile(tmp_path / "z.zip", "w") as archive:
            archive.writestr("readme.txt", "x")
        args, expect = [str(tmp_path / "z.zip"), out, "--resolution", "8"], [f"{tmp_path / 'z.zip'}: the zip holds no images"]
    elif case == "too_small":
        write_folder(src, {"ok.png": Image.new("RGB", (16, 16)), "tiny.png": Image.new("RGB", (12, 10))})
        args, expect = [str(src), out, "--resolution", "16"], [f"{src / 'tiny.png'} is 12×10", "--upscale", "1 of 2 images"]
    elif case == "not_square":
        write_folder(src, {"wide.jpg": Image.new("RGB", (48, 32))})
        args = [str(src), out, "--resolution", "16", "--crop", "none"]
        expect = [f"{src / 'wide.jpg'} is 48×32", "not square", "--crop center"]
    elif case == "not_power_of_two":
        args, expect = ["synthetic", out, "--resolution", "48"], ["--resolution", "power of two", "'48'"]
    elif case == "out_not_empty":
        Path(out).mkdir()
        (Path(out) / "keep.txt").write_text("mine")
        args, expect = ["synthetic:0:4", out, "--resolution", "8"], [f"{out}: the output folder already holds files"]
    else:
        args, expect = ["synthetic:a:b", out, "--resolution", "8"], ["'synthetic:a:b'", "synthetic:SEED:N"]
    code, stdout, stderr = run_cli(capsys, *args)
    assert code == 2
    assert stdout == ""
    assert "Traceback" not in stderr
    for text in expect:
        assert text in stderr, (text, stderr)
    if case != "out_not_empty":
        assert not Path(out).exists()
    assert not list(tmp_path.glob("*.tmp-*"))


def test_api_bad_options_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"crop \(--crop\): expected one of 'center', 'none', got 'middle'"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=8, crop="middle")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"channels \(--channels\): expected one of 'keep', 'rgb'"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=8, channels="gray")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"resolution \(--resolution\): expected a power of two.*got 12"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=12)
    with pytest.raises(DataError, match=r"min_resolution.*≤ resolution \(8\), got 16"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=8, min_resolution=16)
    with pytest.raises(DataError, match=r"max_images \(--max-images\)"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=8, max_images=0)
    with pytest.raises(ValueError, match=r"world_size"):
        ImageSampler(MultiResDataset(build_cache("synthetic:0:2", tmp_path / "ok", resolution=8)), rank=2, world_size=2)


def test_python_m_entry_point(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run(
        [sys.executable, "-m", "progrow.data", "synthetic:0:20", str(tmp_path / "c"), "--resolution", "16"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{tmp_path / 'c'}: 20 images, 3 channel(s)")
    bad = subprocess.run(
        [sys.executable, "-m", "progrow.data", str(tmp_path / "absent"), str(tmp_path / "d"), "--resolution", "16"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"{tmp_path / 'absent'}: no such file or folder" in bad.stderr
