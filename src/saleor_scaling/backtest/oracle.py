"""The oracle: the cheapest capacity that is never under-provisioned, knowing the future.

Cost is instance-minutes billed (from launch, booting included) over the minutes whose
demand is known; the constraint is that every known minute is served at the target
utilisation: in_service x capacity_per_instance >= demand (up to MaxSize: a minute that
needs more than MaxSize instances is under-provisioned for everyone). Scale-in is free and
immediate; an instance launched at minute l serves from l + boot_delay.

The schedule is built one capacity level at a time. Level k must serve every known minute
that needs at least k instances (the set N_k). Between two runs of N_k, or between the
start and the first run, an instance either stays up (costing the known minutes of the
gap) or is terminated and relaunched `boot_delay` minutes before the next run (costing the
known minutes of those last `boot_delay` minutes of the gap, which are part of the gap, so
never more). Relaunching is impossible when the gap is shorter than the boot delay.
Choosing the cheaper option per gap is optimal for the level; the level sets are nested
(a gap of level k+1 contains only shorter gaps of level k), so the levels stack into one
schedule, and their sum is the minimum total: any feasible schedule, read level by level,
pays at least each level's minimum. `tests/backtest/test_oracle.py` checks this against an
exhaustive search on small traces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saleor_scaling.series import FloatArray
from saleor_scaling.simulation.simulator import GroupSettings, IntArray


@dataclass(frozen=True)
class OracleSchedule:
    serving: IntArray
    billed: IntArray
    launches: int
    needed: IntArray
    """Instances each minute needs (0 where demand is unknown), clamped to MaxSize."""

    @property
    def cost(self) -> int:
        """Instance-minutes billed over the known minutes."""
        return int(np.sum(self.billed[self.needed > 0]))


def instances_needed(demand: FloatArray, settings: GroupSettings) -> IntArray:
    known = np.isfinite(demand)
    raw = np.ceil(np.where(known, demand, 0.0) / settings.capacity_per_instance - 1e-9)
    needed = np.clip(raw, settings.min_size, settings.max_size).astype(np.int64)
    needed[~known] = 0
    return needed


def oracle_schedule(demand: FloatArray, settings: GroupSettings) -> OracleSchedule:
    demand = np.asarray(demand, dtype=np.float64)
    needed = instances_needed(demand, settings)
    known = np.isfinite(demand)
    minutes = len(demand)
    delay = settings.boot_delay_minutes
    serving = np.zeros(minutes, dtype=np.int64)
    billed = np.zeros(minutes, dtype=np.int64)
    launches = 0
    known_before = np.concatenate(([0], np.cumsum(known)))  # known minutes before minute t
    for level in range(1, int(needed.max(initial=0)) + 1):
        required = np.flatnonzero(needed >= level)
        if not len(required):
            continue
        # Runs of consecutive required minutes: [starts[i], ends[i]).
        breaks = np.flatnonzero(np.diff(required) > 1)
        starts = np.concatenate(([required[0]], required[breaks + 1]))
        ends = np.concatenate((required[breaks] + 1, [required[-1] + 1]))
        previous_end = 0
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            gap = start - previous_end
            if gap > 0:
                boot_start = start - delay
                bridge_cost = known_before[start] - known_before[previous_end]
                if gap < delay or bridge_cost <= known_before[start] - known_before[boot_start]:
                    # Stay up through the gap (the leading gap: an instance the group
                    # starts with); the only choice when a relaunch could not boot in time.
                    serving[previous_end:start] += 1
                    billed[previous_end:start] += 1
                else:
                    billed[boot_start:start] += 1
                    launches += 1
            serving[start:end] += 1
            billed[start:end] += 1
            previous_end = end
    return OracleSchedule(serving=serving, billed=billed, launches=launches, needed=needed)
