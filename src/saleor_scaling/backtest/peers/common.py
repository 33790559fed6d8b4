"""What every peer strategy shares: how a precomputed plan acts on the simulated group, and
which 5-minute step of the observed history a decision may read.

Each peer is computed ahead of the simulation, vectorised over the whole trace, as a plan:
for every minute, the capacity the peer asks for then (-1: it does nothing that minute).
That is possible because no peer's inputs depend on the group's own state: they read the
RequestCount of the observed 5-minute history (`MetricHistory`, the one the runner builds
and the Random Forest reads), never the simulated fleet. `PlannedController` then plugs the
plan into `simulator.simulate` as a `DecisionMaker`, beside target tracking, the way
`strategies.PredictiveController` plugs predict in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.backtest.observed import PER_MINUTE, Observation
from saleor_scaling.series import FloatArray, MetricHistory
from saleor_scaling.simulation.simulator import GroupSettings, IntArray, SimulatedGroup

MINUTES_PER_STEP = STEP_SECONDS // 60
NO_ACTION = -1


class PlanMode(Enum):
    RAISE = "raise"
    """AWS predictive scaling: the plan is a floor for the hour; it only scales out and the
    group's desired capacity is the highest of all policies."""
    SET = "set"
    """A controller that sets the desired capacity both ways (PHPA, Crane's EHPA), with the
    MinSize floor under target tracking in the same call, as predict does."""


@dataclass
class PlannedController:
    """A `DecisionMaker` that applies a per-minute plan (run with decision_every=1)."""

    plan: IntArray
    mode: PlanMode
    source: str

    def decide(self, minute: int, group: SimulatedGroup, cpu: Sequence[float]) -> None:
        if minute >= len(self.plan):
            return
        wanted = int(self.plan[minute])
        if wanted == NO_ACTION:
            return
        settings = group.settings
        floor = min(settings.max_size, max(settings.min_size, wanted))
        group.floor = floor
        if self.mode is PlanMode.RAISE:
            if floor > group.desired:
                group.set_desired(minute, floor, self.source)
        else:
            group.set_desired(minute, floor, self.source)


def decision_minutes(minutes: int) -> IntArray:
    """The minutes a 5-minute controller runs (as predict's schedule)."""
    return np.arange(0, minutes, MINUTES_PER_STEP, dtype=np.int64)


def decision_anchors(
    history: MetricHistory, start: int, minutes: IntArray, observation: Observation = PER_MINUTE
) -> IntArray:
    """For each decision minute, the newest step of `history` it may read: the rule predict
    and the backtest's own strategies use (`observed.Observation.anchor`: on a per-minute
    trace the bucket two steps back, on a coarse one the last bucket of the newest source
    step that has closed). Negative: nothing yet."""
    return np.array(
        [observation.anchor(history.start, start + 60 * int(minute)) for minute in minutes], dtype=np.int64
    )


def replicas_for(load: FloatArray, per_instance: float) -> FloatArray:
    """ceil(load / per-instance target), NaN where the load is unknown: the replica count an
    HPA-style calculation asks for."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(load), np.ceil(load / per_instance - 1e-9), np.nan)


def plan_from_decisions(
    minutes: int, decided_at: IntArray, wanted: FloatArray, settings: GroupSettings
) -> IntArray:
    """A per-minute plan with `wanted` (clamped to the group's bounds) at `decided_at`
    (NaN: no action)."""
    plan = np.full(minutes, NO_ACTION, dtype=np.int64)
    known = np.isfinite(wanted)
    clamped = np.clip(wanted[known], settings.min_size, settings.max_size)
    plan[decided_at[known]] = clamped.astype(np.int64)
    return plan


def forward_fill(values: FloatArray) -> FloatArray:
    """Each NaN replaced by the last known value before it (NaN before the first)."""
    values = np.asarray(values, dtype=np.float64)
    index = np.where(np.isfinite(values), np.arange(len(values)), -1)
    np.maximum.accumulate(index, out=index)
    filled = np.where(index >= 0, values[np.maximum(index, 0)], math.nan)
    return np.asarray(filled, dtype=np.float64)
