"""What conditional headroom could gain at most, from a quantile model (issue 23, item 3).

    PYTHONPATH=src python scripts/conditional_quantile_potential.py nasa
    PYTHONPATH=src python scripts/conditional_quantile_potential.py nab-elb

Replays the backtest's walk-forward on a shared trace (defaults, target tracking's history,
as `--sweep` does), so every anchor has an out-of-sample mean forecast (the model of the
night before it). Then ours' controller (predict's own code, `PredictiveController`) is run
with capacity sized four ways, each over the headroom quantiles 0.5-0.95 x target tracking
at 90-50 % x the 30- and 10-minute scale-in windows x MaxScaleInStep 1 and 0 (the floor
held), and each curve is read at equal shortfall on its lower hull, as `--sweep` reads
frontiers:

  tables        the nightly headroom tables (4 bands of forecast size, fitted on the two
                held-out days): what ours serves today
  one quantile  the forecast x one quantile of the factor (busiest minute at the target /
                forecast mean) over every earlier anchor: a long calibration, no condition
  gbm, 2 days   the forecast x scikit-learn's quantile gradient boosting of the log factor
                on the anchor's conditions (hour of day, day of week, forecast size, the
                last hour's burstiness, the forecast's error over the last hour of anchors
                whose target has passed), one model per quantile, refitted each day on the
                two days before it: the nightly job's data
  gbm, all days the same, refitted each day on every earlier anchor: more data than any
                night has, so an upper estimate of what conditioning can gain

Every sizing is compared on the anchors all four size, judged from the first of them (the
first three days of models are left out: "one quantile" and "gbm" need two earlier days of
out-of-sample anchors). A measuring script, not part of what is deployed: the figures are in
docs/backtest.md, "Conditional headroom".
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time

import numpy as np
from headroom_conditions import shifted, trailing  # the sibling script's: run from scripts/
from sklearn.ensemble import HistGradientBoostingRegressor

from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.frontier import (
    Judging,
    PredictiveInputs,
    Setting,
    at_reactive_target,
    judge_setting,
    pareto,
    quantile_uppers,
    read_at_share,
    simulate_ours,
)
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.observed import Observation
from saleor_scaling.backtest.oracle import oracle_schedule
from saleor_scaling.backtest.runner import observed_settings, prepare_trace
from saleor_scaling.backtest.traces import load_trace
from saleor_scaling.backtest.walkforward import walk_forward
from saleor_scaling.series import Metric
from saleor_scaling.simulation.simulator import TargetTracking, simulate

Array = np.ndarray
QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
CPU_TARGETS = (90.0, 80.0, 70.0, 60.0, 50.0)
WINDOWS = (30, 10)
STEPS = (1, 0)
SHARES = (0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.10)
STEP_MINUTES = 5
HELD_OUT_DAYS = 2


def quantile_model(quantile: float) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        loss="quantile",
        quantile=quantile,
        max_iter=100,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        random_state=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--days", type=float)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    config = BacktestConfig(days=args.days, workers=args.workers)
    trace = prepare_trace(load_trace(args.trace), config)
    demand, group = trace.demand, config.group_settings()
    reactive = simulate(demand, group, TargetTracking(config.target_tracking_settings(with_predictive=False)))
    observation = Observation.of_trace(trace)
    if observation.source_step_minutes > STEP_MINUTES:
        parser.error("a coarse trace spreads each unit over its minutes: its busiest minute is not measured")
    history = observation.observe(metric_history(trace.start, reactive, group))
    oracle = oracle_schedule(demand, group)
    forest = walk_forward(history, observed_settings(config, trace, observation), workers=config.worker_count)
    step_demand = history.demand_per_minute()
    steps, horizon, mean = len(step_demand), forest.horizon_steps, forest.mean

    # Each anchor's truth is its target step's, `horizon` steps on (NaN past the end).
    busiest = shifted(history[Metric.BUSIEST_MINUTE], -horizon)
    with np.errstate(all="ignore"):
        log_factor = np.log(np.clip(busiest / np.maximum(mean, 1.0), 1e-3, 10.0))
        error = np.abs(shifted(step_demand, -horizon) - mean) / np.maximum(mean, 1.0)
    # The last hour of anchors whose target has passed by the anchor: their error is known there.
    recent_error = shifted(trailing(error, 12, np.nanmean), horizon)
    times = history.start + history.step * np.arange(steps)
    conditions = np.column_stack(
        [
            (times // 3600) % 24,
            (times // 86400) % 7,
            np.log1p(np.nan_to_num(mean)),
            forest.burstiness,
            recent_error,
        ]
    )

    served = np.isfinite(mean)
    sizings: dict[str, dict[float, Array]] = {"tables": quantile_uppers(forest, QUANTILES)}
    for name in ("one quantile", "gbm, 2 days", "gbm, all days"):
        sizings[name] = {q: np.full(steps, np.nan) for q in QUANTILES}
    day_of = (times - times[0]) // 86400
    started = time.monotonic()
    for day in range(int(day_of[np.argmax(served)]) + 1, int(day_of.max()) + 1):
        today = np.flatnonzero((day_of == day) & served)
        if not len(today):
            continue
        earlier = served & np.isfinite(log_factor) & (np.arange(steps) + horizon < today[0])
        recent = earlier & (day_of >= day - HELD_OUT_DAYS)
        if recent.sum() < 288:
            continue
        for q in QUANTILES:
            sizings["one quantile"][q][today] = mean[today] * np.exp(np.quantile(log_factor[earlier], q))
            for name, rows in (("gbm, 2 days", recent), ("gbm, all days", earlier)):
                model = quantile_model(q).fit(conditions[rows], log_factor[rows])
                sizings[name][q][today] = mean[today] * np.exp(model.predict(conditions[today]))
    print(f"quantile models fitted in {time.monotonic() - started:.0f} s", flush=True)

    common = np.logical_and.reduce([np.isfinite(sizing[0.6]) for sizing in sizings.values()])
    if not common.any():
        parser.error("no day has two earlier days of out-of-sample anchors: the trace is too short")
    # Judged from the first anchor all four size: before it each is target tracking alone.
    window = slice(int(np.argmax(common)) * STEP_MINUTES + STEP_MINUTES, len(demand))
    print(f"{int(common.sum())} anchors sized by all four, of {int(served.sum())} served")
    print(f"{'ours sized by, instance-hours vs oracle at':<32}" + "".join(f"{s:>9.1%}" for s in SHARES))
    judging = Judging(demand, window, oracle.billed, config.capacity_per_instance)
    for name, sizing in sizings.items():
        points = []
        for q, cpu, window_minutes, step in itertools.product(QUANTILES, CPU_TARGETS, WINDOWS, STEPS):
            ours = at_reactive_target(config, cpu, 0.6, window_minutes, step)
            upper = np.where(common, np.maximum(sizing[q], mean), np.nan)
            inputs = PredictiveInputs(trace.start, step_demand, upper, forest.capacity * ours.capacity_ratio)
            run = functools.partial(simulate_ours, demand, group, inputs, ours, config, observation)
            points.append(judge_setting(Setting("predictive", "headroom_quantile", q, False, run), judging))
        front = pareto(points)
        readings = [read_at_share(front, share) for share in SHARES]
        print(
            f"{name:<32}" + "".join(f"{'-' if r is None else f'{r[0]:.4f}':>9}" for r in readings),
            flush=True,
        )


if __name__ == "__main__":
    main()
