"""`Prefetcher`: an `ImageSampler`'s next minibatches read ahead on background threads, deterministically."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from progrow.data.loader import ImageSampler, _HostBatch

__all__ = ["Prefetcher"]

Plan = Callable[[int], "tuple[int, int]"]


@dataclass
class _Pending:
    resolution: int
    batch_size: int
    cursor_after: dict[str, Any]  # the sampler's state once this batch is handed out
    result: Future  # -> _HostBatch


class Prefetcher:
    """Reads the minibatches a training loop will ask for next, up to `depth` ahead, on `num_workers` threads.

    `plan(nimg)` says what the batch that starts after `nimg` images shown will be, `(resolution,
    batch_size)`, and `position()` how many images the loop has shown so far. With a progrow schedule::

        plan = lambda n: (scheduler.state_at(n).resolution, scheduler.state_at(n).batch_size)
        prefetcher = Prefetcher(sampler, plan=plan, position=lambda: scheduler.nimg, num_workers=2)
        images, labels = prefetcher.next_batch(state.resolution, state.batch_size)

    The image order and mirror flags are drawn in the calling thread, in batch order, from the sampler's
    cursor; the threads only gather (and mirror) the images. So the batches are the ones
    `sampler.next_batch` would give, bit for bit, for any `num_workers` (0 reads in the calling thread,
    no read-ahead). A request that differs from the plan (a new schedule, a rollback) drops the batches
    read ahead and rewinds the cursor: never a wrong batch, only a wasted read. `state_dict()` is the
    cursor after the last batch handed out, not after the read-ahead: what a checkpoint must hold.
    NumPy releases the GIL while it copies, so threads overlap the reads (a cold disk, a large level)
    with the training step.
    """

    def __init__(
        self,
        sampler: ImageSampler,
        *,
        plan: Plan,
        position: Callable[[], int],
        num_workers: int = 2,
        depth: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(f"Prefetcher.num_workers: expected an int ≥ 0, got {num_workers!r}")
        depth = 2 * num_workers if depth is None else depth
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < (1 if num_workers else 0):
            raise ValueError(f"Prefetcher.depth: expected an int ≥ 1 with workers, got {depth!r}")
        self.sampler = sampler
        self.plan = plan
        self.position = position
        self.num_workers = num_workers
        self.depth = depth if num_workers else 0
        self.device = torch.device(device)
        self._pool = ThreadPoolExecutor(num_workers, thread_name_prefix="progrow-data") if num_workers else None
        self._queue: deque[_Pending] = deque()
        self._consumed = sampler.state_dict()
        self._next_nimg = 0  # images shown once every queued batch is handed out

    def next_batch(
        self, resolution: int, batch_size: int, *, device: str | torch.device | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The next batch, as `ImageSampler.next_batch` gives it: uint8 `[B/W, C, R, R]`, labels `[B/W]` or None."""
        if device is not None and torch.device(device) != self.device:
            raise ValueError(f"Prefetcher.next_batch: built for device {self.device}, asked for {torch.device(device)}")
        if self._queue and (self._queue[0].resolution, self._queue[0].batch_size) != (resolution, batch_size):
            self._drop_read_ahead()  # off plan: rewind, and read this one now
        if not self._queue:  # nothing read ahead: the sampler's own cursor is the consumed one
            self._consumed = self.sampler.state_dict()
            self._next_nimg = self.position()
            self._submit(resolution, batch_size)
        pending = self._queue.popleft()
        host: _HostBatch = pending.result.result()
        self._consumed = pending.cursor_after
        self._fill()
        return ImageSampler._deliver(host, self.device)

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state after the last batch handed out (the read-ahead is not part of it)."""
        return dict(self._consumed) if self._queue else self.sampler.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any], *, strict: bool = True) -> None:
        """Drop the read-ahead and restore the sampler's cursor (see `ImageSampler.load_state_dict`)."""
        self._drop_read_ahead()
        self.sampler.load_state_dict(state_dict, strict=strict)
        self._consumed = self.sampler.state_dict()

    def close(self) -> None:
        """Wait for the threads to finish their reads and stop them."""
        self._drop_read_ahead()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, resolution: int, batch_size: int) -> None:
        self.sampler.dataset.level(resolution)  # an unknown resolution raises here, before the cursor moves
        indices, flips = self.sampler.next_indices(batch_size)
        on_host = self.device.type == "cpu"
        future: Future
        if self._pool is None:
            future = Future()
            future.set_result(self.sampler._gather(resolution, indices, flips, mirror_on_host=on_host))
        else:
            future = self._pool.submit(self.sampler._gather, resolution, indices, flips, mirror_on_host=on_host)
        self._queue.append(_Pending(resolution, batch_size, self.sampler.state_dict(), future))
        self._next_nimg += batch_size

    def _fill(self) -> None:
        while len(self._queue) < self.depth:
            resolution, batch_size = self.plan(self._next_nimg)
            self._submit(resolution, batch_size)

    def _drop_read_ahead(self) -> None:
        if not self._queue:
            return  # nothing read ahead: the sampler's cursor is already the consumed one
        for pending in self._queue:
            pending.result.cancel()
        for pending in self._queue:  # a read already running finishes; wait so no thread outlives a rewind
            if not pending.result.cancelled():
                pending.result.exception()
        self._queue.clear()
        self.sampler.load_state_dict(self._consumed, strict=False)
