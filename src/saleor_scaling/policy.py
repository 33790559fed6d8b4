"""Capacity policy: from a forecast and the group's state to one safe decision.

Rules, in order (each one that bites is recorded in `Decision.clamps`):
1. Size for the forecast times its headroom (`headroom`: the busiest minute of the step
   and the forecast's own error, measured on held-out days).
2. Never below the reactive floor: what the load and CPU observed now need at the
   reactive targets. Pre-scaling must not cut capacity that serves current traffic.
   Never below what a planned event asks for (`calendar.planned_floor`): the floor
   follows, and after the event it comes down by rule 5 like any other.
3. Clamp to the group's MinSize and MaxSize (AWS refuses anything outside them).
4. Scale out at once.
5. Scale in gradually: only to the highest recommendation of the stabilization window,
   and by at most `max_scale_in_step` instances per run (0 disables scale-in). With
   `window_holds_reactive_floor` off, the window remembers each run's recommendation
   without its reactive floor (forecast, planned event, bounds): the floor measured on a
   spike sizes that run, and the runs after it size from the forecast, whose lags see the
   new level, not from the spike (each run is still never below its own floor).
6. In forecast-only mode nothing is applied; the decision says what would have been.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from saleor_scaling.calendar import PlannedFloor
from saleor_scaling.labels import instances_for
from saleor_scaling.lease import Ownership, judge
from saleor_scaling.settings import PolicySettings, ScalingMode


class Action(enum.StrEnum):
    SCALE_OUT = "scale-out"
    SCALE_IN = "scale-in"
    HOLD = "hold"


@dataclass(frozen=True)
class GroupCapacity:
    min_size: int
    """The operator's MinSize: the lowest the group may ever go."""
    max_size: int
    desired: int
    in_service: int
    current_min_size: int | None = None
    """The group's MinSize now, which predictive raises as a floor under target tracking
    (None: not raised, the same as `min_size`)."""
    floor_managed: bool = True
    """False when the operator's MinSize is unknown (its tag is not a valid size): predict
    then leaves MinSize as it is and only sets desired capacity within it."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size:
            raise ValueError(f"group sizes are inconsistent: min {self.min_size} max {self.max_size}")
        if self.current_min_size is not None and not 0 <= self.current_min_size <= self.max_size:
            raise ValueError(f"MinSize {self.current_min_size} is outside [0, MaxSize {self.max_size}]")

    @property
    def floor(self) -> int:
        return self.min_size if self.current_min_size is None else self.current_min_size


@dataclass(frozen=True)
class GroupFacts:
    """The group as Auto Scaling describes it, tags unparsed (`read_floor` judges them)."""

    min_size: int
    """MinSize now: the operator's, or the floor predict leased."""
    max_size: int
    desired: int
    in_service: int
    lease_tag: str | None = None
    """The lease predict recorded on the group (`saleor_scaling.lease`); None: none."""
    legacy_base_tag: str | None = None
    """The operator's MinSize as recorded before the lease existed."""
    legacy_applied_tag: str | None = None
    """The MinSize predict set, as recorded before the lease existed."""
    instance_types: tuple[str, ...] = ()
    """The types of the group's instances now (for the quota notice before an event)."""


@dataclass(frozen=True)
class FloorReading:
    group: GroupCapacity
    ownership: Ownership

    @property
    def note(self) -> str:
        return self.ownership.note


def read_floor(facts: GroupFacts, now: float, lease_seconds: int) -> FloorReading:
    """Who set MinSize (the lease tag alone says: `lease.judge`), and so the operator's
    MinSize predict never goes below. Without a trustworthy record of it (`floor_managed`
    False) predict leaves MinSize alone and sets only desired capacity."""
    ownership = judge(
        facts.min_size,
        facts.max_size,
        facts.lease_tag,
        now,
        lease_seconds,
        facts.legacy_base_tag,
        facts.legacy_applied_tag,
    )
    group = GroupCapacity(
        min_size=facts.min_size if ownership.base is None else ownership.base,
        max_size=facts.max_size,
        desired=facts.desired,
        in_service=facts.in_service,
        current_min_size=facts.min_size,
        floor_managed=ownership.managed,
    )
    return FloorReading(group, ownership)


@dataclass(frozen=True)
class Decision:
    recommended: int
    """Capacity after forecast, floor and clamps, before scale-in damping: what the
    stabilization window remembers unless `remembered` says otherwise."""
    target: int
    """The desired capacity this run sets (or would set in forecast-only mode)."""
    action: Action
    apply: bool
    """True when the group must be changed now (desired capacity or the MinSize floor)."""
    clamps: tuple[str, ...] = field(default_factory=tuple)
    floor: int = 0
    """The MinSize to hold under target tracking, so that its scale-in cannot undo a
    scale-out made ahead of the load (`hold_floor`)."""
    remembered: int | None = None
    """What the stabilization window remembers of this run when it is not `recommended`
    (`window_holds_reactive_floor` off and the reactive floor raised it); None: `recommended`."""

    @property
    def window_entry(self) -> int:
        """The recommendation later runs' stabilization windows hold."""
        return self.recommended if self.remembered is None else self.remembered

    @property
    def explanation(self) -> str:
        verb = "set" if self.apply else "would set" if self.action is not Action.HOLD else "hold"
        detail = "; ".join(self.clamps) if self.clamps else "forecast used as is"
        return f"{self.action.value}: {verb} desired {self.target}, floor {self.floor} ({detail})"


def reactive_floor(
    demand_per_minute: float,
    cpu_percent: float,
    in_service: int,
    capacity_per_instance: float,
    target_cpu_percent: float,
) -> int:
    """Instances the load observed now needs at the reactive policy's targets (requests
    per instance and CPU), whichever needs more; 0 when nothing is known."""
    needs = [0]
    if math.isfinite(demand_per_minute) and demand_per_minute > 0:
        needs.append(math.ceil(demand_per_minute / capacity_per_instance - 1e-9))
    if math.isfinite(cpu_percent) and cpu_percent > 0 and in_service > 0:
        needs.append(math.ceil(in_service * cpu_percent / target_cpu_percent - 1e-9))
    return max(needs)


def decide(
    forecast_capacity: float,
    group: GroupCapacity,
    floor: int,
    recent_recommendations: Sequence[int],
    settings: PolicySettings,
    mode: ScalingMode | None = None,
    planned: PlannedFloor | None = None,
) -> Decision:
    """One decision. `forecast_capacity` is the fractional instances needed at the upper
    quantile; `recent_recommendations` are this window's earlier `recommended` values;
    `planned` what the declared events active now ask for."""
    mode = mode or settings.mode
    clamps: list[str] = []

    forecast_instances = instances_for(forecast_capacity)
    recommended = forecast_instances
    if recommended < floor:
        clamps.append(f"raised from {recommended} to reactive floor {floor}")
        recommended = floor
    if planned is not None:
        recommended = _honour_event(recommended, planned, clamps)
    recommended = _clamp_to_group(recommended, group, clamps)
    remembered = None
    if not settings.window_holds_reactive_floor and forecast_instances < floor:
        # The same rules without the floor; their clamps are already on the decision line.
        unfloored = (
            _honour_event(forecast_instances, planned, []) if planned is not None else forecast_instances
        )
        unfloored = _clamp_to_group(unfloored, group, [])
        remembered = unfloored if unfloored != recommended else None
    # What predictive itself still needs: the highest recommendation of the window. The
    # MinSize floor follows this, never the desired capacity of the moment, so capacity
    # that target tracking (or an operator) added is never locked in by predict.
    needed = min(max([recommended, *recent_recommendations]), group.max_size)

    target = recommended
    if target < group.desired:
        if needed > target:
            clamps.append(
                f"scale-in to {target} held at {min(needed, group.desired)} by the "
                f"{settings.scale_in_stabilization_minutes}-minute stabilization window"
            )
            target = min(needed, group.desired)
        lowest_step = group.desired - settings.max_scale_in_step
        if target < lowest_step:
            clamps.append(
                f"scale-in limited to {settings.max_scale_in_step} instance(s) per run"
                if settings.max_scale_in_step
                else "predictive scale-in disabled (max step 0): target tracking scales in"
            )
            target = lowest_step
        target = _clamp_to_group(target, group, clamps)

    if target > group.desired:
        action = Action.SCALE_OUT
    elif target < group.desired:
        action = Action.SCALE_IN
    else:
        action = Action.HOLD
    floor = hold_floor(needed, target, group, settings.max_scale_in_step)
    changes = action is not Action.HOLD or floor != group.floor
    apply = changes and mode is ScalingMode.FORECAST_AND_SCALE
    if changes and not apply:
        clamps.append("forecast-only mode: nothing applied")
    return Decision(recommended, target, action, apply, tuple(clamps), floor, remembered)


def hold_floor(needed: int, target: int, group: GroupCapacity, max_scale_in_step: int) -> int:
    """The MinSize predict holds under target tracking: what predictive needs (`needed`),
    never above the desired capacity it sets and never below the operator's MinSize. It
    falls at most one scale-in step per run, as the capacity does; with predictive scale-in
    disabled (step 0) it follows `needed` down at once, so target tracking can scale in.
    Without a trustworthy operator MinSize (`floor_managed` False) MinSize is left alone."""
    if not group.floor_managed:
        return group.floor
    if max_scale_in_step > 0:
        needed = max(needed, group.floor - max_scale_in_step)
    return max(group.min_size, min(target, needed))


def _honour_event(recommended: int, planned: PlannedFloor, clamps: list[str]) -> int:
    """The decision line names the event whether or not it changed the recommendation."""
    event = f"event {planned.event.name!r}"
    if planned.unsized:
        clamps.append(f"normal load unknown for event(s) {', '.join(planned.unsized)}: not applied")
    if planned.capacity <= 0:
        return recommended
    if recommended < planned.capacity:
        clamps.append(f"raised from {recommended} to {planned.capacity} for {event} ({planned.basis})")
        return planned.capacity
    clamps.append(f"{event} asks for {planned.capacity} ({planned.basis}): the forecast needs more")
    return recommended


def _clamp_to_group(capacity: int, group: GroupCapacity, clamps: list[str]) -> int:
    if capacity > group.max_size:
        clamps.append(f"clamped from {capacity} to MaxSize {group.max_size}")
        return group.max_size
    if capacity < group.min_size:
        clamps.append(f"raised from {capacity} to MinSize {group.min_size}")
        return group.min_size
    return capacity
