"""The backtest replays the nightly shortfall goal as deployed (`--target-shortfall` without
`--sweep`): each night's model is sized with the HeadroomQuantile that the nightly job's own
replay of its held-out days chose, and nothing changes when the goal is off."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from saleor_scaling.backtest.cli import main
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.runner import prepare_trace
from saleor_scaling.backtest.walkforward import Night, plan_nights, walk_forward
from saleor_scaling.features import STEPS_PER_DAY, build_features, log_level
from saleor_scaling.headroom import recent_burstiness
from saleor_scaling.labels import estimate_capacity_per_instance
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.simulation.replay import QUANTILE_GRID, tune_on_holdout
from saleor_scaling.simulation.simulator import TargetTracking, simulate
from saleor_scaling.training import train_as_nightly_job, train_nightly
from tests.backtest.helpers import small_config, synthetic_trace
from tests.backtest.test_walkforward import reactive_history


@pytest.fixture(scope="module")
def history() -> MetricHistory:
    """Six days under target tracking, with no gap: a held-out day with one would hold
    fewer than the day of known minutes the replay needs, and tune nothing."""
    config = small_config()
    trace = prepare_trace(synthetic_trace(6, seed=0), config)
    group = config.group_settings()
    tracking = TargetTracking(config.target_tracking_settings(with_predictive=False))
    return metric_history(trace.start, simulate(trace.demand, group, tracking), group)


def test_a_held_out_day_with_a_gap_tunes_nothing_and_sizes_with_the_set_quantile() -> None:
    # Minutes 3000-3200 (hours 50 to 53.3) missing: inside the held-out day of the first two
    # nights (03:15 on day 3, 51.25 h in, and on day 4).
    gapped = reactive_history(6)
    result = walk_forward(gapped, small_config(target_shortfall_percent=1.0).walk_forward_settings("UTC"))
    as_set = walk_forward(gapped, small_config().walk_forward_settings("UTC"))
    untuned = [night for night in trained(result.nights) if night.tuned is None]
    assert [night.retrain_time for night in untuned] == [1700622900, 1700709300]
    assert all(night.tuned is not None for night in trained(result.nights)[2:])
    for night in untuned:
        anchors = slice(night.first_anchor, night.end_anchor)
        np.testing.assert_array_equal(result.upper[anchors], as_set.upper[anchors])


def trained(nights: list[Night]) -> list[Night]:
    return [night for night in nights if night.trained]


def test_each_night_is_sized_with_the_quantile_its_own_replay_chose(history: MetricHistory) -> None:
    config = small_config(target_shortfall_percent=1.0)
    settings = config.walk_forward_settings("UTC")
    result = walk_forward(history, settings)
    nights = trained(result.nights)
    assert len(nights) >= 2
    _, to_train = plan_nights(history, settings)
    features = build_features(history, settings.training.horizon_steps, "UTC")
    levels = log_level(history.demand_per_minute())
    burstiness = recent_burstiness(history)
    for night in nights:
        assert night.tuned is not None
        # The nightly job's own fits and replay on the night's window, done apart.
        index = result.nights.index(night)
        _, task_window, rows = next(item for item in to_train if item[0] == index)
        capacity = estimate_capacity_per_instance(task_window, 70.0, config.capacity_per_instance)
        fits = train_nightly(
            task_window, rows, settings.training, 1, capacity.requests_per_minute, capacity.learned
        )
        replay = tune_on_holdout(
            task_window,
            fits.challenger,
            fits.split.holdout,
            len(task_window) - STEPS_PER_DAY,
            capacity.requests_per_minute,
            config.replay_settings(),  # type: ignore[arg-type]
        )
        assert not isinstance(replay, str)
        assert night.tuned == replay.chosen
        assert night.tuned.headroom_quantile in QUANTILE_GRID
        anchors = np.arange(night.first_anchor, night.end_anchor)
        anchors = anchors[np.isfinite(levels[anchors])]
        expected = fits.model.forecast_rows(
            features[anchors], levels[anchors], night.tuned.headroom_quantile, burstiness[anchors]
        )
        np.testing.assert_array_equal(result.upper[anchors], [f.demand_upper for f in expected])


def test_a_goal_every_quantile_meets_sizes_at_the_cheapest_and_an_unmeetable_one_at_the_least_short(
    history: MetricHistory,
) -> None:
    lenient = walk_forward(history, small_config(target_shortfall_percent=20.0).walk_forward_settings("UTC"))
    strict = walk_forward(history, small_config(target_shortfall_percent=0.0001).walk_forward_settings("UTC"))
    lenient_nights, strict_nights = trained(lenient.nights), trained(strict.nights)
    assert [night.tuned.headroom_quantile for night in lenient_nights if night.tuned] == [0.5] * len(
        lenient_nights
    )
    assert all(night.tuned is not None and night.tuned.met for night in lenient_nights)
    # Sized lower than the strict goal's choice wherever the two differ, never higher.
    assert all(
        lo.tuned is not None
        and hi.tuned is not None
        and lo.tuned.headroom_quantile <= hi.tuned.headroom_quantile
        for lo, hi in zip(lenient_nights, strict_nights, strict=True)
    )
    known = np.isfinite(lenient.upper) & np.isfinite(strict.upper)
    assert np.all(lenient.upper[known] <= strict.upper[known])
    assert np.any(lenient.upper[known] < strict.upper[known])


def test_without_a_goal_every_night_sizes_with_the_set_quantile_as_before(history: MetricHistory) -> None:
    settings = small_config().walk_forward_settings("UTC")
    assert settings.replay is None
    result = walk_forward(history, settings)
    assert all(night.tuned is None for night in result.nights)
    # The injected trainer the goal refuses is the path without a goal.
    same = walk_forward(history, settings, trainer=train_as_nightly_job)
    np.testing.assert_array_equal(result.upper, same.upper)


def test_the_goal_refuses_a_trainer_that_hides_the_challenger(history: MetricHistory) -> None:
    settings = small_config(target_shortfall_percent=1.0).walk_forward_settings("UTC")

    def other_trainer(*args: object) -> object:
        return train_as_nightly_job(*args)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="replays the nightly job's own fits only"):
        walk_forward(history, settings, trainer=other_trainer)  # type: ignore[arg-type]


def test_the_cli_reads_the_goal_without_a_sweep_and_refuses_one_beyond_twenty_percent(capsys) -> None:
    # Refused as the argument is read, before any trace is: the template's own range.
    with pytest.raises(SystemExit) as refused:
        main(["nasa", "--target-shortfall", "25%", "--quiet", "--days", "1"])
    assert refused.value.code == 2
    assert "not between 0 and 20 % (TargetShortfallPercent's range)" in capsys.readouterr().err


def test_without_the_busiest_minute_no_night_is_tuned_and_every_night_sizes_as_set(
    history: MetricHistory,
) -> None:
    # A coarse history (5-minute sums only): spread evenly, the replay would see no burst
    # and meet any goal on paper.
    values = dict(history.values)
    values[Metric.BUSIEST_MINUTE] = np.full(len(history), np.nan)
    coarse = replace(history, values=values)
    result = walk_forward(coarse, small_config(target_shortfall_percent=1.0).walk_forward_settings("UTC"))
    as_set = walk_forward(coarse, small_config().walk_forward_settings("UTC"))
    assert len(trained(result.nights)) >= 2
    assert all(night.tuned is None for night in result.nights)
    np.testing.assert_array_equal(result.upper, as_set.upper)


def test_the_replay_names_why_it_tunes_nothing_without_the_busiest_minute(history: MetricHistory) -> None:
    values = dict(history.values)
    values[Metric.BUSIEST_MINUTE] = np.full(len(history), np.nan)
    coarse = replace(history, values=values)
    settings = small_config(target_shortfall_percent=1.0).walk_forward_settings("UTC")
    _, to_train = plan_nights(coarse, settings)
    _, window, rows = to_train[0]
    fits = train_nightly(window, rows, settings.training, 1, 1000.0)
    reason = tune_on_holdout(
        window,
        fits.challenger,
        fits.split.holdout,
        len(window) - STEPS_PER_DAY,
        1000.0,
        settings.replay,  # type: ignore[arg-type]
    )
    assert reason == (
        "the held-out days record no busiest minute of their steps, "
        "so the replay would see none of their bursts"
    )
