"""Everything a backtest run is configured with, in one validated object."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from saleor_scaling.backtest.peers import PEERS, PeerSettings
from saleor_scaling.backtest.traces import parse_time
from saleor_scaling.backtest.walkforward import WalkForwardSettings, default_workers
from saleor_scaling.headroom import CONDITIONS
from saleor_scaling.settings import (
    PolicySettings,
    RetrainSettings,
    ScalingMode,
    ShortfallGoal,
    horizon_steps_for,
)
from saleor_scaling.simulation.replay import ReplaySettings
from saleor_scaling.simulation.simulator import GroupSettings, TargetTrackingSettings, WarmPoolSettings
from saleor_scaling.training import TrainingConfig

STRATEGIES: tuple[str, ...] = ("reactive", "predictive", "seasonal-naive", "oracle", *PEERS)
"""reactive: target tracking alone; predictive: the Random Forest predict function plus
target tracking; seasonal-naive: the same policy fed same-time-last-week (else yesterday)
plus target tracking; oracle: the cheapest schedule that is never under-provisioned; the
peers (`peers`): what a user could switch on instead."""

BACKTEST_N_ESTIMATORS = 30
"""Trees per nightly model in the backtest (the deployed default is 60): half the trees
halve the replay of 60 nights, and cost little accuracy (see docs/backtest.md)."""


def _retrain_default(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(RetrainSettings) if f.name == name)


@dataclass(frozen=True)
class BacktestConfig:
    peak_instances: float = 8.0
    """The trace is scaled so that its robust peak needs this many instances."""
    peak_percentile: float = 99.9
    """The robust peak: this percentile of the 5-minute mean demand."""
    scale_factor: float | None = None
    """Multiply the trace's counts by this instead of scaling to the peak (a shop of a
    known size; the peak scaling looks at the whole trace, future included)."""
    min_size: int = 1
    max_size: int = 10
    capacity_per_instance: float = 1000.0
    """Requests per minute one instance serves at the target CPU (and the
    ALBRequestCountPerTarget target)."""
    boot_delay_minutes: int = 5
    warmup_minutes: int | None = None
    """Launch to counting in target tracking's metrics; None: the boot delay."""
    warm_pool: WarmPoolSettings | None = None
    """A warm pool next to the group (`simulator.WarmPoolSettings`); None: none."""
    horizon_steps: int | None = None
    """Steps from the anchor to the forecast target; None: settings.horizon_steps_for(boot
    delay), i.e. the anchor's age (2 steps) plus the boot delay rounded up to steps."""
    policy: PolicySettings = field(
        default_factory=lambda: PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE)
    )
    scale_in_ratio: float = 0.9
    alarm_delay_minutes: int = 1
    reactive_scale_in_with_predictive: bool = True
    """Target tracking keeps its scale-in next to the predict function (both set the same
    group's desired capacity, as deployed); False models DisableScaleIn on the policies."""
    n_estimators: int = BACKTEST_N_ESTIMATORS
    max_depth: int = _retrain_default("max_depth")
    training_window_days: int = _retrain_default("training_window_days")
    min_history_days: int = _retrain_default("min_history_days")
    holdout_days: int = _retrain_default("holdout_days")
    headroom_condition: str = _retrain_default("headroom_condition")
    """What the headroom table is scaled by (HEADROOM_CONDITION, `headroom.Condition`)."""
    retrain_minute_of_day: int = 3 * 60 + 15
    retrain_every_days: int = 1
    """Replay a retrain schedule of every this many days (1, nightly, is what is deployed
    and what the documented figures use); the model of one run serves until the next."""
    workers: int | None = None
    """Worker processes training nights in parallel; None: one per CPU this process may
    use. Only the speed depends on it (the result is the serial run's, value for value)."""
    timezone: str | None = None
    """Time zone of the calendar features; None: the trace's (UTC wall clock)."""
    days: float | None = None
    """Only the first `days` days of the trace (after `start`)."""
    start: str | None = None
    end: str | None = None
    """Only the trace's minutes in [start, end): ISO 8601 dates or date-times in the trace's
    own clock, on the 5-minute grid (None: from its first or to its last minute)."""
    strategies: tuple[str, ...] = STRATEGIES
    target_shortfall_percent: float | None = None
    """TargetShortfallPercent: each night's HeadroomQuantile chosen by the nightly replay
    (`walkforward.WalkForwardSettings.replay`); None: `policy.headroom_quantile` every
    night, as TargetShortfallPercent 0 deploys (the documented figures' default)."""
    peers: PeerSettings = field(default_factory=PeerSettings)
    """The peer strategies' knobs (`peers.PeerSettings`)."""

    def __post_init__(self) -> None:
        if self.peak_instances <= 0 or not 0 < self.peak_percentile <= 100:
            raise ValueError("peak_instances must be > 0 and peak_percentile in (0, 100]")
        if self.scale_factor is not None and self.scale_factor <= 0:
            raise ValueError("scale_factor must be > 0")
        unknown = set(self.strategies) - set(STRATEGIES)
        if unknown:
            raise ValueError(f"unknown strategies {sorted(unknown)}; choose from {', '.join(STRATEGIES)}")
        if "reactive" not in self.strategies or "oracle" not in self.strategies:
            raise ValueError("the reactive and oracle strategies are the yardsticks: keep them")
        if self.horizon_steps is not None and self.horizon_steps < 1:
            raise ValueError("horizon_steps must be >= 1")
        if self.days is not None and self.days <= 0:
            raise ValueError("days must be > 0")
        if self.headroom_condition not in CONDITIONS:
            raise ValueError(f"headroom_condition must be one of {', '.join(CONDITIONS)}")
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be >= 1")
        # Fail early on inconsistent pieces.
        self.group_settings()
        self.target_tracking_settings(with_predictive=False)
        self.walk_forward_settings("UTC")
        start, end = self.window()
        if start is not None and end is not None and end <= start:
            raise ValueError(f"end {self.end} is not after start {self.start}")

    def window(self) -> tuple[int | None, int | None]:
        """`start` and `end` as epoch seconds (TraceError, a ValueError, if not a time)."""
        return (
            None if self.start is None else parse_time(self.start, "start"),
            None if self.end is None else parse_time(self.end, "end"),
        )

    @property
    def horizon(self) -> int:
        return self.horizon_steps or horizon_steps_for(self.boot_delay_minutes)

    def group_settings(self) -> GroupSettings:
        return GroupSettings(
            min_size=self.min_size,
            max_size=self.max_size,
            boot_delay_minutes=self.boot_delay_minutes,
            warmup_minutes=self.warmup_minutes,
            capacity_per_instance=self.capacity_per_instance,
            target_cpu_percent=self.policy.target_cpu_percent,
            warm_pool=self.warm_pool,
        )

    def target_tracking_settings(self, with_predictive: bool) -> TargetTrackingSettings:
        return TargetTrackingSettings(
            target_cpu_percent=self.policy.target_cpu_percent,
            target_requests_per_instance=self.capacity_per_instance,
            scale_in_ratio=self.scale_in_ratio,
            alarm_delay_minutes=self.alarm_delay_minutes,
            scale_in_enabled=self.reactive_scale_in_with_predictive or not with_predictive,
        )

    @property
    def worker_count(self) -> int:
        return self.workers or default_workers()

    def walk_forward_settings(self, timezone: str) -> WalkForwardSettings:
        return WalkForwardSettings(
            training=TrainingConfig(
                horizon_steps=self.horizon,
                timezone=self.timezone or timezone,
                n_estimators=self.n_estimators,
                max_depth=self.max_depth,
                headroom_condition=self.headroom_condition,
            ),
            headroom_quantile=self.policy.headroom_quantile,
            training_window_days=self.training_window_days,
            min_history_days=self.min_history_days,
            holdout_days=self.holdout_days,
            retrain_minute_of_day=self.retrain_minute_of_day,
            retrain_every_days=self.retrain_every_days,
            capacity_per_instance=self.capacity_per_instance,
            target_cpu_percent=self.policy.target_cpu_percent,
            replay=self.replay_settings(),
        )

    def replay_settings(self) -> ReplaySettings | None:
        """The nightly replay as deployed with this group, targets and policy (warm pools
        are not replayed, as the nightly job does not replay them)."""
        if self.target_shortfall_percent is None:
            return None
        return ReplaySettings(
            goal=ShortfallGoal(percent=self.target_shortfall_percent),
            group=dataclasses.replace(self.group_settings(), warm_pool=None),
            tracking=self.target_tracking_settings(with_predictive=True),
            policy=self.policy,
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["policy"] = {**dataclasses.asdict(self.policy), "mode": self.policy.mode.value}
        data["strategies"] = list(self.strategies)
        data["horizon_steps_used"] = self.horizon
        return data
