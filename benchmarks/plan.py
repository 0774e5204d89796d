"""The memory planner's own figures: plan time per preset and budget, and (on a GPU) how close a plan comes to its budget.

    python benchmarks/plan.py            # about 3 minutes on 2 CPU cores
    python benchmarks/plan.py --quick    # cpu-demo only

Plan time: `progrow plan`'s work (`plan_preset` on fake tensors: building the networks, the trial steps
counted by `MemoryCounter`, the search), per preset and budget, wall-clock in this process.

Budget use (CUDA only): the plan's batch at each resolution is run for real on the GPU, and
`torch.cuda.max_memory_allocated` of that step is divided by the budget. The count cannot see
convolution workspaces or allocator rounding; the safety margin is meant to keep this below 100 %.
Without CUDA the column is skipped, and the script says so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from progrow.adapters.progan.plan import PlanningRun, plan_preset, planning_options
from progrow.adapters.progan.presets import get_preset
from progrow.memory import CudaMeasure, format_bytes, parse_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import machine_header  # noqa: E402

CASES = [
    ("cpu-demo", "64MiB"),
    ("cpu-demo", "1GiB"),
    ("paper-1024", "32GiB"),
    ("paper-1024", "80GiB"),
    ("official-1024", "80GiB"),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="cpu-demo only")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    args = p.parse_args(argv)
    print(machine_header("plan.py: the memory planner (progrow plan) — plan time, and budget use on a GPU"), flush=True)
    cuda = torch.cuda.is_available()
    if not cuda:
        print("# no CUDA device here: the budget-use column (max_memory_allocated / budget) is skipped", flush=True)
    cases = [c for c in CASES if c[0] == "cpu-demo"] if args.quick else CASES
    head = f"{'preset':>13} | {'budget':>8} | {'plan time':>9} | {'trial steps':>11} | {'batch at final res':>18}"
    head += f" | {'GPU peak / budget (worst res)':>29}" if cuda else ""
    print("\n" + head + "\n" + "|".join("-" * len(c) for c in head.split("|")), flush=True)
    for name, budget_text in cases:
        budget = parse_bytes(budget_text)
        opts = planning_options(get_preset(name), precision=args.precision)
        start = time.perf_counter()
        plan, measure = plan_preset(opts, budget, max_batch=1024)
        seconds = time.perf_counter() - start
        steps = sum(len(r.measurements) for r in plan.rows)
        line = f"{name:>13} | {budget_text:>8} | {seconds:>7.1f} s | {steps:>11} | {plan.rows[-1].batch_size:>18}"
        if cuda:
            line += f" | {_gpu_use(opts, plan):>29}"
        print(line, flush=True)
    print(
        "\nplan time: wall-clock of plan_preset (fake tensors) in this process; trial steps: counted steps of the "
        "search (plus one uncounted step per resolution). Both progrow plan commands of the README run in about this "
        "time plus ~5 s of imports."
    )
    return 0


def _gpu_use(opts, plan) -> str:
    """Run each planned batch for real on the GPU; the largest max_memory_allocated / budget."""
    real = replace_device(opts)
    planning = PlanningRun(real, num_classes=0, img_channels=3, fake=False)
    measure = CudaMeasure(planning.step, optimizers=[planning.run.opt_g, planning.run.opt_d], device=real.device)
    worst = max((measure(r.resolution, r.per_rank) / plan.budget_bytes, r.resolution) for r in plan.rows)
    return f"{worst[0]:.1%} ({worst[1]}²; budget {format_bytes(plan.budget_bytes)})"


def replace_device(opts):
    from dataclasses import replace

    return replace(opts, device=torch.device("cuda"))


if __name__ == "__main__":
    sys.exit(main())
