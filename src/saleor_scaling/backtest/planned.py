"""Planned events in the backtest (`--events FILE`): declared sales replayed through predict's
own code, a peer that does what AWS advises, and the figures inside and outside the events.

- The predictive strategies honour the events as predict does: `calendar.planned_floor`
  (the normal load is the observed history's same time last week, else yesterday, read
  only where visible at the decision and never inside a declared event) feeds
  `policy.decide` (`EventPlanner`). "predictive-without-events" is the same forecasts and
  policy without the calendar at decision time, so that what honouring the events bought
  and cost is read off side by side (both forecasts come from the walk-forward that keeps
  past events out of the seasonal features and training targets, as retrain does).
- "aws-predictive+scheduled": AWS predictive scaling from the last 14 days' patterns
  (`peers.aws_predictive`) plus a scheduled action that holds MinSize at each event's
  declared capacity (a multiplier event: the largest capacity it asks for) from one boot
  delay plus its lead before the start to its end. AWS's own advice for events its
  forecast cannot know: "you can use scheduled actions to temporarily override the
  forecast ... for example, during a marketing event" (Amazon EC2 Auto Scaling User
  Guide, "Override forecast values using scheduled actions").
- `event_figures`: each strategy's short minutes and instance-hours inside the events'
  windows (from the lead before the start to the end) and outside them, over the
  evaluated minutes; `preview_cost` is what `registry_cli events preview` would have said.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from saleor_scaling import STEP_SECONDS
from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.observed import Observation
from saleor_scaling.backtest.peers import peer_plans
from saleor_scaling.backtest.peers.common import NO_ACTION, PlanMode, PlannedController
from saleor_scaling.calendar import (
    MAX_CALENDAR_BYTES,
    Calendar,
    PlannedEvent,
    PlannedFloor,
    event_steps,
    normal_load,
    peak_capacity,
    planned_floor,
    preview,
)
from saleor_scaling.series import FloatArray, MetricHistory
from saleor_scaling.simulation.simulator import IntArray, SimulationRecord, TargetTracking, simulate

WITHOUT_EVENTS = "predictive-without-events"
SCHEDULED_PEER = "aws-predictive+scheduled"


def load_events(path: Path) -> tuple[PlannedEvent, ...]:
    """The events of a calendar file (the format `registry_cli events` writes), validated
    as predict validates them; past dates are fine here."""
    with path.open("rb") as file:
        raw = file.read(MAX_CALENDAR_BYTES + 1)
    return Calendar.parse(raw).events


@dataclass(frozen=True)
class EventPlanner:
    """What the events ask of a backtest decision, computed as predict computes it."""

    events: tuple[PlannedEvent, ...]
    start: int
    """Epoch second of step 0 of `demand`."""
    demand: FloatArray
    """Observed requests per minute of each 5-minute step."""
    horizon_steps: int
    capacity_per_instance: float

    def __call__(self, decision_time: int, anchor: int) -> PlannedFloor | None:
        target_time = self.start + (anchor + self.horizon_steps) * STEP_SECONDS
        return planned_floor(
            self.events,
            decision_time,
            target_time,
            lambda step_time: self.normal_demand(step_time, anchor),
            self.capacity_per_instance,
        )

    def normal_demand(self, step_time: int, visible_until: int | None = None) -> float:
        step = (step_time - self.start) // STEP_SECONDS
        newest = len(self.demand) - 1 if visible_until is None else visible_until
        return normal_load(self.demand, step, newest, self.inside_events)

    @cached_property
    def inside_events(self) -> npt.NDArray[np.bool_]:
        """The steps of the declared events: never a normal load (as in predict)."""
        return event_steps(self.start, len(self.demand), self.events)

    def reach_seconds(self, anchor_offset_steps: int = 2) -> int:
        return (self.horizon_steps - anchor_offset_steps) * STEP_SECONDS


def preview_cost(planner: EventPlanner) -> dict[str, dict[str, float]]:
    """Per event: the instance-hours `registry_cli events preview` prints (normal, planned,
    extra), from the same normal load."""
    costs: dict[str, dict[str, float]] = {}
    for event in planner.events:
        steps = preview(event, planner.normal_demand, planner.capacity_per_instance, planner.reach_seconds())
        known = [step for step in steps if math.isfinite(step.normal) and math.isfinite(step.planned)]
        normal = sum(step.normal for step in known) * STEP_SECONDS / 3600
        planned = sum(step.planned for step in known) * STEP_SECONDS / 3600
        costs[event.name] = {"normal": normal, "planned": planned, "extra": planned - normal}
    return costs


def run_scheduled_peer(
    demand: FloatArray,
    start: int,
    history: MetricHistory,
    config: BacktestConfig,
    observation: Observation,
    planner: EventPlanner,
) -> SimulationRecord:
    """AWS predictive scaling (14-day patterns) plus one scheduled action per event."""
    aws = peer_plans(
        demand,
        start,
        history,
        replace(config, strategies=("reactive", "oracle", "aws-predictive-patterns")),
        config.peers,
        observation,
    )["aws-predictive-patterns"]
    plan = scheduled_plan(aws.plan, start, planner, config.max_size)
    controller = PlannedController(plan, PlanMode.RAISE, "aws-predictive")
    tracking = TargetTracking(config.target_tracking_settings(with_predictive=True))
    return simulate(demand, config.group_settings(), tracking, controller, decision_every=1)


def scheduled_plan(aws_plan: IntArray, start: int, planner: EventPlanner, max_size: int) -> IntArray:
    """The AWS plan with each event's scheduled MinSize laid over it: at the event's first
    minute the floor is its capacity, no hourly action inside lowers it, and at its end
    the hourly forecast's floor is restored (a second scheduled action)."""
    plan = aws_plan.copy()
    minutes = len(plan)
    last_aws = _forward_fill_actions(aws_plan)
    for event in planner.events:
        capacity = min(
            max_size,
            peak_capacity(
                event, planner.normal_demand, planner.capacity_per_instance, event.end - event.start
            ),
        )
        if capacity <= 0:
            continue
        first = max(0, (event.raise_from - planner.reach_seconds() - start) // 60)
        end = min(minutes, (event.end - start) // 60)
        if first >= end:
            continue
        window = plan[first:end]
        window[window != NO_ACTION] = np.maximum(window[window != NO_ACTION], capacity)
        plan[first] = capacity
        if end < minutes and plan[end] == NO_ACTION and last_aws[end] != NO_ACTION:
            plan[end] = last_aws[end]
    return plan


def _forward_fill_actions(plan: IntArray) -> IntArray:
    index = np.where(plan != NO_ACTION, np.arange(len(plan)), -1)
    np.maximum.accumulate(index, out=index)
    return np.where(index >= 0, plan[np.maximum(index, 0)], NO_ACTION)


def event_windows(events: Sequence[PlannedEvent], start: int, minutes: int) -> np.ndarray:
    """True for the trace minutes inside an event's window [start - lead, end)."""
    inside = np.zeros(minutes, dtype=bool)
    for event in events:
        first = max(0, (event.raise_from - start) // 60)
        end = min(minutes, max(0, (event.end - start) // 60))
        inside[first:end] = True
    return inside


class _Fleet(Protocol):
    @property
    def serving(self) -> IntArray: ...

    @property
    def billed(self) -> IntArray: ...


def event_figures(
    records: Mapping[str, _Fleet],
    demand: FloatArray,
    capacity_per_instance: float,
    inside: np.ndarray,
    first_minute: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Each strategy's short minutes and instance-hours inside and outside the events'
    windows, over the evaluated minutes (from `first_minute`), known load only."""
    evaluated = np.zeros(len(demand), dtype=bool)
    evaluated[first_minute:] = True
    known = np.isfinite(demand) & evaluated
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for name, record in records.items():
        short = np.nan_to_num(demand) - record.serving * capacity_per_instance > 1e-9 * np.maximum(
            np.nan_to_num(demand), 1.0
        )
        figures[name] = {
            part: {
                "minutes": int(np.sum(known & mask)),
                "short_minutes": int(np.sum(short & known & mask)),
                "instance_hours": float(np.sum(record.billed[known & mask])) / 60.0,
            }
            for part, mask in (("inside", inside), ("outside", ~inside))
        }
    return figures


def render_event_table(document: dict[str, Any]) -> str:
    lines = [
        "",
        "Planned events (" + "; ".join(document["events"]) + ")",
        f"{'strategy':<28}{'short min':>10}{'inst-h':>9}   {'short min':>10}{'inst-h':>9}",
        f"{'':<28}{'inside events':>19}   {'outside events':>19}",
    ]
    for name, parts in document["figures"].items():
        inside, outside = parts["inside"], parts["outside"]
        lines.append(
            f"{name:<28}{inside['short_minutes']:>10d}{inside['instance_hours']:>9.1f}   "
            f"{outside['short_minutes']:>10d}{outside['instance_hours']:>9.1f}"
        )
    for name, cost in document["preview"].items():
        lines.append(
            f"preview of {name}: {cost['extra']:.1f} extra instance-hours "
            f"({cost['planned']:.1f} planned against {cost['normal']:.1f} for the normal load)"
        )
    return "\n".join(lines)
