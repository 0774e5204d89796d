"""Metric plots of a run: one PNG per metric against kimg, with the stage boundaries marked (needs matplotlib)."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path

__all__ = ["plot_metrics"]

_METRIC_KEY = re.compile(r"^([a-z_]+)@(\d+)$")


def plot_metrics(log_path: Path, out_dir: Path) -> list[Path] | None:
    """Write `<out_dir>/<metric>.png` for every `metric@R` key in the JSONL log; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    series: dict[str, list[tuple[float, float, int]]] = {}
    for r in records:
        for key, value in r.items():
            m = _METRIC_KEY.match(key)
            if m and isinstance(value, (int, float)):
                series.setdefault(m.group(1), []).append((r["kimg"], float(value), int(m.group(2))))
    stage_starts = [b["kimg"] for a, b in pairwise(records) if b.get("stage") != a.get("stage")]
    written: list[Path] = []
    if series:
        out_dir.mkdir(parents=True, exist_ok=True)
    for name, points in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        for kimg, value, res in points:
            ax.annotate(f"{res}²", (kimg, value), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        for kimg in stage_starts:
            ax.axvline(kimg, color="grey", linewidth=0.6, linestyle="--")
        ax.set_xlabel("kimg")
        ax.set_ylabel(name)
        ax.set_title(f"{name} at each stage end (dashed: stage changes)")
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
