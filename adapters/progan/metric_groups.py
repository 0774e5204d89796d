"""Metrics evaluated group by group, so one that fails (FID without Inception weights) keeps the others' scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from progrow.data import MultiResDataset
from progrow.metrics import evaluate
from progrow.metrics.fidelity import FIDELITY_METRICS
from progrow.metrics.inception import MissingWeightsError, missing_weights_message
from progrow.state import GrowthState

__all__ = ["evaluate_groups"]


def _groups(names: Sequence[str]) -> list[list[str]]:
    fidelity: list[str] = [n for n in names if n in FIDELITY_METRICS]  # one torch-fidelity extraction for all three
    return ([fidelity] if fidelity else []) + [[n] for n in names if n not in FIDELITY_METRICS]


def evaluate_groups(
    names: Sequence[str], generator: nn.Module, state: GrowthState, dataset: MultiResDataset, **options: Any
) -> tuple[dict[str, float], dict[str, str]]:
    """`evaluate` per group (fid/kid/is together, each other metric alone): the scores, and one message per failed group.

    A failure's message is its first line; missing Inception weights are explained naming `--inception-weights`.
    """
    scores: dict[str, float] = {}
    errors: dict[str, str] = {}
    for group in _groups(names):
        try:
            scores.update(evaluate(group, generator, state, dataset, **options))
        except MissingWeightsError as exc:
            errors[",".join(group)] = (
                missing_weights_message(exc.reason, option="--inception-weights") if exc.reason else str(exc)
            )
        except Exception as exc:  # noqa: BLE001 - a metric must not take the others down with it
            text = str(exc).strip()
            errors[",".join(group)] = text.splitlines()[0] if text else type(exc).__name__
    return scores, errors
