"""Image sources: an image folder, a StyleGAN2-ADA zip, or the synthetic dataset, read in a fixed order.

`open_source(spec)` picks the source from its spec:

- a folder: every `*.png`, `*.jpg`, `*.jpeg`, `*.webp`, `*.gif` (animated ones: their first frame) below it (any letter case,
  recursively), sorted by path relative to the folder (`/`-separated, plain string order);
- a `.zip` file (StyleGAN2-ADA's `dataset_tool.py` layout): the images inside it, sorted by member name;
- `"synthetic"` or `"synthetic:SEED:N"`: `SyntheticShapes(seed=SEED, num_images=N)` (default 0 and 10,000);
  a folder literally named `synthetic` is spelt `./synthetic`.

A folder or zip may hold `dataset.json` at its root, `{"labels": [["path/in/source.png", int_label], …]}`
(or `"labels": null`); then every image needs a label, and `labels` follows the image order.

Loading applies, in order: EXIF orientation (`ImageOps.exif_transpose`), the mode rule of
`progrow.data.convert` (8-bit `L` or `RGB`, alpha over white, 16-bit gray / 257), the crop/resize policy
of `progrow.data.resize`, and the channel policy: `channels="rgb"` expands grayscale to 3 identical
channels; `channels="keep"` keeps 1 channel when every image is grayscale, and makes the whole dataset
RGB (gray expanded) when grayscale and colour images are mixed.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, Union

import numpy as np
from PIL import Image, ImageOps

from progrow.data.convert import mode_channels, to_8bit
from progrow.data.errors import DataError
from progrow.data.resize import SIZE_HINTS, Crop, check_crop, fit_square, size_issue
from progrow.data.synthetic import SyntheticShapes
from progrow.state import is_power_of_two

__all__ = [
    "Channels",
    "CHANNEL_POLICIES",
    "IMAGE_EXTENSIONS",
    "ImageSource",
    "FolderSource",
    "ZipSource",
    "SyntheticSource",
    "open_source",
    "SourceSpec",
]

Channels = Literal["keep", "rgb"]
CHANNEL_POLICIES = ("keep", "rgb")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")
LABELS_FILE = "dataset.json"
SourceSpec = Union[str, "os.PathLike[str]", SyntheticShapes]
_MAX_LISTED = 5  # problems listed by name in one error message


def check_channels(channels: object) -> None:
    """Raise `DataError` unless `channels` is one of `CHANNEL_POLICIES`."""
    if channels not in CHANNEL_POLICIES:
        raise DataError(f"channels (--channels): expected one of {', '.join(map(repr, CHANNEL_POLICIES))}, got {channels!r}")


class ImageSource(ABC):
    """An ordered, finite collection of images with optional integer labels."""

    description: str  # e.g. "folder /data/faces"; stored in the cache's meta.json

    @property
    @abstractmethod
    def names(self) -> tuple[str, ...]:
        """Each image's name (its path in the folder or zip), in order."""

    @property
    def labels(self) -> np.ndarray | None:
        """int64 `[N]` labels in image order, or None."""
        return None

    def __len__(self) -> int:
        return len(self.names)

    @abstractmethod
    def scan(
        self,
        resolution: int,
        *,
        crop: Crop = "center",
        channels: Channels = "keep",
        upscale: bool = False,
        unreadable: dict[int, str] | None = None,
        misfits: dict[int, tuple[str, str]] | None = None,
    ) -> int:
        """Check every image against the policy without decoding pixels; the dataset's channel count (1 or 3).

        Raises one `DataError` listing the images (up to five, with their sizes) that cannot be used, unless
        `misfits` is given: then they are recorded there (index → (kind, reason), kinds as in
        `progrow.data.resize.SIZE_HINTS`). An image whose header cannot be read raises too, unless
        `unreadable` is given: then it is recorded there (index → reason) and left out of the checks.
        """

    @abstractmethod
    def load(self, index: int, resolution: int, *, crop: Crop, num_channels: int, upscale: bool) -> np.ndarray:
        """Image `index` under the policy: uint8 `[num_channels, R, R]`."""

    def images(
        self, resolution: int, *, crop: Crop = "center", channels: Channels = "keep", upscale: bool = False
    ) -> Iterator[np.ndarray]:
        """Every image in order as uint8 `[C, R, R]`, after `scan` has checked them all."""
        num_channels = self.scan(resolution, crop=crop, channels=channels, upscale=upscale)
        for index in range(len(self)):
            yield self.load(index, resolution, crop=crop, num_channels=num_channels, upscale=upscale)

    def close(self) -> None:  # noqa: B027 - a default no-op: only sources holding open files override it
        """Release open files (a zip archive); the source is unusable afterwards."""

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FileSource(ImageSource):
    """Images stored as encoded files (a folder or a zip), decoded with Pillow."""

    def __init__(self, names: list[str], labels: np.ndarray | None, max_images: int | None) -> None:
        if max_images is not None:
            names = names[:max_images]
            labels = None if labels is None else labels[:max_images]
        self._names = tuple(names)
        self._labels = labels

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def labels(self) -> np.ndarray | None:
        return self._labels

    @abstractmethod
    def _open(self, name: str, *, header_only: bool = False) -> IO[bytes]:
        """A binary file object positioned at the start of image `name` (`header_only`: only its header will be read)."""

    @abstractmethod
    def _where(self, name: str) -> str:
        """How to name image `name` in a message (a full path)."""

    def scan(
        self,
        resolution: int,
        *,
        crop: Crop = "center",
        channels: Channels = "keep",
        upscale: bool = False,
        unreadable: dict[int, str] | None = None,
        misfits: dict[int, tuple[str, str]] | None = None,
    ) -> int:
        check_crop(crop)
        check_channels(channels)
        _check_resolution(resolution)
        problems: list[str] = []
        counts = set()
        for index, name in enumerate(self._names):
            try:
                with self._open(name, header_only=True) as file, Image.open(file) as image:
                    mode, size = image.mode, image.size
            except Exception as exc:  # Pillow raises many types for broken files
                reason = f"{self._where(name)}: cannot read the image ({type(exc).__name__}: {exc})"
                if unreadable is None:
                    raise DataError(reason) from None
                unreadable[index] = reason
                continue
            counts.add(mode_channels(mode))
            issue = size_issue(self._where(name), size, resolution, crop=crop, upscale=upscale)
            if issue and misfits is not None:
                misfits[index] = issue
            elif issue:
                problems.append(f"{issue[1]}; {SIZE_HINTS[issue[0]]}")
        if problems:
            shown = "\n".join(f"  - {p}" for p in problems[:_MAX_LISTED])
            more = f"\n  … and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
            raise DataError(f"{len(problems)} of {len(self)} images cannot become {resolution}×{resolution}:\n{shown}{more}")
        return 3 if channels == "rgb" or 3 in counts else 1

    def load(self, index: int, resolution: int, *, crop: Crop, num_channels: int, upscale: bool) -> np.ndarray:
        name = self._names[index]
        where = self._where(name)
        try:
            with self._open(name) as file, Image.open(file) as image:
                image.load()
                image = to_8bit(ImageOps.exif_transpose(image))
        except Exception as exc:
            raise DataError(f"{where}: cannot read the image ({type(exc).__name__}: {exc})") from None
        image = fit_square(image, resolution, crop=crop, upscale=upscale, name=where)
        return _to_chw(np.asarray(image), num_channels)


class FolderSource(_FileSource):
    """The images below a folder, recursively, sorted by relative path; labels from its `dataset.json`."""

    def __init__(self, root: str | os.PathLike[str], *, max_images: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: not a folder")
        names = []
        for folder, _, files in os.walk(self.root):
            for file in files:
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    names.append((Path(folder) / file).relative_to(self.root).as_posix())
        names.sort()
        if not names:
            raise DataError(
                f"{self.root}: no images found (expected files ending in {', '.join(IMAGE_EXTENSIONS)}, "
                "any letter case, in the folder or below it)"
            )
        labels_path = self.root / LABELS_FILE
        labels = _parse_labels(labels_path.read_bytes(), str(labels_path), names) if labels_path.is_file() else None
        self.description = f"folder {self.root.resolve()}"
        super().__init__(names, labels, max_images)

    def _open(self, name: str, *, header_only: bool = False) -> IO[bytes]:
        return open(self.root / name, "rb")

    def _where(self, name: str) -> str:
        return str(self.root / name)


class ZipSource(_FileSource):
    """The images inside a zip (StyleGAN2-ADA layout), sorted by member name; labels from its `dataset.json`."""

    def __init__(self, path: str | os.PathLike[str], *, max_images: int | None = None) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"{self.path}: cannot open as a zip archive ({exc})") from None
        try:
            members = set(self._zip.namelist())
            names = sorted(
                n
                for n in members
                if n.lower().endswith(IMAGE_EXTENSIONS) and not n.endswith("/") and not n.startswith("__MACOSX/")
            )
            if not names:
                raise DataError(
                    f"{self.path}: the zip holds no images "
                    f"(expected members ending in {', '.join(IMAGE_EXTENSIONS)}, any letter case)"
                )
            labels = None
            if LABELS_FILE in members:
                labels = _parse_labels(self._zip.read(LABELS_FILE), f"{self.path}:{LABELS_FILE}", names)
        except BaseException:
            self._zip.close()
            raise
        self.description = f"zip {self.path.resolve()}"
        super().__init__(names, labels, max_images)

    def _open(self, name: str, *, header_only: bool = False) -> IO[bytes]:
        return self._zip.open(name) if header_only else io.BytesIO(self._zip.read(name))

    def _where(self, name: str) -> str:
        return f"{self.path}:{name}"

    def close(self) -> None:
        self._zip.close()


class SyntheticSource(ImageSource):
    """`SyntheticShapes` rendered directly at the target resolution (no crop or resize); no labels."""

    def __init__(self, shapes: SyntheticShapes, *, max_images: int | None = None) -> None:
        self.shapes = shapes
        count = len(shapes) if max_images is None else min(len(shapes), max_images)
        self._names = tuple(f"synthetic/{i:08d}" for i in range(count))
        self.description = f"synthetic:{shapes.seed}:{shapes.num_images} (SyntheticShapes, {shapes.num_channels} channels)"

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def scan(
        self,
        resolution: int,
        *,
        crop: Crop = "center",
        channels: Channels = "keep",
        upscale: bool = False,
        unreadable: dict[int, str] | None = None,
        misfits: dict[int, tuple[str, str]] | None = None,
    ) -> int:
        check_crop(crop)
        check_channels(channels)
        _check_resolution(resolution)
        if not 4 <= resolution <= 1024:
            raise DataError(f"resolution (--resolution): the synthetic source renders 4..1024, got {resolution}")
        return 3 if channels == "rgb" else self.shapes.num_channels

    def load(self, index: int, resolution: int, *, crop: Crop, num_channels: int, upscale: bool) -> np.ndarray:
        image = self.shapes.render(index, resolution)
        return np.repeat(image, num_channels, axis=0) if image.shape[0] != num_channels else image


def open_source(spec: SourceSpec, *, max_images: int | None = None) -> ImageSource:
    """The source named by `spec` (a folder, a `.zip`, `"synthetic[:SEED:N]"`, or a `SyntheticShapes`).

    `max_images` keeps the first images in the source's order. Raises `DataError` naming the path when it
    is empty, missing, not a folder or zip, or holds no images.
    """
    if max_images is not None and (not isinstance(max_images, int) or isinstance(max_images, bool) or max_images < 1):
        raise DataError(f"max_images (--max-images): expected None or an int ≥ 1, got {max_images!r}")
    if isinstance(spec, SyntheticShapes):
        return SyntheticSource(spec, max_images=max_images)
    if not isinstance(spec, (str, os.PathLike)):
        raise DataError(f"source: expected a path or 'synthetic[:SEED:N]', got {type(spec).__name__}")
    text = os.fspath(spec)
    if isinstance(spec, str) and (text == "synthetic" or text.startswith("synthetic:")):
        return SyntheticSource(_parse_synthetic(text), max_images=max_images)
    if not text.strip():
        raise DataError("source: empty path; expected an image folder, a .zip file, or 'synthetic[:SEED:N]'")
    path = Path(text)
    if path.is_dir():
        return FolderSource(path, max_images=max_images)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; expected an image folder, a .zip file, or 'synthetic[:SEED:N]'")
    if zipfile.is_zipfile(path):
        return ZipSource(path, max_images=max_images)
    raise DataError(f"{path}: not a folder or a zip archive; expected an image folder, a .zip file, or 'synthetic[:SEED:N]'")


def _parse_synthetic(text: str) -> SyntheticShapes:
    parts = text.split(":")[1:]
    expected = f"source {text!r}: expected 'synthetic' or 'synthetic:SEED:N' (SEED an int ≥ 0, N an int ≥ 1)"
    if len(parts) not in (0, 2) or not all(p.isdigit() for p in parts):
        raise DataError(expected)
    seed, count = (int(parts[0]), int(parts[1])) if parts else (0, 10_000)
    if count < 1:
        raise DataError(expected)
    return SyntheticShapes(seed=seed, num_images=count)


def _parse_labels(raw: bytes, where: str, names: list[str]) -> np.ndarray | None:
    """Labels for `names` from a StyleGAN2-ADA `dataset.json`, or None when it has `"labels": null`."""
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "labels" not in data:
        raise DataError(f"{where}: expected an object with key 'labels' ([[path, int_label], …] or null)")
    entries = data["labels"]
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise DataError(f"{where}: 'labels' expected a list of [path, int_label] pairs or null, got {type(entries).__name__}")
    table: dict[str, int] = {}
    for i, entry in enumerate(entries):
        ok = (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], int)
            and not isinstance(entry[1], bool)
        )
        if not ok:
            raise DataError(f"{where}: labels[{i}] expected [path, int_label], got {entry!r}")
        table[entry[0].replace("\\", "/")] = entry[1]
    missing = [n for n in names if n not in table]
    if missing:
        listed = ", ".join(missing[:_MAX_LISTED]) + (f", … ({len(missing)} in all)" if len(missing) > _MAX_LISTED else "")
        raise DataError(f"{where}: no label for {listed}; every image needs one when 'labels' is given")
    return np.array([table[n] for n in names], dtype=np.int64)


def _check_resolution(resolution: object) -> None:
    if not is_power_of_two(resolution):
        raise DataError(f"resolution (--resolution): expected a power of two (4, 8, …, 1024), got {resolution!r}")


def _to_chw(array: np.ndarray, num_channels: int) -> np.ndarray:
    """`[H, W]` or `[H, W, 3]` uint8 → contiguous `[num_channels, H, W]` (gray repeated when 3 are asked for)."""
    chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    if chw.shape[0] > num_channels:
        raise DataError(f"expected images with {num_channels} channel(s), got {chw.shape[0]}; scan() the source first")
    if chw.shape[0] != num_channels:
        chw = np.repeat(chw, num_channels, axis=0)
    return np.ascontiguousarray(chw, dtype=np.uint8)
