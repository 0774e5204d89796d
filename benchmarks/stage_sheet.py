"""One picture of a training run: real images next to the G_ema grid written at the end of every stage.

    python benchmarks/stage_sheet.py runs/demo docs/cpu-demo-stages.png

Reads `log.jsonl` for the ticks where the stage changed (and the last tick), takes `grids/grid-<nimg>.png`
of each, and puts as many real images of the run's dataset (its top level, the same count as a grid)
in front, each grid enlarged to the same height with nearest neighbours, captioned with the stage.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from progrow import to_pil
from progrow.data import MultiResDataset

_CAPTION = 14
_GAP = 8


def stage_end_ticks(log: Path) -> list[dict]:
    """The last log record of every stage, in order: `[{"kimg", "resolution", …}, …]`."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    ends = [r for r, nxt in zip(records, records[1:], strict=False) if nxt["stage"] != r["stage"]]
    return ends + records[-1:]


def real_grid(dataset: MultiResDataset, n: int, cols: int, cell: int) -> Image.Image:
    """`n` real images of the dataset's top level (evenly spaced through it), `cols` a row, as `cell`-px tiles."""
    top = dataset.level(dataset.resolution)
    picks = np.linspace(0, len(top) - 1, n).astype(int)
    grid = Image.new("RGB", (cols * cell, math.ceil(n / cols) * cell))
    for i, k in enumerate(picks):
        tile = to_pil(torch.from_numpy(np.array(top[k]))).convert("RGB").resize((cell, cell), Image.NEAREST)  # a writable copy
        grid.paste(tile, ((i % cols) * cell, (i // cols) * cell))
    return grid


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="run folder (log.jsonl, grids/, dataset/)")
    p.add_argument("out", help="PNG to write")
    args = p.parse_args(argv)
    run = Path(args.run)
    ends = stage_end_ticks(run / "log.jsonl")
    grids = [Image.open(run / "grids" / f"grid-{round(e['kimg'] * 1000):09d}.png").convert("RGB") for e in ends]
    height = max(g.height for g in grids)
    r = ends[-1]["resolution"]
    tile = r * max(1, 64 // r)  # the training grid enlarges every image to at least 64 px
    cols, rows = grids[-1].width // tile, grids[-1].height // tile
    panels = [("real", real_grid(MultiResDataset(run / "dataset"), cols * rows, cols, height // rows))]
    for e, g in zip(ends, grids, strict=True):
        caption = f"{e['resolution']}x{e['resolution']}, {e['kimg']:g} kimg"
        panels.append((caption, g.resize((height * g.width // g.height, height), Image.NEAREST)))
    sheet = Image.new("RGB", (sum(im.width for _, im in panels) + _GAP * (len(panels) - 1), height + _CAPTION), "white")
    draw, x = ImageDraw.Draw(sheet), 0
    for caption, im in panels:
        draw.text((x, 0), caption, fill=(0, 0, 0))
        sheet.paste(im, (x, _CAPTION))
        x += im.width + _GAP
    out = Path(args.out)
    sheet.save(out)
    return out


if __name__ == "__main__":
    print(main())
