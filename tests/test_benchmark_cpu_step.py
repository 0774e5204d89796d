"""benchmarks/cpu_step.py: its smoke mode times the training script's own step, unconditional and conditional."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import cpu_step  # noqa: E402


def test_the_conditional_loop_trains_the_conditional_networks(tmp_path: Path) -> None:
    loop = cpu_step.Loop(tmp_path, 8, 0.5, channels_last=True, r1_interval=4, cond=True, steps=1)
    assert loop.run.num_classes == cpu_step.NUM_CLASSES
    assert loop.labels is not None and loop.labels.shape == (loop.batch,)
    with torch.no_grad():
        assert loop.run.D(loop.reals).shape == (loop.batch, 1 + cpu_step.NUM_CLASSES)
    before = [p.detach().clone() for p in loop.run.G.parameters()]
    loop.block()
    assert loop.run.last_step_ok
    assert any(not torch.equal(a, b) for a, b in zip(before, loop.run.G.parameters(), strict=True))
    plain = cpu_step.Loop(tmp_path, 8, 0.5, channels_last=True, r1_interval=4, cond=False, steps=1)
    assert plain.run.num_classes == 0 and plain.labels is None


def test_the_bf16_loop_trains_under_bf16_autocast(tmp_path: Path) -> None:
    from progrow.layers import EqualizedConv2d

    seen: set[torch.dtype] = set()
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        loop = cpu_step.Loop(tmp_path, 8, 0.5, channels_last=True, r1_interval=4, cond=False, precision=precision, steps=1)
        seen.clear()
        convs = [m for net in (loop.run.G, loop.run.D) for m in net.modules() if isinstance(m, EqualizedConv2d)]
        handles = [m.register_forward_hook(lambda module, args, out: seen.add(out.dtype)) for m in convs]
        loop.block()
        for handle in handles:
            handle.remove()
        assert loop.run.last_step_ok and seen == {dtype}, (precision, seen)


@pytest.mark.parametrize(
    ("extra", "columns", "target"),
    [
        (
            [],
            ["baseline", "channels_last", "lazy R1", "both"],
            r"  both ≥ 1\.05× the baseline at every stage: (MET|NOT MET) \(medians",
        ),
        (
            ["--cond"],
            ["unconditional", "conditional"],
            r"  conditional ≤ 1\.15× the unconditional step at every stage: (MET|NOT MET) \(medians",
        ),
        (
            ["--bf16"],
            ["fp32", "bf16"],
            r"  --precision bf16 (does not warn|warns that it is slower) on this CPU \(AMX tiles: (yes|no)\), "
            r"and bf16 is \d+\.\d\d× as fast as fp32 here: (MET|NOT MET)$",
        ),
    ],
)
def test_quick_prints_a_row_per_stage_and_the_targets(capsys: pytest.CaptureFixture[str], extra, columns, target) -> None:
    cpu_step.main(["--quick", "--threads", "1", *extra])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("stage "))
    assert [c.strip().removesuffix(" img/s") for c in header.split("|")[1 : 1 + len(columns)]] == columns
    rows = [line for line in out.splitlines() if re.match(r"^\d+² (fade|stable) ", line)]
    assert [r.split("|")[0].strip() for r in rows] == ["4² stable", "8² fade"]
    assert all(len(r.split("|")) == 2 * len(columns) for r in rows)
    assert re.search(target, out, re.MULTILINE)
