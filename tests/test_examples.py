"""The examples run as a user runs them: as scripts, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, *args: str, timeout: float = 300) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_minimal_loop_grows_4_to_16(tmp_path):
    out = run_example("minimal_loop.py", "--kimg", "0.2", "--out", str(tmp_path))
    summary = json.loads(out.split("summary:", 1)[1])
    assert summary["resolution"] == 16 and summary["nimg"] == 1000
    assert summary["sample_shape"] == [16, 3, 16, 16] and summary["finite"]
    visited = [(p["resolution"], p["phase"]) for p in summary["phases"]]
    assert visited == [(4, "stable"), (8, "fade"), (8, "stable"), (16, "fade"), (16, "stable")]
    assert [p["kimg"] for p in summary["phases"]] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert (tmp_path / "samples.png").stat().st_size > 100


def test_fid_per_stage_scores_every_stage_end(tmp_path):
    from progrow.metrics import write_random_inception_weights

    weights = write_random_inception_weights(tmp_path / "inception.pth")
    out = run_example("fid_per_stage.py", "--kimg", "0.05", "--samples", "8", "--inception-weights", str(weights))
    results = json.loads(out.split("results:", 1)[1])
    assert [r["resolution"] for r in results] == [4, 8, 16]
    assert all(r["fid"] > 0 and r["swd"] > 0 for r in results)
