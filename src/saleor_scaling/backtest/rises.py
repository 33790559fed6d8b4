"""What each strategy does after a sudden rise: capacity held above need, and minutes short.

A *sudden rise* starts at a 5-minute step (at least 3 of its minutes known) whose mean
demand is more than `RISE_FACTOR` times the mean demand of the `LEVEL_MINUTES` minutes
before it (its *level*: at least half of those minutes known) and needs at least one
instance more than that level does. Its window is the `AFTER_MINUTES` minutes from the
step's first; the next rise is looked for from the first step after the window, so
windows never overlap. Only minutes of the evaluated window
count, a window starting in it is cut at its end, and the rises are found on the trace
alone: every strategy, and ours before and after a change, is judged on the same minutes
(whether a forecast saw the rise coming is not judged; one a model foresaw costs little
here).

Per strategy, over the known minutes of all windows:

* `excess_instance_hours`: instances billed above the oracle's schedule, minute by minute,
  never below 0 (a minute under the oracle is short, counted next), / 60;
* `under_provisioned_minutes`: minutes whose demand exceeds in-service capacity, as the
  report counts them (`report.strategy_figures`); the oracle's are those beyond MaxSize.

The warm pool's cost is left out (the oracle keeps no pool).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from saleor_scaling.series import FloatArray
from saleor_scaling.simulation.simulator import IntArray

RISE_FACTOR = 1.5
LEVEL_MINUTES = 60
AFTER_MINUTES = 90
STEP_MINUTES = 5
"""A rise is judged on 5-minute means, the buckets predict's reactive floor reads: one
busy minute inside a quiet step is no rise."""


@dataclass(frozen=True)
class RiseWindows:
    starts: tuple[int, ...]
    """The first minute of each sudden rise."""
    minutes: int
    """Known minutes inside the windows."""
    mask: np.ndarray[Any, np.dtype[np.bool_]]
    """True for every known minute inside a window."""


def sudden_rises(
    demand: FloatArray,
    capacity_per_instance: float,
    window: slice,
    factor: float = RISE_FACTOR,
    level_minutes: int = LEVEL_MINUTES,
    after_minutes: int = AFTER_MINUTES,
    step_minutes: int = STEP_MINUTES,
) -> RiseWindows:
    """The sudden rises whose step starts inside `window` (module docstring), and their
    minutes. Steps are counted from minute 0, as the trace's 5-minute grid is."""
    demand = np.asarray(demand, dtype=np.float64)
    known = np.isfinite(demand)
    values = np.where(known, demand, 0.0)
    # Sums and counts of the known minutes before each minute: the mean demand of the
    # minutes [a, b) is (sums[b] - sums[a]) / (counts[b] - counts[a]).
    sums = np.concatenate(([0.0], np.cumsum(values)))
    counts = np.concatenate(([0], np.cumsum(known)))
    first, stop = window.indices(len(demand))[:2]
    mask = np.zeros(len(demand), dtype=bool)
    starts: list[int] = []
    t = max(-(-first // step_minutes) * step_minutes, -(-level_minutes // step_minutes) * step_minutes)
    while t < stop:
        end_of_step = min(t + step_minutes, len(demand))
        in_step = counts[end_of_step] - counts[t]
        before = counts[t] - counts[t - level_minutes]
        # A step mostly known, after an hour at least half known.
        if 2 * in_step > end_of_step - t and 2 * before >= level_minutes:
            level = (sums[t] - sums[t - level_minutes]) / before
            step = (sums[end_of_step] - sums[t]) / in_step
            if step > factor * level and _instances(step, capacity_per_instance) > _instances(
                level, capacity_per_instance
            ):
                starts.append(t)
                end = min(stop, t + after_minutes)
                mask[t:end] = True
                t = -(-end // step_minutes) * step_minutes
                continue
        t += step_minutes
    mask &= known
    return RiseWindows(tuple(starts), int(mask.sum()), mask)


def _instances(demand_per_minute: float, capacity_per_instance: float) -> int:
    return math.ceil(demand_per_minute / capacity_per_instance - 1e-9)


@dataclass(frozen=True)
class RiseFigures:
    strategy: str
    excess_instance_hours: float
    """Instance-hours billed above the oracle's inside the windows."""
    under_provisioned_minutes: int
    """Minutes short inside the windows."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["excess_instance_hours"] = round(self.excess_instance_hours, 4)
        return data


def rise_figures(
    strategy: str,
    rises: RiseWindows,
    demand: FloatArray,
    serving: IntArray,
    billed: IntArray,
    oracle_billed: IntArray,
    capacity_per_instance: float,
) -> RiseFigures:
    inside = rises.mask
    load = np.asarray(demand, dtype=np.float64)[inside]
    excess = np.maximum(billed[inside] - oracle_billed[inside], 0)
    shortfall = load - serving[inside] * capacity_per_instance
    under = shortfall > 1e-9 * np.maximum(load, 1.0)
    return RiseFigures(strategy, float(excess.sum()) / 60.0, int(under.sum()))


def rise_summary(rises: RiseWindows, figures: dict[str, RiseFigures]) -> dict[str, Any]:
    """The JSON of the rise figures (`BacktestReport.rises`)."""
    return {
        "definition": {
            "rise_factor": RISE_FACTOR,
            "level_minutes": LEVEL_MINUTES,
            "after_minutes": AFTER_MINUTES,
            "step_minutes": STEP_MINUTES,
        },
        "rises": len(rises.starts),
        "window_minutes": rises.minutes,
        "figures": {name: fig.to_json() for name, fig in figures.items()},
    }


def render_rises(summary: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The table's lines for the rise figures."""
    if not summary:
        return []
    definition = summary["definition"]
    lines = [
        "",
        f"After {summary['rises']} sudden rise(s) (a {definition['step_minutes']}-minute mean over "
        f"{definition['rise_factor']:g}x the mean of the {definition['level_minutes']} minutes before, "
        "needing an instance more), the "
        f"{definition['after_minutes']} minutes from each ({summary['window_minutes']} known minutes):",
        f"{'strategy':<28}{'inst-h above oracle':>21}{'minutes short':>15}",
    ]
    for name, fig in summary["figures"].items():
        excess, short = fig["excess_instance_hours"], fig["under_provisioned_minutes"]
        lines.append(f"{labels.get(name, name):<28}{excess:21.1f}{short:15d}")
    return lines
