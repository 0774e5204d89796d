"""The three 'make your network growable' examples run as a user runs them: as scripts, at tiny sizes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALL_PHASES_TO_16 = [[4, "stable"], [8, "fade"], [8, "stable"], [16, "fade"], [16, "stable"]]


def run_example(name: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.split("summary:", 1)[1])


def test_protocol_route():
    summary = run_example("make_growable_protocol.py", "--steps", "15")
    assert summary["phases"] == ALL_PHASES_TO_16
    assert summary["sample_shape"] == [4, 3, 16, 16] and summary["finite"]


def test_sequential_route_grows_the_dcgan_tutorial_to_64():
    summary = run_example("make_growable_sequential.py", "--steps", "18", "--ngf", "4", "--ndf", "4")
    assert summary["phases"] == [[4, "stable"]] + [[r, p] for r in (8, 16, 32, 64) for p in ("fade", "stable")]
    assert summary["sample_shape"] == [4, 3, 64, 64] and summary["finite"]
    assert summary["dropped"] == ["layer 12 (ConvTranspose2d)", "layer 13 (Tanh)", "layer 0 (Conv2d)", "layer 1 (LeakyReLU)"]


@pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="the lightning extra is not installed")
def test_lightning_route(tmp_path):
    summary = run_example("make_growable_lightning.py", "--steps", "15", "--out", str(tmp_path))
    assert summary["done"] and summary["resolution"] == 16 and summary["finite"]
    assert summary["logged"]["growth/resolution"] == 16.0 and summary["logged"]["growth/alpha"] == 1.0
    assert (tmp_path / "last.ckpt").stat().st_size > 0
