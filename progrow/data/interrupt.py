"""SIGTERM during a long write: raise `SystemExit(143)` in the main thread so `finally`/`except` clean-ups run."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["terminate_as_exit"]


def _exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM raises `SystemExit(143)` instead of killing the process outright.

    Only where the default action is in place (a handler the program installed is left alone), and only
    in the main thread (signals can be handled nowhere else); the previous handler is restored after.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
