"""`ProgressiveScheduler`: stage, alpha, minibatch and learning rate as a pure function of images shown."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from progrow.config import ScheduleConfig
from progrow.state import GrowthState, Phase

__all__ = ["ProgressiveScheduler", "PhaseSpan", "Listener"]

# Called after the scheduler's position changes: `listener(prev, new)`. `prev` is None when the position
# jumped rather than advanced (a listener being added, or `load_state_dict`).
Listener = Callable[[GrowthState | None, GrowthState], None]


@dataclass(frozen=True)
class PhaseSpan:
    """One phase of the schedule: images `[start_nimg, end_nimg)`; `end_nimg` is None for the last one."""

    stage: int
    resolution: int
    phase: Phase
    start_nimg: int
    end_nimg: int | None


class ProgressiveScheduler:
    """Drives growth from the number of images shown (`nimg`).

    `state_at(nimg)` is a pure function of the config; the scheduler's only mutable state is `nimg`,
    moved by `advance(n)` after each step of `n` images. Listeners (see `add_listener` and
    `progrow.bind`) hear of every move, which is how bound modules and optimizers stay in step.
    """

    def __init__(self, config: ScheduleConfig | None = None, *, nimg: int = 0) -> None:
        self.config = config if config is not None else ScheduleConfig()
        if not isinstance(self.config, ScheduleConfig):
            raise TypeError(f"ProgressiveScheduler: expected a ScheduleConfig, got {type(self.config).__name__}")
        self.phases: tuple[PhaseSpan, ...] = _build_phases(self.config)
        self._starts = [p.start_nimg for p in self.phases]
        growth_end = self.phases[-1].start_nimg + _kimg_to_nimg(self.config.stable_kimg_at(self.config.final_resolution))
        self.total_nimg: int = growth_end if self.config.total_kimg is None else _kimg_to_nimg(self.config.total_kimg)
        self._nimg = _check_nimg("nimg", nimg)
        self._listeners: list[Listener] = []

    # ------------------------------------------------------------------------------------- pure queries
    def state_at(self, nimg: int) -> GrowthState:
        """The growth state after `nimg` images (pure: depends on the config alone)."""
        nimg = _check_nimg("nimg", nimg)
        span = self.phases[bisect.bisect_right(self._starts, nimg) - 1]
        cfg = self.config
        if span.phase == "fade":
            assert span.end_nimg is not None
            alpha = (nimg - span.start_nimg) / (span.end_nimg - span.start_nimg)
        else:
            alpha = 1.0
        batch_size = cfg.batch_size_at(span.resolution)
        if cfg.align_batches:
            boundary = span.end_nimg if span.end_nimg is not None else self.total_nimg
            if nimg < boundary < nimg + batch_size:
                m = cfg.batch_multiple  # remainders below a multiple overshoot the boundary by < m images
                batch_size = max(m, (boundary - nimg) // m * m)
        return GrowthState(
            resolution=span.resolution,
            alpha=alpha,
            stage=span.stage,
            nimg=nimg,
            batch_size=batch_size,
            lr=cfg.lr_at(span.resolution),
        )

    def span_at(self, nimg: int) -> PhaseSpan:
        """The phase that contains image `nimg`."""
        return self.phases[bisect.bisect_right(self._starts, _check_nimg("nimg", nimg)) - 1]

    def images_in(self, span: PhaseSpan) -> int:
        """Images a full run trains in `span`: `[start_nimg, end_nimg)` cut at `total_nimg` (0 past it).

        The open last phase (`end_nimg` None) ends at `total_nimg`; a `total_kimg` shorter than the
        schedule cuts the phase it falls in and leaves the later ones empty.
        """
        end = self.total_nimg if span.end_nimg is None else min(span.end_nimg, self.total_nimg)
        return max(0, end - span.start_nimg)

    def optimizer_reset_due(self, prev: GrowthState, new: GrowthState) -> bool:
        """Whether the config's `reset_optimizers` policy asks to clear optimizer state between two states."""
        policy = self.config.reset_optimizers
        if policy == "stage":
            return new.stage != prev.stage
        if policy == "phase":
            return new.stage != prev.stage or new.phase != prev.phase
        return False

    # --------------------------------------------------------------------------------------- position
    @property
    def nimg(self) -> int:
        """Images shown so far."""
        return self._nimg

    @property
    def state(self) -> GrowthState:
        """The current growth state, `state_at(nimg)`."""
        return self.state_at(self._nimg)

    @property
    def done(self) -> bool:
        """True once `total_nimg` images have been shown."""
        return self._nimg >= self.total_nimg

    def advance(self, n: int | None = None) -> GrowthState:
        """Count `n` more images shown (default: the current state's batch size) and return the new state."""
        prev = self.state
        n = prev.batch_size if n is None else n
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"ProgressiveScheduler.advance: expected a positive int of images, got {n!r}")
        self._nimg += n
        new = self.state
        self._notify(prev, new)
        return new

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(prev, new)` after every move; it is called once now with `prev=None`.

        Returns a function that removes the listener.
        """
        self._listeners.append(listener)
        listener(None, self.state)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _notify(self, prev: GrowthState | None, new: GrowthState) -> None:
        for listener in tuple(self._listeners):
            listener(prev, new)

    # ---------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """`{"nimg": …, "config": …}`: the position, plus the config to check a resume against."""
        return {"nimg": self._nimg, "config": self.config.to_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any], *, strict: bool = True) -> None:
        """Restore the position; with `strict`, refuse a checkpoint made with a different schedule."""
        if not isinstance(state_dict, Mapping) or "nimg" not in state_dict:
            raise ValueError("ProgressiveScheduler.load_state_dict: expected a mapping with key 'nimg'")
        nimg = _check_nimg("state_dict['nimg']", state_dict["nimg"])
        if strict and "config" in state_dict:
            saved = state_dict["config"]
            mine = self.config.to_dict()
            keys = sorted(set(saved) | set(mine))
            differing = [k for k in keys if saved.get(k, "<missing>") != mine.get(k, "<missing>")]
            if differing:
                details = ", ".join(
                    f"{k}: saved {saved.get(k, '<missing>')!r} vs now {mine.get(k, '<missing>')!r}" for k in differing
                )
                raise ValueError(
                    "ProgressiveScheduler.load_state_dict: the checkpoint was made with a different schedule "
                    f"({details}); pass strict=False to load its position anyway"
                )
        self._nimg = nimg
        self._notify(None, self.state)

    def __repr__(self) -> str:
        s = self.state
        return (
            f"ProgressiveScheduler(nimg={self._nimg}, resolution={s.resolution}, phase={s.phase!r}, "
            f"alpha={s.alpha:.4f}, total_nimg={self.total_nimg})"
        )


def _kimg_to_nimg(kimg: float) -> int:
    return int(round(kimg * 1000))


def _check_nimg(name: str, nimg: Any) -> int:
    if isinstance(nimg, bool) or not isinstance(nimg, int) or nimg < 0:
        raise ValueError(f"{name}: expected an int ≥ 0 of images shown, got {nimg!r}")
    return nimg


def _build_phases(cfg: ScheduleConfig) -> tuple[PhaseSpan, ...]:
    """Lay the phases end to end; empty phases are dropped, the last stable phase never ends."""
    spans: list[PhaseSpan] = []
    start = 0
    resolutions = cfg.resolutions
    for stage, res in enumerate(resolutions):
        last = stage == len(resolutions) - 1
        for phase, kimg in (("fade", cfg.fade_kimg_at(res)), ("stable", cfg.stable_kimg_at(res))):
            length = _kimg_to_nimg(kimg)
            if last and phase == "stable":
                spans.append(PhaseSpan(stage, res, "stable", start, None))
            elif length > 0:
                spans.append(PhaseSpan(stage, res, phase, start, start + length))  # type: ignore[arg-type]
                start += length
    return tuple(spans)
