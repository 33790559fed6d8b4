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

Every `retrain_every_days`-th night only (`--retrain-every DAYS`; 1, nightly, is what is
deployed and what the documented figures use), the job runs; the model of one run serves
every predict run until the next run's model (or, if that run is refused, longer).

Speed: the nights are planned first (windows, rows and the refusals need no fit), then each
night to train is one task, its fits and the forecasts of every anchor its model serves, run
in `workers` processes at once (`parallel.run_in_processes`, spawned). A task
depends only on its window, its rows and the fixed `random_state`, so the forecasts are
those of the serial run, value for value (a test compares them). Each worker fits with
sklearn's threads capped at CPUs / workers, so that the processes do not fight over cores.
Where workers cannot start (a daemonic process; a script without a main guard, which breaks
the pool) the nights not yet done run serially, with the same result.

Simplifications, stated: the challenger/champion gate of the nightly job is not replayed
(every trained model is promoted), and the training configuration may be smaller than the
deployed one (`n_estimators`) to keep a 60-night replay fast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import numpy.typing as npt

from saleor_scaling import STEP_SECONDS
from saleor_scaling.backtest.observed import PER_MINUTE, Observation

# default_workers is read from here by the configuration (one place for the pool's rules).
from saleor_scaling.backtest.parallel import default_workers as default_workers
from saleor_scaling.backtest.parallel import run_in_processes
from saleor_scaling.calendar import PlannedEvent, event_steps
from saleor_scaling.features import build_features, log_level
from saleor_scaling.headroom import HeadroomTable, recent_burstiness
from saleor_scaling.labels import estimate_capacity_per_instance
from saleor_scaling.model import ForecastModel
from saleor_scaling.retrain_service import MIN_HOLDOUT_ROWS, history_shortfall
from saleor_scaling.series import FloatArray, MetricHistory, clean_training_window
from saleor_scaling.settings import ANCHOR_OFFSET_STEPS, DEFAULT_HEADROOM_QUANTILE
from saleor_scaling.shortfall_goal import TunedSetting
from saleor_scaling.simulation.replay import ReplaySettings, tune_on_holdout
from saleor_scaling.training import (
    TrainingConfig,
    TrainingRows,
    split_holdout,
    train_as_nightly_job,
    train_nightly,
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
    retrain_every_days: int = 1
    """The job runs every this many nights (1: nightly, as deployed); a model serves
    until the next run."""
    events: tuple[PlannedEvent, ...] = ()
    """Declared events (`--events`): kept out of the seasonal features and the training
    targets, as retrain and predict keep the calendar's (`calendar.event_steps`)."""
    replay: ReplaySettings | None = None
    """The nightly shortfall goal (`--target-shortfall` without `--sweep`): each night
    chooses its model's HeadroomQuantile by the nightly job's replay of the held-out days
    (`simulation.replay.tune_on_holdout`), and the next day's anchors are sized with it;
    None: every night sizes with `headroom_quantile` (TargetShortfallPercent 0)."""

    def __post_init__(self) -> None:
        if self.retrain_every_days < 1:
            raise ValueError("retrain_every_days must be >= 1")
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
    tuned: TunedSetting | None = None
    """The night's replay's choice (with `WalkForwardSettings.replay`); None: none."""


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
    burstiness: FloatArray = field(default_factory=lambda: np.empty(0))
    """`headroom.recent_burstiness` per anchor step: what a table scaled by it reads, as
    predict reads it at its anchor."""
    nights: list[Night] = field(default_factory=list)
    headrooms: dict[int, HeadroomTable | None] = field(default_factory=dict)
    """Per trained night (its index in `nights`), its model's headroom table: what the
    sweep re-sizes `mean` with at other quantiles, without keeping the models."""

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
    filling (the first bucket not yet visible), impossible values and glitches dropped as
    the nightly job drops them (`series.clean_training_window`). Nothing at or after the
    cutoff is in it."""
    cutoff = observation.visible_end(retrain_time)
    start = history.start if window_days == 0 else max(history.start, cutoff - window_days * DAY_SECONDS)
    return clean_training_window(history.window(start, cutoff)).history


@dataclass(frozen=True)
class NightTask:
    """What one retrain needs, and the anchors its model serves until the next model."""

    night: Night
    window: MetricHistory
    rows: TrainingRows
    anchors: npt.NDArray[np.int64]
    features: FloatArray
    levels: FloatArray
    burstiness: FloatArray


@dataclass(frozen=True)
class NightOutcome:
    night: Night
    mean: FloatArray
    upper: FloatArray
    capacity: float
    headroom: HeadroomTable | None = None


def plan_nights(
    history: MetricHistory, settings: WalkForwardSettings
) -> tuple[list[Night], list[tuple[int, MetricHistory, TrainingRows]]]:
    """Every scheduled retrain (each `retrain_every_days`-th night) and the anchors
    [first_anchor, end_anchor) a model trained then would serve, up to the next scheduled
    retrain; the nights refused for too little history already decided (the rules need no
    fit). Returns the nights and, for each to train, its index, window and rows."""
    horizon = settings.training.horizon_steps
    steps = len(history)
    times = retrain_times(history, settings.retrain_minute_of_day)[:: settings.retrain_every_days]
    nights: list[Night] = []
    to_train: list[tuple[int, MetricHistory, TrainingRows]] = []
    for index, moment in enumerate(times):
        started = time.perf_counter()
        # The model serves the runs strictly after its night, up to the next retrain's run.
        next_moment = times[index + 1] if index + 1 < len(times) else history.end + 3 * STEP_SECONDS
        first = max(0, anchor_for_decision(history, moment + STEP_SECONDS))
        end = min(steps, anchor_for_decision(history, next_moment) + 1)
        window = training_window(history, moment, settings.training_window_days, settings.observation)
        rows = training_rows(window, horizon, settings.training.timezone, _inside_events(window, settings))
        held_out = len(split_holdout(rows, len(window), settings.holdout_days, horizon).holdout.targets)
        shortfall = history_shortfall(window, len(rows.targets), settings.min_history_days)
        refused = shortfall is not None or held_out < MIN_HOLDOUT_ROWS
        reason = (
            "refused: "
            + "; ".join(
                [
                    shortfall or f"{len(rows.targets)} usable rows",
                    f"{held_out} held out (need {MIN_HOLDOUT_ROWS})",
                ]
            )
            if refused
            else "trained"
        )
        nights.append(
            Night(
                moment,
                window.end,
                trained=not refused,
                rows=len(rows.targets),
                reason=reason,
                seconds=time.perf_counter() - started,
                first_anchor=first,
                end_anchor=end,
            )
        )
        if not refused:
            to_train.append((index, window, rows))
    return nights, to_train


def served_anchors(
    nights: list[Night], to_train: list[tuple[int, MetricHistory, TrainingRows]], position: int
) -> npt.NDArray[np.int64]:
    """The anchor steps the model of `to_train[position]` (`plan_nights`) serves: its own
    night's and those of the refused nights after it, up to the next trained night."""
    index = to_train[position][0]
    until = to_train[position + 1][0] if position + 1 < len(to_train) else len(nights)
    first, end = nights[index].first_anchor, nights[until - 1].end_anchor
    return np.arange(first, max(first, end), dtype=np.int64)


def _inside_events(history: MetricHistory, settings: WalkForwardSettings) -> npt.NDArray[np.bool_] | None:
    return event_steps(history.start, len(history), settings.events) if settings.events else None


def train_and_forecast(task: NightTask, settings: WalkForwardSettings, trainer: Trainer) -> NightOutcome:
    """One night's fits and the forecasts of every anchor its model serves (in a worker
    process when the nights run in parallel: everything here is a pure function of the
    task, so where it runs changes nothing)."""
    started = time.perf_counter()
    capacity = estimate_capacity_per_instance(
        task.window, settings.target_cpu_percent, settings.capacity_per_instance
    )
    quantile, tuned = settings.headroom_quantile, None
    fit = (task.window, task.rows, settings.training, settings.holdout_days)
    if settings.replay is None:
        model = trainer(*fit, capacity.requests_per_minute, capacity.learned)
    else:
        # The tuning needs the challenger and its held-out rows, which only the nightly
        # job's own fits give (an injected trainer returns the serving model alone).
        if trainer is not train_as_nightly_job:
            raise ValueError("the nightly shortfall goal replays the nightly job's own fits only")
        fits = train_nightly(*fit, capacity.requests_per_minute, capacity.learned)
        model = fits.model
        replay = tune_on_holdout(
            task.window,
            fits.challenger,
            fits.split.holdout,
            fits.split.start,
            capacity.requests_per_minute,
            settings.replay,
        )
        if not isinstance(replay, str):
            # As predict: the manifest's tuning, within the operator's floor, sizes every run.
            tuned = replay.chosen
            quantile = tuned.headroom_quantile
    mean = upper = np.empty(0)
    if len(task.anchors):
        forecasts = model.forecast_rows(task.features, task.levels, quantile, task.burstiness)
        mean = np.array([f.demand_mean for f in forecasts])
        upper = np.array([f.demand_upper for f in forecasts])
    night = replace(
        task.night,
        tuned=tuned,
        capacity_per_instance=capacity.requests_per_minute,
        seconds=task.night.seconds + time.perf_counter() - started,
    )
    return NightOutcome(night, mean, upper, model.metadata.capacity_per_instance, model.headroom)


def walk_forward(
    history: MetricHistory,
    settings: WalkForwardSettings,
    trainer: Trainer = train_as_nightly_job,
    progress: Callable[[str], None] | None = None,
    workers: int = 1,
) -> WalkForward:
    """Train at every scheduled night on the past, forecast the anchors its model serves
    in one batch. `workers` > 1 trains that many nights at once in worker processes
    (`trainer` must then be picklable: a module-level function); the result is the same
    as the serial run's, value for value, since every night's fits depend only on its
    window, rows and the fixed `random_state`."""
    steps = len(history)
    result = WalkForward(
        horizon_steps=settings.training.horizon_steps,
        mean=np.full(steps, np.nan),
        upper=np.full(steps, np.nan),
        capacity=np.full(steps, np.nan),
        burstiness=recent_burstiness(history),
    )
    nights, to_train = plan_nights(history, settings)
    features = build_features(
        history,
        settings.training.horizon_steps,
        settings.training.timezone,
        _inside_events(history, settings),
    )
    levels = log_level(history.demand_per_minute())
    tasks: list[NightTask] = []
    for position, (index, window, rows) in enumerate(to_train):
        anchors = served_anchors(nights, to_train, position)
        anchors = anchors[np.isfinite(levels[anchors])]
        tasks.append(
            NightTask(
                nights[index],
                window,
                rows,
                anchors,
                features[anchors],
                levels[anchors],
                result.burstiness[anchors],
            )
        )
    outcomes: dict[int, NightOutcome] = {}

    def record(position: int, outcome: NightOutcome) -> None:
        anchors = tasks[position].anchors
        result.mean[anchors] = outcome.mean
        result.upper[anchors] = outcome.upper
        result.capacity[anchors] = outcome.capacity
        outcomes[to_train[position][0]] = outcome
        result.headrooms[to_train[position][0]] = outcome.headroom
        if progress is not None:
            night = outcome.night
            progress(
                f"night {to_train[position][0] + 1}/{len(nights)}: {night.reason} "
                f"({night.rows} rows, {night.seconds:.1f}s)"
            )

    run_in_processes(
        partial(train_and_forecast, settings=settings, trainer=trainer),
        tasks,
        workers,
        on_result=record,
        progress=progress,
        remaining="training the remaining nights",
    )
    result.nights = [
        outcomes[index].night if index in outcomes else night for index, night in enumerate(nights)
    ]
    return result
