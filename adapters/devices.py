"""`--device` for the command line: the torch device a text names, refused clearly when this machine has none; and
whether this CPU runs bf16 faster than fp32."""

from __future__ import annotations

import os

import torch

__all__ = ["cpu_bf16_is_fast", "default_device", "resolve_device"]


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


def cpu_bf16_is_fast() -> bool:
    """Whether this CPU runs bf16 convolutions in AMX tiles (Intel Sapphire Rapids and later), where they beat fp32.

    Measured with `benchmarks/cpu_step.py --bf16` on a 2-core Intel Xeon VM with AMX: the `cpu-demo` step under bf16
    autocast trains 1.3–1.6× the images per second of fp32 from 8² up (1.45× over the main job). Without AMX, bf16
    is slower than fp32; the same VM with oneDNN capped below AMX (`ONEDNN_MAX_CPU_ISA`, which this function
    honours) stands in for such CPUs: see benchmarks/README.md.
    """
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        cap = os.environ.get(name, "").upper()
        if cap and cap not in ("ALL", "DEFAULT") and "AMX" not in cap:
            return False  # oneDNN is told not to use the tiles
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x; absent means unknown
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False
