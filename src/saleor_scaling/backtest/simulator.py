"""An EC2 Auto Scaling group at 1-minute resolution, and AWS target tracking on it.

The group (`SimulatedGroup`)
    An instance launched at minute t is billed from t and serves load from
    t + boot_delay (pending until then); scale-in terminates at once (pending instances
    first, then the newest), and a terminated instance serves and costs nothing more.
    Each change of the desired capacity is one scaling action.

Load and the metrics the shop emits (`Simulation.run`)
    `capacity_per_instance` is the requests per minute one instance serves at the target
    CPU, so the group serves `in_service x capacity_per_instance` requests a minute at the
    target utilisation; a minute with more demand than that is under-provisioned. CPU is
    linear in load per instance: target_cpu x demand / (in_service x capacity), capped at
    100 %, and ALB RequestCountPerTarget is demand / in_service.

Target tracking (`TargetTracking`), as Amazon EC2 Auto Scaling documents it:
    * Two policies, ASGAverageCPUUtilization (target 70 %) and ALBRequestCountPerTarget
      (target 1,000 per minute); EC2 Auto Scaling "will scale out the Auto Scaling group if
      any of the target tracking policies are ready for scale out, but will scale in only
      if all of the target tracking policies (with the scale-in portion enabled) are ready
      to scale in" (EC2 Auto Scaling User Guide, "Target tracking scaling policies",
      Considerations); with both ready it takes the larger capacity (Application Auto
      Scaling User Guide, "Target tracking scaling policies", Considerations).
    * Each policy's alarms are the ones target tracking creates, on 1-minute datapoints
      (detailed monitoring, which the guide recommends: "Scaling on metrics with a 5-minute
      frequency can result in slower response times"): the high alarm when 3 of 3
      datapoints exceed the target, the low alarm when 15 of 15 are below a threshold
      "far enough below the target value (usually more than 10% lower)" (Application Auto
      Scaling User Guide, "Supporting application availability during high utilization
      periods"). The exact low threshold is not documented; we use 90 % of the target by
      default (the least conservative reading; alarms observed on EC2 groups often show
      70 %, settable with `scale_in_ratio`). The datapoint/period counts are what the
      managed alarms show ("AlarmHigh ... 3 datapoints within 3 minutes", "AlarmLow ...
      15 datapoints within 15 minutes"), not a documented contract.
    * An alarm in ALARM re-invokes its scaling policy every minute ("an alarm invokes an
      Auto Scaling action once each minute when the alarm remains in a new state",
      AWS re:Post knowledge center, "autoscaling-policy-cloudwatch-alarm").
    * The new capacity is ceil(capacity x metric / target): proportional, and rounded up
      so that "we don't add an insufficient number of instances or remove too many"
      (User Guide, Considerations). Capacity is the instances counted in the metric's
      datapoint ("Until its specified warm-up time has expired, an instance is not counted
      toward the aggregated metrics of the Auto Scaling group"; "While scaling out, we do
      not consider instances that are warming up as part of the current capacity"), and a
      scale-out only raises the desired capacity, which already counts warming instances,
      so repeated invocations during warm-up do not stack ("multiple alarm breaches ...
      result in a single scaling activity", "Set the default instance warmup").
    * Scale-in is blocked while any instance is pending or warming up ("A scale-in activity
      can't start while a scale-out activity is in progress"; default instance warmup
      "blocks scale-in activities initiated by scaling policies until the instances finish
      warming up"). EC2 target tracking has no cooldowns ("DefaultCooldown and Cooldown
      are only needed when you use simple scaling policies").
    * Datapoints reach the alarm `alarm_delay_minutes` after their minute closes (1 by
      default): at minute t the newest datapoint is minute t - 1 - delay.
    * A missing datapoint (a gap in the trace) breaches neither alarm: target tracking
      "does not scale in when the state of the alarm is INSUFFICIENT_DATA".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from saleor_scaling.series import FloatArray

IntArray = npt.NDArray[np.int64]

NEVER = -(10**9)
"""Launch minute of the instances the group starts with (serving from the first minute)."""


@dataclass(frozen=True)
class GroupSettings:
    min_size: int = 1
    max_size: int = 10
    boot_delay_minutes: int = 5
    """Launch to serving (InService behind the load balancer)."""
    warmup_minutes: int | None = None
    """Launch to counting in the aggregated metrics; None means the boot delay (a default
    instance warmup of 0 after InService, as AWS recommends setting at least)."""
    capacity_per_instance: float = 1000.0
    """Requests per minute one instance serves at the target CPU."""
    target_cpu_percent: float = 70.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_size <= self.max_size:
            raise ValueError(f"need 1 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        if self.boot_delay_minutes < 0:
            raise ValueError("boot_delay_minutes must be >= 0")
        if self.warmup_minutes is not None and self.warmup_minutes < self.boot_delay_minutes:
            raise ValueError("warmup_minutes counts from launch: it cannot be shorter than the boot delay")
        if self.capacity_per_instance <= 0:
            raise ValueError("capacity_per_instance must be > 0")
        if not 0 < self.target_cpu_percent <= 100:
            raise ValueError("target_cpu_percent must be in (0, 100]")

    @property
    def warmup(self) -> int:
        return self.boot_delay_minutes if self.warmup_minutes is None else self.warmup_minutes

    def instances_needed(self, demand_per_minute: float) -> int:
        """Instances that serve this demand at the target utilisation, within the group's
        bounds (min_size when the demand is unknown)."""
        if not math.isfinite(demand_per_minute):
            return self.min_size
        needed = math.ceil(demand_per_minute / self.capacity_per_instance - 1e-9)
        return min(self.max_size, max(self.min_size, needed))


@dataclass
class ScalingAction:
    minute: int
    source: str
    before: int
    after: int


class SimulatedGroup:
    """The instances of one Auto Scaling group, each known by its launch minute."""

    def __init__(self, settings: GroupSettings, initial: int) -> None:
        self.settings = settings
        self.launches: list[int] = [NEVER] * max(settings.min_size, min(settings.max_size, initial))
        self.actions: list[ScalingAction] = []
        self.floor = settings.min_size
        """The group's MinSize now: predict raises it to the capacity it sets, so that
        target tracking's scale-in cannot go below (saleor_scaling.adapters.autoscaling)."""
        self.served: list[int] = []
        """Instances in service in each minute simulated so far: what the group's
        GroupInServiceInstances metric recorded."""

    @property
    def desired(self) -> int:
        return len(self.launches)

    def serving(self, minute: int) -> int:
        ready = minute - self.settings.boot_delay_minutes
        return sum(1 for launch in self.launches if launch <= ready)

    def warmed(self, minute: int) -> int:
        ready = minute - self.settings.warmup
        return sum(1 for launch in self.launches if launch <= ready)

    def settling(self, minute: int) -> bool:
        """True while an instance is pending or warming up (scale-in is blocked)."""
        settled = minute - max(self.settings.boot_delay_minutes, self.settings.warmup)
        return any(launch > settled for launch in self.launches)

    def set_desired(self, minute: int, desired: int, source: str) -> bool:
        """Clamp to the group's bounds, launch or terminate to match; True if it changed."""
        desired = min(self.settings.max_size, max(self.floor, desired))
        before = len(self.launches)
        if desired == before:
            return False
        if desired > before:
            self.launches.extend([minute] * (desired - before))
        else:
            # Sorted by launch: the newest (pending first) go first.
            del self.launches[desired:]
        self.actions.append(ScalingAction(minute, source, before, desired))
        return True


@dataclass(frozen=True)
class TargetTrackingSettings:
    target_cpu_percent: float = 70.0
    target_requests_per_instance: float = 1000.0
    """ALBRequestCountPerTarget target (requests per target per minute)."""
    high_datapoints: int = 3
    low_datapoints: int = 15
    scale_in_ratio: float = 0.9
    """The low alarm's threshold as a share of the target."""
    alarm_delay_minutes: int = 1
    scale_in_enabled: bool = True

    def __post_init__(self) -> None:
        if self.high_datapoints < 1 or self.low_datapoints < 1:
            raise ValueError("alarms need at least one datapoint")
        if not 0 < self.scale_in_ratio < 1:
            raise ValueError("scale_in_ratio must be in (0, 1)")
        if self.alarm_delay_minutes < 0:
            raise ValueError("alarm_delay_minutes must be >= 0")


@dataclass
class _Policy:
    target: float
    high_run: int = 0
    low_run: int = 0
    last_value: float = math.nan
    last_capacity: int = 0

    def observe(self, value: float, capacity: int, low_threshold: float) -> None:
        known = math.isfinite(value)
        self.high_run = self.high_run + 1 if known and value > self.target else 0
        self.low_run = self.low_run + 1 if known and value < low_threshold else 0
        self.last_value, self.last_capacity = value, capacity

    def wanted(self) -> int:
        """ceil(capacity x metric / target) for the newest datapoint."""
        return math.ceil(self.last_capacity * self.last_value / self.target - 1e-9)


class TargetTracking:
    """The two target tracking policies of the group and their alarms."""

    def __init__(self, settings: TargetTrackingSettings) -> None:
        self.settings = settings
        self.cpu = _Policy(settings.target_cpu_percent)
        self.requests = _Policy(settings.target_requests_per_instance)

    @property
    def policies(self) -> tuple[_Policy, _Policy]:
        return self.cpu, self.requests

    def observe(self, cpu_percent: float, requests_per_target: float, capacity: int) -> None:
        """One minute's datapoint of each metric, and the instances it aggregates."""
        ratio = self.settings.scale_in_ratio
        self.cpu.observe(cpu_percent, capacity, ratio * self.cpu.target)
        self.requests.observe(requests_per_target, capacity, ratio * self.requests.target)

    def high_alarms(self) -> list[_Policy]:
        return [p for p in self.policies if p.high_run >= self.settings.high_datapoints]

    def low_alarms_all(self) -> bool:
        return all(p.low_run >= self.settings.low_datapoints for p in self.policies)

    def act(self, minute: int, group: SimulatedGroup) -> None:
        ready = self.high_alarms()
        if ready:
            wanted = max(policy.wanted() for policy in ready)
            if wanted > group.desired:
                group.set_desired(minute, wanted, "reactive")
            return
        if self.settings.scale_in_enabled and self.low_alarms_all() and not group.settling(minute):
            wanted = max(policy.wanted() for policy in self.policies)
            if wanted < group.desired:
                group.set_desired(minute, wanted, "reactive")


class DecisionMaker(Protocol):
    """Something that may set the desired capacity every 5 minutes (the predict Lambda).
    `cpu` holds the group's CPU datapoints of the minutes before `minute`."""

    def decide(self, minute: int, group: SimulatedGroup, cpu: Sequence[float]) -> None: ...


@dataclass
class SimulationRecord:
    """What happened each minute (after that minute's scaling actions)."""

    demand: FloatArray
    serving: IntArray
    billed: IntArray
    desired: IntArray
    cpu: FloatArray
    actions: list[ScalingAction] = field(default_factory=list)

    @classmethod
    def empty(cls, demand: FloatArray) -> SimulationRecord:
        minutes = len(demand)
        return cls(
            demand=demand,
            serving=np.zeros(minutes, dtype=np.int64),
            billed=np.zeros(minutes, dtype=np.int64),
            desired=np.zeros(minutes, dtype=np.int64),
            cpu=np.full(minutes, np.nan),
        )


def cpu_percent(demand: float, in_service: int, settings: GroupSettings) -> float:
    """Average CPU of the serving instances for this minute's demand (NaN if unknown)."""
    if not math.isfinite(demand):
        return math.nan
    if in_service <= 0:
        return 100.0 if demand > 0 else 0.0
    return min(100.0, settings.target_cpu_percent * demand / (in_service * settings.capacity_per_instance))


def simulate(
    demand: FloatArray,
    settings: GroupSettings,
    reactive: TargetTracking | None = None,
    predictive: DecisionMaker | None = None,
    initial: int | None = None,
    decision_every: int = 5,
    on_minute: Callable[[int, SimulatedGroup], None] | None = None,
) -> SimulationRecord:
    """Run the group over `demand` (requests per minute) with the given controllers.

    Each minute t: the predictive decision maker acts (when t is a multiple of
    `decision_every`), then target tracking reads the datapoint that has just reached its
    alarms and acts, then minute t is served by the instances in service.
    """
    demand = np.asarray(demand, dtype=np.float64)
    record = SimulationRecord.empty(demand)
    values = demand.tolist()
    first_known = next((v for v in values if math.isfinite(v)), math.nan)
    group = SimulatedGroup(settings, settings.instances_needed(first_known) if initial is None else initial)
    cpu = [math.nan] * len(values)
    rcpt = [math.nan] * len(values)
    counted = [0] * len(values)
    serving_out, billed_out, desired_out = record.serving, record.billed, record.desired
    delay = reactive.settings.alarm_delay_minutes if reactive is not None else 0
    for t, load in enumerate(values):
        if predictive is not None and t % decision_every == 0:
            predictive.decide(t, group, cpu)
        if reactive is not None:
            newest = t - 1 - delay
            if newest >= 0:
                reactive.observe(cpu[newest], rcpt[newest], counted[newest])
            reactive.act(t, group)
        if on_minute is not None:
            on_minute(t, group)
        in_service = group.serving(t)
        group.served.append(in_service)
        serving_out[t] = in_service
        billed_out[t] = len(group.launches)
        desired_out[t] = len(group.launches)
        warmed = group.warmed(t)
        counted[t] = warmed
        if math.isfinite(load) and warmed > 0:
            cpu[t] = cpu_percent(load, in_service, settings)
            rcpt[t] = load / in_service
    record.cpu[:] = cpu
    record.actions = group.actions
    return record
