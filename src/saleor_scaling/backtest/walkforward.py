"""Walk-forward forecasts: the nightly job replayed night by night, never seeing the future.

Each simulated night at `retrain_minute_of_day` (03:15, the template's default schedule),
the model is trained exactly as the nightly job trains it: on the last
`training_window_days` of the 5-minute history that ends at the bucket still filling
(`retrain_service.collect_history`; on a coarse trace, at the first bucket whose
observation unit had not closed, `observed.Observation.visible_end`), with impossible
values dropped; a challenger fitted
without the last `holdout_days` measures the headroom table on them
(`training.train_challenger`), and the model refitted on every row carries that table
(`training.build_model`). A night is refused when the history holds fewer usable rows than
`min_history_days` less gaps (`retrain_service.history_shortfall`: the span and the
usable share), or the held-out days too few (`retrain_service`'s rules). A
refused night leaves the previous model serving; before the first model predict falls back
to "hold" and target tracking alone scales the group.

The model serves the predict runs after its night until the next one. Predict forecasts at
the anchor bucket (two steps before the run) for the bucket `horizon_steps` later; the
features of every anchor are computed once over the whole history (`build_features` only
looks back, so row i is the same whether the history ends at i or later, which a test
checks) and each night's anchors are forecast in one batched `ForecastModel.forecast_rows`
call: the same function predict's `forecast` calls, with the same quantile.

Simplifications, stated: the challenger/champion gate of the nightly job is not replayed
(every trained model is promoted), and the training configuration may be smaller than the
deployed one (`n_estimators`) to keep a 60-night replay fast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.backtest.observed import PER_MINUTE, Observation
from saleor_scaling.features import build_features, log_level
from saleor_scaling.labels import estimate_capacity_per_instance
from saleor_scaling.model import ForecastModel
from saleor_scaling.retrain_service import MIN_HOLDOUT_ROWS, history_shortfall
from saleor_scaling.series import FloatArray, MetricHistory, drop_impossible_values
from saleor_scaling.settings import ANCHOR_OFFSET_STEPS, DEFAULT_HEADROOM_QUANTILE
from saleor_scaling.training import (
    TrainingConfig,
    TrainingRows,
    split_holdout,
    train_as_nightly_job,
    training_rows,
)

DAY_SECONDS = 86400

Trainer = Callable[[MetricHistory, TrainingRows, TrainingConfig, int, float, bool], ForecastModel]


@dataclass(frozen=True)
class WalkForwardSettings:
    training: TrainingConfig
    headroom_quantile: float = DEFAULT_HEADROOM_QUANTILE
    training_window_days: int = 28
    """0 trains on all history up to the night."""
    min_history_days: int = 9
    holdout_days: int = 2
    retrain_minute_of_day: int = 3 * 60 + 15
    capacity_per_instance: float = 1000.0
    """Fallback when history cannot teach it (as the nightly job's CAPACITY_PER_INSTANCE)."""
    target_cpu_percent: float = 70.0
    observation: Observation = PER_MINUTE
    """When each bucket of the history became visible (`observed`): the training window
    ends at the first bucket not yet visible at the night's run."""

    def __post_init__(self) -> None:
        if self.retrain_minute_of_day % (STEP_SECONDS // 60) or not 0 <= self.retrain_minute_of_day < 1440:
            raise ValueError("retrain_minute_of_day must be a multiple of 5 within the day")
        if self.training_window_days < 0 or not 1 <= self.holdout_days < self.min_history_days:
            raise ValueError("need training_window_days >= 0 and 1 <= holdout_days < min_history_days")


@dataclass(frozen=True)
class Night:
    """One simulated nightly run."""

    retrain_time: int
    cutoff: int
    """The model learned from steps before this (the bucket still filling is left out)."""
    trained: bool
    rows: int
    reason: str
    capacity_per_instance: float = math.nan
    seconds: float = 0.0
    first_anchor: int = 0
    """Anchor steps [first_anchor, end_anchor) are forecast by the model serving after it."""
    end_anchor: int = 0


@dataclass
class WalkForward:
    horizon_steps: int
    mean: FloatArray
    """Forecast mean demand (requests per minute) for anchor + horizon, per anchor step of
    the history; NaN where no model served or the anchor had no level."""
    upper: FloatArray
    """The forecast sized up by the model's headroom at the quantile (what capacity is
    sized for: `ForecastModel.forecast_rows`)."""
    capacity: FloatArray
    """Requests per minute per instance in the serving model's metadata, per anchor."""
    nights: list[Night] = field(default_factory=list)

    @property
    def training_seconds(self) -> float:
        return sum(night.seconds for night in self.nights)

    @property
    def first_model_time(self) -> int | None:
        return next((night.retrain_time for night in self.nights if night.trained), None)


def retrain_times(history: MetricHistory, minute_of_day: int) -> list[int]:
    """Every night's retrain time inside the history's span (epoch seconds)."""
    first_day = history.start - history.start % DAY_SECONDS
    times = []
    day = first_day
    while day + minute_of_day * 60 < history.end:
        moment = day + minute_of_day * 60
        if moment > history.start:
            times.append(moment)
        day += DAY_SECONDS
    return times


def anchor_for_decision(history: MetricHistory, decision_time: int) -> int:
    """The anchor step index predict uses at `decision_time` (may be negative)."""
    return (decision_time - history.start) // STEP_SECONDS - ANCHOR_OFFSET_STEPS


def training_window(
    history: MetricHistory, retrain_time: int, window_days: int, observation: Observation = PER_MINUTE
) -> MetricHistory:
    """What the nightly job at `retrain_time` reads: the window ending at the bucket still
    filling (the first bucket not yet visible), impossible values dropped. Nothing at or
    after the cutoff is in it."""
    cutoff = observation.visible_end(retrain_time)
    start = history.start if window_days == 0 else max(history.start, cutoff - window_days * DAY_SECONDS)
    window, _ = drop_impossible_values(history.window(start, cutoff))
    return window


def walk_forward(
    history: MetricHistory,
    settings: WalkForwardSettings,
    trainer: Trainer = train_as_nightly_job,
    progress: Callable[[str], None] | None = None,
) -> WalkForward:
    """Train every night on the past, forecast the next day's anchors in one batch."""
    horizon = settings.training.horizon_steps
    steps = len(history)
    result = WalkForward(
        horizon_steps=horizon,
        mean=np.full(steps, np.nan),
        upper=np.full(steps, np.nan),
        capacity=np.full(steps, np.nan),
    )
    features = build_features(history, horizon, settings.training.timezone)
    levels = log_level(history.demand_per_minute())
    times = retrain_times(history, settings.retrain_minute_of_day)
    model: ForecastModel | None = None
    for index, moment in enumerate(times):
        # The model serves the runs strictly after its night, up to the next night's run.
        next_moment = times[index + 1] if index + 1 < len(times) else history.end + 3 * STEP_SECONDS
        first = max(0, anchor_for_decision(history, moment + STEP_SECONDS))
        end = min(steps, anchor_for_decision(history, next_moment) + 1)
        window = training_window(history, moment, settings.training_window_days, settings.observation)
        rows = training_rows(window, horizon, settings.training.timezone)
        started = time.perf_counter()
        held_out = len(split_holdout(rows, len(window), settings.holdout_days, horizon).holdout.targets)
        shortfall = history_shortfall(window, len(rows.targets), settings.min_history_days)
        if shortfall is not None or held_out < MIN_HOLDOUT_ROWS:
            night = Night(
                moment,
                window.end,
                trained=False,
                rows=len(rows.targets),
                reason="refused: "
                + "; ".join(
                    [
                        shortfall or f"{len(rows.targets)} usable rows",
                        f"{held_out} held out (need {MIN_HOLDOUT_ROWS})",
                    ]
                ),
                first_anchor=first,
                end_anchor=end,
            )
        else:
            capacity = estimate_capacity_per_instance(
                window, settings.target_cpu_percent, settings.capacity_per_instance
            )
            model = trainer(
                window,
                rows,
                settings.training,
                settings.holdout_days,
                capacity.requests_per_minute,
                capacity.learned,
            )
            night = Night(
                moment,
                window.end,
                trained=True,
                rows=len(rows.targets),
                reason="trained",
                capacity_per_instance=capacity.requests_per_minute,
                first_anchor=first,
                end_anchor=end,
            )
        if model is not None and first < end:
            anchors = np.arange(first, end)
            anchors = anchors[np.isfinite(levels[anchors])]
            if len(anchors):
                forecasts = model.forecast_rows(
                    features[anchors], levels[anchors], settings.headroom_quantile
                )
                result.mean[anchors] = [f.demand_mean for f in forecasts]
                result.upper[anchors] = [f.demand_upper for f in forecasts]
                result.capacity[anchors] = model.metadata.capacity_per_instance
        night = replace(night, seconds=time.perf_counter() - started)
        result.nights.append(night)
        if progress is not None:
            progress(
                f"night {index + 1}/{len(times)}: {night.reason} ({night.rows} rows, {night.seconds:.1f}s)"
            )
    return result
