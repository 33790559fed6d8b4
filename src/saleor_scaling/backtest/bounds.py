"""What forecasting the load's level can achieve at best on a trace: the clairvoyant-level bound.

A forecaster sees only the past; the oracle sees every minute. Between them lies what no
forecast of the level can know: how each step departs from the load around it. This
bound hands a policy the level around every 5-minute step *future included* (the mean
demand of the steps up to `half_width_steps` either side, the step itself left out, so it
cannot peek at the step it sizes) and lets it size every step as one best multiple of
that level, rounded up to whole instances, with no boot delay and no scale-in damping.
The smallest multiple that keeps the under-provisioned minutes within the limit is the
cheapest such policy (capacity only grows with the multiple), and its instance-hours
relative to the oracle's are the bound.

When the bound itself is above a cost target, a policy driven by a forecast of the level,
however good, does not meet both targets on that trace: what remains is step-to-step
noise, which only knowing the future sizes for. It bounds level forecasters, not every
conceivable policy: one that predicted the noise from the last steps could do better,
which the trace's autocorrelation at the forecast horizon (reported beside it) says how
much room there is for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from saleor_scaling.backtest.traces import MINUTES_PER_STEP
from saleor_scaling.series import FloatArray
from saleor_scaling.simulation.simulator import GroupSettings, IntArray

HALF_WIDTH_STEPS = 12
"""An hour either side of the step."""
_BISECTIONS = 40


@dataclass(frozen=True)
class LevelBound:
    multiple: float
    """The cheapest multiple of the surrounding level within the under-provisioning limit."""
    under_provisioned_share: float
    instance_hours_vs_oracle: float
    under_limit: float
    half_width_minutes: int
    horizon_autocorrelation: float
    """Correlation of log step demand with the same series `horizon` steps earlier."""


def surrounding_level(step_demand: FloatArray, half_width_steps: int = HALF_WIDTH_STEPS) -> FloatArray:
    """Mean of the known steps within `half_width_steps` either side, the step left out."""
    known = np.isfinite(step_demand)
    values = np.where(known, step_demand, 0.0)
    sums = np.concatenate(([0.0], np.cumsum(values)))
    counts = np.concatenate(([0], np.cumsum(known)))
    index = np.arange(len(step_demand))
    lo = np.maximum(index - half_width_steps, 0)
    hi = np.minimum(index + half_width_steps + 1, len(step_demand))
    total = sums[hi] - sums[lo] - values
    count = counts[hi] - counts[lo] - known
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def horizon_autocorrelation(step_demand: FloatArray, horizon_steps: int) -> float:
    logged = np.log1p(step_demand)
    now, later = logged[:-horizon_steps], logged[horizon_steps:]
    both = np.isfinite(now) & np.isfinite(later)
    if np.sum(both) < 3 or np.std(now[both]) == 0 or np.std(later[both]) == 0:
        return math.nan
    return float(np.corrcoef(now[both], later[both])[0, 1])


def clairvoyant_level_bound(
    demand: FloatArray,
    settings: GroupSettings,
    oracle_billed: IntArray,
    under_limit: float,
    window: slice,
    horizon_steps: int,
    half_width_steps: int = HALF_WIDTH_STEPS,
) -> LevelBound | None:
    """The bound over the minutes of `window` (None when no multiple meets the limit: a
    trace that needs more than MaxSize more often than that)."""
    demand = np.asarray(demand, dtype=np.float64)
    steps = len(demand) // MINUTES_PER_STEP
    minutes = steps * MINUTES_PER_STEP
    step_demand = demand[:minutes].reshape(steps, MINUTES_PER_STEP).mean(axis=1)
    level = np.repeat(surrounding_level(step_demand, half_width_steps), MINUTES_PER_STEP)
    judged = np.zeros(minutes, dtype=bool)
    judged[window] = True
    judged &= np.isfinite(demand[:minutes])
    load = demand[:minutes][judged]
    level = np.nan_to_num(level[judged], nan=0.0)
    oracle_hours = float(np.sum(oracle_billed[:minutes][judged]))
    if not len(load) or oracle_hours <= 0:
        return None

    def outcome(multiple: float) -> tuple[float, float]:
        instances = np.clip(
            np.ceil(multiple * level / settings.capacity_per_instance - 1e-9),
            settings.min_size,
            settings.max_size,
        )
        under = float(np.mean(load > instances * settings.capacity_per_instance + 1e-9))
        return under, float(np.sum(instances)) / oracle_hours

    low, high = 0.0, 1.0
    while outcome(high)[0] > under_limit:
        if high > 1e4:
            return None
        low, high = high, high * 2
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        low, high = (middle, high) if outcome(middle)[0] > under_limit else (low, middle)
    under, cost = outcome(high)
    return LevelBound(
        multiple=high,
        under_provisioned_share=under,
        instance_hours_vs_oracle=cost,
        under_limit=under_limit,
        half_width_minutes=half_width_steps * MINUTES_PER_STEP,
        horizon_autocorrelation=horizon_autocorrelation(step_demand, horizon_steps),
    )
