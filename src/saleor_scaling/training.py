"""Training the forecaster: rows, fit, the seasonal-naive baseline and scores.

Rows come from `features.build_features` and `features.target_log_ratio`, the very
functions predict calls, so serving can never drift from training.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import RandomForestRegressor

from saleor_scaling.ensemble import ensemble_from_forest
from saleor_scaling.features import (
    FEATURE_NAMES,
    STEPS_PER_DAY,
    STEPS_PER_WEEK,
    build_features,
    log_level,
    target_log_ratio,
)
from saleor_scaling.headroom import Condition, HeadroomTable, fit_headroom, recent_burstiness
from saleor_scaling.model import ForecastModel, ModelMetadata
from saleor_scaling.series import FloatArray, MetricHistory


@dataclass(frozen=True)
class TrainingConfig:
    horizon_steps: int
    timezone: str = "UTC"
    n_estimators: int = 60
    max_depth: int = 12
    """Bounds the artifact: unbounded trees on 17k rows weigh 155 MB, depth 12 about 25 MB
    (8 MB compressed), well inside a Lambda and its /tmp."""
    min_samples_leaf: int = 4
    max_features: float = 0.6
    random_state: int = 0
    headroom_condition: str = Condition.NONE
    """`headroom.Condition` the held-out factors are scaled by (HEADROOM_CONDITION)."""


@dataclass(frozen=True)
class TrainingRows:
    features: FloatArray
    targets: FloatArray
    levels: FloatArray
    step_indices: npt.NDArray[np.int64]
    """Index in the history of each row's anchor step."""

    def subset(self, keep: npt.NDArray[np.bool_]) -> TrainingRows:
        return TrainingRows(
            self.features[keep], self.targets[keep], self.levels[keep], self.step_indices[keep]
        )


IDLE_SHARE_OF_MEDIAN = 0.01
"""An anchor whose level is under 1 % of the history's median demand is the shop down or
idle (an outage, a restart), not demand dynamics. The ratio of what follows to a level
near zero is huge and meaningless; learned, a handful of such rows taught the forest to
expect last week's load the moment a shop came back from a 2-day outage (NASA 1995-08-03:
a forecast of 2,600 requests a minute at a level of 45)."""


def training_rows(
    history: MetricHistory,
    horizon_steps: int,
    timezone: str,
    event_steps: npt.NDArray[np.bool_] | None = None,
) -> TrainingRows:
    """Rows whose anchor level and future target are both known (gaps are dropped, never
    filled with zeros) and whose level is not idle (`IDLE_SHARE_OF_MEDIAN`). With
    `event_steps` (`calendar.event_steps`), planned events are no normal load: the seasonal
    features read the normal day in their place, and rows whose anchor or target is
    inside one are dropped (the calendar, not the forest, sizes the next sale)."""
    features = build_features(history, horizon_steps, timezone, event_steps)
    targets = target_log_ratio(history, horizon_steps)
    demand = history.demand_per_minute()
    levels = log_level(demand)
    usable = np.isfinite(targets) & np.isfinite(levels)
    if event_steps is not None:
        target_inside = np.zeros(len(usable), dtype=bool)
        target_inside[: max(0, len(usable) - horizon_steps)] = event_steps[horizon_steps:]
        usable &= ~(event_steps | target_inside)
    if np.any(usable):
        idle = np.log1p(IDLE_SHARE_OF_MEDIAN * float(np.nanmedian(demand)))
        usable &= levels >= idle
    indices = np.flatnonzero(usable)
    return TrainingRows(features[usable], targets[usable], levels[usable], indices)


def fit_forest(rows: TrainingRows, config: TrainingConfig) -> RandomForestRegressor:
    forest = RandomForestRegressor(
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        min_samples_leaf=config.min_samples_leaf,
        max_features=config.max_features,
        random_state=config.random_state,
        n_jobs=-1,
    )
    forest.fit(rows.features, rows.targets)
    forest.set_params(n_jobs=1)
    return forest


WEEKLY_FEATURES = ("weekly_delta", "weekly_ratio")


def daily_pattern_rows(rows: TrainingRows) -> TrainingRows:
    """`rows` with the weekly features missing: a model grown from a few days may learn
    the daily pattern, never a week it saw at most once. Trees never split on a feature
    that is missing in every row, so the served model ignores it even once it is known."""
    weekly = [FEATURE_NAMES.index(name) for name in WEEKLY_FEATURES]
    features = rows.features.copy()
    features[:, weekly] = np.nan
    return TrainingRows(features, rows.targets, rows.levels, rows.step_indices)


def seasonal_naive(
    history: MetricHistory, horizon_steps: int, periods: tuple[int, ...] = (STEPS_PER_DAY, STEPS_PER_WEEK)
) -> FloatArray:
    """Forecast for step i + horizon made at step i: the demand at the same time last week,
    or yesterday where last week is missing (NaN where neither is known). With `periods`
    (STEPS_PER_DAY,) it is the same time yesterday only."""
    demand = history.demand_per_minute()
    forecast = np.full(len(demand), np.nan)
    for period in periods:
        lag = period - horizon_steps
        shifted = np.full(len(demand), np.nan)
        if 0 < lag < len(demand):
            shifted[lag:] = demand[:-lag]
        known = ~np.isnan(shifted)
        forecast[known] = shifted[known]
    return forecast


def actual_future_demand(history: MetricHistory, horizon_steps: int) -> FloatArray:
    """The mean demand per minute at i + horizon, for each step i (NaN past the end)."""
    return _future(history.demand_per_minute(), horizon_steps)


def actual_future_busiest_minute(history: MetricHistory, horizon_steps: int) -> FloatArray:
    """The busiest minute's demand at i + horizon, for each step i (NaN where unknown)."""
    return _future(history.busiest_minute(), horizon_steps)


def _future(values: FloatArray, horizon_steps: int) -> FloatArray:
    future = np.full(len(values), np.nan)
    if horizon_steps < len(values):
        future[:-horizon_steps] = values[horizon_steps:]
    return future


@dataclass(frozen=True)
class ErrorScores:
    mae: float
    """Mean absolute error, requests per minute."""
    mape: float
    """Mean absolute percentage error over steps with demand above 1 % of the mean."""
    under_share: float
    """Share of steps where the forecast fell short of demand by more than 10 %."""
    rows: int


def error_scores(forecast: FloatArray, actual: FloatArray) -> ErrorScores:
    known = np.isfinite(forecast) & np.isfinite(actual)
    if not np.any(known):
        return ErrorScores(float("nan"), float("nan"), float("nan"), 0)
    f, a = forecast[known], actual[known]
    meaningful = a > 0.01 * max(float(np.mean(a)), 1e-9)
    mape = (
        float(np.mean(np.abs(f[meaningful] - a[meaningful]) / a[meaningful]))
        if np.any(meaningful)
        else float("nan")
    )
    return ErrorScores(
        mae=float(np.mean(np.abs(f - a))),
        mape=mape,
        under_share=float(np.mean(f < 0.9 * a)),
        rows=int(known.sum()),
    )


def build_model(
    history: MetricHistory,
    config: TrainingConfig,
    capacity_per_instance: float,
    capacity_learned: bool = False,
    rows: TrainingRows | None = None,
    headroom: HeadroomTable | None = None,
) -> ForecastModel:
    """Fit on every usable row of `history` (or on `rows`) and wrap with metadata (no
    artifact yet); `headroom` is the table measured on days this fit must not have seen."""
    rows = rows if rows is not None else training_rows(history, config.horizon_steps, config.timezone)
    if len(rows.targets) == 0:
        raise ValueError("no usable training rows")
    # Converted at once: evaluation, the backtest and predict all forecast through the
    # arrays that are published, never through sklearn's own predict.
    ensemble = ensemble_from_forest(fit_forest(rows, config))
    stamps = history.timestamps()
    metadata = ModelMetadata(
        feature_names=FEATURE_NAMES,
        horizon_steps=config.horizon_steps,
        timezone=config.timezone,
        capacity_per_instance=capacity_per_instance,
        capacity_learned=capacity_learned,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training_start=_iso(int(stamps[rows.step_indices[0]])),
        training_end=_iso(int(stamps[rows.step_indices[-1]])),
        rows=len(rows.targets),
        training_demand_max_per_minute=demand_ceiling_basis(history, rows, config.horizon_steps),
        headroom=headroom.to_json() if headroom is not None else {},
    )
    return ForecastModel(ensemble=ensemble, metadata=metadata)


MIN_DEMAND_CEILING_PER_MINUTE = 1.0
"""A shop that never saw a request a minute still gets a positive ceiling (the manifest
requires one > 0)."""
DEMAND_CEILING_BASIS_QUANTILE = 0.999
"""The ceiling basis is this quantile of the demand the rows saw, never their maximum: on
28 days (8,064 steps) it is the tenth largest step, so nine datapoints, however absurd,
cannot move it (one used to: a 6e6 glitch made it 1.2 M/min, and the ceiling with it)."""


def demand_ceiling_basis(history: MetricHistory, rows: TrainingRows, horizon_steps: int) -> float:
    """What the manifest's `training_demand_max_per_minute` holds and predict bases its
    sanity ceiling on (DEMAND_CEILING_FACTOR x this): the `DEMAND_CEILING_BASIS_QUANTILE`
    of the demand per minute at the rows' anchors and targets (every step the rows saw
    once, both are finite for every training row), taken as an observed value (the lower
    one), never interpolated toward an outlier. `history` is the cleaned training window
    (`series.clean_training_window`): glitches are gone before this looks."""
    demand = history.demand_per_minute()
    targets = rows.step_indices + horizon_steps
    seen = np.union1d(rows.step_indices, targets[targets < len(demand)])
    values = demand[seen]
    values = values[np.isfinite(values)]
    if not len(values):
        return MIN_DEMAND_CEILING_PER_MINUTE
    basis = float(np.quantile(values, DEMAND_CEILING_BASIS_QUANTILE, method="lower"))
    return max(basis, MIN_DEMAND_CEILING_PER_MINUTE)


@dataclass(frozen=True)
class HoldoutSplit:
    fit: TrainingRows
    """Rows whose target lies before the split: what the challenger learns from."""
    holdout: TrainingRows
    """Rows anchored at or after the split: never seen by the challenger."""
    start: int
    """The first held-out step of the history (what the nightly replay starts from)."""


def split_holdout(
    rows: TrainingRows, history_steps: int, holdout_days: int, horizon_steps: int
) -> HoldoutSplit:
    """No leakage: a fit row's target (anchor + horizon) lies before the last
    `holdout_days`, and every held-out row is anchored at or after them."""
    return split_holdout_steps(rows, history_steps, holdout_days * STEPS_PER_DAY, horizon_steps)


def split_holdout_steps(
    rows: TrainingRows, history_steps: int, holdout_steps: int, horizon_steps: int
) -> HoldoutSplit:
    """`split_holdout` with the held-out tail in 5-minute steps."""
    split_index = history_steps - holdout_steps
    return HoldoutSplit(
        fit=rows.subset(rows.step_indices + horizon_steps < split_index),
        holdout=rows.subset(rows.step_indices >= split_index),
        start=split_index,
    )


@dataclass(frozen=True)
class Challenger:
    model: ForecastModel
    forecast: FloatArray
    """Its mean demand forecast for each held-out row."""
    actual: FloatArray
    """The mean demand that followed each held-out row (at anchor + horizon)."""
    headroom: HeadroomTable | None
    """Busiest minute over forecast on the held-out rows (`headroom.fit_headroom`)."""


def train_challenger(
    history: MetricHistory,
    split: HoldoutSplit,
    config: TrainingConfig,
    capacity_per_instance: float,
    capacity_learned: bool = False,
) -> Challenger:
    """Fit on the rows before the held-out days, forecast those days, and measure there
    how far the busiest minute reaches above the forecast. The nightly job and the
    backtest's replay of it both train this way."""
    model = build_model(history, config, capacity_per_instance, capacity_learned, rows=split.fit)
    indices = split.holdout.step_indices
    forecast = model.forecast_many(split.holdout.features, split.holdout.levels)
    actual = actual_future_demand(history, config.horizon_steps)[indices]
    busiest = actual_future_busiest_minute(history, config.horizon_steps)[indices]
    scaled = config.headroom_condition == Condition.RECENT_BURSTINESS
    burstiness = recent_burstiness(history)[indices] if scaled else None
    headroom = fit_headroom(forecast, busiest, actual, burstiness)
    return Challenger(model, forecast, actual, headroom)


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class NightlyFits:
    model: ForecastModel
    """Refitted on every row, carrying the challenger's headroom table: what serves."""
    challenger: Challenger
    split: HoldoutSplit


def train_nightly(
    history: MetricHistory,
    rows: TrainingRows,
    config: TrainingConfig,
    holdout_days: int,
    capacity_per_instance: float,
    capacity_learned: bool = False,
) -> NightlyFits:
    """The nightly job's two fits without its judging (the backtest and the benchmark): a
    challenger without the held-out days measures the headroom there, and the model
    refitted on every row carries it."""
    split = split_holdout(rows, len(history), holdout_days, config.horizon_steps)
    challenger = train_challenger(history, split, config, capacity_per_instance, capacity_learned)
    model = build_model(
        history, config, capacity_per_instance, capacity_learned, rows=rows, headroom=challenger.headroom
    )
    return NightlyFits(model, challenger, split)


def train_as_nightly_job(
    history: MetricHistory,
    rows: TrainingRows,
    config: TrainingConfig,
    holdout_days: int,
    capacity_per_instance: float,
    capacity_learned: bool = False,
) -> ForecastModel:
    """`train_nightly`'s serving model."""
    return train_nightly(history, rows, config, holdout_days, capacity_per_instance, capacity_learned).model
