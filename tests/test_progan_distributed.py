"""Data parallelism of the training script on CPU: 2 ranks with gloo under torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from progrow.adapters.progan.distributed import DistInfo
from progrow.adapters.progan.presets import get_preset
from progrow.adapters.progan.train import UsageError, build_parser, resolve_options

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out, kimg: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(HERE / "ddp_worker.py"),
        str(out),
        "--preset",
        "cpu-demo",
        "--data",
        "synthetic:0:128",
        "--phase-kimg",
        "0.064",
        "--tick-kimg",
        "0.064",
        "--kimg",
        kimg,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _ranks(out):
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def test_two_ranks_stay_identical_through_a_stage_change(tmp_path):
    out = tmp_path / "ddp"
    _torchrun(out, "0.16")
    r0, r1 = _ranks(out)
    assert r0["world_size"] == r1["world_size"] == 2 and r0["nimg"] == r1["nimg"] == 160
    for key in ("G", "D", "G_ema"):
        assert r0[key].keys() == r1[key].keys()
        for name in r0[key]:
            assert torch.equal(r0[key][name], r1[key][name]), f"{key}.{name} differs between ranks"
    # training moved the weights, and went through a stage change (4² → 8² at 0.064 kimg)
    assert (out / "checkpoints" / "checkpoint-000000000064.pt").is_file()
    log = (out / "log.jsonl").read_text().splitlines()
    assert any('"resolution": 8' in line for line in log)


def test_two_rank_resume_equals_an_uninterrupted_two_rank_run(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    _torchrun(straight, "0.16")
    _torchrun(split, "0.096")
    _torchrun(split, "0.16")
    for a, b in zip(_ranks(straight), _ranks(split), strict=True):
        assert a["nimg"] == b["nimg"] == 160 and a["sampler"] == b["sampler"]
        for key in ("G", "D", "G_ema"):
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), f"rank state {key}.{name} differs after resume"


def test_a_signal_on_one_rank_stops_both_at_the_same_step(tmp_path):
    import signal
    import time

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(HERE / "ddp_worker.py"),
        str(out),
        "--preset",
        "cpu-demo",
        "--data",
        "synthetic:0:128",
        "--phase-kimg",
        "0.064",
        "--tick-kimg",
        "0.032",
        "--kimg",
        "100",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.05)
    os.kill(int((out / "pid1").read_text()), signal.SIGTERM)  # rank 1 only
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    r0, r1 = _ranks(out)
    assert r0["stopped_by"] == r1["stopped_by"] == signal.SIGTERM
    assert r0["nimg"] == r1["nimg"] and 96 <= r0["nimg"] < 100_000
    assert (out / "checkpoints" / f"checkpoint-{r0['nimg']:012d}.pt").is_file()  # rank 0 wrote the stop checkpoint
    for name in r0["G"]:
        assert torch.equal(r0["G"][name], r1["G"][name])


def test_a_batch_that_does_not_split_over_the_ranks_is_refused():
    args = build_parser().parse_args(["--preset", "cpu-demo", "--out", "/tmp/unused"])
    batch = get_preset("cpu-demo").schedule.batch_size  # not a multiple of 3
    with pytest.raises(UsageError, match=rf"batch_size: expected a multiple of batch_multiple \(3\), got {batch} \(with 3 ranks"):
        resolve_options(args, DistInfo(rank=0, world_size=3))
