"""`build_cache`: decode a source once into a directory of uint8 image pyramids (see `progrow.data.layout`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from progrow.data.errors import DataError
from progrow.data.interrupt import terminate_as_exit
from progrow.data.layout import FORMAT_NAME, FORMAT_VERSION, LABELS_FILE, META_FILE, level_file
from progrow.data.resize import SIZE_HINTS, Crop, check_crop
from progrow.data.sources import Channels, SourceSpec, check_channels, open_source
from progrow.data.space import cache_bytes, check_free_space, format_bytes, free_bytes
from progrow.data.stale import remove_stale_temporaries, temporary_name
from progrow.state import is_power_of_two

BadImagePolicy = Literal["error", "skip"]
BAD_IMAGE_POLICIES = ("error", "skip")

__all__ = ["build_cache", "box_downsample_u8", "CachePlan"]

_MAX_LISTED = 5  # images listed by name per kind of size problem

PYRAMID_RULE = "2x2 box filter in integers, rounding half up: (a + b + c + d + 2) // 4"
RESIZE_RULE = "crop per `crop`, then Pillow LANCZOS to the top resolution, any factor (synthetic: rendered at it)"


def box_downsample_u8(images: np.ndarray) -> np.ndarray:
    """2×2 box filter of uint8 images, rounding half up: `[..., H, W] -> [..., H/2, W/2]`, `(a+b+c+d+2) // 4`."""
    if images.dtype != np.uint8 or images.shape[-1] % 2 or images.shape[-2] % 2:
        raise ValueError(f"box_downsample_u8: expected uint8 with even height and width, got {images.dtype} {images.shape}")
    total = images[..., 0::2, 0::2].astype(np.uint16)
    total += images[..., 1::2, 0::2]
    total += images[..., 0::2, 1::2]
    total += images[..., 1::2, 1::2]
    total += 2
    return (total >> 2).astype(np.uint8)


@dataclass(frozen=True)
class CachePlan:
    """What `build_cache` is about to write, known after the source was scanned and before any pixel is decoded."""

    out: Path
    num_images: int
    num_channels: int
    resolutions: tuple[int, ...]
    num_bytes: int
    free_bytes: int

    def describe(self) -> str:
        """One line: `building <out>: N images, C channel(s), levels 4..1024 (9), 41.9 GB (69.0 GB free)`."""
        return (
            f"building {self.out}: {self.num_images} images, {self.num_channels} channel(s), levels "
            f"{self.resolutions[0]}..{self.resolutions[-1]} ({len(self.resolutions)}), {format_bytes(self.num_bytes)} "
            f"({format_bytes(self.free_bytes)} free)"
        )


def build_cache(
    source: SourceSpec,
    out_dir: str | os.PathLike[str],
    *,
    resolution: int,
    min_resolution: int = 4,
    crop: Crop = "center",
    channels: Channels = "keep",
    upscale: bool = False,
    max_images: int | None = None,
    bad_images: BadImagePolicy = "error",
    progress: Callable[[int, int], None] | None = None,
    on_plan: Callable[[CachePlan], None] | None = None,
) -> Path:
    """Build the multi-resolution cache of `source` in `out_dir` and return its path.

    `source` is an image folder, a StyleGAN2-ADA `.zip`, `"synthetic[:SEED:N]"` or a `SyntheticShapes`
    (see `progrow.data.sources` for the order, labels and the mode and channel rules; `progrow.data.resize`
    for `crop` and `upscale`). Every image is checked before anything is written; then images are
    decoded one at a time and written to `level_{R}.u8` for `R = min_resolution, …, resolution`, each
    level the 2×2 integer box filter of the one above. The cache is built in `out_dir.tmp-<pid>` and
    renamed to `out_dir` when complete, so an interrupted build leaves no `out_dir`. `out_dir` must not
    exist or be an empty folder. `progress(done, total)` is called after each image.

    After the scan, `on_plan(CachePlan)` is told what will be written (images, levels, bytes), and a
    cache larger than the free space of the target disk is refused with a `DataError` before anything is
    written. Temporary folders of earlier builds whose process is gone are removed; SIGTERM (where the
    program left its default action in place) and Ctrl-C remove this build's. A write failure (full disk,
    file size limit) is a `DataError` naming the folder, with nothing left behind.

    Every image is fully decoded once. Every problem of the source is reported in one `DataError`, by
    kind, each kind with the option that resolves it: images too small or not square for the policy
    (up to five listed per kind), and images that cannot be read (zero bytes, truncated, not an image;
    every one listed). With `bad_images="skip"` unreadable images are left out instead (the order of the
    others is kept, so the result is deterministic) and recorded under `skipped` in `meta.json`.
    """
    if not is_power_of_two(resolution):
        raise DataError(f"resolution (--resolution): expected a power of two (4, 8, …, 1024), got {resolution!r}")
    if not is_power_of_two(min_resolution) or min_resolution > resolution:
        raise DataError(
            f"min_resolution (--min-resolution): expected a power of two ≤ resolution ({resolution}), got {min_resolution!r}"
        )
    check_crop(crop)
    check_channels(channels)
    if bad_images not in BAD_IMAGE_POLICIES:
        raise DataError(f"bad_images (--bad-images): expected one of {', '.join(BAD_IMAGE_POLICIES)}, got {bad_images!r}")
    if not isinstance(upscale, bool):
        raise DataError(f"upscale (--upscale): expected True or False, got {upscale!r}")
    out = Path(out_dir)
    _check_out_dir(out)
    resolutions = tuple(min_resolution << k for k in range(int(math.log2(resolution // min_resolution)) + 1))
    with open_source(source, max_images=max_images) as src:
        unreadable: dict[int, str] = {}
        misfits: dict[int, tuple[str, str]] = {}
        num_channels = src.scan(resolution, crop=crop, channels=channels, upscale=upscale, unreadable=unreadable, misfits=misfits)
        num_images = len(src)
        labels = src.labels
        plan = CachePlan(
            out, num_images, num_channels, resolutions, cache_bytes(num_images, num_channels, resolutions), free_bytes(out)
        )
        if on_plan is not None:
            on_plan(plan)
        check_free_space(
            out, plan.num_bytes, what=f"the cache of {num_images} images at {resolution}² ({len(resolutions)} levels)"
        )
        remove_stale_temporaries(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(out, os.getpid())
        tmp.mkdir()
        try:
            with terminate_as_exit():
                digest = _write_levels(
                    src,
                    tmp,
                    resolutions,
                    num_channels,
                    crop=crop,
                    upscale=upscale,
                    unreadable=unreadable,
                    misfits=misfits,
                    bad_images=bad_images,
                    progress=progress,
                )
            failure = _problems(num_images, resolution, misfits, unreadable, bad_images)
            if failure:
                raise DataError(failure)
            kept = [i for i in range(num_images) if i not in unreadable]
            if labels is not None:
                labels = labels[kept]
            if labels is not None:
                labels = labels.astype("<i8")
                digest.update(labels.tobytes())
                np.save(tmp / LABELS_FILE, labels)
            meta = _meta(src.description, len(kept), num_channels, resolutions, digest.hexdigest(), labels is not None)
            meta["skipped"] = [{"name": src.names[i], "reason": unreadable[i]} for i in sorted(unreadable)]
            meta["policies"] = {
                "crop": crop,
                "channels": channels,
                "upscale": upscale,
                "max_images": max_images,
                "bad_images": bad_images,
                "resize": RESIZE_RULE,
                "pyramid": PYRAMID_RULE,
            }
            with open(tmp / META_FILE, "w", encoding="utf-8") as file:
                json.dump(meta, file, indent=2)
                file.write("\n")
                file.flush()
                os.fsync(file.fileno())
            _check_out_dir(out)
            os.rename(tmp, out)  # atomic; `out` is absent or an empty folder
        except OSError as exc:  # reading is done by the source (its errors are DataError): a failed write
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(
                f"could not write the cache {out.name} in {out.parent} ({format_bytes(free_bytes(out))} "
                f"free): {exc.strerror or exc}; nothing was kept"
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _write_levels(
    src: Any,
    tmp: Path,
    resolutions: tuple[int, ...],
    num_channels: int,
    *,
    crop: Crop,
    upscale: bool,
    unreadable: dict[int, str],
    misfits: dict[int, tuple[str, str]],
    bad_images: BadImagePolicy,
    progress: Callable[[int, int], None] | None,
) -> Any:
    """Decode every image once and append its pyramid to the level files (none once a problem is known); the hasher."""
    hasher = hashlib.sha256()
    resolution, min_resolution = resolutions[-1], resolutions[0]
    num_images = len(src)
    with contextlib.ExitStack() as stack:
        files: dict[int, BinaryIO] = {r: stack.enter_context(open(tmp / level_file(r), "wb")) for r in resolutions}
        for index in range(num_images):
            if progress is not None:
                progress(index + 1, num_images)
            if index in unreadable:
                continue
            try:
                if index in misfits:  # cannot be used anyway: only find out whether it also cannot be read
                    src.load(index, resolution, crop="center", num_channels=num_channels, upscale=True)
                    continue
                image = src.load(index, resolution, crop=crop, num_channels=num_channels, upscale=upscale)
            except DataError as exc:  # decodes past its header, then fails: truncated or corrupt
                unreadable[index] = str(exc)
                misfits.pop(index, None)
                continue
            if misfits or (unreadable and bad_images == "error"):
                continue  # the build will fail: only look for further problems
            hasher.update(image.tobytes())
            for r in reversed(resolutions):
                files[r].write(image.tobytes())
                if r > min_resolution:
                    image = box_downsample_u8(image)
        for file in files.values():
            file.flush()
            os.fsync(file.fileno())
    return hasher


def _problems(
    num_images: int, resolution: int, misfits: dict[int, tuple[str, str]], unreadable: dict[int, str], bad_images: BadImagePolicy
) -> str | None:
    """The one message listing every problem of the source by kind, with the option that resolves each; None if none."""
    report_unreadable = bool(unreadable) and (bad_images == "error" or len(unreadable) == num_images)
    if not misfits and not report_unreadable:
        return None
    sections = []
    for kind, hint in SIZE_HINTS.items():
        found = [reason for i, (k, reason) in sorted(misfits.items()) if k == kind]
        if found:
            shown = "".join(f"\n    - {r}" for r in found[:_MAX_LISTED])
            more = f"\n    … and {len(found) - _MAX_LISTED} more" if len(found) > _MAX_LISTED else ""
            what = "too small for" if kind == "too small" else "not square, so they cannot become"
            sections.append(f"  {len(found)} {what} {resolution}×{resolution} ({hint}):{shown}{more}")
    if report_unreadable:
        hint = "--bad-images skip leaves them out" if len(unreadable) < num_images else "none of them can be read"
        shown = "".join(f"\n    - {unreadable[i]}" for i in sorted(unreadable))
        sections.append(f"  {len(unreadable)} cannot be read ({hint}):{shown}")
    count = len(misfits) + (len(unreadable) if report_unreadable else 0)
    return f"{count} of {num_images} images cannot be used, so nothing was written:\n" + "\n".join(sections)


def _meta(
    description: str, num_images: int, num_channels: int, resolutions: tuple[int, ...], digest: str, has_labels: bool
) -> dict[str, Any]:
    progrow = sys.modules.get("progrow")
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "num_images": num_images,
        "num_channels": num_channels,
        "resolutions": list(resolutions),
        "dtype": "uint8",
        "layout": "[N, C, R, R] C-order raw bytes per level, files level_{R}.u8",
        "labels": LABELS_FILE if has_labels else None,
        "content_hash": f"sha256:{digest}",
        "source": description,
        "created_by": f"progrow {getattr(progrow, '__version__', 'unknown')}",
    }


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: the output exists and is not a folder; choose another OUT")
    if out.is_dir() and any(out.iterdir()):
        what = "a cache" if (out / META_FILE).exists() else "files"
        raise DataError(f"{out}: the output folder already holds {what}; remove it or choose another OUT")
