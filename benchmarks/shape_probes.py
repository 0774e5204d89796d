"""Why the main job draws blobs, not shapes: the `cpu-demo` main job on easier variants of the built-in shapes.

    python benchmarks/shape_probes.py                          # every probe, about 5–8 min each on 2 cores
    python benchmarks/shape_probes.py --probes palette,rectangles
    python benchmarks/shape_probes.py --quick                  # smoke mode: seconds, meaningless pictures

Each probe renders a variant of `SyntheticShapes` to an image folder at 32² (10,000 images, seed 0) and
runs the README's main job on it unchanged (`progrow train --preset cpu-demo`, 124k images), one probe
after another with `--threads` torch threads. Probes:
- `builtin`     progrow's `SyntheticShapes` as it is: 1–3 circles, rectangles and triangles of random colours
                and sizes (radius 0.08–0.3 of the image) on a random two-colour gradient;
- `palette`     the easy colours: one shape of the three kinds, radius 0.2–0.35, centred in 0.3–0.7, in one of
                six saturated colours, on a dark grey gradient;
- `rectangles`  as `palette`, rectangles only (one kind: no kinds to tell apart);
- `palette-cond` as `palette`, with the shape's kind as a class label (`--cond`: the kinds given, not learned).

Results: `probes.png` (for every probe finished in `--out`, by this call or an earlier one, real images
next to G_ema samples on fixed latents; the conditional probe's samples take the labels circle,
rectangle, triangle in turn), `probes.json`, and a table on stdout: images trained, CPU-seconds of the
training process, and the SWD (×10³, 32² and 16² bands as in `quality.py`) of G_ema against the probe's
own images next to the probe's real-vs-real floor. The SWD of different probes is on different data:
compare each with its own floor, and look at the picture. For `palette-cond` it also prints how often the
final discriminator's auxiliary classifier names the kind: of the real images, and of G_ema's images
asked for each kind in turn.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

import numpy as np
import torch
from PIL import Image, ImageDraw

from progrow import SyntheticShapes
from progrow.metrics.swd import swd

Probe = Literal["builtin", "palette", "rectangles", "palette-cond"]
PROBES: tuple[Probe, ...] = ("builtin", "palette", "rectangles", "palette-cond")
KINDS = ("circle", "rectangle", "triangle")
# Six saturated colours, far from each other and from the dark grey ground.
PALETTE = np.array(
    [(230, 40, 40), (40, 200, 60), (50, 80, 230), (240, 220, 40), (220, 60, 220), (40, 210, 220)], dtype=np.float32
)
RESOLUTION = 32
SHEET_TILES = 8  # real and generated images per probe in probes.png
SCALE = 3  # nearest-neighbour enlargement of every tile in probes.png


class PaletteShapes(SyntheticShapes):
    """One shape per image, radius 0.2–0.35, in a palette colour on a dark grey gradient; `kinds` limits its kind.

    Renders like `SyntheticShapes` (the same anti-aliased geometry); only the scene's draw differs.
    `label(index)` is the index of the shape's kind in `("circle", "rectangle", "triangle")`.
    """

    def __init__(self, *, kinds: Sequence[str] = KINDS, seed: int = 0, num_images: int = 10_000) -> None:
        super().__init__(seed=seed, num_images=num_images)
        self.kinds = tuple(kinds)

    def label(self, index: int) -> int:
        """The class label of image `index`: its shape's kind as an index into `KINDS`."""
        return KINDS.index(self._scene(index).shapes[0].kind)

    def _scene(self, index: int) -> Any:
        from progrow.data.synthetic import _make_shape, _Scene

        rng = np.random.default_rng([self.seed, index])
        grey0, grey1 = rng.uniform(30.0, 90.0, size=2)
        angle = float(rng.uniform(0.0, 2.0 * math.pi))
        kind = self.kinds[int(rng.integers(0, len(self.kinds)))]
        colour = PALETTE[int(rng.integers(0, len(PALETTE)))]
        cx, cy = rng.uniform(0.3, 0.7, size=2)
        size = float(rng.uniform(0.2, 0.35))
        extra = rng.uniform(0.0, 1.0, size=4)
        shape = _make_shape(kind, colour, float(cx), float(cy), size, extra)
        ground = np.full(3, grey0, np.float32), np.full(3, grey1, np.float32)
        return _Scene(ground[0], ground[1], angle, (shape,))


def probe_dataset(probe: Probe, num_images: int) -> SyntheticShapes:
    """The scene generator of `probe` (seed 0)."""
    if probe == "builtin":
        return SyntheticShapes(seed=0, num_images=num_images)
    return PaletteShapes(kinds=("rectangle",) if probe == "rectangles" else KINDS, num_images=num_images)


def write_folder(probe: Probe, folder: Path, num_images: int) -> None:
    """Render `probe`'s images to `folder` as PNGs at 32² (with a `dataset.json` of labels for `palette-cond`)."""
    ds = probe_dataset(probe, num_images)
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for i in range(num_images):
        name = f"{i:05d}.png"
        Image.fromarray(ds.render(i, RESOLUTION).transpose(1, 2, 0)).save(folder / name)
        if isinstance(ds, PaletteShapes):
            labels.append([name, ds.label(i)])
    if probe == "palette-cond":
        (folder / "dataset.json").write_text(json.dumps({"labels": labels}))


def reals(probe: Probe, start: int, count: int) -> torch.Tensor:
    """Images `start … start + count − 1` of `probe` at 32²: uint8 `[count, 3, 32, 32]`."""
    ds = probe_dataset(probe, start + count)
    return torch.from_numpy(np.stack([ds.render(i, RESOLUTION) for i in range(start, start + count)]))


def train(probe: Probe, data: str, run: Path, *, threads: int, quick: bool) -> dict[str, float]:
    """Run the main job on `data` into `run`; its CPU-seconds, wall seconds and kimg.

    A run that stopped part-way resumes, and then only the resumed part's time is counted.
    """
    cmd = [sys.executable, "-m", "progrow.adapters.progan.train", "--preset", "cpu-demo", "--data", data]
    cmd += ["--out", str(run)]
    if probe == "palette-cond":
        cmd.append("--cond")
    if quick:
        cmd += ["--phase-kimg", "0.064", "--tick-kimg", "0.064"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["(no output)"]
        print(f"error: the {probe} run failed (exit {done.returncode}): {last[0].removeprefix('error: ')}", file=sys.stderr)
        raise SystemExit(done.returncode)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return {"cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "kimg": float(records[-1]["kimg"])}


@torch.no_grad()
def samples(probe: Probe, run: Path, count: int, *, seed: int = 0) -> torch.Tensor:
    """`count` G_ema images of the run on latents of `seed`: uint8 `[count, 3, 32, 32]` (labels in turn if conditional)."""
    from progrow.adapters.progan.generate import load_any
    from progrow.images import to_uint8

    G = load_any(str(run))
    z = torch.randn(count, G.net.latent_dim, generator=torch.Generator().manual_seed(seed))
    kwargs = {"labels": torch.arange(count) % len(KINDS)} if probe == "palette-cond" else {}
    out = []
    for i in range(0, count, 256):
        out.append(to_uint8(G(z[i : i + 256], **{k: v[i : i + 256] for k, v in kwargs.items()})))
    return torch.cat(out)


def final_discriminator(run: Path) -> torch.nn.Module | None:
    """The run's discriminator from its latest checkpoint, at 32² (alpha 1), in eval mode; None without a checkpoint."""
    import progrow as pg
    from progrow.adapters.progan.export import discriminator_from_checkpoint
    from progrow.checkpoint import latest_checkpoint

    found = latest_checkpoint(run / "checkpoints")
    if found is None:
        return None
    D, _ = discriminator_from_checkpoint(found[0])
    D.set_state(pg.GrowthState(RESOLUTION))
    return D


@torch.no_grad()
def kind_accuracy(D: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch: int = 32) -> float:
    """How often D's auxiliary classifier (scores `[N, 1 + 3]`) names `labels` `[N]` of uint8 `images` `[N, 3, 32, 32]`."""
    from progrow.data import to_float

    hits = 0
    for i in range(0, len(images), batch):
        logits = D(to_float(images[i : i + batch]))[:, 1:]
        hits += int((logits.argmax(dim=1) == labels[i : i + batch]).sum())
    return hits / len(images)


def sheet_panel(title: str, real: torch.Tensor, fake: torch.Tensor) -> Image.Image:
    """Real tiles (left, 2 rows) and generated tiles (right), enlarged, under a caption."""

    def block(images: torch.Tensor) -> np.ndarray:
        tiles = [np.pad(t.permute(1, 2, 0).numpy(), ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in images]
        half = len(tiles) // 2
        return np.concatenate([np.concatenate(tiles[:half], axis=1), np.concatenate(tiles[half:], axis=1)], axis=0)

    left, right = block(real), block(fake)
    pair = np.concatenate([left, np.full((left.shape[0], 8, 3), 255, np.uint8), right], axis=1)
    img = Image.fromarray(pair).resize((pair.shape[1] * SCALE, pair.shape[0] * SCALE), Image.NEAREST)
    panel = Image.new("RGB", (img.width, img.height + 16), "white")
    panel.paste(img, (0, 16))
    ImageDraw.Draw(panel).text((2, 2), title, fill="black")
    return panel


def panel_title(probe: Probe) -> str:
    """The caption of `probe`'s panel in probes.png."""
    return f"{probe}: real | G_ema" + (" (labels circle, rectangle, triangle in turn)" if probe == "palette-cond" else "")


def write_sheet(panels: Sequence[Image.Image], path: Path) -> None:
    """The panels stacked top to bottom."""
    sheet = Image.new("RGB", (max(p.width for p in panels), sum(p.height + 6 for p in panels)), "white")
    y = 0
    for p in panels:
        sheet.paste(p, (0, y))
        y += p.height + 6
    sheet.save(path)


def usage_error(message: str) -> NoReturn:
    """One `error:` line on stderr, exit status 2 (as the training script's usage errors)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_probes(text: str) -> list[Probe]:
    """The probes named in `text` (comma-separated), in `PROBES` order; an unknown or empty list is a usage error."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in PROBES]
    if bad or not names:
        usage_error(f"--probes: unknown {', '.join(bad) or '(empty)'}; expected some of {','.join(PROBES)}")
    return [n for n in PROBES if n in names]  # type: ignore[misc]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probes", default=",".join(PROBES), help=f"comma-separated, of {','.join(PROBES)} (default: all)")
    ap.add_argument("--out", default="runs/shape-probes", help="folder for the data, the runs and the results")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each training run (default 2)")
    ap.add_argument("--samples", type=int, default=1000, help="images per SWD (default 1000)")
    ap.add_argument("--quick", action="store_true", help="smoke mode: 64 images, a few steps per phase")
    args = ap.parse_args(argv)
    probes = parse_probes(args.probes)
    for name, value in (("threads", args.threads), ("samples", args.samples)):
        if value < 1:
            usage_error(f"--{name}: expected an int ≥ 1, got {value}")
    num_images, count = (64, 32) if args.quick else (10_000, args.samples)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"shape probes: {', '.join(probes)}; the cpu-demo main job, {args.threads} thread(s) each", flush=True)
    results: dict[str, Any] = json.loads((out / "probes.json").read_text()) if (out / "probes.json").is_file() else {}
    panels: dict[str, Image.Image] = {}
    for probe in probes:
        run = out / probe
        if probe == "builtin":  # the main job's own source, rendered at every level
            data = f"synthetic:0:{num_images}"
        else:
            data = str(out / "data" / probe)
            if not (out / "data" / probe / f"{num_images - 1:05d}.png").is_file():
                write_folder(probe, out / "data" / probe, num_images)
        done = (run / "generator.safetensors").is_file() and "cpu_s" in results.get(probe, {})
        timing = (
            {k: results[probe][k] for k in ("cpu_s", "wall_s", "kimg")}
            if done
            else train(probe, data, run, threads=args.threads, quick=args.quick)
        )
        real_a, real_b = reals(probe, 0, count), reals(probe, count, count)
        fake = samples(probe, run, count)
        floor = swd(real_a, real_b, seed=0)["swd"]
        score = swd(fake, real_a, seed=0)
        results[probe] = {
            **timing,
            "swd": round(score["swd"], 1),
            "swd_32": round(score["swd_32"], 1),
            "swd_16": round(score["swd_16"], 1),
            "floor": round(floor, 1),
        }
        print(
            f"  {probe:<13} {timing['kimg']:6.1f} kimg  {timing['cpu_s']:7.1f} CPU-s  {timing['wall_s']:6.1f} s  "
            f"swd {score['swd']:6.1f} (real vs real {floor:.1f})",
            flush=True,
        )
        if probe == "palette-cond":  # does the final D tell the kinds, of the reals and of the fakes asked for each?
            D = final_discriminator(run)
            if D is None:
                print(f"  {'':<13} (no checkpoint in {run / 'checkpoints'}: no discriminator to read the kinds)", flush=True)
            else:
                ds = PaletteShapes(num_images=count)  # palette-cond's scenes (probe_dataset)
                real_labels = torch.tensor([ds.label(i) for i in range(count)])
                on_real = kind_accuracy(D, real_a, real_labels)
                on_fake = kind_accuracy(D, fake, torch.arange(count) % len(KINDS))
                results[probe] |= {"d_kind_real": round(on_real, 3), "d_kind_fake": round(on_fake, 3)}
                print(
                    f"  {'':<13} D's classifier names the kind of {on_real:.0%} of the real images and of "
                    f"{on_fake:.0%} of G_ema's images (each asked for a kind); chance is 33%",
                    flush=True,
                )
        panels[probe] = sheet_panel(panel_title(probe), real_a[:SHEET_TILES], fake[:SHEET_TILES])
        (out / "probes.json").write_text(json.dumps(results, indent=1))
    for probe in PROBES:  # the sheet shows every finished probe in --out, as probes.json does, not only this call's
        if probe not in panels and probe in results and (out / probe / "generator.safetensors").is_file():
            tiles = samples(probe, out / probe, SHEET_TILES)  # torch draws the same first latents for any count
            panels[probe] = sheet_panel(panel_title(probe), reals(probe, 0, SHEET_TILES), tiles)
    write_sheet([panels[p] for p in PROBES if p in panels], out / "probes.png")
    print(f"wrote {out / 'probes.json'}, {out / 'probes.png'}")
    return results


if __name__ == "__main__":
    main()
