"""The predict function as a decision maker inside the simulator.

`PredictiveController.decide` is `predict_service.run_predict` without the AWS ports: every
5 minutes it reads the anchor bucket, the newest one visible (`visibility.Visibility.anchor`:
two steps back, CloudWatch lag; on a coarse trace the last bucket of the newest closed
source step), takes the forecast made at that anchor for anchor + horizon, converts the
sized-up forecast into instances with `labels.capacity_needed`, computes
`policy.reactive_floor` from the anchor's observed demand and this group's own CPU and
in-service count over the anchor's observation unit (the anchor bucket itself on
per-minute and 5-minute traces), and lets `policy.decide`
choose with the recommendations of the stabilization window, in forecast-and-scale mode.
Without a forecast (no model yet, or no RequestCount for the anchor) it falls back as
predict does: it changes nothing and target tracking stays in charge.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.calendar import PlannedFloor
from saleor_scaling.labels import capacity_needed
from saleor_scaling.policy import GroupCapacity, decide, reactive_floor
from saleor_scaling.series import FloatArray
from saleor_scaling.settings import PolicySettings, ScalingMode
from saleor_scaling.simulation.simulator import SimulatedGroup
from saleor_scaling.simulation.visibility import CLOUDWATCH_BUCKETS, Visibility

MINUTES_PER_STEP = STEP_SECONDS // 60


@dataclass
class DecisionLog:
    """One entry per predict run that had a forecast."""

    minutes: list[int] = field(default_factory=list)
    anchors: list[int] = field(default_factory=list)
    forecasts: list[float] = field(default_factory=list)
    """The sized-up forecast (requests per minute) each decision used."""
    predicted: list[float] = field(default_factory=list)
    floors: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    applied: list[bool] = field(default_factory=list)
    fallbacks: int = 0


class PredictiveController:
    """Decides like the predict Lambda, every 5 minutes, from forecasts made in advance.

    `demand` is the requests per minute of each 5-minute step (the ALB RequestCount the
    function reads; the trace, so the same for every strategy); `upper` the forecast at
    each anchor step that capacity is sized for, `capacity` the per-instance capacity of
    the model that made it (NaN: no forecast). `start` is the epoch second of step 0;
    `observation` says which buckets are visible at each decision (the default: every
    bucket one step after it closes, as on a per-minute trace).
    """

    def __init__(
        self,
        start: int,
        demand: FloatArray,
        upper: FloatArray,
        capacity: FloatArray,
        policy: PolicySettings,
        min_size: int,
        max_size: int,
        observation: Visibility = CLOUDWATCH_BUCKETS,
        planner: Callable[[int, int], PlannedFloor | None] | None = None,
    ) -> None:
        self.start = start
        self.observation = observation
        self.demand = np.asarray(demand, dtype=np.float64).tolist()
        self.upper = np.asarray(upper, dtype=np.float64).tolist()
        self.capacity = np.asarray(capacity, dtype=np.float64).tolist()
        self.policy = policy
        self.min_size, self.max_size = min_size, max_size
        self.planner = planner
        """The planned events (`planned.EventPlanner`: decision time, anchor step), as predict
        reads its calendar; None: no events."""
        self.recommendations: deque[tuple[int, int]] = deque()
        self.log = DecisionLog()

    def decide(self, minute: int, group: SimulatedGroup, cpu: Sequence[float]) -> None:
        decision_time = self.start + minute * 60
        anchor = self.observation.anchor(self.start, decision_time)
        if anchor < 0 or anchor >= len(self.upper):
            return
        upper, demand, capacity = self.upper[anchor], self.demand[anchor], self.capacity[anchor]
        if not (math.isfinite(upper) and math.isfinite(demand) and math.isfinite(capacity)):
            self.log.fallbacks += 1
            return
        first, end = self.observation.unit_span(self.start, anchor)
        known = [value for value in cpu[first:end] if math.isfinite(value)]
        cpu_then = sum(known) / len(known) if known else math.nan
        state = GroupCapacity(self.min_size, self.max_size, group.desired, group.serving(minute), group.floor)
        predicted = float(capacity_needed(upper, capacity))
        # As predict: CPU is judged against the fleet that was in service when it was measured.
        served = group.served[first:end]
        fleet_then = (
            round(sum(served) / len(served)) if served and sum(served) >= len(served) else state.in_service
        )
        floor = reactive_floor(demand, cpu_then, fleet_then, capacity, self.policy.target_cpu_percent)
        window_start = decision_time - self.policy.scale_in_stabilization_minutes * 60
        while self.recommendations and self.recommendations[0][0] <= window_start:
            self.recommendations.popleft()
        recent = [recommended for _, recommended in self.recommendations]
        planned = self.planner(decision_time, anchor) if self.planner is not None else None
        decision = decide(
            predicted, state, floor, recent, self.policy, ScalingMode.FORECAST_AND_SCALE, planned
        )
        self.recommendations.append((decision_time, decision.window_entry))
        if decision.apply:
            # As predict does on AWS: desired capacity and the MinSize floor under target
            # tracking in one call.
            group.floor = decision.floor
            group.set_desired(minute, decision.target, "predictive")
        log = self.log
        log.minutes.append(minute)
        log.anchors.append(anchor)
        log.forecasts.append(upper)
        log.predicted.append(predicted)
        log.floors.append(floor)
        log.targets.append(decision.target)
        log.applied.append(decision.apply)
