"""The nightly replay: the shop's own held-out days through the backtest's simulator, once
per HeadroomQuantile of a grid, to pick the cheapest that meets the operator's shortfall
goal (`shortfall_goal`).

What is replayed
    The last HOLDOUT_DAYS of the training window (2 by default: 576 five-minute steps,
    2,880 minutes), with an hour before them in which target tracking alone runs the
    group. Each predict run of the replay uses the forecast the night's challenger made for
    that step without having trained on it (its target lay after every row it learned
    from), sized up by the headroom table the promoted model carries at the quantile being
    tried: `ForecastModel.forecast_rows`, the code predict itself sizes with.
    `strategies.PredictiveController` decides with `policy.decide` as predict does (the
    deployed MaxScaleInStep, ScaleInStabilizationMinutes and TargetCpuPercent), and
    `simulator.simulate` runs the group (GROUP_MIN_SIZE to GROUP_MAX_SIZE, LEAD_TIME_MINUTES
    from launch to serving) with AWS target tracking at the deployed targets (CPU at
    TargetCpuPercent, requests per target at CAPACITY_PER_INSTANCE).

What it cannot know
    CloudWatch keeps 5-minute sums and the busiest minute of each step, not every minute:
    each step is replayed as its busiest minute in the middle and the rest of its requests
    spread evenly over the other four (a step without a busiest minute: evenly over five).
    The headroom table was measured on these same days, and the quantile is chosen on the
    days it is judged on: the next days will be short somewhat more often than the replay
    says. Warm pools are not replayed (every launch is a fresh one).

A minute is short when its demand exceeds the instances in service times the learned
capacity per instance (the backtest's definition, `backtest.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.headroom import Basis, recent_burstiness
from saleor_scaling.model import ForecastModel
from saleor_scaling.series import FloatArray, Metric, MetricHistory
from saleor_scaling.settings import PolicySettings, RetrainSettings, ShortfallGoal, quantile_range
from saleor_scaling.shortfall_goal import TunedSetting, cheapest_meeting
from saleor_scaling.simulation.simulator import (
    GroupSettings,
    TargetTracking,
    TargetTrackingSettings,
    simulate,
)
from saleor_scaling.simulation.strategies import PredictiveController
from saleor_scaling.training import Challenger, TrainingRows

MINUTES_PER_STEP = STEP_SECONDS // 60
QUANTILE_GRID = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
"""The HeadroomQuantile values tried (those under TUNED_HEADROOM_QUANTILE_FLOOR are not)."""
LEAD_IN_STEPS = 12
"""An hour of target tracking alone before the first replayed step: the group starts from
what it held, not from an empty state."""
MIN_REPLAY_MINUTES = 24 * 60
"""Less than a day of known minutes is no basis for a goal stated in minutes short."""
MAX_REPLAY_MINUTE_RUNS = len(QUANTILE_GRID) * (14 * 24 * 60 + LEAD_IN_STEPS * MINUTES_PER_STEP)
"""The replay's cost bound: the grid x HOLDOUT_DAYS' maximum (14) in minutes simulated,
about 230,000 (measured in `saleor_scaling.bench`, docs/backtest.md)."""


@dataclass(frozen=True)
class ReplaySettings:
    """What the replay runs with: the deployment's goal, group, targets and policy (the
    nightly job's settings, or the backtest's configuration when it replays the tuning)."""

    goal: ShortfallGoal
    group: GroupSettings
    """Its capacity per instance is replaced by the night's learned one."""
    tracking: TargetTrackingSettings
    policy: PolicySettings

    @classmethod
    def of(cls, settings: RetrainSettings, bounds: tuple[int, int] | None = None) -> ReplaySettings:
        """`bounds`: the group's MinSize and MaxSize as read tonight (None: GROUP_MIN_SIZE
        and GROUP_MAX_SIZE as configured)."""
        min_size, max_size = bounds or (settings.group_min_size, settings.group_max_size)
        return cls(
            goal=settings.shortfall_goal,
            group=GroupSettings(
                min_size=min_size,
                max_size=max_size,
                boot_delay_minutes=settings.lead_time_minutes,
                capacity_per_instance=settings.capacity_per_instance,
                target_cpu_percent=settings.target_cpu_percent,
            ),
            tracking=TargetTrackingSettings(
                target_cpu_percent=settings.target_cpu_percent,
                target_requests_per_instance=settings.capacity_per_instance,
            ),
            policy=settings.policy,
        )


@dataclass(frozen=True)
class ReplayPoint:
    headroom_quantile: float
    short_minutes: int
    minutes: int
    instance_hours: float

    @property
    def short_share(self) -> float:
        return self.short_minutes / self.minutes

    @property
    def instance_hours_per_day(self) -> float:
        return self.instance_hours / (self.minutes / (24 * 60))


@dataclass(frozen=True)
class Replay:
    points: tuple[ReplayPoint, ...]
    chosen: TunedSetting
    minutes_simulated: int
    group_bounds: tuple[int, int] = (1, 10)
    """The MinSize and MaxSize replayed within."""

    def record(self) -> dict[str, object]:
        return {
            "goal_share": self.chosen.goal_share,
            "chosen": self.chosen.to_manifest(),
            "grid": [
                {
                    "headroom_quantile": point.headroom_quantile,
                    "short_share": round(point.short_share, 6),
                    "instance_hours_per_day": round(point.instance_hours_per_day, 3),
                }
                for point in self.points
            ],
            "minutes_simulated": self.minutes_simulated,
            "group_min_size": self.group_bounds[0],
            "group_max_size": self.group_bounds[1],
        }


def minute_demand(history: MetricHistory, first: int) -> FloatArray:
    """Requests per minute from step `first` on: each step's busiest minute in its middle
    and the rest of its requests spread over its other minutes (NaN where unknown)."""
    totals = history[Metric.REQUESTS][first:]
    busiest = history[Metric.BUSIEST_MINUTE][first:]
    minutes = np.repeat(totals / MINUTES_PER_STEP, MINUTES_PER_STEP).reshape(-1, MINUTES_PER_STEP)
    peak = np.minimum(busiest, totals)
    shaped = np.isfinite(peak) & np.isfinite(totals) & (peak * MINUTES_PER_STEP >= totals)
    rest = (totals - peak) / (MINUTES_PER_STEP - 1)
    minutes[shaped] = rest[shaped, None]
    minutes[shaped, MINUTES_PER_STEP // 2] = peak[shaped]
    return np.asarray(minutes.reshape(-1), dtype=np.float64)


def replay_holdout(
    history: MetricHistory,
    model: ForecastModel,
    anchors: np.ndarray,
    features: FloatArray,
    levels: FloatArray,
    capacity_per_instance: float,
    settings: ReplaySettings,
    holdout_start: int,
) -> Replay | str:
    """Replay the steps from `holdout_start` for every quantile of the grid the settings
    allow; the choice, or why there is none (a string). `anchors` are the held-out rows'
    step indices and `features`/`levels` their rows: forecasts the challenger made unseen."""
    goal = settings.goal
    first = max(0, holdout_start - LEAD_IN_STEPS)
    demand = minute_demand(history, first)
    lead_in = (holdout_start - first) * MINUTES_PER_STEP
    known = np.isfinite(demand[lead_in:])
    if int(known.sum()) < MIN_REPLAY_MINUTES:
        return (
            f"the held-out days hold {int(known.sum())} minutes of known demand, under the "
            f"{MIN_REPLAY_MINUTES} (a day) a goal in minutes short needs"
        )
    low, high = quantile_range()
    grid = [q for q in QUANTILE_GRID if max(low, goal.quantile_floor) <= q <= high]
    if not grid:
        grid = [max(low, goal.quantile_floor)]
    minutes_simulated = len(grid) * len(demand)
    if minutes_simulated > MAX_REPLAY_MINUTE_RUNS:
        return (
            f"the replay would simulate {minutes_simulated} minutes, over its bound {MAX_REPLAY_MINUTE_RUNS}"
        )

    step_demand = history.demand_per_minute()[first:]
    desired = history[Metric.DESIRED][first]
    initial = round(float(desired)) if math.isfinite(desired) and desired >= 1 else None
    group = replace(settings.group, capacity_per_instance=capacity_per_instance)
    tracking = settings.tracking
    capacity = np.full(len(step_demand), capacity_per_instance)
    # As predict passes it: read only by a table scaled by recent burstiness.
    burstiness = recent_burstiness(history)[np.asarray(anchors)]
    policy = settings.policy
    points = []
    for quantile in grid:
        upper = np.full(len(step_demand), np.nan)
        forecasts = model.forecast_rows(features, levels, quantile, burstiness)
        upper[np.asarray(anchors) - first] = [forecast.demand_upper for forecast in forecasts]
        controller = PredictiveController(
            history.start + first * STEP_SECONDS,
            step_demand,
            upper,
            capacity,
            policy,
            group.min_size,
            group.max_size,
        )
        record = simulate(demand, group, TargetTracking(tracking), controller, initial=initial)
        load = demand[lead_in:][known]
        serving = record.serving[lead_in:][known]
        short = load - serving * capacity_per_instance > 1e-9 * np.maximum(load, 1.0)
        hours = float(np.sum(record.billed[lead_in:][known])) / 60.0
        points.append(ReplayPoint(quantile, int(short.sum()), int(known.sum()), hours))

    chosen, least_short = cheapest_meeting(
        points, goal.share, lambda p: p.short_share, lambda p: p.instance_hours
    )
    pick = chosen if chosen is not None else least_short
    setting = TunedSetting(
        goal_share=goal.share,
        headroom_quantile=pick.headroom_quantile,
        met=chosen is not None,
        replay_short_share=round(pick.short_share, 6),
        instance_hours_per_day=round(pick.instance_hours_per_day, 3),
        replay_days=round(pick.minutes / (24 * 60), 3),
    )
    return Replay(tuple(points), setting, minutes_simulated, (group.min_size, group.max_size))


def tune_on_holdout(
    history: MetricHistory,
    challenger: Challenger,
    holdout: TrainingRows,
    holdout_start: int,
    capacity_per_instance: float,
    settings: ReplaySettings,
) -> Replay | str:
    """The night's choice of HeadroomQuantile (the nightly job's, and the backtest's when
    it replays the tuning): the challenger's forecasts of the held-out rows it never trained
    on, sized up with the headroom table the promoted model carries, as predict will size
    them, replayed at each quantile of the grid."""
    if challenger.headroom is None or challenger.headroom.basis != Basis.BUSIEST_MINUTE:
        # Without each step's busiest minute the replay spreads every step evenly and sees
        # none of its bursts: on NYC taxi's half hours it met a 1 % goal on 204 of 206
        # nights while the days after were short 2.08 % (docs/backtest.md).
        return (
            "the held-out days record no busiest minute of their steps, so the replay would see "
            "none of their bursts"
        )
    table = challenger.headroom.to_json()
    unseen = ForecastModel(challenger.model.ensemble, replace(challenger.model.metadata, headroom=table))
    return replay_holdout(
        history,
        unseen,
        holdout.step_indices,
        holdout.features,
        holdout.levels,
        capacity_per_instance,
        settings,
        holdout_start,
    )
