"""An EC2 Auto Scaling group at 1-minute resolution, and AWS target tracking on it.

The group (`SimulatedGroup`)
    An instance launched at minute t is billed from t and serves load from
    t + boot_delay (pending until then); scale-in terminates at once (pending instances
    first, then the newest), and a terminated instance serves and costs nothing more.
    Each change of the desired capacity is one scaling action.

The warm pool (`WarmPoolSettings`, optional; infra-cfn/app.yaml's WarmPoolState)
    A pool of `size` instances already through the whole boot (Saleor pulled, migrated,
    answering its health check: the launch lifecycle hook holds them until then). A
    scale-out takes prepared pool instances first, and each serves `ready_minutes` after
    the scale-out instead of `boot_delay`; the rest launch fresh. Every instance taken is
    replaced at once by a launch into the pool, which is itself a whole boot (`boot_delay`)
    before it can be taken. Instances scaled in are terminated, not returned to the pool
    (ReuseOnScaleIn false, the template's default). AWS's words, sentence by sentence
    (EC2 Auto Scaling User Guide, "Decrease latency for applications with long boot times
    using warm pools" and "Use lifecycle hooks with a warm pool"):
    * "A warm pool is a pool of pre-initialized EC2 instances that sits alongside an Auto
      Scaling group. Whenever your application needs to scale out, the Auto Scaling group
      can draw on the warm pool to meet its new desired capacity." and "As instances leave
      the warm pool, they count toward the desired capacity of the group."
    * "When your Auto Scaling group scales out and the size of the warm pool shrinks,
      Amazon EC2 Auto Scaling launches new instances into the warm pool to maintain its
      minimum size" (CloudFormation, AWS::AutoScaling::WarmPool).
    * "If demand on your application depletes the warm pool, Amazon EC2 Auto Scaling can
      launch instances directly into the Auto Scaling group": fresh, after the boot delay.
    * A launch hook pauses a new instance "when it reaches the Warmed:Pending:Wait state
      ... and then again when the instance restarts and reaches the Pending:Wait state":
      the second wait is part of the warm start (bin/ready in the user data completes it
      once Saleor answers, then the load balancer's two healthy checks 15 s apart follow).
    * How long a warm start takes, AWS gives no figure for any state in its guides. The
      delays assumed (`WARM_START_MINUTES`, each at least the 10-second poll of bin/ready
      plus the load balancer's 30 s of checks, rounded up to the minute): Running 1 minute
      (nothing to start); Hibernated 2 (the instance resumes with its RAM, containers
      running, secrets re-read); Stopped 3 (an OS boot and the containers' restart from
      the image already pulled, without the 3 to 4 minutes of packages, image pull and
      migration a fresh launch spends; not measured here: no EC2 in this repository's
      tests). Give `ready_minutes` to use a measured figure.
    * Cost: "With stopped instances, you pay only for the volumes that you use and the
      Elastic IP addresses attached to the instances" (none here); for Hibernated "you
      pay only for the EBS volumes, including storage for the RAM contents"; a Running
      instance is billed as any running instance. A pool instance is billed in full
      while it boots into the pool. In instance-equivalents (`pool_cost`): Stopped and
      Hibernated `PARKED_COST_SHARE` of an instance each, Running 1.

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

WARM_START_MINUTES: dict[str, int] = {"Running": 1, "Hibernated": 2, "Stopped": 3}
"""Minutes from a scale-out to serving for an instance taken from the warm pool, by pool
state: assumptions, since AWS publishes no figure (module docstring)."""
_STATES = ", ".join(WARM_START_MINUTES)

ROOT_VOLUME_GB = 30
"""The launch template's gp3 root volume (infra-cfn/app.yaml)."""
GP3_USD_PER_GB_MONTH = 0.08
INSTANCE_USD_PER_HOUR = 0.0416
"""us-east-1 list prices, as docs/infrastructure.md's cost table assumes them: gp3 storage
0.08 per GB-month, t3.medium (InstanceType's default) 0.0416 an hour; 730 hours a month."""
PARKED_COST_SHARE = ROOT_VOLUME_GB * GP3_USD_PER_GB_MONTH / 730.0 / INSTANCE_USD_PER_HOUR
"""A Stopped or Hibernated pool instance's hourly cost (its EBS volume) as a share of a
running instance's: 30 x 0.08 / 730 / 0.0416 = 0.0790."""


@dataclass(frozen=True)
class WarmPoolSettings:
    """A warm pool in `state` (Stopped, Hibernated or Running) of `size` instances, or, with
    size None, of MaxSize minus the desired capacity and at least 1 (the template's defaults:
    WarmPoolMinSize 1, WarmPoolMaxPreparedCapacity -1, AWS's own default)."""

    state: str
    size: int | None
    ready_minutes: int | None = None
    """Scale-out to serving for a pool instance; None: WARM_START_MINUTES[state]."""
    reuse_on_scale_in: bool = False
    """Scaled-in instances return to the pool (WarmPoolReuseOnScaleIn), prepared from the
    next minute (stopping takes under a minute: an assumption), instead of terminating."""

    def __post_init__(self) -> None:
        if self.state not in WARM_START_MINUTES:
            raise ValueError(f"warm pool state must be one of {_STATES}, got {self.state!r}")
        if self.size is not None and self.size < 1:
            raise ValueError(f"a warm pool needs at least 1 instance, got {self.size}")
        if self.ready_minutes is not None and self.ready_minutes < 0:
            raise ValueError(f"a warm pool's ready delay must be >= 0 minutes, got {self.ready_minutes}")

    @property
    def ready(self) -> int:
        return WARM_START_MINUTES[self.state] if self.ready_minutes is None else self.ready_minutes

    @property
    def parked_cost_share(self) -> float:
        """A prepared pool instance's cost per minute, in instances."""
        return 1.0 if self.state == "Running" else PARKED_COST_SHARE

    def target(self, desired: int, max_size: int) -> int:
        """Instances the pool keeps next to this desired capacity."""
        return self.size if self.size is not None else max(1, max_size - desired)

    @classmethod
    def parse(cls, text: str) -> WarmPoolSettings:
        """STATE:SIZE[:READY_MINUTES][:reuse], SIZE a number or `max`: e.g. Stopped:2,
        Hibernated:1:2, Stopped:max:reuse."""
        usage = "--warm-pool takes STATE:SIZE[:READY_MINUTES][:reuse], e.g. Stopped:2 or Stopped:max:reuse"
        parts = text.split(":")
        reuse = parts[-1].strip().lower() == "reuse"
        if reuse:
            parts = parts[:-1]
        if len(parts) not in (2, 3):
            raise ValueError(f"{usage}; got {text!r}")
        given = parts[0].strip().lower()
        state = next((known for known in WARM_START_MINUTES if known.lower() == given), None)
        if state is None:
            raise ValueError(f"warm pool state must be one of {_STATES}, got {parts[0]!r}")
        size = None if parts[1].strip().lower() == "max" else _whole(parts[1], "size (or max)")
        ready = _whole(parts[2], "ready minutes") if len(parts) == 3 else None
        return cls(state, size, ready, reuse)


def _whole(text: str, label: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"warm pool {label} must be a whole number, got {text!r}") from None


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
    warm_pool: WarmPoolSettings | None = None

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
        if self.warm_pool is not None and self.warm_pool.ready > self.boot_delay_minutes:
            raise ValueError(
                f"a warm start ({self.warm_pool.ready} min) cannot be slower than a fresh launch "
                f"(boot delay {self.boot_delay_minutes} min)"
            )

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
    """The instances of one Auto Scaling group, each known by the minute it joined the group
    (`launches`) and the minute it serves from (`ready`), and its warm pool, if any."""

    def __init__(self, settings: GroupSettings, initial: int) -> None:
        self.settings = settings
        self.launches: list[int] = [NEVER] * max(settings.min_size, min(settings.max_size, initial))
        self.ready: list[int] = list(self.launches)
        pool = settings.warm_pool
        prepared = pool.target(self.desired, settings.max_size) if pool is not None else 0
        self.pool: list[int] = [NEVER] * prepared
        """Minute each pool instance is prepared from (its boot into the pool done)."""
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
        return sum(1 for ready in self.ready if ready <= minute)

    def warmed(self, minute: int) -> int:
        """Instances counted in the aggregated metrics: the instance warmup after InService."""
        after_service = self.settings.warmup - self.settings.boot_delay_minutes
        return sum(1 for ready in self.ready if ready + after_service <= minute)

    def settling(self, minute: int) -> bool:
        """True while an instance is pending or warming up (scale-in is blocked)."""
        after_service = max(0, self.settings.warmup - self.settings.boot_delay_minutes)
        return any(ready + after_service > minute for ready in self.ready)

    def pool_cost(self, minute: int) -> float:
        """The warm pool's cost this minute, in instances: booting into the pool in full,
        prepared at the pool state's share."""
        pool = self.settings.warm_pool
        if pool is None:
            return 0.0
        booting = sum(1 for prepared in self.pool if prepared > minute)
        return booting + (len(self.pool) - booting) * pool.parked_cost_share

    def set_desired(self, minute: int, desired: int, source: str) -> bool:
        """Clamp to the group's bounds, launch or terminate to match; True if it changed."""
        desired = min(self.settings.max_size, max(self.floor, desired))
        before = len(self.launches)
        if desired == before:
            return False
        pool = self.settings.warm_pool
        if desired > before:
            added = desired - before
            taken = self._take_from_pool(minute, added)
            warm_start = pool.ready if pool is not None else 0
            self.launches.extend([minute] * added)
            self.ready.extend([minute + warm_start] * taken)
            self.ready.extend([minute + self.settings.boot_delay_minutes] * (added - taken))
        else:
            # Sorted by the minute they joined: the newest (pending first) go first.
            del self.launches[desired:]
            del self.ready[desired:]
            if pool is not None and pool.reuse_on_scale_in:
                self.pool.extend([minute + 1] * (before - desired))
        if pool is not None:
            self._refill(minute, pool.target(desired, self.settings.max_size))
        self.actions.append(ScalingAction(minute, source, before, desired))
        return True

    def _take_from_pool(self, minute: int, wanted: int) -> int:
        """Take up to `wanted` prepared instances (the longest prepared first); the number taken."""
        self.pool.sort()
        taken = 0
        while taken < wanted and taken < len(self.pool) and self.pool[taken] <= minute:
            taken += 1
        del self.pool[:taken]
        return taken

    def _refill(self, minute: int, target: int) -> None:
        """Launch into the pool up to `target` (each a whole boot), or terminate the excess,
        the last prepared (still booting first) first."""
        self.pool.sort()
        if len(self.pool) < target:
            self.pool.extend([minute + self.settings.boot_delay_minutes] * (target - len(self.pool)))
        del self.pool[target:]


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
    pool_cost: FloatArray | None = None
    """The warm pool's cost each minute, in instances (None: no pool)."""

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
    pool_cost = np.zeros(len(values)) if settings.warm_pool is not None else None
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
        if pool_cost is not None:
            pool_cost[t] = group.pool_cost(t)
        warmed = group.warmed(t)
        counted[t] = warmed
        if math.isfinite(load) and warmed > 0:
            cpu[t] = cpu_percent(load, in_service, settings)
            rcpt[t] = load / in_service
    record.cpu[:] = cpu
    record.actions = group.actions
    record.pool_cost = pool_cost
    return record
