"""Walk-forward: features only look back, a night's model sees only that night's past, and
nothing after a day changes a decision before it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.peers import PEERS
from saleor_scaling.backtest.runner import prepare_trace, run_backtest
from saleor_scaling.backtest.walkforward import plan_nights, served_anchors, training_window, walk_forward
from saleor_scaling.features import HISTORY_STEPS_NEEDED, LEVEL_STEPS, build_features
from saleor_scaling.model import ForecastModel
from saleor_scaling.series import MetricHistory
from saleor_scaling.simulation.simulator import TargetTracking, simulate
from saleor_scaling.training import TrainingConfig, TrainingRows, train_as_nightly_job
from tests.backtest.helpers import small_config, synthetic_trace

DAY_MINUTES = 1440


def reactive_history(days: float, seed: int = 0) -> MetricHistory:
    config = small_config()
    trace = prepare_trace(synthetic_trace(days, seed=seed), config)
    demand = trace.demand.copy()
    demand[3000:3200] = np.nan  # a gap in the recording
    group = config.group_settings()
    record = simulate(demand, group, TargetTracking(config.target_tracking_settings(with_predictive=False)))
    return metric_history(trace.start, record, group)


def test_feature_row_is_the_same_whether_the_history_ends_there_or_later() -> None:
    history = reactive_history(9)
    horizon = 3
    full = build_features(history, horizon, "UTC")
    lookback = HISTORY_STEPS_NEEDED + horizon + LEVEL_STEPS
    for index in (5, 290, 600, 640, 2100, len(history) - 1):
        end = history.start + (index + 1) * history.step
        truncated = build_features(history.window(history.start, end), horizon, "UTC")[-1]
        np.testing.assert_array_equal(full[index], truncated)
        # ... and the same as predict computes it from its own, shorter read.
        served = build_features(history.window(end - lookback * history.step, end), horizon, "UTC")[-1]
        np.testing.assert_array_equal(full[index], served)


def test_each_night_trains_only_on_its_past() -> None:
    history = reactive_history(6)
    seen: list[MetricHistory] = []

    def recording_trainer(
        window: MetricHistory,
        rows: TrainingRows,
        config: TrainingConfig,
        holdout_days: int,
        capacity: float,
        learned: bool,
    ) -> ForecastModel:
        seen.append(window)
        model = train_as_nightly_job(window, rows, config, holdout_days, capacity, learned)
        # The headroom was measured on the held-out day, which the challenger never saw.
        assert model.headroom is not None
        assert holdout_days == 1
        return model

    result = walk_forward(history, small_config().walk_forward_settings("UTC"), trainer=recording_trainer)
    trained = [night for night in result.nights if night.trained]
    assert len(seen) == len(trained) >= 2
    for window, night in zip(seen, trained, strict=True):
        # The bucket still filling at the night's run is left out.
        assert window.end == night.cutoff == night.retrain_time - history.step
        same = history.window(window.start, window.end)
        for metric, values in window.values.items():
            np.testing.assert_array_equal(values, same[metric])
        # The model forecasts only for predict runs after its night.
        first_decision = history.start + (night.first_anchor + 2) * history.step
        assert first_decision > night.retrain_time
    assert training_window(history, trained[0].retrain_time, 0).start == history.start


def test_the_future_never_changes_a_decision() -> None:
    days, cut_day = 5.0, 3.5
    trace = synthetic_trace(days, seed=1)
    cut = int(cut_day * DAY_MINUTES)
    changed = trace.demand.copy()
    changed[cut:] *= 3.0
    changed[cut + 100 : cut + 160] = np.nan
    # One shop size for both (scaling to the peak would look at the whole trace).
    config = small_config(scale_factor=60.0)
    original = run_backtest(trace, config)
    perturbed = run_backtest(replace(trace, demand=changed), config)
    np.testing.assert_array_equal(original.demand[:cut], perturbed.demand[:cut])
    assert original.walk_forward["nights_trained"] >= 1
    forecast = original.full_span["predictive"].forecast
    assert forecast is not None
    assert forecast.runs_with_forecast > 100
    # Every peer too, except AWS with a perfect forecast: it knows each hour's load by design.
    causal = [name for name in PEERS if name != "aws-predictive-perfect"]
    for name in ("reactive", "predictive", "seasonal-naive", *causal):
        before, after = original.series[name], perturbed.series[name]
        np.testing.assert_array_equal(before.serving[:cut], after.serving[:cut])
        np.testing.assert_array_equal(before.billed[:cut], after.billed[:cut])
    assert not np.array_equal(
        original.series["predictive"].billed[cut:], perturbed.series["predictive"].billed[cut:]
    )


def test_a_model_serves_its_night_and_the_refused_nights_after_it() -> None:
    history = reactive_history(8)
    nights, to_train = plan_nights(history, small_config().walk_forward_settings("UTC"))
    assert len(to_train) >= 3
    trained = [index for index, _, _ in to_train]
    # Each model serves from its own night's first anchor to the next model's.
    for position, index in enumerate(trained[:-1]):
        np.testing.assert_array_equal(
            served_anchors(nights, to_train, position),
            np.arange(nights[index].first_anchor, nights[trained[position + 1]].first_anchor),
        )
    # The last model serves to the end of the last night, whatever its own night's end.
    last = served_anchors(nights, to_train, len(to_train) - 1)
    assert last[0] == nights[trained[-1]].first_anchor
    assert last[-1] == nights[-1].end_anchor - 1
    # A night refused (its model never trained) leaves the model before it serving.
    refused = trained[1]
    kept = [to_train[0], *to_train[2:]]
    serving = served_anchors(nights, kept, 0)
    assert serving[0] == nights[trained[0]].first_anchor
    assert serving[-1] == nights[refused].end_anchor - 1
    assert serving[-1] + 1 == nights[trained[2]].first_anchor
