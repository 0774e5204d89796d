"""Temporary build folders (`<out>.tmp-<pid>`) left behind by processes that died: found and removed."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

__all__ = ["temporary_name", "remove_stale_temporaries"]


def temporary_name(out: Path, pid: int) -> Path:
    """The folder a build by process `pid` writes before it is renamed to `out`: `<out>.tmp-<pid>`."""
    return out.parent / f"{out.name}.tmp-{pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete every `<out>.tmp-<pid>` whose process no longer runs (and this process's own); return them."""
    if not out.parent.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(out.name)}\.tmp-(\d+)$")
    removed = []
    for entry in out.parent.iterdir():
        m = pattern.match(entry.name)
        if m and entry.is_dir() and (int(m.group(1)) == os.getpid() or not _alive(int(m.group(1)))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
