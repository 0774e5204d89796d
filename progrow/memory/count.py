"""A device-independent peak-memory count of one step: live tensor storage tracked through the dispatcher.

`MemoryCounter` is a `TorchDispatchMode`. Every tensor an operator returns (and every tensor it is given
that the counter has not seen, or was told about with `track`) is reduced to its storage — views and
in-place results share one, so each storage is counted once, at its size in bytes. A storage stops
counting when it is freed (a finalizer on the storage object, which PyTorch keeps alive exactly as long as
the storage itself). The peak of the running sum is the step's peak memory, measured at operator
granularity — the granularity at which memory is allocated.

What the count includes: every tensor alive during the step — weights, their gradients, optimizer states,
EMA weights (all counted from the start when passed to `track`, or from the start retroactively when the
step first touches them), the data batch, activations, the tensors autograd saves for backward, gradient
penalty graphs, temporaries of the optimizer's `foreach` / fused kernels.

What it cannot see: memory an operator allocates inside its kernel and frees before returning (a
convolution's workspace — cuDNN's on a GPU, oneDNN's on a CPU), the caching allocator's rounding and
fragmentation (a GPU reserves more than it allocates), the CUDA context, and memory outside PyTorch. The
planner's safety margin (`progrow.memory.SAFETY_MARGIN`) is there for those.

The same count runs on fake tensors (`torch._subclasses.fake_tensor.FakeTensorMode`): the operators report
the same output sizes without computing or allocating, so a 1024² step is counted without its memory.
Data-dependent reads on fake tensors (`bool(t)`, `t.item()`) are answered by the fake mode where it knows
the value (small tensors made from constants, such as an optimizer's step count); otherwise, under the
counter, they read as `True` for booleans and `0` for numbers — the values of a healthy step (finite
gradients, no overflow found by a GradScaler), so the counted step takes the path training takes.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["MemoryCounter", "count_peak_bytes", "tracked_tensors", "to_fake"]

try:  # the formulas FlopCounterMode uses (2 FLOPs per multiply-add; convolutions, matmuls, attention)
    from torch.utils.flop_counter import flop_registry as _FLOP_REGISTRY
except ImportError:  # pragma: no cover - older torch
    _FLOP_REGISTRY = {}

_LOCAL_SCALAR = torch.ops.aten._local_scalar_dense.default
_DEVICE = torch.ops.prim.device.default


def tracked_tensors(*objects: Any) -> Iterator[Tensor]:
    """The tensors `objects` hold: a tensor; a module's parameters, their `.grad`, buffers; an optimizer's state;
    anything with a `.module` (an `EMA`); an iterable of those."""
    for obj in objects:
        if isinstance(obj, Tensor):
            yield obj
            if obj.grad is not None:
                yield obj.grad
        elif isinstance(obj, nn.Module):
            for p in obj.parameters():
                yield p
                if p.grad is not None:
                    yield p.grad
            yield from obj.buffers()
        elif isinstance(obj, torch.optim.Optimizer):
            yield from (t for t in tree_leaves(list(obj.state.values())) if isinstance(t, Tensor))
        elif isinstance(getattr(obj, "module", None), nn.Module):
            yield from tracked_tensors(obj.module)
        elif isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
            yield from tracked_tensors(*obj)
        else:
            raise TypeError(f"MemoryCounter.track: expected tensors, modules, optimizers or an EMA, got {type(obj).__name__}")


class MemoryCounter(TorchDispatchMode):
    """Counts the live tensor storage of the code run inside it; `peak_bytes` is its maximum.

        counter = MemoryCounter()
        with counter:
            counter.track(G, D, opt_g, opt_d, ema)   # what exists before the step
            step()
        counter.peak_bytes, counter.baseline_bytes, counter.flops

    `baseline_bytes` is what `track` found at the start; `peak_bytes` ≥ it. With `count_flops`, `flops`
    sums torch's FLOP formulas (those of `torch.utils.flop_counter`) over the operators run. Python's cyclic
    garbage collector is paused inside the counter, so frees happen at the same points in every run.
    """

    def __init__(self, *, count_flops: bool = True) -> None:
        super().__init__()
        self.count_flops = count_flops
        self.current_bytes = 0
        self.peak_bytes = 0
        self.baseline_bytes = 0
        self.flops = 0
        self._sizes: dict[int, int] = {}  # storage key -> bytes counted
        self._finalizers: list[weakref.finalize] = []
        self._gc_was_enabled = False
        self._started = False

    # ------------------------------------------------------------------------------------------ public
    def track(self, *objects: Any) -> None:
        """Count the tensors of `objects` (see `tracked_tensors`) as alive from the start of the count."""
        for t in tracked_tensors(*objects):
            self._track(t)
        if not self._started:
            self.baseline_bytes = self.current_bytes

    def __enter__(self) -> MemoryCounter:
        self._gc_was_enabled = gc.isenabled()  # off inside: cyclic garbage is freed at no random point of the step
        gc.disable()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            for f in self._finalizers:
                f.detach()
            self._finalizers.clear()
            if self._gc_was_enabled:
                gc.enable()

    # ---------------------------------------------------------------------------------------- dispatch
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is _DEVICE:  # `t.device` of a tensor subclass: a query, nothing allocated
            return func(*args, **kwargs)
        self._started = True
        inputs = _tensors(args, kwargs.values())
        sizes = self._sizes
        for t in inputs:  # a tensor from before the count that was not tracked: alive all along
            if t.layout == torch.strided and t.untyped_storage()._cdata not in sizes:
                self._add(t.untyped_storage(), retroactive=True)
        if func is _LOCAL_SCALAR and inputs and _is_fake(inputs[0]) and getattr(inputs[0], "constant", None) is None:
            return True if inputs[0].dtype == torch.bool else 0  # a fake tensor's value is unknown (see the module doc)
        out = func(*args, **kwargs)
        for t in _tensors((out,)):
            if t.layout == torch.strided:
                storage = t.untyped_storage()
                if storage._cdata not in sizes:
                    self._add(storage, retroactive=False)
        if _mutates(func):  # in-place resizes (`out=` variants, `resize_`)
            for t in inputs:
                self._resized(t)
        if self.current_bytes > self.peak_bytes:
            self.peak_bytes = self.current_bytes
        if self.count_flops:
            counter = _FLOP_REGISTRY.get(func._overloadpacket)
            if counter is not None:
                self.flops += int(counter(*args, **kwargs, out_val=out))
        return out

    # ---------------------------------------------------------------------------------------- internal
    def _track(self, t: Tensor) -> None:
        if t.layout != torch.strided:  # sparse / nested layouts: their parts reach the dispatcher as strided tensors
            return
        storage = t.untyped_storage()
        if storage._cdata in self._sizes:
            self._resized(t)
        else:
            self._add(storage, retroactive=True)

    def _add(self, storage: torch.UntypedStorage, *, retroactive: bool) -> None:
        key = storage._cdata
        nbytes = storage.nbytes()
        self._sizes[key] = nbytes
        self.current_bytes += nbytes
        if retroactive:  # alive since before the first operator: every earlier moment held it too
            self.peak_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        self._finalizers.append(weakref.finalize(storage, self._free, key))

    def _resized(self, t: Tensor) -> None:
        if t.layout != torch.strided:
            return
        storage = t.untyped_storage()
        key = storage._cdata
        old = self._sizes.get(key)
        if old is not None and old != storage.nbytes():
            self._sizes[key] = storage.nbytes()
            self.current_bytes += storage.nbytes() - old

    def _free(self, key: int) -> None:
        self.current_bytes -= self._sizes.pop(key, 0)


def _tensors(*groups: Iterable[Any]) -> list[Tensor]:
    """The tensors among the items of `groups`, one level of lists / tuples deep (operator arguments and results)."""
    out: list[Tensor] = []
    for group in groups:
        for x in group:
            if isinstance(x, Tensor):
                out.append(x)
            elif isinstance(x, (list, tuple)):
                for y in x:
                    if isinstance(y, Tensor):
                        out.append(y)
                    elif isinstance(y, (list, tuple)):
                        out.extend(t for t in tree_leaves(y) if isinstance(t, Tensor))
    return out


_MUTATES: dict[Any, bool] = {}


def _mutates(func: Any) -> bool:
    """Whether operator `func` writes to one of its arguments (which may resize its storage)."""
    known = _MUTATES.get(func)
    if known is None:
        known = _MUTATES[func] = any(a.alias_info is not None and a.alias_info.is_write for a in func._schema.arguments)
    return known


def _is_fake(t: Tensor) -> bool:
    return t.device.type == "meta" or type(t).__name__ == "FakeTensor" or t.untyped_storage().device.type == "meta"


def count_peak_bytes(step: Callable[[], Any], *, track: Iterable[Any] = ()) -> MemoryCounter:
    """Run `step()` inside a `MemoryCounter` that first tracks `track`; the finished counter (`peak_bytes`, `flops`)."""
    counter = MemoryCounter()
    with counter:
        counter.track(*track)
        step()
    return counter


def to_fake(fake_mode: Any, *modules: nn.Module) -> None:
    """Replace, in place, every parameter and buffer of `modules` by a fake tensor of `fake_mode` (same shape,
    dtype, device and `requires_grad`; tensors shared between modules stay shared).

    Build the models as usual (their weights are the only real memory), convert them, then create the
    optimizers inside `fake_mode`: every later step runs without memory or arithmetic. Deep-copy (e.g. an
    `EMA`) before converting: a fake tensor's copy belongs to another fake mode.
    """
    memo: dict[int, Tensor] = {}

    def fake(t: Tensor) -> Tensor:
        if id(t) not in memo:
            memo[id(t)] = fake_mode.from_tensor(t)
        return memo[id(t)]

    for module in modules:
        for m in module.modules():
            for name, p in m._parameters.items():
                if p is not None:
                    m._parameters[name] = fake(p)  # type: ignore[assignment]  # from_tensor keeps Parameter-ness
            for name, b in m._buffers.items():
                if b is not None:
                    m._buffers[name] = fake(b)
