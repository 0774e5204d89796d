"""Helpers of the tests that run the reference training script: a fast command line and its checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import progrow as pg

# cpu-demo in a few seconds: 64-image phases, a tick every 32 images, 256 synthetic images.
FAST = ["--preset", "cpu-demo", "--phase-kimg", "0.064", "--tick-kimg", "0.032", "--data", "synthetic:0:256"]


def newest_checkpoint(out: Path) -> Path:
    """The newest `checkpoint-*.pt` of a run's `--out` folder, whether it loads or not."""
    found = pg.list_checkpoints(out / "checkpoints")
    assert found, f"no checkpoint in {out / 'checkpoints'}"
    return found[-1]


def final_checkpoint(out: Path) -> dict[str, Any]:
    """The newest checkpoint of a run, loaded (`weights_only`)."""
    return torch.load(newest_checkpoint(out), weights_only=True)
