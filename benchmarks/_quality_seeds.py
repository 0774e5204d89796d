"""Several seeds per variant in quality.py: their mean result, which the verdicts judge, and each seed's verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def parse_seeds(text: str) -> list[int]:
    """`"0,1,2"` → `[0, 1, 2]`; ValueError naming what is wrong (not an integer, negative, repeated, none)."""
    items = [s.strip() for s in text.split(",")]
    if not all(items):
        raise ValueError(f"expected one or more integers ≥ 0, comma-separated, got {text!r}")
    try:
        seeds = [int(s) for s in items]
    except ValueError:
        raise ValueError(f"expected one or more integers ≥ 0, comma-separated, got {text!r}") from None
    if min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"expected distinct integers ≥ 0, got {text!r}")
    return seeds


def work_name(variant: str, seed: int) -> str:
    """A variant's folder for one seed: seed 0 keeps the plain name, so a one-seed run's results are reused."""
    return variant if seed == 0 else f"{variant}-seed{seed}"


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 3)


def _mean_levels(levels: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each level's mean over dicts `{level: swd}`; only the levels every dict has."""
    common = [k for k in levels[0] if all(k in d for d in levels)]
    return {k: _mean([d[k] for d in levels]) for k in common}


def _mean_points(runs: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Point i of the mean curve: every score's and CPU-second's mean over the seeds' point i.

    The points sit at the same fractions of the budget in every seed. Resolution and alpha differ between
    seeds there (each trains its own number of images); the mean point takes those of the least advanced.
    """
    out = []
    for pts in zip(*runs, strict=False):
        least = min(pts, key=lambda p: (p["resolution"], p["alpha"]))
        point = {k: _mean([p[k] for p in pts]) for k, v in pts[0].items() if k not in ("resolution", "alpha")}
        out.append({**point, "resolution": least["resolution"], "alpha": least["alpha"]})
    return out


def _mean_stage_ends(runs: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The stage ends every seed has (matched by resolution), their levels, CPU-seconds and kimg averaged."""
    by_res = [{e["resolution"]: e for e in ends} for ends in runs]
    out = []
    for r in [e["resolution"] for e in runs[0]]:
        ends = [b[r] for b in by_res if r in b]
        if len(ends) < len(runs):
            continue
        end = {
            "resolution": r,
            "cpu_s": _mean([e["cpu_s"] for e in ends]),
            "kimg": _mean([e["kimg"] for e in ends]),
            "levels": _mean_levels([e["levels"] for e in ends]),
        }
        if any(e.get("budget_end") for e in ends):
            end["budget_end"] = True
        out.append(end)
    return out


def _mean_trace(runs: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The level trace's mean over the kimg marks every seed reached (the marks are the same images in each)."""
    out = []
    for pts in zip(*runs, strict=False):
        if len({(p["kimg"] // 1, p["resolution"]) for p in pts}) != 1:  # marks differ: traced with other settings
            break
        out.append(
            {
                "kimg": _mean([p["kimg"] for p in pts]),
                "cpu_s": _mean([p["cpu_s"] for p in pts]),
                "resolution": pts[0]["resolution"],
                "alpha": pts[0]["alpha"],
                "levels": _mean_levels([p["levels"] for p in pts]),
            }
        )
    return out


def mean_result(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One variant's result averaged over its seeds' results, in the same form (a lone result as it is).

    Numbers are means (steps rounded); the final resolution and alpha are the least advanced seed's;
    `final_swds` lists every seed's final SWD, in the seeds' order.
    """
    if len(runs) == 1:
        return dict(runs[0])
    first = runs[0]
    out: dict[str, Any] = {"variant": first["variant"], "dataset": first["dataset"]}
    for key, value in first.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and all(key in r for r in runs):
            out[key] = _mean([r[key] for r in runs])
    out["steps"] = round(out["steps"])
    least = min(runs, key=lambda r: (r["final_resolution_reached"], r["final_alpha"]))
    out["final_resolution_reached"], out["final_alpha"] = least["final_resolution_reached"], least["final_alpha"]
    out["points"] = _mean_points([r["points"] for r in runs])
    out["final_levels"] = _mean_levels([r["final_levels"] for r in runs]) if all(r["final_levels"] for r in runs) else {}
    if "stage_ends" in first:
        out["stage_ends"] = _mean_stage_ends([r["stage_ends"] for r in runs])
        out["trace"] = _mean_trace([r.get("trace", []) for r in runs])
    out["final_swds"] = [r["points"][-1]["swd"] for r in runs]
    return out


def annotate(mean_lines: Sequence[str], per_seed: dict[int, Sequence[str]]) -> list[str]:
    """The verdict lines of the means, each `[PASS]`/`[FAIL]` line followed by every seed's own outcome.

    `per_seed[seed]` are the verdict lines of that seed alone, built from the same variants, so their
    check lines come in the same order as the means'.
    """
    checks = {seed: [line for line in lines if line.lstrip().startswith("[")] for seed, lines in per_seed.items()}
    out, i = [], 0
    for line in mean_lines:
        if line.lstrip().startswith("["):
            outcomes = ", ".join(f"{seed} {c[i].lstrip()[1:5]}" for seed, c in checks.items())
            line = f"{line} — per seed: {outcomes}"
            i += 1
        out.append(line)
    return out
