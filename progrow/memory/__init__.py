"""Memory planning: count a training step's peak memory and plan the minibatch per resolution for a budget.

`MemoryCounter` counts the live tensor storage of a step (real or fake tensors, any device);
`CountingMeasure` / `CudaMeasure` turn a step `step(resolution, batch)` into the peak bytes the planner
searches with; `gan_training_step` builds such a step from progrow's wrappers; `plan_batch_sizes` returns
the schedule with the largest batch per resolution that fits; `parse_bytes` reads budgets like `80GiB`.
"""

from progrow.memory.budget import format_bytes, free_memory, parse_bytes
from progrow.memory.count import MemoryCounter, count_peak_bytes, to_fake, tracked_tensors
from progrow.memory.measure import OUT_OF_MEMORY, CountingMeasure, CudaMeasure, Measure, Step, gan_training_step
from progrow.memory.plan import SAFETY_MARGIN, BatchPlan, BudgetError, LrScaling, ResolutionPlan, plan_batch_sizes

__all__ = [
    "MemoryCounter",
    "count_peak_bytes",
    "tracked_tensors",
    "to_fake",
    "CountingMeasure",
    "CudaMeasure",
    "Measure",
    "Step",
    "OUT_OF_MEMORY",
    "gan_training_step",
    "plan_batch_sizes",
    "BatchPlan",
    "ResolutionPlan",
    "BudgetError",
    "LrScaling",
    "SAFETY_MARGIN",
    "parse_bytes",
    "format_bytes",
    "free_memory",
]
