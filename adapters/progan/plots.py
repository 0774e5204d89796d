"""Plots of a run from its `log.jsonl` (needs matplotlib): one PNG per metric, and the D and G losses, against kimg.

Both mark the stage changes. A log that goes back in kimg (a rollback to an earlier checkpoint logs those
ticks again) is read as the history that training continued from: the later records replace the earlier ones.
"""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path
from typing import Any

__all__ = ["plot_metrics", "plot_losses", "loss_figure", "read_log", "stage_changes", "fade_spans", "loss_keys"]

_METRIC_KEY = re.compile(r"^([a-z_]+)@(\d+)$")
_TERM_COLOURS = ["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def read_log(log_path: Path) -> list[dict[str, Any]]:
    """The tick records of `log_path` in kimg order, each kimg once (a later record replaces earlier ones from there on)."""
    records: list[dict[str, Any]] = []
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if not isinstance(record, dict) or not isinstance(record.get("kimg"), (int, float)):
            continue
        while records and records[-1]["kimg"] >= record["kimg"]:
            records.pop()
        records.append(record)
    return records


def stage_changes(records: list[dict[str, Any]]) -> list[tuple[float, int]]:
    """`(kimg, resolution)` where each stage after the first begins: the kimg of the last tick of the stage before.

    A record holds the state trained at (`stage`, `resolution`) and the kimg reached, so the tick that ends a
    stage carries the old stage and the kimg at which the new one starts.
    """
    return [(a["kimg"], b["resolution"]) for a, b in pairwise(records) if b.get("stage") != a.get("stage")]


def loss_keys(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The discriminator's (`d_loss` first, then its terms `d_*`) and the generator's (`g_*`) numeric keys in the log."""
    keys: dict[str, None] = {}
    for r in records:
        for key, value in r.items():
            if key.startswith(("d_", "g_")) and isinstance(value, (int, float)) and not isinstance(value, bool):
                keys[key] = None
    d = sorted((k for k in keys if k.startswith("d_")), key=lambda k: k != "d_loss")  # stable: the terms in log order
    g = sorted((k for k in keys if k.startswith("g_")), key=lambda k: k != "g_loss")
    return d, g


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_metrics(log_path: Path, out_dir: Path) -> list[Path] | None:
    """Write `<out_dir>/<metric>.png` for every `metric@R` key in the JSONL log; None without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    records = read_log(log_path)
    series: dict[str, list[tuple[float, float, int]]] = {}
    for r in records:
        for key, value in r.items():
            m = _METRIC_KEY.match(key)
            if m and isinstance(value, (int, float)):
                series.setdefault(m.group(1), []).append((r["kimg"], float(value), int(m.group(2))))
    changes = stage_changes(records)
    written: list[Path] = []
    if series:
        out_dir.mkdir(parents=True, exist_ok=True)
    for name, points in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        for kimg, value, res in points:
            ax.annotate(f"{res}²", (kimg, value), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        for kimg, _ in changes:
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


def plot_losses(log_path: Path, out_dir: Path) -> Path | None:
    """Write `<out_dir>/losses.png` (`loss_figure` of the log); None without matplotlib or before the first tick.

    The file is replaced whole, so a viewer never reads half of it.
    """
    try:
        fig = loss_figure(read_log(log_path))
    except ImportError:
        return None
    if fig is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "losses.png"
    tmp = out_dir / "losses.png.tmp"
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path


def loss_figure(records: list[dict[str, Any]]) -> Any:
    """The D loss and its terms above, the G loss below, against kimg (a matplotlib `Figure`; None without losses).

    Dashed lines mark the stage changes, each stage is labelled with its resolution at its start, and shading
    marks the fade-ins. Raises ImportError without matplotlib.
    """
    from matplotlib.figure import Figure  # no pyplot: no global figure state, nothing to close

    d_keys, g_keys = loss_keys(records)
    if not d_keys and not g_keys:
        return None
    fig = Figure(figsize=(9, 5.5), dpi=100)
    ax_d, ax_g = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for ax, keys, who in ((ax_d, d_keys, "D"), (ax_g, g_keys, "G")):
        for i, key in enumerate(keys):
            points = [(r["kimg"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            total = key in ("d_loss", "g_loss")
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                label=f"{who} loss" if total else key[2:].replace("_", " "),
                color="black" if total else _TERM_COLOURS[(i - 1) % len(_TERM_COLOURS)],
                linewidth=1.6 if total else 1.1,
                marker="." if len(points) <= 60 else None,
                markersize=5,
            )
        ax.set_ylabel(f"{who} loss and terms" if len(keys) > 1 else f"{who} loss")
        ax.grid(True, color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
        if keys:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, borderaxespad=0)
    _mark_stages(ax_d, ax_g, records)
    ax_g.set_xlim(left=0)
    ax_g.set_xlabel("kimg")
    ax_d.set_title("losses at each tick    (dashed: stage changes, shaded: fade-in)", fontsize=10, loc="left")
    fig.subplots_adjust(left=0.08, right=0.82, top=0.93, bottom=0.09, hspace=0.08)  # fixed: tight_layout costs a draw
    return fig


def _mark_stages(ax_d: Any, ax_g: Any, records: list[dict[str, Any]]) -> None:
    """Stage changes as dashed lines, each stage labelled with its resolution at its start; fade-in ticks shaded."""
    starts = [(0.0, records[0]["resolution"]), *stage_changes(records)]
    for i, (kimg, resolution) in enumerate(starts):
        if i:
            for ax in (ax_d, ax_g):
                ax.axvline(kimg, color="0.45", linewidth=0.8, linestyle="--")
        label = ax_d.annotate(
            f"{resolution}²", (kimg, 1), xycoords=("data", "axes fraction"), xytext=(3, -3), textcoords="offset points",
            va="top", fontsize=9, color="0.25",
        )  # fmt: skip
        label.set_bbox({"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    for lo, hi in fade_spans(records):
        for ax in (ax_d, ax_g):
            ax.axvspan(lo, hi, color="tab:blue", alpha=0.08, linewidth=0)


def fade_spans(records: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """`(start, end)` kimg of each fade-in in the log, cut at its last record.

    A fade starts at its stage change; its end follows from the alpha of its last tick, which is that of the
    state before the tick's last step (`kimg` - `batch_size` images), as alpha grows linearly from the start.
    """
    spans = []
    start, stage_records = 0.0, []
    for i, r in enumerate(records):
        stage_records.append(r)
        if i + 1 < len(records) and records[i + 1].get("stage") == r.get("stage"):
            continue
        fades = [x for x in stage_records if x.get("phase") == "fade"]
        if fades:
            end = max(x["kimg"] for x in fades)
            measured = [x for x in fades if x.get("alpha", 0) > 0 and isinstance(x.get("batch_size"), int)]
            if measured:
                last = measured[-1]
                end = start + (last["kimg"] - last["batch_size"] / 1000 - start) / last["alpha"]
            spans.append((start, min(end, records[-1]["kimg"])))
        start, stage_records = r["kimg"], []
    return spans
