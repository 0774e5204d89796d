"""`ScheduleConfig`: the growth schedule as a frozen, validated, JSON-serialisable value, and its presets."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from progrow.state import is_power_of_two

__all__ = ["ScheduleConfig", "ResetPolicy", "SCHEDULE_PRESETS"]

ResetPolicy = Literal["never", "stage", "phase"]
_RESET_POLICIES = ("never", "stage", "phase")
_PER_RES_FIELDS = ("fade_kimg_per_res", "stable_kimg_per_res", "batch_size_per_res", "lr_per_res")


@dataclass(frozen=True)
class ScheduleConfig:
    """The growth schedule: which resolutions, how long each phase lasts, and the minibatch and lr per stage.

    Stage 0 trains `start_resolution` in a stable phase only; every later stage first fades its new
    block in (`fade`, alpha 0 → 1), then trains it at full weight (`stable`). The final stage's stable
    phase lasts `stable_kimg` — or until `total_kimg` when that is later.
    """

    start_resolution: int = 4  # resolution of stage 0 (a power of two)
    final_resolution: int = 1024  # resolution of the last stage (a power of two ≥ start_resolution)
    fade_kimg: float = 800.0  # length of every fade, in thousands of images (paper: 800)
    stable_kimg: float = 800.0  # length of every stable phase, in thousands of images (paper: 800)
    fade_kimg_per_res: Mapping[int, float] = field(default_factory=dict)  # fade length overrides by resolution
    stable_kimg_per_res: Mapping[int, float] = field(default_factory=dict)  # stable length overrides by resolution
    batch_size: int = 16  # minibatch size (paper: 16)
    batch_size_per_res: Mapping[int, int] = field(default_factory=dict)  # paper: {256: 14, 512: 6, 1024: 3}
    lr: float = 1e-3  # learning rate (paper: Adam with 0.001)
    lr_per_res: Mapping[int, float] = field(default_factory=dict)  # learning-rate overrides by resolution
    total_kimg: float | None = None  # end of training; None = end of the final stable phase
    reset_optimizers: ResetPolicy = "never"  # clear optimizer state: never, at each new stage, or each new phase
    align_batches: bool = True  # shorten a phase's last minibatch so the phase ends at its exact image count
    batch_multiple: int = 1  # every minibatch, shortened ones too, is a multiple of this (e.g. the number of ranks)

    def __post_init__(self) -> None:
        for name in _PER_RES_FIELDS:  # accept JSON-style string keys; store plain dicts with int keys
            object.__setattr__(self, name, _int_keyed(name, getattr(self, name)))
        problems = self._problems()
        if problems:
            raise ValueError("invalid ScheduleConfig:\n" + "\n".join(f"  - {p}" for p in problems))

    # ----------------------------------------------------------------------------------------- derived
    @property
    def resolutions(self) -> tuple[int, ...]:
        """Every stage's resolution, ascending: `(start, 2·start, …, final)`."""
        out, res = [], self.start_resolution
        while res <= self.final_resolution:
            out.append(res)
            res *= 2
        return tuple(out)

    def fade_kimg_at(self, resolution: int) -> float:
        """Fade length (kimg) of the stage at `resolution`; 0 for the first stage, which has no fade."""
        if resolution == self.start_resolution:
            return 0.0
        return float(self.fade_kimg_per_res.get(resolution, self.fade_kimg))

    def stable_kimg_at(self, resolution: int) -> float:
        """Stable-phase length (kimg) of the stage at `resolution`."""
        return float(self.stable_kimg_per_res.get(resolution, self.stable_kimg))

    def batch_size_at(self, resolution: int) -> int:
        """Minibatch size of the stage at `resolution`."""
        return int(self.batch_size_per_res.get(resolution, self.batch_size))

    def lr_at(self, resolution: int) -> float:
        """Learning rate of the stage at `resolution`."""
        return float(self.lr_per_res.get(resolution, self.lr))

    # ----------------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (per-resolution keys become strings)."""
        d = asdict(self)
        for name in _PER_RES_FIELDS:
            d[name] = {str(k): v for k, v in sorted(d[name].items())}
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleConfig:
        """Build from `to_dict()` output; unknown keys raise `ValueError` naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"ScheduleConfig: expected a mapping of fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"ScheduleConfig: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))

    def to_json(self, *, indent: int | None = 2) -> str:
        """Serialise to JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> ScheduleConfig:
        """Parse JSON text written by `to_json()`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"ScheduleConfig: not valid JSON ({exc})") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ScheduleConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ScheduleConfig:
        """A named preset (`"paper"`, `"official"`) with fields overridden by keyword.

        The preset's per-resolution tables are trimmed to the resolutions of the resulting schedule, so
        `ScheduleConfig.preset("paper", final_resolution=64)` keeps the paper's values for 4²–64².
        """
        try:
            factory = SCHEDULE_PRESETS[name]
        except KeyError:
            raise ValueError(
                f"ScheduleConfig.preset: unknown preset {name!r}; available: {', '.join(SCHEDULE_PRESETS)}"
            ) from None
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"ScheduleConfig.preset: unknown field(s) {', '.join(map(repr, unknown))}")
        kwargs = {**factory(), **overrides}
        lo = kwargs.get("start_resolution", 4)
        hi = kwargs.get("final_resolution", 1024)
        for table in _PER_RES_FIELDS:
            if table in kwargs and table not in overrides and isinstance(lo, int) and isinstance(hi, int):
                kwargs[table] = {r: v for r, v in kwargs[table].items() if lo <= r <= hi}
        return cls(**kwargs)

    # -------------------------------------------------------------------------------------- validation
    def _problems(self) -> list[str]:
        problems: list[str] = []
        for name in ("start_resolution", "final_resolution"):
            value = getattr(self, name)
            if not is_power_of_two(value) or value < 2:
                problems.append(f"{name}: expected a power of two ≥ 2 (4, 8, …, 1024), got {value!r}")
        resolutions_ok = not problems
        if resolutions_ok and self.final_resolution < self.start_resolution:
            problems.append(
                f"final_resolution: expected ≥ start_resolution ({self.start_resolution}), got {self.final_resolution}"
            )
            resolutions_ok = False
        for name in ("fade_kimg", "stable_kimg"):
            if not _is_nonneg_number(getattr(self, name)):
                problems.append(f"{name}: expected a finite number ≥ 0 (kimg), got {getattr(self, name)!r}")
        if not _is_positive_int(self.batch_size):
            problems.append(f"batch_size: expected a positive int, got {self.batch_size!r}")
        if not _is_positive_int(self.batch_multiple):
            problems.append(f"batch_multiple: expected a positive int, got {self.batch_multiple!r}")
        else:
            m = self.batch_multiple
            for where, value in (
                ("batch_size", self.batch_size),
                *((f"batch_size_per_res[{r}]", v) for r, v in self.batch_size_per_res.items()),
            ):
                if _is_positive_int(value) and value % m:
                    problems.append(f"{where}: expected a multiple of batch_multiple ({m}), got {value}")
        if not _is_positive_number(self.lr):
            problems.append(f"lr: expected a finite number > 0, got {self.lr!r}")
        if self.total_kimg is not None and not _is_nonneg_number(self.total_kimg):
            problems.append(f"total_kimg: expected None or a finite number ≥ 0 (kimg), got {self.total_kimg!r}")
        if self.reset_optimizers not in _RESET_POLICIES:
            problems.append(
                f"reset_optimizers: expected one of {', '.join(map(repr, _RESET_POLICIES))}, got {self.reset_optimizers!r}"
            )
        if not isinstance(self.align_batches, bool):
            problems.append(f"align_batches: expected True or False, got {self.align_batches!r}")
        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "fade_kimg_per_res": (_is_nonneg_number, "a finite number ≥ 0 (kimg)"),
            "stable_kimg_per_res": (_is_nonneg_number, "a finite number ≥ 0 (kimg)"),
            "batch_size_per_res": (_is_positive_int, "a positive int"),
            "lr_per_res": (_is_positive_number, "a finite number > 0"),
        }
        allowed = self.resolutions if resolutions_ok else None
        for name, (ok, expected) in checks.items():
            for res, value in getattr(self, name).items():
                if allowed is not None and res not in allowed:
                    problems.append(f"{name}[{res}]: resolution not in the schedule; allowed: {', '.join(map(str, allowed))}")
                elif name == "fade_kimg_per_res" and res == self.start_resolution:
                    problems.append(f"{name}[{res}]: the first stage ({res}) has no fade")
                elif not ok(value):
                    problems.append(f"{name}[{res}]: expected {expected}, got {value!r}")
        return problems


def _int_keyed(name: str, mapping: Any) -> dict[int, Any]:
    if not isinstance(mapping, Mapping):
        raise ValueError(f"invalid ScheduleConfig:\n  - {name}: expected a mapping resolution -> value, got {mapping!r}")
    out: dict[int, Any] = {}
    for key, value in mapping.items():
        try:
            res = int(key)
            if isinstance(key, (bool, float)) or (isinstance(key, str) and str(res) != key.strip()):
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(
                f"invalid ScheduleConfig:\n  - {name}: keys must be resolutions (powers of two), got {key!r}"
            ) from None
        if not is_power_of_two(res):
            raise ValueError(f"invalid ScheduleConfig:\n  - {name}: keys must be resolutions (powers of two), got {key!r}")
        out[res] = value
    return dict(sorted(out.items()))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_nonneg_number(value: Any) -> bool:
    return _is_number(value) and value >= 0


def _is_positive_number(value: Any) -> bool:
    return _is_number(value) and value > 0


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _paper() -> dict[str, Any]:
    """Karras et al. 2018, appendix A.1: 800k images per phase, minibatch 16 → 14/6/3, Adam lr 0.001."""
    return dict(
        fade_kimg=800.0,
        stable_kimg=800.0,
        batch_size=16,
        batch_size_per_res={256: 14, 512: 6, 1024: 3},
        lr=1e-3,
        reset_optimizers="stage",
    )


def _official() -> dict[str, Any]:
    """The official code's single-GPU defaults: 600k images per phase, its per-resolution minibatch
    table (128 at 4²–16² down to 4 at 512²–1024²), lr 0.001 (0.0015 at 1024²), 12M images in all, and
    optimizer state reset whenever the level of detail changes (start and end of every fade)."""
    return dict(
        fade_kimg=600.0,
        stable_kimg=600.0,
        batch_size=4,
        batch_size_per_res={4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4},
        lr=1e-3,
        lr_per_res={1024: 1.5e-3},
        total_kimg=12000.0,
        reset_optimizers="phase",
    )


# Preset name -> the ScheduleConfig fields it sets (for 4² → 1024²).
SCHEDULE_PRESETS: dict[str, Callable[[], dict[str, Any]]] = {"paper": _paper, "official": _official}
