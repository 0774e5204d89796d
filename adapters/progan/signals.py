"""Graceful stop: a signal (SIGTERM by default, as sent by schedulers before preemption) ends training after the current step."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from types import FrameType
from typing import Any

__all__ = ["StopSignals", "parse_signals"]


def parse_signals(text: str) -> tuple[signal.Signals, ...]:
    """`"TERM,USR1"` → `(SIGTERM, SIGUSR1)`; unknown names raise `ValueError` naming them."""
    out = []
    for name in (part.strip().upper() for part in text.split(",") if part.strip()):
        full = name if name.startswith("SIG") else f"SIG{name}"
        try:
            out.append(signal.Signals[full])
        except KeyError:
            raise ValueError(f"--stop-signals: unknown signal {name!r} (e.g. TERM, INT, USR1, USR2)") from None
    return tuple(out)


class StopSignals:
    """While active, the given signals only record a stop request (`received`); the loop checks it between steps."""

    def __init__(self, signals: Sequence[signal.Signals]) -> None:
        self.signals = tuple(signals)
        self.received: int | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum

    def __enter__(self) -> StopSignals:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
