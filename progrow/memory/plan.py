"""`plan_batch_sizes`: the largest minibatch per resolution whose training step fits a memory budget.

The paper chose "an adaptive minibatch size depending on the output resolution, so that the available
memory budget is optimally utilized" by hand (16 → 14 / 6 / 3 at 256² / 512² / 1024² on its GPUs). The
planner makes that table for the memory a user has: for every resolution it measures one training step's
peak at trial batch sizes (`measure(resolution, per_rank_batch) -> bytes`: a counted step, see
`CountingMeasure`, or the CUDA allocator's peak, see `CudaMeasure`), fits `peak = a + b·batch` and confirms
the batch the fit predicts with measured steps — stepping down while it does not fit, up while the next
allowed batch also fits — so that every planned batch's measured peak is within the usable budget and the
next larger allowed batch's is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from progrow.config import ScheduleConfig

from .budget import format_bytes
from .measure import OUT_OF_MEMORY, Measure

__all__ = ["SAFETY_MARGIN", "LrScaling", "BudgetError", "ResolutionPlan", "BatchPlan", "plan_batch_sizes"]

# Share of the budget kept free. A counted step misses what kernels allocate and free inside one operator
# (convolution workspaces: cuDNN's on a GPU; oneDNN's reorders on a CPU, measured at up to 12.5 % of the
# peak in the R1 / gradient-penalty double backward of the cpu-demo networks), and a GPU's caching
# allocator reserves more than it hands out (rounding, fragmentation). 15 % covers both in what we measured.
SAFETY_MARGIN = 0.15
# How the learning rate follows the planned batch B at a resolution whose schedule batch was B₀:
# "none" keeps it, "linear" multiplies it by B/B₀, "sqrt" by √(B/B₀).
LrScaling = Literal["none", "linear", "sqrt"]
_MAX_PROBES = 64


class BudgetError(ValueError):
    """The smallest allowed batch at `resolution` needs `needed_bytes`, more than the usable budget."""

    def __init__(self, resolution: int, batch_size: int, needed_bytes: int, usable_bytes: int, budget_bytes: int, margin: float):
        self.resolution, self.batch_size = resolution, batch_size
        self.needed_bytes, self.usable_bytes = needed_bytes, usable_bytes
        need = "more than the device holds (out of memory)" if needed_bytes >= OUT_OF_MEMORY else f"{needed_bytes:,} bytes"
        super().__init__(
            f"the budget is too small at {resolution}²: a step of batch {batch_size} needs {need} "
            f"({format_bytes(needed_bytes) if needed_bytes < OUT_OF_MEMORY else 'OOM'}), the usable budget is "
            f"{usable_bytes:,} bytes ({format_bytes(usable_bytes)} = {format_bytes(budget_bytes)} less the "
            f"{margin:.0%} safety margin)"
        )


@dataclass(frozen=True)
class ResolutionPlan:
    """The planned batch at one resolution and the measurements it rests on."""

    resolution: int
    batch_size: int  # over all ranks (what the schedule gets)
    per_rank: int  # images per device in one step: batch_size / ranks
    peak_bytes: int  # measured peak of one step at `per_rank`
    next_bytes: int | None  # measured peak at the next larger allowed batch; None when `capped` stopped the search
    capped: bool  # the batch is max_batch's (more would fit)
    fit: tuple[float, float]  # (a, b) of the least-squares line peak ≈ a + b·per_rank over the measurements
    measurements: tuple[tuple[int, int], ...]  # (per_rank batch, peak bytes), in the order measured

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "resolution": self.resolution,
            "batch_size": self.batch_size,
            "per_rank": self.per_rank,
            "peak_bytes": self.peak_bytes,
            "next_bytes": self.next_bytes,
            "capped": self.capped,
            "fit": list(self.fit),
            "measurements": [list(m) for m in self.measurements],
        }


@dataclass(frozen=True)
class BatchPlan:
    """A `ScheduleConfig` whose `batch_size_per_res` fits the budget, with one `ResolutionPlan` per resolution."""

    schedule: ScheduleConfig
    rows: tuple[ResolutionPlan, ...]
    budget_bytes: int
    usable_bytes: int  # budget_bytes · (1 − margin), what every planned step stays within
    margin: float
    ranks: int
    pow2: bool
    max_batch: int | None
    lr_scaling: LrScaling
    method: str = ""  # how the peaks were measured, in words (for reports)
    extra: Mapping[str, Any] = field(default_factory=dict)  # what the caller adds (preset, precision, ...)

    @property
    def batch_sizes(self) -> dict[int, int]:
        """Resolution → planned batch over all ranks."""
        return {row.resolution: row.batch_size for row in self.rows}

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (what the training script records in config.json)."""
        return {
            "budget_bytes": self.budget_bytes,
            "usable_bytes": self.usable_bytes,
            "margin": self.margin,
            "ranks": self.ranks,
            "pow2": self.pow2,
            "max_batch": self.max_batch,
            "lr_scaling": self.lr_scaling,
            "method": self.method,
            **dict(self.extra),
            "batch_size_per_res": {str(r): b for r, b in self.batch_sizes.items()},
            "schedule": self.schedule.to_dict(),
            "rows": [row.to_dict() for row in self.rows],
        }


def plan_batch_sizes(
    measure: Measure,
    schedule: ScheduleConfig,
    budget_bytes: int,
    *,
    ranks: int = 1,
    max_batch: int | None = None,
    pow2: bool = False,
    margin: float = SAFETY_MARGIN,
    lr_scaling: LrScaling = "none",
    resolutions: Iterable[int] | None = None,
    method: str = "",
) -> BatchPlan:
    """The largest batch per resolution whose step peak, `measure(resolution, per_rank)`, is ≤ the usable budget.

    The usable budget is `budget_bytes · (1 − margin)` (`SAFETY_MARGIN` by default: what a count cannot
    see). Allowed batches (over all ranks) are the multiples of `ranks` and of the schedule's
    `batch_multiple`, powers of two with `pow2`, at most `max_batch`; each rank runs `batch / ranks`
    images, which is what `measure` is asked about. For every resolution of the schedule (or
    `resolutions`) the result's batch is allowed, its measured peak fits, and the next larger allowed
    batch's measured peak does not (unless `max_batch` stopped the search: `capped`).

    Returns a `BatchPlan` whose `schedule` is `schedule` with `batch_size_per_res` set for every
    resolution (`batch_size` = the smallest of them, `batch_multiple` = the multiple used). Learning rates
    are unchanged with `lr_scaling="none"`; `"linear"` / `"sqrt"` scale each resolution's rate by
    `B/B₀` / `√(B/B₀)`, B₀ being the schedule's batch there (written to `lr_per_res`).
    Raises `BudgetError` (naming the resolution and the bytes needed) when the smallest allowed batch does
    not fit, `ValueError` for inconsistent options.
    """
    _check_int("ranks", ranks, 1)
    if max_batch is not None:
        _check_int("max_batch", max_batch, 1)
    _check_int("budget_bytes", budget_bytes, 1)
    if not (isinstance(margin, (int, float)) and 0 <= margin < 1):
        raise ValueError(f"margin: expected a fraction in [0, 1), got {margin!r}")
    if lr_scaling not in ("none", "linear", "sqrt"):
        raise ValueError(f"lr_scaling: expected 'none', 'linear' or 'sqrt', got {lr_scaling!r}")
    multiple = math.lcm(ranks, schedule.batch_multiple)
    if pow2 and multiple & (multiple - 1):
        raise ValueError(f"pow2: the batch must be a multiple of {multiple} (ranks × batch_multiple), which no power of two is")
    if max_batch is not None and max_batch < multiple:
        raise ValueError(f"max_batch: {max_batch} is below the smallest allowed batch, {multiple} (a multiple of the ranks)")
    usable = int(budget_bytes * (1 - margin))
    res_list = list(schedule.resolutions if resolutions is None else resolutions)
    unknown = [r for r in res_list if r not in schedule.resolutions]
    if unknown:
        raise ValueError(f"resolutions: {unknown} not in the schedule ({', '.join(map(str, schedule.resolutions))})")

    def batch_at(i: int) -> int:  # the i-th allowed batch over all ranks
        return multiple << i if pow2 else multiple * (i + 1)

    if max_batch is None:
        last = 40 if pow2 else 2**40 // multiple
    else:
        last = int(math.log2(max_batch // multiple)) if pow2 else max_batch // multiple - 1
    rows: list[ResolutionPlan] = []
    for r in res_list:
        hint = None
        if rows:  # the previous resolution's line, its slope scaled as from the one before (×4 at first: area)
            a, b = _slope_hint(rows[-1])
            growth = b / _slope_hint(rows[-2])[1] if len(rows) > 1 else 4.0
            hint = (a, b * growth)
        rows.append(_plan_one(measure, r, usable, ranks, batch_at, last, max_batch is not None, budget_bytes, margin, hint))

    batches = {row.resolution: row.batch_size for row in rows}
    changes: dict[str, Any] = {
        "batch_size_per_res": batches,
        "batch_size": min(batches.values()),
        "batch_multiple": multiple,
    }
    if lr_scaling != "none":
        power = 1.0 if lr_scaling == "linear" else 0.5
        changes["lr_per_res"] = {r: schedule.lr_at(r) * (b / schedule.batch_size_at(r)) ** power for r, b in batches.items()}
    return BatchPlan(
        schedule=schedule.replace(**changes),
        rows=tuple(rows),
        budget_bytes=budget_bytes,
        usable_bytes=usable,
        margin=float(margin),
        ranks=ranks,
        pow2=pow2,
        max_batch=max_batch,
        lr_scaling=lr_scaling,
        method=method,
    )


def _plan_one(
    measure: Measure,
    resolution: int,
    usable: int,
    ranks: int,
    batch_at: Any,
    last: int,
    capped_search: bool,
    budget: int,
    margin: float,
    hint: tuple[float, float] | None,
) -> ResolutionPlan:
    """Search the allowed batches `batch_at(0 … last)` at one resolution (see `plan_batch_sizes`).

    Invariant: index `lo` fits (−1: none known yet), index `hi` (when known) does not; the search ends when
    they are neighbours (or `lo` is `last`). Each probe is where the line through the two latest
    measurements meets the budget (a secant step), kept strictly between `lo` and `hi`; every fourth
    probe inside a bracket bisects it instead, so the search ends in O(log) probes whatever the curve.
    `hint`, a guess of the line from the previous resolution, places the first probe.
    """
    peaks: dict[int, int] = {}  # candidate index -> measured peak
    order: list[int] = []

    def per_rank(i: int) -> int:
        return int(batch_at(i)) // ranks

    lo, hi = -1, None
    bracketed = 0  # probes made while both lo and hi were known
    for _ in range(_MAX_PROBES):
        top = last if hi is None else hi - 1
        if lo >= top:
            break
        line = _secant(order, peaks, per_rank) if len(order) >= 2 else None
        if line is None and len(order) == 1 and hint is not None:  # one point: the hint's slope through it
            x0, y0 = per_rank(order[0]), peaks[order[0]]
            line = (y0 - hint[1] * x0, hint[1])
        elif line is None and not order:
            line = hint
        if not order and capped_search:  # the cap first: where it fits, one step decides
            probe = last
        elif line is not None and line[1] > 0:
            probe = _index_at_most(batch_at, ranks, (usable - line[0]) / line[1], last)
        elif not order:
            probe = 0
        else:  # no usable slope yet: 16× the largest batch that fits
            probe = _index_at_most(batch_at, ranks, 16 * per_rank(max(lo, 0)), last)
        if lo >= 0 and hi is not None:
            bracketed += 1
            if bracketed % 4 == 0:
                probe = (lo + hi) // 2
        probe = max(lo + 1, min(probe, top))
        peaks[probe] = int(measure(resolution, per_rank(probe)))
        order.append(probe)
        if peaks[probe] <= usable:
            lo = probe
        else:
            hi = probe
    if lo < 0:
        raise BudgetError(resolution, batch_at(0), peaks[0], usable, budget, margin)
    return ResolutionPlan(
        resolution=resolution,
        batch_size=batch_at(lo),
        per_rank=per_rank(lo),
        peak_bytes=peaks[lo],
        next_bytes=peaks.get(lo + 1),
        capped=capped_search and lo == last,
        fit=_fit([(per_rank(i), peaks[i]) for i in order]),
        measurements=tuple((per_rank(i), peaks[i]) for i in order),
    )


def _slope_hint(row: ResolutionPlan) -> tuple[float, float]:
    """A row's fitted line; from one measurement, the line through it and the origin (a steeper guess)."""
    if len(row.measurements) >= 2 and row.fit[1] > 0:
        return row.fit
    x, y = row.measurements[-1]
    return (0.0, y / x)


def _secant(order: list[int], peaks: dict[int, int], per_rank: Any) -> tuple[float, float] | None:
    """`(a, b)` of the line through the two latest measurements (None if they cannot define a rising one)."""
    (x0, y0), (x1, y1) = ((per_rank(i), peaks[i]) for i in order[-2:])
    if x1 == x0 or y0 >= OUT_OF_MEMORY or y1 >= OUT_OF_MEMORY:
        return None
    b = (y1 - y0) / (x1 - x0)
    return (y0 - b * x0, b) if b > 0 else None


def _index_at_most(batch_at: Any, ranks: int, per_rank: float, last: int) -> int:
    """The largest index whose per-rank batch is ≤ `per_rank` (0 if none), at most `last`."""
    lo, hi = 0, last
    if batch_at(0) // ranks > per_rank:
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if batch_at(mid) // ranks <= per_rank:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares `(a, b)` of `peak = a + b·batch`; one point gives `(peak, 0)`."""
    pts = [(x, y) for x, y in points if y < OUT_OF_MEMORY]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return (float(pts[0][1]) if pts else 0.0, 0.0)
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    return (my - b * mx, b)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int ≥ {minimum}, got {value!r}")
