"""Memory budgets as text: `80GiB`, `80 GB`, `512MiB`, `8e10` (bytes); the free memory of a device (`auto`)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

__all__ = ["parse_bytes", "format_bytes", "free_memory"]

# Decimal (SI) units are powers of 1000, binary (IEC) units powers of 1024: 80GB = 8·10¹⁰ bytes, 80GiB = 80·2³⁰.
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_PATTERN = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(text: str, *, option: str = "memory") -> int:
    """Bytes from `80GiB`, `80 GiB`, `80GB`, `1.5TB`, `512MiB`, `8e10` or `8e10B`; `ValueError` naming `option` otherwise.

    GB / MB / kB / TB are decimal (10⁹, 10⁶, 10³, 10¹²), GiB / MiB / KiB / TiB binary (2³⁰, 2²⁰, 2¹⁰, 2⁴⁰);
    units are case-insensitive; a bare number is bytes. The result is rounded down to whole bytes and must be ≥ 1.
    """
    match = _PATTERN.match(text) if isinstance(text, str) else None
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"{option}: cannot read {text!r} as an amount of memory; expected a number with an optional unit, "
            "e.g. 80GiB, 80GB, 512MiB or 8e10 (bytes; GB = 10⁹, GiB = 2³⁰)"
        )
    value = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{option}: expected a positive memory budget (at least 1 byte), got {text!r}")
    return int(value)


def format_bytes(n: float) -> str:
    """`n` bytes in binary units, 3 significant digits: `1.50 GiB`, `812 MiB`, `96 B`."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value >= 100 else f"{value:.2f} {unit}"
    return f"{n:.0f} B"


def free_memory(device: torch.device | str) -> int:
    """The memory free for tensors now: `torch.cuda.mem_get_info` on CUDA; `MemAvailable` of /proc/meminfo on a CPU.

    Raises `ValueError` where neither is available (a CPU without /proc/meminfo, another device type).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    if dev.type == "cpu":
        meminfo = Path("/proc/meminfo")
        if meminfo.is_file():
            for line in meminfo.read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        raise ValueError("auto: this system does not report its available memory (/proc/meminfo); give a budget")
    raise ValueError(f"auto: cannot tell the free memory of a {dev.type} device; give a budget")
