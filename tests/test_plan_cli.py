"""`progrow plan` prints a table that shrinks with resolution and grows with the budget; `progrow train --batch-memory`."""

from __future__ import annotations

import json
import re

import pytest

from progrow.adapters.cli import main as progrow
from progrow.adapters.progan import train as T


def _table(out: str) -> dict[int, int]:
    """Resolution → planned batch, read from the printed table."""
    rows = re.findall(r"^\s*(\d+)² \|\s*(\d+)\*? \|", out, flags=re.MULTILINE)
    return {int(r): int(b) for r, b in rows}


def _plan(capsys, *argv: str) -> dict[int, int]:
    assert progrow(["plan", *argv]) == 0
    out = capsys.readouterr().out
    assert "peak / rank" in out and "Estimated wall-clock" in out
    return _table(out)


def test_plan_batches_shrink_with_resolution_and_grow_with_the_budget(capsys, tmp_path):
    small = _plan(capsys, "--preset", "cpu-demo", "--memory", "32MiB", "--precision", "fp32")
    large = _plan(capsys, "--preset", "cpu-demo", "--memory", "96MiB", "--precision", "fp32", "--json", str(tmp_path / "p.json"))
    assert list(small) == [4, 8, 16, 32] == list(large)
    for table in (small, large):
        batches = list(table.values())
        assert batches == sorted(batches, reverse=True) and batches[0] > batches[-1]
    assert all(large[r] > small[r] for r in small)
    record = json.loads((tmp_path / "p.json").read_text())
    assert {int(r): b for r, b in record["batch_size_per_res"].items()} == large
    assert record["budget_bytes"] == 96 * 2**20 and all(row["peak_bytes"] <= record["usable_bytes"] for row in record["rows"])


def test_plan_with_ranks_gives_multiples_of_the_ranks(capsys):
    table = _plan(capsys, "--preset", "cpu-demo", "--memory", "48MiB", "--precision", "fp32", "--nproc", "4", "--pow2")
    assert all(b % 4 == 0 and b & (b - 1) == 0 for b in table.values())


@pytest.mark.slow
def test_plan_paper_1024_for_32_and_80_gib(capsys):
    """The README's command (about 40 s each on 2 busy CPU cores): counted on fake tensors, no 1024² memory."""
    small = _plan(capsys, "--preset", "paper-1024", "--memory", "32GiB")
    large = _plan(capsys, "--preset", "paper-1024", "--memory", "80GiB")
    assert list(small) == [4, 8, 16, 32, 64, 128, 256, 512, 1024]
    for table in (small, large):
        batches = list(table.values())
        assert batches == sorted(batches, reverse=True) and batches[-1] < batches[0]
    assert all(large[r] >= small[r] for r in small) and large[1024] > small[1024]


def _train(tmp_path, *extra: str, kimg: str = "0.032") -> int:
    argv = ["--preset", "cpu-demo", "--data", "synthetic:0:16", "--out", str(tmp_path / "run"), "--kimg", kimg]
    return T.main([*argv, "--phase-kimg", "0.016", "--tick-kimg", "0.016", *extra])


def test_train_with_batch_memory_records_the_plan_and_keeps_it_on_resume(tmp_path, capsys):
    assert _train(tmp_path, "--batch-memory", "48MiB") == 0
    out = capsys.readouterr().out
    assert "batch table planned for 48.00 MiB per device" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    plan = config["batch_plan"]
    planned = {int(r): b for r, b in plan["batch_size_per_res"].items()}
    assert set(planned) == {4, 8, 16, 32} and list(planned.values()) == sorted(planned.values(), reverse=True)
    assert plan["budget_bytes"] == 48 * 2**20
    assert {int(r): b for r, b in config["identity"]["preset"]["schedule"]["batch_size_per_res"].items()} == planned
    # Resume: the recorded table, not a new plan (another budget would plan another one).
    assert _train(tmp_path, "--batch-memory", "96MiB", kimg="0.048") == 0
    out = capsys.readouterr().out
    assert "keeping the batch table planned when this run started" in out and "batch table planned for" not in out
    # Resuming a --batch-memory run without it: its batch table differs from the preset's, and the error says so.
    assert _train(tmp_path, kimg="0.064") == 2
    assert "batch_size_per_res" in capsys.readouterr().err
