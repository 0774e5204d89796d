"""TensorBoard logging of a training run (optional: needs the `tensorboard` package; rank 0 only).

Event files go to `<out>/tensorboard/`. The step of every event is the number of images shown (`nimg`,
the log's kimg × 1000). At each tick: every numeric field of the `log.jsonl` record as a scalar — the losses
and their terms (`Loss/D`, `Loss/G`, `Loss/D_<term>`), `Progress/alpha`, `Progress/resolution`,
`Progress/stage`, `Progress/batch_size`, `Train/lr`, `Train/skipped_steps`, `Speed/img_per_s`, the metrics
(`Metrics/<name>`, one curve through all resolutions) — and the G_ema sample grid (`Samples/G_ema`).
The resolved options go in once per session as the text `config`.

A session starts at step S: 0 for a fresh run, N + 1 when resuming a checkpoint at N images. It opens with
a purge mark at S, so TensorBoard's reader drops the events at S and later that an earlier, killed session
wrote past its last checkpoint; `log.jsonl` is cut at the same point (`resume.begin`). A rollback to an
earlier checkpoint marks a purge the same way. Each session writes a new event file, named to sort after
the earlier ones (TensorBoard reads them in name order), flushed at every tick: a kill loses at most what
was logged since the last one. The events are those of torch's `SummaryWriter` (its summary builders and
record format); only the writing is done here, in the training thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from torch import Tensor

from .options import Options

__all__ = ["TensorBoardLog", "open_tensorboard", "scalar_tag", "config_text", "NOTICE"]

NOTICE = (
    "notice: tensorboard is not installed, so no TensorBoard logs (pip install 'progrow-gan[tensorboard]'; "
    "--no-tensorboard turns this notice off)"
)

_TAGS = {
    "d_loss": "Loss/D",
    "g_loss": "Loss/G",
    "alpha": "Progress/alpha",
    "resolution": "Progress/resolution",
    "stage": "Progress/stage",
    "batch_size": "Progress/batch_size",
    "lr": "Train/lr",
    "skipped_steps": "Train/skipped_steps",
    "img_per_s": "Speed/img_per_s",
}
_NOT_SCALARS = {"tick", "kimg", "seconds"}  # the tick count, the step itself, the session's clock (TensorBoard has its own)


def scalar_tag(key: str) -> str | None:
    """The TensorBoard tag of a `log.jsonl` field, or None for the fields that are not logged as scalars."""
    if key in _NOT_SCALARS:
        return None
    if key in _TAGS:
        return _TAGS[key]
    if "@" in key:  # a metric, `name@resolution`
        return f"Metrics/{key.split('@', 1)[0]}"
    if key.startswith("d_"):
        return f"Loss/D_{key[2:]}"
    if key.startswith("g_"):
        return f"Loss/G_{key[2:]}"
    return f"Train/{key}"


def config_text(opts: Options) -> str:
    """The resolved options of the run as JSON in a markdown code block (what TensorBoard's text tab shows)."""
    config: dict[str, Any] = {}
    for f in fields(opts):
        value = getattr(opts, f.name)
        if f.name == "preset":
            value = value.to_dict()
        elif f.name == "stop_signals":
            value = [s.name for s in value]
        elif f.name == "dist":
            value = {"world_size": value.world_size}
        elif f.name == "source":
            value = None if value is None else value.description
        config[f.name] = value
    return "```json\n" + json.dumps(config, indent=2, default=str) + "\n```"


class TensorBoardLog:
    """This session's event file in `log_dir`, whose steps are image counts; the session starts at `nimg` images.

    Events are written in this thread (torch's `SummaryWriter` writes from a thread of its own, where a full disk
    becomes a traceback on stderr and the write error reaches the run without the file's name): a failed write is
    an `OSError` naming the event file, which ends the run like any failed write in its folder.
    """

    def __init__(self, log_dir: Path, *, nimg: int, resumed: bool, config: str) -> None:
        from torch.utils.tensorboard import RecordWriter
        from torch.utils.tensorboard.summary import image, scalar, text

        self._scalar, self._image, self._text = scalar, image, text
        self.config = config
        self.config_step = nimg + 1 if resumed else 0  # where the session's purge mark and config go
        log_dir.mkdir(parents=True, exist_ok=True)
        self.path = log_dir / _event_file_name(log_dir)
        self.file = self.path.open("ab")
        self.records = RecordWriter(self.file)
        self._add(_event(file_version="brain.Event:2"))  # the version whose purge marks count
        self._purge_from(self.config_step)
        self._add_summary(text("config", config), self.config_step)
        self.flush()
        self.last_step = nimg  # of the newest tick logged (or the start)

    def tick(self, nimg: int, record: dict[str, Any], grid: Tensor) -> None:
        """The record's numeric fields as scalars and the grid `[C, H, W]` uint8 as an image, at step `nimg`; flushed."""
        for key, value in record.items():
            tag = scalar_tag(key)
            if tag is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._add_summary(self._scalar(tag, float(value)), nimg)
        self._add_summary(self._image("Samples/G_ema", grid.numpy(), dataformats="CHW"), nimg)
        self.flush()
        self.last_step = nimg

    def rewind(self, nimg: int) -> None:
        """Training went back to `nimg` (a rollback): a purge mark drops what was logged after it, as on resume."""
        if nimg >= self.last_step:
            return
        self._purge_from(nimg + 1)
        if nimg + 1 <= self.config_step:  # the mark dropped this session's config too
            self.config_step = nimg + 1
            self._add_summary(self._text("config", self.config), self.config_step)
        self.flush()
        self.last_step = nimg

    def flush(self) -> None:
        try:
            self.file.flush()
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    def close(self) -> None:
        """Close the file; what it still buffers is only what a failed write could not write (each tick is flushed)."""
        with contextlib.suppress(OSError):
            self.file.close()

    def _purge_from(self, step: int) -> None:
        """A session-start mark: TensorBoard's reader drops the events it has read at `step` and later."""
        from tensorboard.compat.proto.event_pb2 import SessionLog

        self._add(_event(step=step, session_log=SessionLog(status=SessionLog.START)))

    def _add_summary(self, summary: Any, step: int) -> None:
        self._add(_event(step=step, summary=summary))

    def _add(self, event: Any) -> None:
        try:
            self.records.write(event.SerializeToString())
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None


def _event(**fields: Any) -> Any:
    """A TensorBoard `Event` stamped now."""
    from tensorboard.compat.proto.event_pb2 import Event

    return Event(wall_time=time.time(), **fields)


def _event_file_name(log_dir: Path) -> str:
    """`events.out.tfevents.<second>.<host>.<pid>.0`, as TensorBoard's writers name them, with a second later than
    that of every event file already in `log_dir`.

    TensorBoard reads a run's event files in name order, and a purge mark only drops what was read before it;
    named by the second alone, a session opened in the same second as the one before it (a quick restart)
    could sort before that one.
    """
    seconds = [
        int(part[3]) for p in log_dir.glob("events.out.tfevents.*") if len(part := p.name.split(".")) > 3 and part[3].isdigit()
    ]
    second = max(int(time.time()), max(seconds, default=-1) + 1)
    return f"events.out.tfevents.{second:010d}.{socket.gethostname()}.{os.getpid()}.0"


def open_tensorboard(opts: Options, nimg: int, *, resumed: bool) -> TensorBoardLog | None:
    """The run's TensorBoard log (rank 0, unless `--no-tensorboard`); None, with one notice, without tensorboard."""
    if not opts.tensorboard or not opts.dist.is_main:
        return None
    try:
        import torch.utils.tensorboard  # noqa: F401  (raises ImportError without the tensorboard package)
    except ImportError:
        print(NOTICE, flush=True)
        return None
    return TensorBoardLog(opts.out / "tensorboard", nimg=nimg, resumed=resumed, config=config_text(opts))
