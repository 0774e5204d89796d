"""Helpers of the tests that run the reference training script: a fast command line and its checkpoints."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

import progrow as pg

# cpu-demo in a few seconds: 64-image phases, a tick every 32 images, 256 synthetic images.
FAST = ["--preset", "cpu-demo", "--phase-kimg", "0.064", "--tick-kimg", "0.032", "--data", "synthetic:0:256"]


# A run compared bit for bit across processes runs on one CPU thread. On two threads about 2 new processes
# in 100 compute their first step's discriminator forward differently in the last bits (the same reals,
# weights and RNG state; also with oneDNN off; 0 in 108 on one thread), so an exact comparison across
# processes on two threads would test torch's CPU kernels, not the resume.
def one_thread_env() -> dict[str, str]:
    """This process's environment (as it is now) with torch's CPU threads set to one, for a subprocess."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run this process's torch on one thread (as a subprocess started with `one_thread_env()`), then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def newest_checkpoint(out: Path) -> Path:
    """The newest `checkpoint-*.pt` of a run's `--out` folder, whether it loads or not."""
    found = pg.list_checkpoints(out / "checkpoints")
    assert found, f"no checkpoint in {out / 'checkpoints'}"
    return found[-1]


def final_checkpoint(out: Path) -> dict[str, Any]:
    """The newest checkpoint of a run, loaded (`weights_only`)."""
    return torch.load(newest_checkpoint(out), weights_only=True)


def assert_same_run(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two loaded checkpoints hold the same training, bit for bit: G, D, G_ema, both Adams' states, the data
    order, the position, and the stage anchor's copy when there is one."""
    for part in ("G", "D"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name}"
    for name in a["G_ema"]["module"]:
        assert torch.equal(a["G_ema"]["module"][name], b["G_ema"]["module"][name]), f"G_ema.{name}"
    for opt in ("opt_g", "opt_d"):
        for key, state in a[opt]["state"].items():
            for field, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(b[opt]["state"][key][field])), f"{opt}.{key}.{field}"
    assert a["sampler"] == b["sampler"] and a["scheduler"]["nimg"] == b["scheduler"]["nimg"]
    anchor_a, anchor_b = a.get("anchor"), b.get("anchor")
    assert (anchor_a is None) == (anchor_b is None), "one run has a stage anchor, the other none"
    if anchor_a is not None and anchor_b is not None:
        assert anchor_a["stage"] == anchor_b["stage"]
        copy_a, copy_b = anchor_a["snapshot"] or {}, anchor_b["snapshot"] or {}
        assert copy_a.keys() == copy_b.keys()
        for name, value in copy_a.items():
            assert torch.equal(value, copy_b[name]), f"anchor.{name}"
