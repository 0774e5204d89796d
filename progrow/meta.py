"""Shapes without compute: a module run on the `meta` device, and the input channels a module declares."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["meta_forward", "declared_in_channels"]


def meta_forward(module: nn.Module, x: Tensor, *, cpu_fallback: bool = False) -> Tensor:
    """`module(x)` for its output's shape only: run with meta copies of its weights on a meta `x` (no memory, no compute).

    Where the meta device lacks an operation it raises `NotImplementedError`, unless `cpu_fallback`: then
    the module runs once on CPU zeros of `x`'s shape (with copies of its weights) and the result's shape
    is returned as a meta tensor. Failures of the module itself (wrong shapes) raise as they would on a real input.
    """
    tensors = list(itertools.chain(module.named_parameters(), module.named_buffers()))
    try:
        meta = {name: torch.empty_like(t, device="meta") for name, t in tensors}
        return functional_call(module, meta, (x.to("meta"),))
    except NotImplementedError:
        if not cpu_fallback:
            raise
    real = {name: t.detach().to("cpu", copy=True) for name, t in tensors}
    with torch.no_grad():
        out = functional_call(module, real, (torch.zeros(x.shape, dtype=x.dtype),))
    return torch.empty(out.shape, dtype=out.dtype, device="meta")


def declared_in_channels(module: nn.Module) -> int | None:
    """The `in_channels` of the first submodule (in `modules()` order) that declares one as an int, or None."""
    for m in module.modules():
        value = getattr(m, "in_channels", None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
