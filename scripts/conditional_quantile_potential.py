"""What conditional headroom could gain at most, from a quantile model (issue 23, item 3).

    PYTHONPATH=src python scripts/conditional_quantile_potential.py nasa
    PYTHONPATH=src python scripts/conditional_quantile_potential.py nab-elb

Replays the backtest's walk-forward on a shared trace (defaults, target tracking's history,
as `--sweep` does), so every anchor has an out-of-sample mean forecast (the model of the
night before it). Then ours' controller (predict's own code, `PredictiveController`) is run
with capacity sized six ways, each over the headroom quantiles 0.5-0.99 x target tracking
at 90-50 % x the 30- and 10-minute scale-in windows x MaxScaleInStep 1 and 0 (the floor
held), and each curve is read at equal shortfall on its lower hull, as `--sweep` reads
frontiers:

  tables        the nightly headroom tables (4 bands of forecast size, fitted on the two
                held-out days): what ours serves today
  qrf           quantile regression forests from the night's own trees: the weighted
                quantile of the training rows' busiest minute at their target (over their
                level) that share the anchor's leaves (`forest_quantiles`)
  leaf quantiles each tree's quantile of those responses in the anchor's leaf, averaged
                over the trees
  one quantile  the forecast x one quantile of the factor (busiest minute at the target /
                forecast mean) over every earlier anchor: a long calibration, no condition
  gbm, 2 days   the forecast x scikit-learn's quantile gradient boosting of the log factor
                on the anchor's conditions (hour of day, day of week, forecast size, the
                last hour's burstiness, the forecast's error over the last hour of anchors
                whose target has passed), one model per quantile, refitted each day on the
                two days before it: the nightly job's data
  gbm, all days the same, refitted each day on every earlier anchor: more data than any
                night has, so an upper estimate of what conditioning can gain

and AWS's perfect-hour schedule (the peer issue 23's bar is about) over its swept settings
on the same minutes. Every sizing is compared on the anchors all of them size, judged from
the first of them (the first three days of models are left out: "one quantile" and "gbm"
need two earlier days of out-of-sample anchors). A measuring script, not part of what is
deployed: the figures are in docs/backtest.md, "Conditional headroom".
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
    aws_peer_knobs,
    judge_setting,
    pareto,
    quantile_uppers,
    read_at_share,
    simulate_ours,
)
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.observed import Observation
from saleor_scaling.backtest.oracle import oracle_schedule
from saleor_scaling.backtest.parallel import run_in_processes
from saleor_scaling.backtest.peers import run_peer
from saleor_scaling.backtest.runner import observed_settings, prepare_trace
from saleor_scaling.backtest.traces import load_trace
from saleor_scaling.backtest.walkforward import WalkForwardSettings, plan_nights, served_anchors, walk_forward
from saleor_scaling.features import build_features, log_level
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.simulation.simulator import TargetTracking, simulate
from saleor_scaling.training import fit_forest

Array = np.ndarray
QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
"""Every sizing's, up to HeadroomQuantile's MaxValue (0.99): a forest's leaf holds rows
that shaped it, so its spread may read narrower than a new anchor's error, and the hull
picks whichever level is cheapest at each shortfall."""
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


def forest_quantiles(
    train_leaves: Array, sorted_response: Array, anchor_leaves: Array
) -> tuple[dict[float, Array], dict[float, Array]]:
    """Per anchor and `QUANTILES` level: the weighted quantile of the training rows'
    responses (a row weighs 1 / its leaf's rows in each tree where it shares the anchor's
    leaf, summed over the trees: the smallest response whose cumulative weight reaches the
    level's share of the anchor's total), and the mean over the trees of the quantile of
    the responses in the anchor's leaf (the smallest whose count reaches the level's share).
    Both NaN where none of the anchor's leaves holds a training row. `train_leaves` (rows x
    trees) and `sorted_response` are in ascending order of the response; `anchor_leaves`
    is anchors x trees (`apply`)."""
    trees = train_leaves.shape[1]
    weights = np.zeros((len(anchor_leaves), len(sorted_response)))
    per_tree = {q: np.full((len(anchor_leaves), trees), np.nan) for q in QUANTILES}
    for tree in range(trees):
        shares = anchor_leaves[:, tree, None] == train_leaves[None, :, tree]
        weights += shares / np.maximum(shares.sum(axis=1, keepdims=True), 1)
        # Grouped by leaf, ascending response inside each (the rows are sorted by it).
        grouping = np.argsort(train_leaves[:, tree], kind="stable")
        leaves, starts, counts = np.unique(
            train_leaves[grouping, tree], return_index=True, return_counts=True
        )
        slot = np.clip(np.searchsorted(leaves, anchor_leaves[:, tree]), 0, len(leaves) - 1)
        found = leaves[slot] == anchor_leaves[:, tree]
        for q in QUANTILES:
            at = starts[slot] + np.ceil(q * counts[slot] - 1e-9).astype(np.int64) - 1
            per_tree[q][found, tree] = sorted_response[grouping[at[found]]]
    cumulative = np.cumsum(weights, axis=1)
    by_weight, by_leaf = {}, {}
    for q in QUANTILES:
        reached = np.argmax(cumulative >= q * cumulative[:, -1:] - 1e-9, axis=1)
        by_weight[q] = np.where(cumulative[:, -1] > 0, sorted_response[reached], np.nan)
        held = np.isfinite(per_tree[q]).sum(axis=1)
        by_leaf[q] = np.nansum(per_tree[q], axis=1) / np.where(held > 0, held, np.nan)
    return by_weight, by_leaf


def forest_quantile_uppers(
    history: MetricHistory, settings: WalkForwardSettings, served: Array
) -> dict[str, dict[float, Array]]:
    """Per anchor, quantiles of the busiest minute at its target from each night's own
    forest, two ways. Each training row's response is the busiest minute at its own target
    over its level (the forest's own target is the step mean over the level), so the
    quantile sizes for the busiest minute directly, with no table on top. The forest is
    fitted as the walk-forward fits it (same rows, configuration and `random_state`), so
    its leaves are the serving model's.

    "qrf, same trees": quantile regression forests (Meinshausen 2006): every training row
    weighted by how often it shares the anchor's leaf, 1 / the leaf's rows, summed over the
    trees; the weighted quantile of the responses.
    "leaf quantiles, averaged": each tree's quantile of the responses in the anchor's leaf,
    averaged over the trees: what one more number per leaf and quantile would serve."""
    if settings.events:
        raise ValueError("planned events are not replayed here")
    horizon = settings.training.horizon_steps
    features = build_features(history, horizon, settings.training.timezone)
    levels = log_level(history.demand_per_minute())
    weighted = {q: np.full(len(history), np.nan) for q in QUANTILES}
    averaged = {q: np.full(len(history), np.nan) for q in QUANTILES}
    nights, to_train = plan_nights(history, settings)
    for position, (_, window, rows) in enumerate(to_train):
        anchors = served_anchors(nights, to_train, position)
        anchors = anchors[served[anchors]]
        if not len(anchors):
            continue
        forest = fit_forest(rows, settings.training)
        response = np.log1p(shifted(window[Metric.BUSIEST_MINUTE], -horizon)[rows.step_indices]) - rows.levels
        known = np.isfinite(response)
        order = np.argsort(response[known], kind="stable")
        sorted_response = response[known][order]
        by_weight, by_leaf = forest_quantiles(
            forest.apply(rows.features[known])[order], sorted_response, forest.apply(features[anchors])
        )
        for q in QUANTILES:
            weighted[q][anchors] = np.expm1(levels[anchors] + by_weight[q])
            averaged[q][anchors] = np.expm1(levels[anchors] + by_leaf[q])
    return {"qrf, same trees": weighted, "leaf quantiles, averaged": averaged}


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
    settings = observed_settings(config, trace, observation)
    forest = walk_forward(history, settings, workers=config.worker_count)
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
    started = time.monotonic()
    sizings.update(forest_quantile_uppers(history, settings, served))
    print(f"quantile regression forests in {time.monotonic() - started:.0f} s", flush=True)
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
    # Judged from the first anchor every sizing sizes: before it each is target tracking alone.
    window = slice(int(np.argmax(common)) * STEP_MINUTES + STEP_MINUTES, len(demand))
    print(f"{int(common.sum())} anchors sized by every sizing, of {int(served.sum())} served")
    print(f"{'ours sized by, instance-hours vs oracle at':<32}" + "".join(f"{s:>9.1%}" for s in SHARES))
    judging = Judging(demand, window, oracle.billed, config.capacity_per_instance)
    curves: dict[str, list[Setting]] = {}
    for name, sizing in sizings.items():
        curves[name] = []
        for q, cpu, window_minutes, step in itertools.product(sizing, CPU_TARGETS, WINDOWS, STEPS):
            ours = at_reactive_target(config, cpu, 0.6, window_minutes, step)
            upper = np.where(common, np.maximum(sizing[q], mean), np.nan)
            inputs = PredictiveInputs(trace.start, step_demand, upper, forest.capacity * ours.capacity_ratio)
            run = functools.partial(simulate_ours, demand, group, inputs, ours, config, observation)
            curves[name].append(Setting("predictive", "headroom_quantile", q, False, run))
    # The peer the bar is about, judged on the same minutes (it knows every hour's load).
    aws = "aws-predictive-perfect"
    curves["AWS perfect-hour (peer)"] = [
        Setting(
            aws,
            knob,
            value,
            default,
            functools.partial(run_peer, aws, demand, trace.start, history, config, peer, observation),
        )
        for knob, value, peer, default in aws_peer_knobs()
    ]
    every = [setting for settings_of in curves.values() for setting in settings_of]
    points = run_in_processes(functools.partial(judge_setting, judging=judging), every, config.worker_count)
    first = 0
    for name, settings_of in curves.items():
        front = pareto(points[first : first + len(settings_of)])
        first += len(settings_of)
        readings = [read_at_share(front, share) for share in SHARES]
        print(f"{name:<32}" + "".join(f"{'-' if r is None else f'{r[0]:.4f}':>9}" for r in readings))


if __name__ == "__main__":
    main()
