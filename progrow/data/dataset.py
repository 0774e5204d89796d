"""`MultiResDataset`: read a cache written by `build_cache` as read-only memory maps, one per resolution."""

from __future__ import annotations

import hashlib
import json
import os
from itertools import pairwise
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from progrow.data.errors import DataError
from progrow.data.layout import FORMAT_NAME, FORMAT_VERSION, LABELS_FILE, META_FILE, level_file
from progrow.state import is_power_of_two

__all__ = ["MultiResDataset"]

_CHUNK = 1 << 24  # bytes hashed per read in verify()


class MultiResDataset:
    """A cache directory opened for reading: `level(R)` is the read-only `np.memmap` `[N, C, R, R]` of uint8.

    Opening validates `meta.json` (every field, with an error naming the file and field) and the size of
    every level file and of `labels.npy`; `verify()` also recomputes the content hash.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"{self.path}: no such cache folder (build one with `python -m progrow.data SOURCE OUT`)")
        meta_path = self.path / META_FILE
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: missing; {self.path} is not a complete progrow.data cache")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{meta_path}: not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise DataError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
        self.meta: dict[str, Any] = meta
        self._meta_path = meta_path
        if meta.get("format") != FORMAT_NAME:
            self._bad("format", f"{FORMAT_NAME!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            self._bad("format_version", f"{FORMAT_VERSION} (the version this progrow reads)")
        self.num_images: int = self._int_field("num_images", minimum=1)
        self.num_channels: int = self._int_field("num_channels", minimum=1)
        if self.num_channels not in (1, 3):
            self._bad("num_channels", "1 or 3")
        resolutions = meta.get("resolutions")
        if (
            not isinstance(resolutions, list)
            or not resolutions
            or not all(is_power_of_two(r) for r in resolutions)
            or any(b != 2 * a for a, b in pairwise(resolutions))
        ):
            self._bad("resolutions", "a non-empty list of powers of two, each double the one before")
        self.resolutions: tuple[int, ...] = tuple(resolutions)
        content_hash = meta.get("content_hash")
        if not isinstance(content_hash, str) or not content_hash.startswith("sha256:"):
            self._bad("content_hash", "'sha256:<hex digest>'")
        self.content_hash: str = content_hash
        self.source: str = str(meta.get("source", ""))
        for r in self.resolutions:
            self._check_size(self.path / level_file(r), self.num_images * self.num_channels * r * r)
        self.labels: np.ndarray | None = self._read_labels()
        self._levels: dict[int, np.memmap] = {}

    # ------------------------------------------------------------------------------------------ access
    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        res = f"{self.resolutions[0]}..{self.resolutions[-1]}"
        return (
            f"MultiResDataset({str(self.path)!r}, num_images={self.num_images}, "
            f"num_channels={self.num_channels}, resolutions={res})"
        )

    @property
    def resolution(self) -> int:
        """The top (largest) resolution."""
        return self.resolutions[-1]

    def level(self, resolution: int) -> np.memmap:
        """Every image at `resolution`: read-only uint8 memmap `[N, C, R, R]`."""
        if resolution not in self.resolutions:
            raise DataError(
                f"{self.path}: no level at resolution {resolution!r}; available: {', '.join(map(str, self.resolutions))}"
            )
        if resolution not in self._levels:
            shape = (self.num_images, self.num_channels, resolution, resolution)
            self._levels[resolution] = np.memmap(self.path / level_file(resolution), dtype=np.uint8, mode="r", shape=shape)
        return self._levels[resolution]

    def verify(self) -> None:
        """Recompute the content hash from the top level and the labels; `DataError` if it differs from meta.json."""
        hasher = hashlib.sha256()
        with open(self.path / level_file(self.resolution), "rb") as file:
            while chunk := file.read(_CHUNK):
                hasher.update(chunk)
        if self.labels is not None:
            hasher.update(self.labels.astype("<i8").tobytes())
        actual = f"sha256:{hasher.hexdigest()}"
        if actual != self.content_hash:
            raise DataError(
                f"{self.path}: content hash mismatch (meta.json says {self.content_hash}, the files hash to {actual}); "
                "the cache is corrupt, rebuild it"
            )

    def __getstate__(self) -> dict[str, Any]:  # memmaps are reopened lazily after pickling (DataLoader workers)
        state = dict(self.__dict__)
        state["_levels"] = {}
        return state

    # -------------------------------------------------------------------------------------- validation
    def _bad(self, field: str, expected: str) -> NoReturn:
        got = self.meta.get(field, "<missing>")
        raise DataError(f"{self._meta_path}: field {field!r} expected {expected}, got {got!r}")

    def _int_field(self, field: str, *, minimum: int) -> int:
        value = self.meta.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self._bad(field, f"an int ≥ {minimum}")
        return value

    def _check_size(self, path: Path, expected: int) -> None:
        if not path.is_file():
            raise DataError(f"{path}: missing; {self._meta_path} lists it (field 'resolutions')")
        size = path.stat().st_size
        if size != expected:
            raise DataError(
                f"{path}: size mismatch, expected {expected} bytes (num_images·num_channels·R·R from {self._meta_path}), "
                f"found {size}"
            )

    def _read_labels(self) -> np.ndarray | None:
        name = self.meta.get("labels")
        if name is None:
            return None
        if name != LABELS_FILE:
            self._bad("labels", f"null or {LABELS_FILE!r}")
        path = self.path / LABELS_FILE
        if not path.is_file():
            raise DataError(f"{path}: missing; {self._meta_path} lists it (field 'labels')")
        try:
            labels = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read ({exc})") from None
        if labels.dtype.kind != "i" or labels.dtype.itemsize != 8 or labels.shape != (self.num_images,):
            raise DataError(
                f"{path}: expected int64 of shape ({self.num_images},) (field 'num_images'), got {labels.dtype} {labels.shape}"
            )
        return labels.astype(np.int64, copy=False)
