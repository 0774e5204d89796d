"""`--device` for the command line: the torch device a text names, refused clearly when this machine has none."""

from __future__ import annotations

import torch

__all__ = ["default_device", "resolve_device"]


def default_device() -> str:
    """`cuda` when a CUDA device is available, else `cpu` (the default of every `--device`)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(text: str | None, *, option: str = "--device") -> torch.device:
    """The device `text` names (None: `default_device()`); `ValueError` naming `option` when it is not one or not here."""
    if text is None:
        return torch.device(default_device())
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"{option} {text}: not a torch device; expected cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {text}: CUDA is not available on this machine; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"{option} {text}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
        return device
    if device.type == "mps" and torch.backends.mps.is_available():
        return device
    raise ValueError(f"{option} {text}: no {device.type} device on this machine; expected cpu or cuda[:N]")
