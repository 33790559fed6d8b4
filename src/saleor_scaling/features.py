"""Features for the capacity forecast, computed identically for training and serving.

The row for step i uses only steps <= i (the anchor step is the newest complete bucket).
Load features are expressed relative to the current level, in log space, so that a
forest trained on a quiet month still scales to a busy one: trees cannot extrapolate
absolute values they have never seen, but ratios stay in range as a shop grows.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from saleor_scaling.series import FloatArray, Metric, MetricHistory

STEPS_PER_DAY = 288
STEPS_PER_WEEK = 7 * STEPS_PER_DAY
LEVEL_STEPS = 3
"""The current level is the mean demand of the last 15 minutes: one 5-minute bucket is
too noisy to scale a fleet on."""
LAG_STEPS = (1, 2, 3, 6, 12)

FEATURE_NAMES: tuple[str, ...] = (
    # The seed's five: load, response time, CPU, hour of day, day of week.
    "request_rate",
    "response_time",
    "cpu_utilization",
    "hour_of_day",
    "day_of_week",
    # What makes the forecast honest: level, recent trajectory, seasonality.
    "log_level",
    *(f"lag_{k}" for k in LAG_STEPS),
    "error_ratio",
    "daily_delta",
    "daily_ratio",
    "weekly_delta",
    "weekly_ratio",
)

HISTORY_STEPS_NEEDED = STEPS_PER_WEEK + 2
"""How far back a serving row looks (last week's same time, smoothed); rows with less
history get NaN for the seasonal features, which the forest handles as missing."""


def log_level(demand: FloatArray) -> FloatArray:
    """log1p of the mean demand of the last LEVEL_STEPS steps (ignoring gaps)."""
    return np.log1p(_trailing_mean(demand, LEVEL_STEPS))


def build_features(
    history: MetricHistory,
    horizon_steps: int,
    timezone: str,
    event_steps: npt.NDArray[np.bool_] | None = None,
) -> FloatArray:
    """One feature row per step of `history` (shape: len(history) x len(FEATURE_NAMES)).
    `event_steps` (`calendar.event_steps`) marks the steps of planned events: the daily
    and weekly features read the normal day there instead (`_as_normal_days`), so "same
    time last week" never takes a sale for a normal day; the recent lags still see it, as
    the load it is."""
    demand = history.demand_per_minute()
    level = log_level(demand)
    log_demand = np.log1p(demand)
    smoothed = np.log1p(_centered_mean(demand))
    if event_steps is not None:
        smoothed = _as_normal_days(smoothed, event_steps)

    columns: dict[str, FloatArray] = {
        "request_rate": demand,
        "response_time": history[Metric.RESPONSE_TIME],
        "cpu_utilization": history[Metric.CPU],
        "log_level": level,
    }
    hours, weekdays = _calendar(history, timezone)
    columns["hour_of_day"] = hours
    columns["day_of_week"] = weekdays
    for k in LAG_STEPS:
        columns[f"lag_{k}"] = _shift(log_demand, k) - level
    with np.errstate(divide="ignore", invalid="ignore"):
        columns["error_ratio"] = np.where(
            history[Metric.REQUESTS] > 0,
            np.nan_to_num(history[Metric.ERRORS_5XX], nan=0.0) / history[Metric.REQUESTS],
            np.nan,
        )
    for name, period in (("daily", STEPS_PER_DAY), ("weekly", STEPS_PER_WEEK)):
        then_at_target = _shift(smoothed, period - horizon_steps)
        then_now = _shift(smoothed, period)
        # How the load moved over the same horizon one period ago, and where it stood
        # then at the target time relative to our level now.
        columns[f"{name}_delta"] = then_at_target - then_now
        columns[f"{name}_ratio"] = then_at_target - level
    return np.column_stack([columns[name] for name in FEATURE_NAMES]).astype(np.float64)


def _as_normal_days(smoothed: FloatArray, event_steps: npt.NDArray[np.bool_]) -> FloatArray:
    """`smoothed` with each event step replaced by the normal load there: the same time a
    week before, else a day before (itself replaced if an event), NaN where neither is
    known. The forest then reads a normal day where the sale was, not a hole it rarely saw
    in training."""
    normal = smoothed.copy()
    for index in np.flatnonzero(event_steps):
        normal[index] = np.nan
        for period in (STEPS_PER_WEEK, STEPS_PER_DAY):
            if index >= period and np.isfinite(normal[index - period]):
                normal[index] = normal[index - period]
                break
    return normal


def target_log_ratio(history: MetricHistory, horizon_steps: int) -> FloatArray:
    """What the model learns: log1p(demand at i + horizon) - log_level(i); NaN where the
    future step is unknown (the tail, or a gap)."""
    demand = history.demand_per_minute()
    return _shift(np.log1p(demand), -horizon_steps) - log_level(demand)


def demand_from_log_ratio(level: FloatArray | float, log_ratio: FloatArray) -> FloatArray:
    """Invert `target_log_ratio` for a row whose log level is `level`."""
    demand: FloatArray = np.maximum(np.expm1(np.asarray(level) + np.asarray(log_ratio)), 0.0)
    return demand


def _shift(values: FloatArray, steps: int) -> FloatArray:
    """values[i - steps] at i (steps > 0 looks back, < 0 looks ahead), NaN off the ends."""
    result = np.full_like(values, np.nan)
    if steps == 0:
        result[:] = values
    elif steps > 0 and steps < len(values):
        result[steps:] = values[:-steps]
    elif steps < 0 and -steps < len(values):
        result[:steps] = values[-steps:]
    return result


def _trailing_mean(values: FloatArray, window: int) -> FloatArray:
    stacked = np.vstack([_shift(values, k) for k in range(window)])
    return _nanmean_columns(stacked)


def _centered_mean(values: FloatArray) -> FloatArray:
    stacked = np.vstack([_shift(values, k) for k in (-1, 0, 1)])
    return _nanmean_columns(stacked)


def _nanmean_columns(stacked: FloatArray) -> FloatArray:
    counts = np.sum(~np.isnan(stacked), axis=0)
    sums = np.nansum(stacked, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _calendar(history: MetricHistory, timezone: str) -> tuple[FloatArray, FloatArray]:
    """Local hour (fractional) and weekday (Monday 0) of each step, DST-aware."""
    zone = ZoneInfo(timezone)
    stamps = history.timestamps()
    if not len(stamps):
        return np.empty(0), np.empty(0)
    # UTC offsets change at most a few times a year: compute one per distinct hour
    # instead of one datetime per step.
    hour_starts = (stamps // 3600) * 3600
    unique_hours, inverse = np.unique(hour_starts, return_inverse=True)
    offsets = np.array(
        [
            datetime.fromtimestamp(int(hour), zone).utcoffset().total_seconds()  # type: ignore[union-attr]
            for hour in unique_hours
        ]
    )
    local = stamps + offsets[inverse].astype(np.int64)
    seconds_of_day = np.mod(local, 86400)
    days = np.floor_divide(local, 86400)
    # 1970-01-01 was a Thursday (weekday 3).
    weekdays = np.mod(days + 3, 7).astype(np.float64)
    return seconds_of_day / 3600.0, weekdays
