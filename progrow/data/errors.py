"""`DataError`: the one exception for bad data-pipeline input (a missing path, an unreadable image, a bad cache)."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input to the data pipeline; the message names the path, file or option and what was expected.

    A `ValueError`, so callers that catch `ValueError` also catch it; the CLI prints the message and
    exits with status 2.
    """
