"""Run folders: remove one that a failed invocation created and left without a single file."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["remove_empty_tree"]


def remove_empty_tree(root: Path) -> bool:
    """Remove `root` if it and every folder below it hold no file (never a file); True if it is gone."""
    if not root.is_dir():
        return not root.exists()
    if any(files for _, _, files in os.walk(root)):
        return False
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(Path(entry[0]).parts)):
        try:
            os.rmdir(folder)
        except OSError:
            return False
    return True
