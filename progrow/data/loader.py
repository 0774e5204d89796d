"""`ImageSampler`: deterministic, resumable, rank-sliced minibatches from a `MultiResDataset`; and `to_float`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from progrow.data.dataset import MultiResDataset

__all__ = ["ImageSampler", "to_float"]


class _HostBatch(NamedTuple):
    images: np.ndarray  # uint8 [B, C, R, R]
    flips: np.ndarray  # bool [B]
    labels: np.ndarray | None  # int64 [B] or None
    mirrored: bool  # True if the flagged rows are already flipped


class ImageSampler:
    """Minibatches of a `MultiResDataset` at any of its resolutions, in an order fixed by `seed`.

    Epoch `e` visits every image once, in the order `np.random.default_rng([seed, e]).permutation(N)`;
    the same generator then draws one mirror flag per position (`random(N) < 0.5`). A cursor
    `(epoch, position)` advances by the global batch size on every `next_batch`; a batch that runs past
    the end of an epoch continues with the next one. The order does not depend on the resolution, so
    the cursor carries across growth stages, and `state_dict()` / `load_state_dict()` resume it bit for bit.

    With `world_size > 1`, `batch_size` is the global batch: every rank draws the same global batch and
    keeps its contiguous slice `[rank·B/W, (rank+1)·B/W)`, so the ranks' slices are disjoint, their union is
    the global batch, and all ranks' cursors stay equal.
    """

    def __init__(
        self, dataset: MultiResDataset, *, seed: int = 0, mirror: bool = False, rank: int = 0, world_size: int = 1
    ) -> None:
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"ImageSampler.seed: expected an int ≥ 0, got {seed!r}")
        if not _is_int(world_size) or world_size < 1:
            raise ValueError(f"ImageSampler.world_size: expected an int ≥ 1, got {world_size!r}")
        if not _is_int(rank) or not 0 <= rank < world_size:
            raise ValueError(f"ImageSampler.rank: expected an int in [0, {world_size}) (world_size {world_size}), got {rank!r}")
        if not isinstance(mirror, bool):
            raise ValueError(f"ImageSampler.mirror: expected True or False, got {mirror!r}")
        self.dataset = dataset
        self.seed = seed
        self.mirror = mirror
        self.rank = rank
        self.world_size = world_size
        self._epoch = 0
        self._position = 0
        self._orders: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def epoch(self) -> int:
        """The epoch the next batch starts in."""
        return self._epoch

    @property
    def position(self) -> int:
        """Position within the epoch's permutation where the next batch starts."""
        return self._position

    def next_indices(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """This rank's slice of the next global batch: image indices int64 `[B/W]` and mirror flags bool `[B/W]`.

        Advances the cursor by `batch_size` (the global batch). Flags are all False unless `mirror`.
        """
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"ImageSampler: batch_size expected an int ≥ 1, got {batch_size!r}")
        if batch_size % self.world_size:
            raise ValueError(f"ImageSampler: the global batch size {batch_size} is not divisible by world_size {self.world_size}")
        n = self.dataset.num_images
        indices, flips = [], []
        need = batch_size
        while need:
            order, flags = self._order(self._epoch)
            take = min(need, n - self._position)
            indices.append(order[self._position : self._position + take])
            flips.append(flags[self._position : self._position + take])
            self._position += take
            need -= take
            if self._position == n:
                self._epoch, self._position = self._epoch + 1, 0
        per_rank = batch_size // self.world_size
        lo, hi = self.rank * per_rank, (self.rank + 1) * per_rank
        mine = np.concatenate(indices)[lo:hi]
        flags = np.concatenate(flips)[lo:hi] if self.mirror else np.zeros(per_rank, dtype=bool)
        return mine, flags

    def next_batch(self, resolution: int, batch_size: int, *, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor | None]:
        """The next batch at `resolution`: uint8 images `[B/W, C, R, R]` and int64 labels `[B/W]` (or None), on `device`.

        `batch_size` is the global batch (W = world_size). Mirrored images are flipped horizontally: on the
        host for a CPU `device`, on the device after the copy otherwise (so a GPU run's data path is the
        gather and the copy alone). For a CUDA device the host tensors are pinned and copied with
        `non_blocking=True`; convert on the device with `to_float`.
        """
        target = torch.device(device)
        return self._deliver(self._read(resolution, batch_size, mirror_on_host=target.type == "cpu"), target)

    def _read(self, resolution: int, batch_size: int, *, mirror_on_host: bool) -> _HostBatch:
        """Advance the cursor and gather the next batch on the host (see `_gather`)."""
        self.dataset.level(resolution)  # unknown resolution: raises before the cursor moves
        indices, flips = self.next_indices(batch_size)
        return self._gather(resolution, indices, flips, mirror_on_host=mirror_on_host)

    def _gather(self, resolution: int, indices: np.ndarray, flips: np.ndarray, *, mirror_on_host: bool) -> _HostBatch:
        """uint8 `[B/W, C, R, R]` of `indices` (mirrored on the host if asked), the flags, the labels (or None).

        Reads the dataset only, never the cursor: safe to run in a background thread (`Prefetcher`).
        """
        level = self.dataset.level(resolution)
        batch = np.ascontiguousarray(level[indices])  # a copy: the memmap stays untouched
        if mirror_on_host and flips.any():
            _mirror_rows(batch, flips)
        labels = None if self.dataset.labels is None else self.dataset.labels[indices]
        return _HostBatch(batch, flips, labels, mirrored=mirror_on_host)

    @staticmethod
    def _deliver(host: _HostBatch, target: torch.device) -> tuple[Tensor, Tensor | None]:
        """Copy a host batch to `target` and mirror it there if the host did not."""
        images = _to_device(torch.from_numpy(host.images), target)
        if not host.mirrored and host.flips.any():
            images = _mirror_on_device(images, host.flips)
        return images, None if host.labels is None else _to_device(torch.from_numpy(host.labels), target)

    def state_dict(self) -> dict[str, Any]:
        """`{"epoch", "position", "seed", "num_images"}`: the cursor, plus what a resume is checked against."""
        return {"epoch": self._epoch, "position": self._position, "seed": self.seed, "num_images": self.dataset.num_images}

    def load_state_dict(self, state_dict: Mapping[str, Any], *, strict: bool = True) -> None:
        """Restore the cursor; with `strict`, refuse a state saved with a different seed or dataset size."""
        if not isinstance(state_dict, Mapping) or not {"epoch", "position"} <= set(state_dict):
            raise ValueError("ImageSampler.load_state_dict: expected a mapping with keys 'epoch' and 'position'")
        epoch, position = state_dict["epoch"], state_dict["position"]
        if not _is_int(epoch) or epoch < 0 or not _is_int(position) or not 0 <= position < self.dataset.num_images:
            raise ValueError(
                f"ImageSampler.load_state_dict: expected epoch ≥ 0 and position in [0, {self.dataset.num_images}), "
                f"got epoch {epoch!r}, position {position!r}"
            )
        if strict:
            mine = {"seed": self.seed, "num_images": self.dataset.num_images}
            differing = [
                f"{k}: saved {state_dict[k]!r} vs now {v!r}" for k, v in mine.items() if k in state_dict and state_dict[k] != v
            ]
            if differing:
                raise ValueError(
                    f"ImageSampler.load_state_dict: the state was saved with a different sampler ({', '.join(differing)}); "
                    "pass strict=False to load its cursor anyway"
                )
        self._epoch, self._position = int(epoch), int(position)

    def _order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Epoch `epoch`'s permutation int64 `[N]` and mirror flags bool `[N]` (the two latest are kept)."""
        if epoch not in self._orders:
            rng = np.random.default_rng([self.seed, epoch])
            n = self.dataset.num_images
            order = rng.permutation(n).astype(np.int64)
            flags = rng.random(n) < 0.5
            self._orders = {e: v for e, v in self._orders.items() if e == epoch - 1}
            self._orders[epoch] = (order, flags)
        return self._orders[epoch]


def _mirror_rows(batch: np.ndarray, flips: np.ndarray) -> None:
    """Flip `batch[i]` (uint8 `[B, C, R, R]`) horizontally, in place, where `flips[i]`.

    From 128² up, row by row with torch's flip (vectorized: 1.5× NumPy's byte-wise reversed copy at 128²,
    3× at 256² and up); below, one NumPy flip of all flagged rows (fewer calls win on small images).
    Either way the bytes are those of `[..., ::-1]`.
    """
    if batch.shape[-1] < 128:
        batch[flips] = batch[flips][..., ::-1]
        return
    rows = torch.from_numpy(batch)
    for i in np.flatnonzero(flips):
        rows[i].copy_(rows[i].flip(-1))


def _mirror_on_device(images: Tensor, flips: np.ndarray) -> Tensor:
    """`images` `[B, C, H, W]` with the rows flagged in `flips` (bool `[B]`) flipped horizontally, on their device."""
    where = _to_device(torch.from_numpy(flips), images.device).view(-1, 1, 1, 1)
    return torch.where(where, images.flip(-1), images)


def to_float(images_u8: Tensor, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Map uint8 images `[N, C, H, W]` (0..255) to `dtype` in [-1, 1]: `x / 127.5 − 1`, on the images' device."""
    if images_u8.dtype != torch.uint8:
        raise ValueError(f"to_float: expected a uint8 tensor (as from ImageSampler.next_batch), got {images_u8.dtype}")
    if not dtype.is_floating_point:
        raise ValueError(f"to_float: dtype expected a floating-point dtype, got {dtype}")
    return images_u8.to(dtype).div_(127.5).sub_(1.0)


def _to_device(tensor: Tensor, device: str | torch.device) -> Tensor:
    target = torch.device(device)
    if target.type == "cpu":
        return tensor
    if target.type == "cuda" and torch.cuda.is_available():
        return tensor.pin_memory().to(target, non_blocking=True)
    return tensor.to(target)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
