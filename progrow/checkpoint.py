"""Atomic, safely loaded checkpoints and the RNG states a bit-exact resume needs."""

from __future__ import annotations

import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Union, cast

import numpy as np
import torch

from progrow.data.space import format_bytes

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
    "prune_checkpoints",
    "checkpoint_path",
    "capture_rng_state",
    "restore_rng_state",
]

PathLike = Union[str, "os.PathLike[str]"]
_NAME = re.compile(r"^checkpoint-(\d{12})\.pt$")
_LATEST = "latest"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the path and the reason."""


def checkpoint_path(directory: PathLike, nimg: int) -> Path:
    """The file name of the checkpoint taken after `nimg` images: `checkpoint-000000800000.pt`."""
    return Path(directory) / f"checkpoint-{nimg:012d}.pt"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_failure(exc: BaseException) -> str | None:
    """Why a write failed when `exc` is a failed write (the OS's reason, or torch's zip writer stopping short); else None."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, RuntimeError) and any(
        m in str(exc) for m in ("inline_container", "PytorchStreamWriter", "unexpected pos")
    ):
        first = str(exc).strip().splitlines()[0]
        return f"the write stopped part-way, so the disk is full or a file size limit was reached (torch: {first})"
    return None


def _atomic_write(path: Path, write: Any) -> None:
    """Write through `write(file)` to a temporary name, fsync, then rename over `path`.

    A failed write (a full disk, a file size limit: an `OSError`, or torch's zip writer giving up with a
    `RuntimeError`) removes the temporary file and raises `CheckpointError` naming the directory; the
    file at `path`, if any, is untouched.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        reason = _write_failure(exc)
        if reason is not None:
            free = _free_bytes(path.parent)
            where = f" ({format_bytes(free)} free there)" if free is not None else ""
            raise CheckpointError(f"could not write {path.name} in {path.parent}{where}: {reason}") from None
        raise
    _fsync_dir(path.parent)


def _free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def save_checkpoint(payload: dict[str, Any], path: PathLike, *, update_latest: bool = True) -> Path:
    """Write `payload` atomically to `path` (temporary file, fsync, rename); then point `latest` at it.

    A crash at any moment leaves either the previous file or the complete new one, never a partial file
    under the final name. The payload must hold only what `torch.load(weights_only=True)` accepts:
    tensors, numbers, strings, lists, tuples and dicts of those.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda f: torch.save(payload, f))
    if update_latest:
        _atomic_write(path.parent / _LATEST, lambda f: f.write(path.name.encode() + b"\n"))
    return path


def load_checkpoint(path: PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True` (no code from the file runs); errors name the path."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes)")
    with open(path, "rb") as file:
        head = file.read(4)
    if head != b"PK\x03\x04" and not head.startswith(b"\x80"):  # torch.save writes a zip (legacy: a pickle)
        raise CheckpointError(
            f"{path}: not a checkpoint (a torch.save file starts with a zip or pickle header; this one starts with {head!r})"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign / unsafe files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "it holds Python objects that a safe (weights_only) load refuses to execute"
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: expected a dict at the top of the checkpoint, got {type(payload).__name__}")
    return payload


def list_checkpoints(directory: PathLike) -> list[Path]:
    """Checkpoints in `directory`, oldest first (by the image count in their names); temporary files are removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        if entry.name.startswith(".checkpoint-") and ".tmp-" in entry.name:
            entry.unlink(missing_ok=True)  # left over by a write that was killed
            continue
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry))
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: PathLike, *, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `directory` that loads, with its payload; None when there is none.

    A newest file that does not load (truncated, empty, garbage) is skipped with one warning naming it,
    and the next older one is tried.
    """
    for path in reversed(list_checkpoints(directory)):
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except CheckpointError as exc:
            warnings.warn(f"skipping unreadable checkpoint: {exc}", RuntimeWarning, stacklevel=2)
    return None


def prune_checkpoints(directory: PathLike, *, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints; return the deleted paths."""
    if keep < 1:
        raise ValueError(f"prune_checkpoints: keep must be ≥ 1, got {keep}")
    victims = list_checkpoints(directory)[:-keep]
    for path in victims:
        path.unlink(missing_ok=True)
    return victims


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and every CUDA device's) global RNGs, weights-only safe."""
    py_version, py_state, py_gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    state: dict[str, Any] = {
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the global RNG states captured by `capture_rng_state()`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
