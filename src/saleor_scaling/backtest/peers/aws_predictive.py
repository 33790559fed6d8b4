"""Amazon EC2 Auto Scaling predictive scaling, as its documentation describes it.

Sources, sentence by sentence:
    * "predictive scaling starts analyzing metric data from up to the past 14 days to
      identify patterns. It uses this analysis to generate an hourly forecast of capacity
      requirements for the next 48 hours. The forecast is updated every 6 hours using the
      latest CloudWatch data." (Application Auto Scaling User Guide, "How Application Auto
      Scaling predictive scaling works"; the EC2 Auto Scaling guide says the same.) Here:
      a forecast is made at 00:00, 06:00, 12:00 and 18:00 UTC for the 48 hours after it,
      and each hour is scheduled from the newest forecast made before its launch time.
    * "A minimum of 24 hours of data is required to create the initial forecasts. However,
      having a full 14 days of historical data results in more accurate forecasts."
      (API reference, GetPredictiveScalingForecast.) Here: no forecast (no action) until 24
      known hours, at most 14 days read.
    * "Load forecasts are predictions of the hourly load values ... Capacity forecasts are
      represented as predicted values for the minimum capacity that is needed on an hourly
      basis, based on the hourly load forecast." (same page.) With the predefined metric
      pair ALBRequestCount the scaling metric is ALBRequestCountPerTarget and its
      `TargetValue` the requests per target per minute (PredictiveScalingMetricSpecification),
      so here the capacity of an hour is ceil(mean requests per minute in the hour /
      target value).
    * SchedulingBufferTime: "The amount of time, in seconds, by which the instance launch
      time can be advanced. For example, the forecast says to add capacity at 10:00 AM, and
      you choose to pre-launch instances by 5 minutes. In that case, the instances will be
      launched at 9:55 AM. ... The value must be less than the forecast interval duration
      of 3600 seconds (60 minutes). Defaults to 300 seconds if not specified."
      (API reference, PredictiveScalingConfiguration.)
    * "If the forecast expects a decrease in load, predictive scaling will not scale in to
      remove capacity." (User Guide, as above.) Here: at each hour's launch time the
      hour's capacity becomes the group's floor and the desired capacity is raised to it,
      never lowered; target tracking alongside scales out above it and scales in down to
      it (the group takes the highest capacity of its policies).
    * An hour without a forecast (no load known for it) schedules nothing, so the previous
      hour's floor stays until the next scheduled hour: AWS forecasts 48 hours ahead, so
      this only happens here at gaps of the trace.
    * MaxCapacityBreachBehavior "Defaults to HonorMaxCapacity ... Amazon EC2 Auto Scaling
      can't increase the maximum capacity of the group" (same page): capacity is capped at
      MaxSize.

The forecasting model itself is not public, so two forecasts are run, each labelled:
    * perfect: every hour's true mean load, known in advance. The best the hourly schedule
      can ever do: what remains short is the minutes above their hour's mean and the
      boot delay beyond the buffer, the limit of the approach rather than of a model.
    * patterns: ours, from the daily and weekly patterns of the last 14 days of hourly
      loads CloudWatch held at the forecast time: the mean of the same hour of the day
      over those days, averaged with the mean of the same hour of the week (up to two
      values) where the history has one. A stand-in for AWS's unpublished model, no more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saleor_scaling.backtest.observed import PER_MINUTE, Observation
from saleor_scaling.backtest.peers.common import MINUTES_PER_STEP, NO_ACTION
from saleor_scaling.series import FloatArray, MetricHistory
from saleor_scaling.simulation.simulator import GroupSettings, IntArray

HOUR_SECONDS = 3600
STEPS_PER_HOUR = HOUR_SECONDS // 60 // MINUTES_PER_STEP
REFRESH_HOURS = 6
FORECAST_HOURS = 48
HISTORY_DAYS = 14
MIN_HISTORY_HOURS = 24


@dataclass(frozen=True)
class AwsPredictiveSettings:
    target_value: float = 1000.0
    """ALBRequestCountPerTarget target (requests per target per minute)."""
    scheduling_buffer_seconds: int = 300

    def __post_init__(self) -> None:
        if self.target_value <= 0:
            raise ValueError("target_value must be > 0")
        if not 0 <= self.scheduling_buffer_seconds < HOUR_SECONDS or self.scheduling_buffer_seconds % 60:
            raise ValueError("SchedulingBufferTime must be whole minutes in [0, 3600) seconds")


def hour_starts(start: int, minutes: int) -> IntArray:
    """Minutes of the trace at which a UTC hour starts."""
    first = (-(start // 60)) % 60
    return np.arange(first, minutes, 60, dtype=np.int64)


def perfect_hourly_load(demand: FloatArray, start: int) -> tuple[IntArray, FloatArray]:
    """Each whole hour's true mean requests per minute (NaN where no minute is known)."""
    starts = hour_starts(start, len(demand))
    starts = starts[starts + 60 <= len(demand)]
    loads = np.full(len(starts), np.nan)
    for index, minute in enumerate(starts.tolist()):
        block = demand[minute : minute + 60]
        known = block[np.isfinite(block)]
        if len(known):
            loads[index] = float(np.mean(known))
    return starts, loads


def observed_hourly_load(history: MetricHistory) -> tuple[int, FloatArray]:
    """Hourly mean requests per minute from the 5-minute history (an hour with any unknown
    step is unknown), and the epoch second of the first whole UTC hour."""
    steps = history.demand_per_minute()
    offset = int((-(history.start // history.step)) % STEPS_PER_HOUR)
    usable = (len(steps) - offset) // STEPS_PER_HOUR
    blocks = steps[offset : offset + usable * STEPS_PER_HOUR].reshape(usable, STEPS_PER_HOUR)
    loads = np.mean(blocks, axis=1) if usable else np.zeros(0)
    return history.start + offset * history.step, np.asarray(loads, dtype=np.float64)


def pattern_forecast(past: FloatArray, hours_ahead: int = FORECAST_HOURS) -> FloatArray:
    """The next `hours_ahead` hourly loads from the daily and weekly patterns of `past`
    (hourly loads, newest last, at most 14 days); NaN without 24 known hours."""
    past = np.asarray(past[-HISTORY_DAYS * 24 :], dtype=np.float64)
    out = np.full(hours_ahead, np.nan)
    if np.sum(np.isfinite(past)) < MIN_HISTORY_HOURS:
        return out
    n = len(past)
    for ahead in range(hours_ahead):
        position = n + ahead
        daily = past[[i for i in range(position - 24, -1, -24) if i < n]]
        weekly = past[[i for i in range(position - 168, -1, -168) if i < n]]
        daily, weekly = daily[np.isfinite(daily)], weekly[np.isfinite(weekly)]
        if not len(daily):
            continue
        value = float(np.mean(daily))
        if len(weekly):
            value = (value + float(np.mean(weekly))) / 2.0
        out[ahead] = value
    return out


def hours_known_at(
    history: MetricHistory, first_hour: int, hours: int, moment: int, observation: Observation = PER_MINUTE
) -> int:
    """How many whole hours from `first_hour` CloudWatch held at `moment`: those ending by
    the end of the newest step a run at `moment` may read."""
    visible_until = history.start + (observation.anchor(history.start, moment) + 1) * history.step
    return int(min(hours, max(0, (visible_until - first_hour) // HOUR_SECONDS)))


def forecast_by_refresh(
    history: MetricHistory,
    start: int,
    minutes: int,
    buffer_seconds: int,
    observation: Observation = PER_MINUTE,
) -> tuple[IntArray, FloatArray]:
    """For each whole UTC hour of the trace, the patterns forecast of its load from the
    newest 6-hourly refresh made by the hour's launch time (hour start less the buffer). A
    refresh at time R reads the hours CloudWatch held by R: those wholly before the step
    a run at R may read (`observed.Observation.anchor`)."""
    first_hour, loads = observed_hourly_load(history)
    starts = hour_starts(start, minutes)
    forecast = np.full(len(starts), np.nan)
    refresh_every = REFRESH_HOURS * HOUR_SECONDS
    refreshes: list[tuple[int, int, FloatArray]] = []
    refresh = start + (-start) % refresh_every
    while refresh < start + minutes * 60:
        known_hours = hours_known_at(history, first_hour, len(loads), refresh, observation)
        origin = first_hour + known_hours * HOUR_SECONDS
        refreshes.append((refresh, origin, pattern_forecast(loads[:known_hours])))
        refresh += refresh_every
    chosen = 0
    for index, minute in enumerate(starts.tolist()):
        launch = start + 60 * minute - buffer_seconds
        while chosen + 1 < len(refreshes) and refreshes[chosen + 1][0] <= launch:
            chosen += 1
        if not refreshes or refreshes[chosen][0] > launch:
            continue
        _, origin, values = refreshes[chosen]
        ahead = (start + 60 * minute - origin) // HOUR_SECONDS
        if 0 <= ahead < len(values):
            forecast[index] = values[ahead]
    return starts, forecast


def schedule(
    starts: IntArray, loads: FloatArray, minutes: int, settings: AwsPredictiveSettings, group: GroupSettings
) -> IntArray:
    """Per-minute plan: each hour's capacity forecast at the hour's start less the buffer,
    capped at MaxSize (HonorMaxCapacity)."""
    plan = np.full(minutes, NO_ACTION, dtype=np.int64)
    buffer = settings.scheduling_buffer_seconds // 60
    for minute, load in zip(starts.tolist(), loads.tolist(), strict=True):
        at = minute - buffer
        if at < 0 or not np.isfinite(load):
            continue
        capacity = int(np.ceil(load / settings.target_value - 1e-9))
        plan[at] = min(group.max_size, max(group.min_size, capacity))
    return plan
