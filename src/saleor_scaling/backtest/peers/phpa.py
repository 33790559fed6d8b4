"""The Predictive Horizontal Pod Autoscaler (jthomperoo/predictive-horizontal-pod-autoscaler).

Sources, sentence by sentence (docs/user-guide/models.md, algorithms/holt_winters/holt_winters.py
and docs/reference/configuration.md of the repository):
    * PHPA is an HPA whose models forecast the *replica count*: every sync period it makes
      the HPA's calculation ("evaluation") and stores it; "storedSeasons - the number of
      seasons to store ... if there are >4 seasons stored, the oldest season will be
      removed"; linear regression "storedValues - sets up the model to store the past 6
      evaluations and to use these for predictions". Here: one evaluation per 5-minute
      run, the HPA calculation ceil(load / per-instance target) on the anchor step's
      RequestCount (the linear CPU of the simulated group makes a CPU target the same
      calculation).
    * Holt-Winters: "the Holt-Winters algorithm, which in this project uses the
      statsmodels Python package"; holt_winters.py fits
      `ExponentialSmoothing(series, trend, seasonal, seasonal_periods, ...)` with
      `fit(smoothing_level=alpha, smoothing_trend=beta, smoothing_seasonal=gamma,
      optimized=False)` and prints `math.ceil(fitted_model.forecast(steps=1)[0])`: the
      value one sync period ahead, rounded up. It refuses "at least 2 * seasonal_periods
      observations" and "at least 10 + 2 * (seasonal_periods // 2) observations". Here:
      the additive-trend, additive-seasonal recursion of statsmodels implemented in numpy
      (statsmodels is not a dependency, and a vectorised recursion runs every decision of a
      60-day trace at once), with the documented example's alpha = beta = gamma = 0.9 and
      4 stored seasons, a season of one day (288 five-minute evaluations). PHPA's default
      `initialization_method="estimated"` with `optimized=False` leaves statsmodels'
      starting values unfitted: its heuristic initialisation, implemented here too
      (`heuristic_initial`). `tests/backtest/test_peers.py` checks both against
      statsmodels' own `ExponentialSmoothing` (a development dependency only, never in a
      Lambda layer).
    * Linear regression: "lookAhead - sets up the model to try to predict 10 seconds ahead
      of time"; here one run (5 minutes) ahead, over the last 6 evaluations.
    * decisionType: "maximum - pick the highest evaluation of the models"; the PHPA takes the
      maximum of the models' and the calculated replica count (the brief of issue 15; the
      HPA's own evaluation is one of the candidates).
    * Bounds: minReplicas/maxReplicas are the group's MinSize/MaxSize. The HPA's
      downscale stabilisation (300 s default) keeps the highest recommendation *after* the
      cut-off, so with a 5-minute period it is the current one and is not modelled.

On AWS the PHPA would be a controller setting the group's desired capacity every period,
with target tracking alongside; it sets desired capacity and the MinSize floor in one call,
as predict does, so that the comparison differs only in the forecast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from saleor_scaling.backtest.peers.common import forward_fill, replicas_for
from saleor_scaling.series import FloatArray

SEASON_STEPS = 288
"""One day of 5-minute evaluations."""


@dataclass(frozen=True)
class PhpaSettings:
    target_value: float = 1000.0
    """The HPA's per-instance target (requests per instance per minute at the CPU target)."""
    alpha: float = 0.9
    beta: float = 0.9
    gamma: float = 0.9
    seasonal_periods: int = SEASON_STEPS
    stored_seasons: int = 4
    linear_history: int = 6
    linear_look_ahead: int = 1

    def __post_init__(self) -> None:
        if self.target_value <= 0:
            raise ValueError("target_value must be > 0")
        for name in ("alpha", "beta", "gamma"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.seasonal_periods < 2 or self.stored_seasons < 2 or self.linear_history < 2:
            raise ValueError("need seasonal_periods >= 2, stored_seasons >= 2, linear_history >= 2")


def enough_for_holt_winters(observations: int, seasonal_periods: int) -> bool:
    """PHPA's two refusals (holt_winters.py)."""
    return observations >= 2 * seasonal_periods and observations >= 10 + 2 * (seasonal_periods // 2)


def heuristic_initial(
    series: FloatArray, starts: npt.NDArray[np.int64], length: int, m: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """statsmodels' heuristic initial level, trend and seasonals (additive,
    `_initialization_heuristic`: Hyndman & Athanasopoulos, section 2.6) of the windows
    series[start : start + length], all at once: a centred moving average of the first
    k = max(min(5, length // m), ceil((10 + 2 * (m // 2)) / m)) cycles is the trend; the
    mean detrended value of each position of the cycle, less their mean, the seasonals; a
    line through the first 10 trend values (x = 1..10) gives the level (its intercept) and
    the trend (its slope)."""
    series = np.asarray(series, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    min_obs = 10 + 2 * (m // 2)
    cycles = max(min(5, length // m), math.ceil(min_obs / m))
    span = min(cycles * m, length)  # statsmodels slices endog[: m * cycles]
    sums = np.concatenate(([0.0], np.cumsum(series)))

    def mean_of(lo: npt.NDArray[np.int64], count: int) -> FloatArray:
        return np.asarray((sums[lo + count] - sums[lo]) / count, dtype=np.float64)

    half = m // 2
    # Positions of the block with a centred average (pandas rolling(center=True), and for
    # an even m the 2 x m average statsmodels takes with shift(-1).rolling(2)).
    first, last = half, span - half
    relative = np.arange(first, last)

    def trend_at(rel: npt.NDArray[np.int64]) -> FloatArray:
        index = starts[:, None] + rel[None, :]
        if m % 2:
            return mean_of(index - half, m)
        return (mean_of(index - half, m) + mean_of(index - half + 1, m)) / 2.0

    level_rows = trend_at(relative[:10])
    x = np.arange(1, 11, dtype=np.float64)
    slope = ((x - x.mean())[None, :] * (level_rows - level_rows.mean(axis=1, keepdims=True))).sum(axis=1) / (
        ((x - x.mean()) ** 2).sum()
    )
    level = level_rows.mean(axis=1) - slope * x.mean()
    seasonal = np.zeros((len(starts), m))
    counts = np.zeros(m)
    for cycle in range(cycles):
        rel = cycle * m + np.arange(m)
        valid = (rel >= first) & (rel < last)
        if not valid.any():
            continue
        detrended = series[starts[:, None] + rel[None, valid]] - trend_at(rel[valid])
        seasonal[:, valid] += detrended
        counts[valid] += 1
    seasonal /= np.maximum(counts, 1)[None, :]
    seasonal -= seasonal.mean(axis=1, keepdims=True)
    return level, slope, seasonal


def holt_winters_next(series: FloatArray, settings: PhpaSettings) -> float:
    """One-step-ahead additive Holt-Winters forecast of one window (the reference: plain
    floats, step by step, from the heuristic initial values)."""
    values = [float(v) for v in series]
    m = settings.seasonal_periods
    a, b, g = settings.alpha, settings.beta, settings.gamma
    init_level, init_trend, init_seasonal = heuristic_initial(
        np.asarray(values), np.zeros(1, dtype=np.int64), len(values), m
    )
    level, trend = float(init_level[0]), float(init_trend[0])
    seasonal = [float(v) for v in init_seasonal[0]]
    for t, y in enumerate(values):
        s_old = seasonal[t % m]
        new_level = a * (y - s_old) + (1 - a) * (level + trend)
        seasonal[t % m] = g * (y - level - trend) + (1 - g) * s_old
        trend = b * (new_level - level) + (1 - b) * trend
        level = new_level
    return level + trend + seasonal[len(values) % m]


def holt_winters_batch(
    series: FloatArray, ends: npt.NDArray[np.int64], length: int, settings: PhpaSettings, chunk: int = 2048
) -> FloatArray:
    """`holt_winters_next` of the windows series[end - length + 1 : end + 1] for every end
    at once (each end >= length - 1); the same recursion, vectorised across windows."""
    series = np.asarray(series, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.int64)
    out = np.empty(len(ends))
    for lo in range(0, len(ends), chunk):
        out[lo : lo + chunk] = _holt_winters_chunk(
            series, ends[lo : lo + chunk] - length + 1, length, settings
        )
    return out


def _holt_winters_chunk(
    series: FloatArray, starts: npt.NDArray[np.int64], length: int, settings: PhpaSettings
) -> FloatArray:
    m = settings.seasonal_periods
    a, b, g = settings.alpha, settings.beta, settings.gamma
    level, trend, seasonal = heuristic_initial(series, starts, length, m)
    for t in range(length):
        y = series[starts + t]
        s_old = seasonal[:, t % m].copy()
        new_level = a * (y - s_old) + (1 - a) * (level + trend)
        seasonal[:, t % m] = g * (y - level - trend) + (1 - g) * s_old
        trend = b * (new_level - level) + (1 - b) * trend
        level = new_level
    return np.asarray(level + trend + seasonal[:, length % m], dtype=np.float64)


def linear_next(series: FloatArray, ends: np.ndarray, history: int, look_ahead: int) -> FloatArray:
    """Least-squares line through the last `history` evaluations up to each end, read
    `look_ahead` evaluations later (NaN with fewer than 2 evaluations)."""
    series = np.asarray(series, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.int64)
    out = np.full(len(ends), np.nan)
    counts = np.minimum(ends + 1, history)
    for count in np.unique(counts).tolist():
        if count < 2:
            continue
        chosen = np.flatnonzero(counts == count)
        x = np.arange(count, dtype=np.float64)
        windows = series[ends[chosen, None] - count + 1 + np.arange(count)[None, :]]
        x_mean = x.mean()
        slope = ((x - x_mean)[None, :] * (windows - windows.mean(axis=1, keepdims=True))).sum(axis=1) / (
            ((x - x_mean) ** 2).sum()
        )
        out[chosen] = windows.mean(axis=1) + slope * (count - 1 + look_ahead - x_mean)
    return out


def phpa_decisions(step_load: FloatArray, anchors: np.ndarray, settings: PhpaSettings) -> FloatArray:
    """The replica count PHPA asks for at each decision (NaN: nothing to decide on).

    `step_load` is the observed requests per minute of every 5-minute step; `anchors` the
    newest step each decision may read. Evaluations are the HPA calculation per step,
    forward-filled over gaps (a missing datapoint leaves the last evaluation standing)."""
    evaluations = forward_fill(replicas_for(step_load, settings.target_value))
    anchors = np.asarray(anchors, dtype=np.int64)
    out = np.full(len(anchors), np.nan)
    valid = (anchors >= 0) & (anchors < len(evaluations))
    valid[valid] &= np.isfinite(evaluations[anchors[valid]])
    known_from = (
        int(np.argmax(np.isfinite(evaluations))) if np.isfinite(evaluations).any() else len(evaluations)
    )
    calculated = np.where(valid, evaluations[np.clip(anchors, 0, len(evaluations) - 1)], np.nan)
    candidates = [calculated]
    # Evaluations are stored from the first known one; the window is the last stored seasons.
    stored = np.where(valid, anchors - known_from + 1, 0)
    m, full = settings.seasonal_periods, settings.seasonal_periods * settings.stored_seasons
    holt = np.full(len(anchors), np.nan)
    filled = np.nan_to_num(evaluations, nan=0.0)
    ready = valid & (stored >= full)
    if ready.any() and enough_for_holt_winters(full, m):
        holt[ready] = holt_winters_batch(filled, anchors[ready], full, settings)
    for index in np.flatnonzero(valid & (stored < full)).tolist():
        count = int(stored[index])
        if enough_for_holt_winters(count, m):
            window = filled[anchors[index] - count + 1 : anchors[index] + 1]
            holt[index] = holt_winters_next(window, settings)
    candidates.append(np.ceil(holt - 1e-9))
    linear = np.full(len(anchors), np.nan)
    if valid.any():
        linear_stored = np.minimum(stored[valid], settings.linear_history)
        picked = np.flatnonzero(valid)
        for count in np.unique(linear_stored).tolist():
            rows = picked[linear_stored == count]
            if count >= 2:
                linear[rows] = linear_next(filled, anchors[rows], int(count), settings.linear_look_ahead)
    candidates.append(np.ceil(linear - 1e-9))
    stacked = np.vstack(candidates)
    with np.errstate(invalid="ignore"):
        out = np.where(valid, np.nanmax(np.where(np.isfinite(stacked), stacked, -math.inf), axis=0), np.nan)
    return np.asarray(out, dtype=np.float64)
