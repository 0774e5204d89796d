"""Shared helpers of the benchmarks: interleaved timing, ratio summaries, machine header, peak RSS in a subprocess.

Every figure the benchmarks print is a ratio against a baseline measured in the same run: the variants
run in alternating order (A B, B A, A B, …), one block of steps each per round, so a slow period of a
shared machine hits every variant of that round; ratios are taken within a round and summarised as
median and min–max over rounds.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = ["interleave", "summary", "fmt_ratio", "cpu_model", "machine_header", "peak_rss_subprocess", "current_rss_mib"]


def interleave(blocks: Mapping[str, Callable[[], object]], *, rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each block, `rounds` times, in alternating order; `warmup` untimed calls each first.

    Round k runs the blocks in the given order when k is even and reversed when k is odd (A B, B A, …).
    """
    names = list(blocks)
    for _ in range(warmup):
        for name in names:
            blocks[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for k in range(rounds):
        for name in names if k % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            blocks[name]()
            times[name].append(time.perf_counter() - start)
    return times


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def fmt_ratio(values: Sequence[float], spec: str = ".2f", suffix: str = "×") -> str:
    """`median (min–max)` of ratios, e.g. `1.07× (1.01–1.12)`."""
    med, lo, hi = summary(values)
    return f"{med:{spec}}{suffix} ({lo:{spec}}–{hi:{spec}})"


def cpu_model() -> str:
    """The CPU's model name (`model name` of /proc/cpuinfo on Linux), e.g. `Intel(R) Xeon(R) Processor @ 2.60GHz`."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return cpu


def machine_header(title: str) -> str:
    """One comment line: what ran, where, and how loaded the machine was when it started."""
    import torch

    try:
        load = ", load average {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())
    except OSError:
        load = ""
    return (
        f"# {title} — {cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads{load}, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def current_rss_mib() -> float:
    """This process's resident set size now, MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, MiB: `VmHWM` of /proc/self/status on Linux.

    Not `ru_maxrss`: Linux carries that across fork + exec, so a child started by a large parent would
    report the parent's size; `VmHWM` belongs to the process's own address space.
    """
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        return kib / 1024
    except (OSError, StopIteration, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def peak_rss_subprocess(script: str, args: Sequence[str], *, timeout: float = 300) -> dict:
    """Run `python script *args` in a fresh process and return the JSON object it prints on its last line."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
