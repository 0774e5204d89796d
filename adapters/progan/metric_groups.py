"""Metrics (and their real-vs-real values) evaluated group by group, so one that fails keeps the others' scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from progrow.data import MultiResDataset
from progrow.metrics import evaluate, real_vs_real
from progrow.metrics.fidelity import FIDELITY_METRICS
from progrow.metrics.inception import MissingWeightsError, missing_weights_message
from progrow.state import GrowthState

__all__ = ["evaluate_groups", "reference_groups"]


def _groups(names: Sequence[str]) -> list[list[str]]:
    fidelity: list[str] = [n for n in names if n in FIDELITY_METRICS]  # one torch-fidelity extraction for all three
    return ([fidelity] if fidelity else []) + [[n] for n in names if n not in FIDELITY_METRICS]


def evaluate_groups(
    names: Sequence[str], generator: nn.Module, state: GrowthState, dataset: MultiResDataset, **options: Any
) -> tuple[dict[str, float], dict[str, str]]:
    """`evaluate` per group (fid/kid/is together, each other metric alone): the scores, and one message per failed group.

    A failure's message is its first line; missing Inception weights are explained naming `--inception-weights`.
    """
    return _by_group(names, lambda group: evaluate(group, generator, state, dataset, **options))


def reference_groups(
    names: Sequence[str], dataset: MultiResDataset, resolution: int, *, num_samples: int, **options: Any
) -> tuple[dict[str, float], dict[str, str]]:
    """`real_vs_real` per group, like `evaluate_groups`: the values (with `num_samples`, the count per set) and the failures."""
    return _by_group(names, lambda group: real_vs_real(group, dataset, resolution, num_samples=num_samples, **options))


def _by_group(names: Sequence[str], run: Callable[[list[str]], dict[str, float]]) -> tuple[dict[str, float], dict[str, str]]:
    scores: dict[str, float] = {}
    errors: dict[str, str] = {}
    for group in _groups(names):
        try:
            scores.update(run(group))
        except MissingWeightsError as exc:
            message = missing_weights_message(exc.reason, option="--inception-weights") if exc.reason else str(exc)
            errors[",".join(group)] = message
        except Exception as exc:  # noqa: BLE001 - a metric must not take the others down with it
            text = str(exc).strip()
            errors[",".join(group)] = text.splitlines()[0] if text else type(exc).__name__
    return scores, errors
