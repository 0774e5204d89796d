"""The examples run as a user runs them: as scripts, in a fresh interpreter, at tiny sizes; each stands alone."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
ALL_PHASES_TO_16 = [[4, "stable"], [8, "fade"], [8, "stable"], [16, "fade"], [16, "stable"]]


def run_example(name: str, *args: str, marker: str = "summary:") -> Any:
    """Run `examples/<name>` with `args`; the JSON it prints after `marker`."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.split(marker, 1)[1])


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_each_example_stands_alone(path):
    """Examples are copied alone: none imports a sibling, nor a package the project does not depend on."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert not imported & {p.stem for p in EXAMPLES}
    assert not imported & {"torchvision"}  # not a dependency of progrow-gan


def test_minimal_loop_grows_4_to_16(tmp_path):
    summary = run_example("minimal_loop.py", "--kimg", "0.2", "--out", str(tmp_path))
    assert summary["resolution"] == 16 and summary["nimg"] == 1000
    assert summary["sample_shape"] == [16, 3, 16, 16] and summary["finite"]
    visited = [(p["resolution"], p["phase"]) for p in summary["phases"]]
    assert visited == [(4, "stable"), (8, "fade"), (8, "stable"), (16, "fade"), (16, "stable")]
    assert [p["kimg"] for p in summary["phases"]] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert (tmp_path / "samples.png").stat().st_size > 100


def test_fid_per_stage_scores_every_stage_end(tmp_path):
    from progrow.metrics import write_random_inception_weights

    weights = write_random_inception_weights(tmp_path / "inception.pth")
    results = run_example(
        "fid_per_stage.py", "--kimg", "0.05", "--samples", "8", "--inception-weights", str(weights), marker="results:"
    )
    assert [r["resolution"] for r in results] == [4, 8, 16]
    assert all(r["fid"] > 0 and r["swd"] > 0 for r in results)


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
