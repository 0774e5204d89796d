"""Disk space: the size of a cache before it is built, the free space of the disk it goes to, and the check."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from progrow.data.errors import DataError

__all__ = ["cache_bytes", "free_bytes", "format_bytes", "check_free_space"]

PathLike = Union[str, "os.PathLike[str]"]


def cache_bytes(num_images: int, num_channels: int, resolutions: Sequence[int]) -> int:
    """Bytes of the `level_R.u8` files of a cache: `num_images · num_channels · Σ R²`."""
    return num_images * num_channels * sum(r * r for r in resolutions)


def free_bytes(path: PathLike) -> int:
    """Free bytes for an unprivileged writer on the disk that holds `path` (or its nearest existing parent)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def format_bytes(count: int) -> str:
    """`count` bytes for a person: `512 B`, `3.4 MB`, `41.9 GB` (powers of 1000)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def check_free_space(path: PathLike, needed: int, *, what: str) -> None:
    """Raise `DataError` when the disk of `path` has fewer than `needed` free bytes; `what` names the content."""
    free = free_bytes(path)
    if needed > free:
        raise DataError(
            f"{what} needs {format_bytes(needed)} in {Path(path).absolute().parent}, which has "
            f"{format_bytes(free)} free; free some space, choose a folder on another disk, or build fewer "
            "or smaller images"
        )
