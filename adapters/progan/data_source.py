"""What `--data` names, looked at before anything is built: its kind, labels, size, and the identity a checkpoint keeps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from progrow.data import DataError, open_source
from progrow.data.sources import SyntheticSource

__all__ = ["DataSource", "inspect_data", "same_source", "describe_source"]

SourceKind = Literal["synthetic", "folder", "zip", "cache"]


@dataclass(frozen=True)
class DataSource:
    """`--data` as found on disk; `identity` is stored in checkpoints and compared on resume."""

    spec: str
    kind: SourceKind
    identity: dict[str, Any]
    num_images: int
    has_labels: bool
    num_channels: int | None = None  # known for a cache and the synthetic set

    @property
    def description(self) -> str:
        """How to name the source in a message."""
        return describe_source(self.identity)


def inspect_data(spec: str) -> DataSource:
    """Look at `--data` (a cache, a folder, a zip, or `synthetic[:SEED:N]`) without decoding images.

    Raises `DataError` naming `--data`.
    """
    path = Path(spec)
    if not (spec == "synthetic" or spec.startswith("synthetic:")) and path.is_dir() and (path / "meta.json").is_file():
        try:
            meta = json.loads((path / "meta.json").read_text())
            identity = {
                "kind": "cache",
                "path": str(path.resolve()),
                "content_hash": str(meta["content_hash"]),
                "source": str(meta.get("source", "")).split(" (", 1)[0],
            }
            return DataSource(
                spec, "cache", identity, int(meta["num_images"]), bool(meta.get("labels")), int(meta["num_channels"])
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"--data: {path / 'meta.json'} is not a readable cache description ({type(exc).__name__}: {exc})"
            ) from None
    try:
        with open_source(spec) as src:
            kind: SourceKind = (
                "synthetic"
                if src.description.startswith("synthetic:")
                else ("zip" if src.description.startswith("zip ") else "folder")
            )
            if isinstance(src, SyntheticSource):
                canonical = src.description.split(" ", 1)[0]
                identity = {"kind": kind, "spec": canonical}
                channels = src.shapes.num_channels
            else:
                identity = {"kind": kind, "path": str(path.resolve())}
                channels = None
            return DataSource(spec, kind, identity, len(src), src.labels is not None, channels)
    except DataError as exc:
        raise DataError(f"--data: {exc}") from None


def same_source(saved: dict[str, Any], given: dict[str, Any]) -> bool:
    """Whether a checkpoint's data identity and the given one are the same data (a cache: the same content)."""
    if saved.get("kind") == "cache" and given.get("kind") == "cache":
        return saved.get("content_hash") == given.get("content_hash")
    if saved.get("kind") == "cache" or given.get("kind") == "cache":  # a cache and the source it was built from
        cache, other = (saved, given) if saved.get("kind") == "cache" else (given, saved)
        return cache.get("source") == describe_source(other)
    return saved == given


def describe_source(identity: dict[str, Any]) -> str:
    """`synthetic:0:10000`, `folder /data/faces`, `zip /data/ffhq.zip`, `cache /runs/x/dataset (sha256:ab12…)`."""
    kind = identity.get("kind")
    if kind == "synthetic":
        return str(identity.get("spec"))
    if kind == "cache":
        return f"cache {identity.get('path')} ({str(identity.get('content_hash'))[:19]}…)"
    return f"{kind} {identity.get('path')}"
