"""One backtest: every strategy on the same trace, side by side.

1. Reactive: target tracking alone on the simulated group (`simulator`).
2. The 5-minute CloudWatch history that run records (`history.metric_history`), as
   CloudWatch would hold it (`observed.Observation.observe`: on a trace coarser than
   5 minutes each source step is seen as its own total once it has closed, never the
   minutes the spreading invented), is what the nightly job trains on and every
   predictive strategy reads; each reads only the buckets visible at its decision time
   (`Observation.visible_end`, `Observation.anchor`), with the horizon stretched to the
   last run that shares an anchor (`Observation.horizon_steps`). Its RequestCount is the
   trace itself, the same for every strategy; its CPU, response time and 5xx columns
   (inputs of three of the model's sixteen features) are those of the reactive fleet.
   Using the predictive fleet's own CPU instead would make each forecast depend on the
   previous decision and forbid forecasting a day in one batch; the reactive floor inside
   each decision does use the deciding fleet's own CPU and in-service count.
3. Predictive: the walk-forward Random Forest (`walkforward`) driving the predict
   function's policy (`strategies.PredictiveController`) plus target tracking on one group.
4. Seasonal-naive: the same policy fed `training.seasonal_naive` (same time last week, else
   yesterday) as its forecast, with no spread (sized for the point forecast).
5. Oracle (`oracle`): the cheapest schedule that is never under-provisioned.
6. The clairvoyant-level bound (`bounds`): what sizing on a perfect forecast of the load's
   level would cost within the under-provisioning target, to tell a weak forecaster from a
   trace whose noise no forecast of the level can size for.

Figures are computed over the minutes after the first nightly model serves (before it the
predictive strategy *is* the reactive one), and over the whole trace too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

import numpy as np

from saleor_scaling.backtest.bounds import clairvoyant_level_bound
from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.observed import DELAY_SECONDS, Observation
from saleor_scaling.backtest.oracle import oracle_schedule
from saleor_scaling.backtest.peers import peers_in, run_peer
from saleor_scaling.backtest.planned import (
    SCHEDULED_PEER,
    WITHOUT_EVENTS,
    EventPlanner,
    event_figures,
    event_windows,
    preview_cost,
    run_scheduled_peer,
)
from saleor_scaling.backtest.report import (
    UNDER_PROVISIONED_SHARE_OF_REACTIVE,
    BacktestReport,
    ForecastFigures,
    StrategyFigures,
    StrategySeries,
    iso,
    no_model_statement,
    scaling_statement,
    strategy_figures,
)
from saleor_scaling.backtest.rises import rise_figures, rise_summary, sudden_rises
from saleor_scaling.backtest.traces import Trace, robust_peak
from saleor_scaling.backtest.walkforward import Night, WalkForward, WalkForwardSettings, walk_forward
from saleor_scaling.calendar import PlannedEvent
from saleor_scaling.series import FloatArray, MetricHistory
from saleor_scaling.simulation.simulator import SimulationRecord, TargetTracking, simulate
from saleor_scaling.simulation.strategies import PredictiveController
from saleor_scaling.training import actual_future_demand, error_scores, seasonal_naive


def prepare_trace(trace: Trace, config: BacktestConfig) -> Trace:
    """The trace as the backtest runs it: cut to [start, end) and then to `days`, scaled
    to the peak (or by the configured factor)."""
    if config.start is not None or config.end is not None:
        trace = trace.between(*config.window())
    if config.days is not None:
        trace = trace.head(config.days)
    if config.scale_factor is not None:
        return replace(trace, demand=trace.demand * config.scale_factor, scale_factor=config.scale_factor)
    return trace.scaled(config.peak_instances, config.capacity_per_instance, config.peak_percentile)


def run_backtest(
    trace: Trace,
    config: BacktestConfig | None = None,
    progress: Callable[[str], None] | None = None,
    events: Sequence[PlannedEvent] = (),
) -> BacktestReport:
    """Run every configured strategy on `trace` (as loaded: it is scaled here); the
    predictive strategies honour the planned `events` as predict does (`planned`)."""
    config = config or BacktestConfig()
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    scaled = prepare_trace(trace, config)
    demand = scaled.demand
    group = config.group_settings()

    def timed(name: str, function: Callable[[], SimulationRecord]) -> SimulationRecord:
        begin = time.perf_counter()
        outcome = function()
        timings[name] = time.perf_counter() - begin
        say(f"{name}: {timings[name]:.1f}s")
        return outcome

    records: dict[str, SimulationRecord] = {}
    records["reactive"] = timed(
        "reactive",
        lambda: simulate(
            demand, group, TargetTracking(config.target_tracking_settings(with_predictive=False))
        ),
    )
    observation = Observation.of_trace(scaled)
    history = observation.observe(metric_history(scaled.start, records["reactive"], group))
    step_demand = history.demand_per_minute()
    horizon = observation.horizon_steps(config.horizon)
    naive = seasonal_naive(history, horizon)
    controllers: dict[str, PredictiveController] = {}
    forecast_means: dict[str, FloatArray] = {}
    forest: WalkForward | None = None
    planner = (
        EventPlanner(tuple(events), scaled.start, step_demand, horizon, config.capacity_per_instance)
        if events
        else None
    )

    def run_controlled(
        name: str, upper: FloatArray, capacity: FloatArray, honour_events: bool = True
    ) -> SimulationRecord:
        controller = PredictiveController(
            scaled.start,
            step_demand,
            upper,
            capacity,
            config.policy,
            config.min_size,
            config.max_size,
            observation,
            planner if honour_events else None,
        )
        controllers[name] = controller
        tracking = TargetTracking(config.target_tracking_settings(with_predictive=True))
        return simulate(demand, group, tracking, controller)

    if "predictive" in config.strategies:
        begin = time.perf_counter()
        forest = walk_forward(
            history,
            replace(observed_settings(config, scaled, observation), events=tuple(events)),
            progress=progress,
            workers=config.worker_count,
        )
        timings["walk_forward"] = time.perf_counter() - begin
        timings["training"] = forest.training_seconds
        forecast_means["predictive"] = forest.mean
        fitted = forest
        records["predictive"] = timed(
            "predictive", lambda: run_controlled("predictive", fitted.upper, fitted.capacity)
        )
        if planner is not None:
            forecast_means[WITHOUT_EVENTS] = forest.mean
            records[WITHOUT_EVENTS] = timed(
                WITHOUT_EVENTS, lambda: run_controlled(WITHOUT_EVENTS, fitted.upper, fitted.capacity, False)
            )
    if "seasonal-naive" in config.strategies:
        capacity = np.where(np.isfinite(naive), config.capacity_per_instance, np.nan)
        forecast_means["seasonal-naive"] = naive
        records["seasonal-naive"] = timed(
            "seasonal-naive", lambda: run_controlled("seasonal-naive", naive, capacity)
        )

    for peer in peers_in(config.strategies):
        # Peers read the same observed history as the forecasters (whatever it holds).
        records[peer] = timed(
            peer, partial(run_peer, peer, demand, scaled.start, history, config, config.peers, observation)
        )
    if planner is not None:
        records[SCHEDULED_PEER] = timed(
            SCHEDULED_PEER,
            partial(run_scheduled_peer, demand, scaled.start, history, config, observation, planner),
        )

    begin = time.perf_counter()
    oracle = oracle_schedule(demand, group)
    timings["oracle"] = time.perf_counter() - begin

    first_model = forest.first_model_time if forest is not None else None
    minutes = len(demand)
    if first_model is not None:
        # The first predict run after the first model's night.
        lo = min(minutes, (first_model - scaled.start) // 60 + 5)
        reason = "from the first predict run with a nightly model; known minutes only"
    else:
        lo = 0
        reason = (
            "whole trace: no nightly model could be trained"
            if forest is not None
            else "whole trace (no Random Forest strategy run)"
        )
    windows = {"evaluated": slice(lo, minutes), "full": slice(0, minutes)}
    actual = actual_future_demand(history, horizon)
    figures: dict[str, dict[str, StrategyFigures]] = {"evaluated": {}, "full": {}}
    series: dict[str, StrategySeries] = {}
    order = [
        name
        for name in (
            "reactive",
            "predictive",
            WITHOUT_EVENTS,
            "seasonal-naive",
            *peers_in(config.strategies),
            SCHEDULED_PEER,
        )
        if name in records
    ]
    for key, window in windows.items():
        for name in order:
            record = records[name]
            actions = sum(1 for action in record.actions if window.start <= action.minute < window.stop)
            forecast = None
            if name in controllers:
                forecast = _forecast_figures(
                    controllers[name], forecast_means[name], naive, actual, window.start
                )
            figures[key][name] = strategy_figures(
                name,
                demand,
                record.serving,
                record.billed,
                actions,
                config.capacity_per_instance,
                window,
                oracle.billed,
                forecast,
                max_size=config.max_size,
                pool_cost=record.pool_cost,
            )
        oracle_actions = int(np.count_nonzero(np.diff(oracle.billed[window])))
        figures[key]["oracle"] = strategy_figures(
            "oracle",
            demand,
            oracle.serving,
            oracle.billed,
            oracle_actions,
            config.capacity_per_instance,
            window,
            oracle.billed,
            max_size=config.max_size,
        )
    level_bound = clairvoyant_level_bound(
        demand,
        group,
        oracle.billed,
        UNDER_PROVISIONED_SHARE_OF_REACTIVE * figures["evaluated"]["reactive"].under_provisioned_share,
        windows["evaluated"],
        config.horizon,
    )
    for name in order:
        series[name] = StrategySeries(records[name].serving, records[name].billed)
    rises = sudden_rises(demand, config.capacity_per_instance, windows["evaluated"])
    rise_by_strategy = {
        name: rise_figures(
            name,
            rises,
            demand,
            series[name].serving,
            series[name].billed,
            oracle.billed,
            config.capacity_per_instance,
        )
        for name in order
    }
    rise_by_strategy["oracle"] = rise_figures(
        "oracle", rises, demand, oracle.serving, oracle.billed, oracle.billed, config.capacity_per_instance
    )
    series["oracle"] = StrategySeries(oracle.serving, oracle.billed)
    timings["total"] = time.perf_counter() - started

    evaluated_minutes = minutes - lo
    report = BacktestReport(
        trace={
            "name": scaled.name,
            "start": iso(scaled.start),
            "days": scaled.days,
            "minutes": minutes,
            "known_share": scaled.known_share(),
            "source_step_minutes": scaled.source_step_minutes,
            "resample": scaled.resample,
            "observation_unit_minutes": observation.unit_minutes,
            "scale_factor": scaled.scale_factor,
            "scaling": scaling_statement(scaled.scale_factor, config.to_json()),
            "robust_peak_per_minute": robust_peak(scaled, config.peak_percentile),
            "max_minute_demand_instances": float(np.nanmax(demand)) / config.capacity_per_instance,
            "minutes_needing_more_than_max_size": int(
                np.sum(np.nan_to_num(demand) > config.max_size * config.capacity_per_instance)
            ),
        },
        config={**config.to_json(), "horizon_steps_used": horizon},
        evaluation={
            "start": iso(scaled.start + lo * 60),
            "end": iso(scaled.start + minutes * 60),
            "days": evaluated_minutes / 1440.0,
            "first_minute": lo,
            "reason": reason,
        },
        figures=figures["evaluated"],
        full_span=figures["full"],
        walk_forward=_walk_forward_summary(forest, history),
        level_bound=level_bound,
        timings=timings,
        start=scaled.start,
        demand=demand,
        series=series,
        notes=scaled.absent_run_notes()
        + _no_model_notes(forest, scaled, config)
        + _notes(config)
        + _observation_notes(observation, config.horizon),
        decisions={name: controller.log for name, controller in controllers.items()},
        rises=rise_summary(rises, rise_by_strategy),
    )
    if planner is not None:
        report.events = {
            "events": [event.describe() for event in planner.events],
            "figures": event_figures(
                series,
                demand,
                config.capacity_per_instance,
                event_windows(planner.events, scaled.start, minutes),
                lo,
            ),
            "preview": preview_cost(planner),
        }
    return report


def observed_settings(config: BacktestConfig, trace: Trace, observation: Observation) -> WalkForwardSettings:
    """The nightly job's settings on this trace: trained for the horizon the strategies
    query (`Observation.horizon_steps`), on the buckets visible at each night."""
    settings = config.walk_forward_settings(trace.timezone)
    training = replace(settings.training, horizon_steps=observation.horizon_steps(config.horizon))
    return replace(settings, training=training, observation=observation)


def _forecast_figures(
    controller: PredictiveController,
    mean: FloatArray,
    naive: FloatArray,
    actual: FloatArray,
    first_minute: int,
) -> ForecastFigures:
    log = controller.log
    anchors = np.array(
        [anchor for minute, anchor in zip(log.minutes, log.anchors, strict=True) if minute >= first_minute],
        dtype=np.int64,
    )
    if not len(anchors):
        nan = float("nan")
        return ForecastFigures(nan, nan, 0, nan, nan, 0, log.fallbacks)
    forecast, baseline, truth = mean[anchors], naive[anchors], actual[anchors]
    judged = np.isfinite(forecast) & np.isfinite(baseline) & np.isfinite(truth)
    model = error_scores(forecast[judged], truth[judged])
    reference = error_scores(baseline[judged], truth[judged])
    return ForecastFigures(
        mae=model.mae,
        mape=model.mape,
        rows=model.rows,
        seasonal_naive_mae=reference.mae,
        seasonal_naive_mape=reference.mape,
        runs_with_forecast=len(anchors),
        fallbacks=log.fallbacks,
    )


def _walk_forward_summary(forest: WalkForward | None, history: MetricHistory) -> dict[str, object]:
    if forest is None:
        return {}
    trained = [night for night in forest.nights if night.trained]
    return {
        "nights": len(forest.nights),
        "nights_trained": len(trained),
        "nights_refused": len(forest.nights) - len(trained),
        "first_model": iso(trained[0].retrain_time) if trained else None,
        "training_seconds": forest.training_seconds,
        "rows_last_model": trained[-1].rows if trained else 0,
        "capacity_per_instance_learned": [round(night.capacity_per_instance, 1) for night in trained[-3:]],
        "history_steps": len(history),
        **_tuning_summary(trained),
    }


def _tuning_summary(trained: list[Night]) -> dict[str, object]:
    """The nightly shortfall goal's choices, night by night (only when it was replayed)."""
    tuned = [night.tuned for night in trained if night.tuned is not None]
    if not tuned:
        return {}
    quantiles = [setting.headroom_quantile for setting in tuned]
    return {
        "tuning": {
            "goal_share": tuned[0].goal_share,
            "nights_tuned": len(tuned),
            "nights_met": sum(setting.met for setting in tuned),
            "quantiles": quantiles,
            "replay_short_share_mean": round(float(np.mean([s.replay_short_share for s in tuned])), 6),
        }
    }


def _no_model_notes(forest: WalkForward | None, trace: Trace, config: BacktestConfig) -> list[str]:
    if forest is None or any(night.trained for night in forest.nights):
        return []
    return [no_model_statement(trace.days, config.min_history_days)]


def _notes(config: BacktestConfig) -> list[str]:
    notes = [
        f"nightly models use n_estimators={config.n_estimators}, max_depth={config.max_depth} "
        f"(deployed default 60 trees); every trained model is promoted (the champion/challenger gate is "
        "not replayed)",
        "the model's CPU, response-time and 5xx inputs come from the reactive fleet's simulated metrics; "
        "RequestCount (all demand features) is the trace",
    ]
    if not config.reactive_scale_in_with_predictive:
        notes.append("target tracking scale-in is disabled next to the predict function")
    return notes


def _observation_notes(observation: Observation, horizon: int) -> list[str]:
    if observation.buckets_per_unit == 1:
        return []
    return [
        f"source steps of {observation.source_step_minutes} min: the strategies and the nightly training see "
        f"each {observation.unit_minutes}-minute unit as its total spread evenly (busiest minute unknown), "
        f"{DELAY_SECONDS // 60} min after it closed, never the minutes interpolated inside it; forecast "
        f"horizon {observation.horizon_steps(horizon)} steps from the anchor (the last run sharing it), "
        f"not {horizon}"
    ]
