"""Real write failures, not simulated ones: a lowered file size limit (the kernel fails the write with EFBIG
inside torch's C++ zip writer, as a full disk does with ENOSPC) and, where it can be mounted, a small tmpfs.

Each ends with exit code 2, one `error:` line naming the folder, no traceback and no temporary file; the
previous checkpoint still loads and the run resumes from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from run_helpers import one_thread_env

from progrow.adapters.progan.train import main as train_main
from progrow.checkpoint import latest_checkpoint, load_checkpoint
from progrow.data import cli as data_cli

FAST = ["--preset", "cpu-demo", "--phase-kimg", "0.032", "--tick-kimg", "0.032", "--data", "synthetic:0:64"]
LIMIT = 200_000  # bytes: a log line, a grid and the `latest` pointer fit; a 2.6 MB checkpoint does not

_LIMITED = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    from progrow.adapters.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _run_limited(*argv: str, limit: int = LIMIT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _LIMITED.format(limit=limit), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=one_thread_env(),
    )


def _one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def _no_temporaries(root: Path) -> None:
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name], sorted(root.rglob("*"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run with one checkpoint at 0.032 kimg (copied per test)."""
    out = tmp_path_factory.mktemp("full") / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.032"]) == 0
    return out


def _resumes_from_the_previous_checkpoint(out: Path, capsys) -> None:
    path, payload = latest_checkpoint(out / "checkpoints")
    assert path.name == "checkpoint-000000000032.pt" and payload["nimg"] == 32
    capsys.readouterr()
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.064"]) == 0
    assert f"resumed from {path} at 0.032 kimg" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoints" / "checkpoint-000000000064.pt")["nimg"] == 64


def test_checkpoint_save_past_the_file_size_limit(trained, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    proc = _run_limited("train", *FAST, "--out", str(out), "--kimg", "0.064")
    assert proc.returncode == 2, proc.stderr
    line = _one_error(proc.stderr)
    assert line.startswith(f"error: could not write checkpoint-000000000064.pt in {out / 'checkpoints'} (")
    assert "the write stopped part-way, so the disk is full or a file size limit was reached" in line
    _no_temporaries(out)
    _resumes_from_the_previous_checkpoint(out, capsys)


def test_cache_build_past_the_file_size_limit(tmp_path):
    out = tmp_path / "cache"
    proc = _run_limited("dataset", "synthetic:0:64", str(out), "--resolution", "64")  # level_64.u8 is 786 kB
    assert proc.returncode == 2, proc.stderr
    line = _one_error(proc.stderr)
    assert line.startswith(f"progrow dataset: error: could not write the cache cache in {tmp_path} (")
    assert line.endswith("File too large; nothing was kept")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_train_building_its_cache_past_the_file_size_limit_leaves_no_run_folder(tmp_path):
    out = tmp_path / "run"
    proc = _run_limited("train", "--preset", "cpu-demo", "--data", "synthetic:0:200", "--out", str(out), "--kimg", "0.016")
    assert proc.returncode == 2, proc.stderr
    assert _one_error(proc.stderr).startswith(f"error: could not write the cache dataset in {out} (")
    assert not out.exists()


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs (root only; skipped where mounting is not allowed); yields a function to resize it."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)

    try:
        yield mount, resize
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_checkpoint_save_on_a_full_tmpfs(trained, tmpfs, capsys):
    mount, resize = tmpfs
    out = mount / "run"
    shutil.copytree(trained, out)  # ≈ 3.8 MB of 6 MB: the next 2.6 MB checkpoint does not fit
    capsys.readouterr()
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.064"]) == 2
    line = _one_error(capsys.readouterr().err)
    assert line.startswith(f"error: could not write checkpoint-000000000064.pt in {out / 'checkpoints'} (")
    _no_temporaries(out)
    resize("64m")
    _resumes_from_the_previous_checkpoint(out, capsys)


def test_a_cache_larger_than_the_free_space_is_refused_before_writing(tmpfs, capsys):
    mount, _ = tmpfs
    out = mount / "cache"
    assert data_cli.main(["synthetic:0:1000", str(out), "--resolution", "64"], prog="progrow dataset") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"building {out}: 1000 images, 3 channel(s), levels 4..64 (5), 16.4 MB (6.3 MB free)\n")
    line = _one_error(err)
    assert line == (
        f"progrow dataset: error: the cache of 1000 images at 64² (5 levels) needs 16.4 MB in {mount}, which has "
        "6.3 MB free; free some space, choose a folder on another disk, or build fewer or smaller images"
    )
    assert not list(mount.iterdir())


def test_paper_1024_with_the_demo_data_says_what_it_would_build_and_refuses(tmpfs, capsys):
    mount, _ = tmpfs
    out = mount / "run"
    assert train_main(["--preset", "paper-1024", "--out", str(out), "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert "note: --data synthetic is progrow's built-in demo set (drawn shapes), for trying the tool" in captured.out
    assert f"dataset: building {out / 'dataset'}: 10000 images, 3 channel(s), levels 4..1024 (9), 41.9 GB" in captured.out
    assert _one_error(captured.err).startswith("error: the cache of 10000 images at 1024² (9 levels) needs 41.9 GB")
    assert not out.exists() and not list(mount.iterdir())
