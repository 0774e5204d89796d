"""The on-disk layout of a multi-resolution cache directory, shared by the builder and the reader.

```
OUT/
  meta.json          format, format_version, num_images, num_channels, resolutions, content_hash, source, policies
  level_4.u8         raw uint8 [N, C, 4, 4], C-order, no header
  level_8.u8         …one file per resolution, up to the top level
  labels.npy         int64 [N] (only when the source has labels)
```

`content_hash` is `"sha256:" + hex` of the top level's bytes followed by the labels as little-endian
int64 bytes (when there are labels). Every level below the top is the 2×2 box filter of the level above
in integer arithmetic, rounding half up: `(a + b + c + d + 2) // 4`. `meta.json` is written last and
the directory is published by one rename, so a directory with a `meta.json` is complete.
"""

from __future__ import annotations

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "META_FILE", "LABELS_FILE", "level_file"]

FORMAT_NAME = "progrow.data.multires"
FORMAT_VERSION = 1
META_FILE = "meta.json"
LABELS_FILE = "labels.npy"


def level_file(resolution: int) -> str:
    """File name of the level at `resolution`, e.g. `level_64.u8`."""
    return f"level_{resolution}.u8"
