"""Each peer model against its own documented behaviour (sources in the peer modules)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_scaling.backtest.peers.aws_predictive import (
    AwsPredictiveSettings,
    forecast_by_refresh,
    hour_starts,
    hours_known_at,
    observed_hourly_load,
    pattern_forecast,
    perfect_hourly_load,
    schedule,
)
from saleor_scaling.backtest.peers.common import NO_ACTION, PlanMode, PlannedController, forward_fill
from saleor_scaling.backtest.peers.crane import (
    DAY_SAMPLES,
    CraneSettings,
    FftEstimator,
    crane_decisions,
    dsp_forecast,
    fft_estimate,
    prediction_error,
    preprocess,
)
from saleor_scaling.backtest.peers.phpa import (
    PhpaSettings,
    enough_for_holt_winters,
    holt_winters_batch,
    holt_winters_next,
    phpa_decisions,
)
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.simulation.simulator import GroupSettings, SimulatedGroup, simulate
from tests.backtest.helpers import MONDAY

GROUP = GroupSettings(min_size=1, max_size=10, boot_delay_minutes=5, capacity_per_instance=1000.0)


def history_of(step_load: np.ndarray, start: int = MONDAY) -> MetricHistory:
    """A history whose RequestCount is `step_load` requests per minute per 5-minute step."""
    values = {metric: np.full(len(step_load), np.nan) for metric in Metric}
    values[Metric.REQUESTS] = np.asarray(step_load, dtype=np.float64) * 5.0
    return MetricHistory(start=start, values=values)


# --- AWS predictive scaling ----------------------------------------------------------------


def test_aws_schedules_each_hour_at_its_start_less_the_buffer_capped_at_max_size() -> None:
    start = MONDAY + 20 * 60  # the trace starts at 00:20: the first whole hour is minute 40
    minutes = 4 * 60
    starts = hour_starts(start, minutes)
    assert starts.tolist() == [40, 100, 160, 220]
    loads = np.array([2500.0, 400.0, 25_000.0, math.nan])
    plan = schedule(starts, loads, minutes, AwsPredictiveSettings(1000.0, 600), GROUP)
    acted = np.flatnonzero(plan != NO_ACTION).tolist()
    assert acted == [30, 90, 150]  # ten minutes ahead of each hour; the unknown hour not at all
    assert plan[acted].tolist() == [3, 1, 10]  # ceil(load / target), MinSize 1, MaxSize 10


def test_aws_target_value_turns_load_into_capacity() -> None:
    starts = np.array([60])
    plan = schedule(starts, np.array([2500.0]), 120, AwsPredictiveSettings(500.0, 300), GROUP)
    assert plan[55] == 5


@pytest.mark.parametrize("buffer", [-60, 3600, 90])
def test_aws_rejects_a_buffer_it_does_not_accept(buffer: int) -> None:
    with pytest.raises(ValueError, match="SchedulingBufferTime"):
        AwsPredictiveSettings(scheduling_buffer_seconds=buffer)


def test_aws_only_scales_out_and_its_hour_is_a_floor_under_target_tracking() -> None:
    group = SimulatedGroup(GROUP, initial=6)
    plan = np.full(10, NO_ACTION, dtype=np.int64)
    plan[2], plan[5] = 3, 8
    controller = PlannedController(plan, PlanMode.RAISE, "aws-predictive")
    controller.decide(2, group, [])
    assert group.desired == 6  # a lower forecast never scales in
    assert group.floor == 3  # ... but target tracking may now scale in to it, not below
    group.set_desired(3, 1, "reactive")
    assert group.desired == 3
    controller.decide(5, group, [])
    assert group.desired == 8
    assert group.floor == 8


def test_aws_perfect_forecast_has_capacity_serving_at_the_hour_when_the_buffer_covers_the_boot() -> None:
    minutes = 3 * 60
    demand = np.full(minutes, 900.0)
    demand[120:180] = 4800.0  # the third hour needs 5 instances
    starts, loads = perfect_hourly_load(demand, MONDAY)
    plan = schedule(starts, loads, minutes, AwsPredictiveSettings(1000.0, 300), GROUP)
    record = simulate(demand, GROUP, None, PlannedController(plan, PlanMode.RAISE, "aws"), decision_every=1)
    assert record.serving[119] == 1
    assert record.billed[115] == 5
    assert record.serving[120] == 5  # launched 5 minutes ahead, booted for the hour


def test_aws_patterns_need_24_hours_and_read_at_most_14_days() -> None:
    assert np.all(np.isnan(pattern_forecast(np.full(23, 100.0))))
    assert np.all(np.isfinite(pattern_forecast(np.full(24, 100.0))))
    recent = np.tile(np.arange(24, dtype=np.float64), 14)
    old = np.full(24 * 5, 1e6)
    assert np.array_equal(pattern_forecast(np.concatenate((old, recent))), pattern_forecast(recent))
    # Daily pattern, no weekly value yet: tomorrow looks like the days seen.
    assert np.allclose(pattern_forecast(np.tile(np.arange(24.0), 3))[:24], np.arange(24.0))


def test_aws_patterns_never_read_what_cloudwatch_did_not_hold_at_the_refresh() -> None:
    rng = np.random.default_rng(3)
    steps = 12 * 24 * 5
    load = 1000.0 + 300.0 * rng.random(steps)
    changed = load.copy()
    cut = 12 * 24 * 3 + 12 * 6  # day 3, 06:00
    changed[cut - 2 :] *= 5.0  # from the step the 06:00 run may not yet read
    minutes = steps * 5
    starts, before = forecast_by_refresh(history_of(load), MONDAY, minutes, 300)
    _, after = forecast_by_refresh(history_of(changed), MONDAY, minutes, 300)
    # Hours launched from the 06:00 refresh (07:00 to 12:00 of day 3) and earlier are unchanged.
    decided_by_then = starts * 60 + MONDAY - 300 < MONDAY + cut * 300 + 6 * 3600 - 300
    assert np.array_equal(before[decided_by_then], after[decided_by_then], equal_nan=True)
    # Day 4's 06:00-12:00 hours are forecast from day 3's changed ones.
    assert not np.array_equal(before, after, equal_nan=True)


def test_aws_refresh_reads_only_the_hours_closed_before_its_anchor_step() -> None:
    history = history_of(np.full(12 * 24, 1000.0), start=MONDAY + 10 * 60)  # from 00:10
    first_hour, loads = observed_hourly_load(history)
    assert first_hour == MONDAY + 3600
    assert len(loads) == 23
    # At 06:00 the newest step a run reads is 05:50-05:55: the 05:00 hour is not closed.
    assert hours_known_at(history, first_hour, len(loads), MONDAY + 6 * 3600) == 4  # 01:00-05:00
    assert hours_known_at(history, first_hour, len(loads), MONDAY + 6 * 3600 + 600) == 5
    assert hours_known_at(history, first_hour, len(loads), MONDAY + 10**6) == 23


# --- PHPA ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "n"), [(12, 60), (12, 30), (7, 40), (24, 96)])
def test_holt_winters_is_statsmodels_as_phpa_calls_it(m: int, n: int) -> None:
    statsmodels = pytest.importorskip("statsmodels.tsa.api")
    rng = np.random.default_rng(m * n)
    series = 10 + 5 * np.sin(np.arange(n) * 2 * np.pi / m) + rng.normal(0, 1, n) + 0.05 * np.arange(n)
    settings = PhpaSettings(seasonal_periods=m, alpha=0.6, beta=0.2, gamma=0.3)
    model = statsmodels.ExponentialSmoothing(
        series, trend="add", seasonal="add", seasonal_periods=m, initialization_method="estimated"
    )
    fitted = model.fit(smoothing_level=0.6, smoothing_trend=0.2, smoothing_seasonal=0.3, optimized=False)
    expected = float(fitted.forecast(steps=1)[0])
    assert holt_winters_next(series, settings) == pytest.approx(expected, rel=1e-9)
    batch = holt_winters_batch(np.concatenate((series, series)), np.array([n - 1, 2 * n - 1]), n, settings)
    assert batch == pytest.approx([expected, expected], rel=1e-9)


def test_phpa_refuses_holt_winters_as_its_script_does() -> None:
    assert not enough_for_holt_winters(23, 12)
    assert enough_for_holt_winters(24, 12)
    assert not enough_for_holt_winters(24 * 2 - 1, 24)
    assert not enough_for_holt_winters(11, 2)  # 10 + 2 * (2 // 2) = 12 observations


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.0, 12_000.0), min_size=20, max_size=80), st.floats(300.0, 2000.0))
def test_phpa_never_asks_for_less_than_the_hpa_calculation(loads: list[float], target: float) -> None:
    load = np.asarray(loads)
    anchors = np.arange(-2, len(load))
    settings_ = PhpaSettings(target_value=target, seasonal_periods=4, stored_seasons=3)
    decided = phpa_decisions(load, anchors, settings_)
    calculated = np.ceil(load / target - 1e-9)
    assert np.all(np.isnan(decided[:2]))
    assert np.all(decided[2:] >= calculated)


def test_phpa_takes_the_maximum_of_its_models_and_the_calculation() -> None:
    load = np.array([1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0])
    decided = phpa_decisions(load, np.arange(len(load)), PhpaSettings(seasonal_periods=288))
    # A rising line: the linear model one step ahead asks for one more than the calculation
    # (Holt-Winters has too few evaluations yet).
    assert decided.tolist() == [1.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_phpa_decisions_never_read_past_their_anchor() -> None:
    rng = np.random.default_rng(5)
    load = 3000.0 + 1000.0 * rng.random(12 * 30)
    changed = load.copy()
    changed[200:] = 9000.0
    settings_ = PhpaSettings(seasonal_periods=24, stored_seasons=3)
    anchors = np.arange(len(load))
    before, after = phpa_decisions(load, anchors, settings_), phpa_decisions(changed, anchors, settings_)
    assert np.array_equal(before[:200], after[:200])
    assert not np.array_equal(before[200:], after[200:])


def test_forward_fill_keeps_the_last_evaluation_over_gaps() -> None:
    filled = forward_fill(np.array([math.nan, 1.0, math.nan, math.nan, 3.0]))
    assert np.isnan(filled[0])
    assert filled[1:].tolist() == [1.0, 1.0, 1.0, 3.0]


# --- Crane ---------------------------------------------------------------------------------


def daily_sine(days: float, level: float = 5000.0) -> np.ndarray:
    steps = np.arange(int(days * DAY_SAMPLES))
    return level + 0.6 * level * np.sin(2 * np.pi * steps / DAY_SAMPLES)


def test_crane_needs_two_whole_cycles() -> None:
    assert dsp_forecast(daily_sine(1.99), CraneSettings()) is None
    made = dsp_forecast(daily_sine(2.0), CraneSettings())
    assert made is not None
    assert len(made[0]) == DAY_SAMPLES


def test_crane_forecasts_a_periodic_signal_and_adds_its_margin() -> None:
    signal = daily_sine(3)
    plain = fft_estimate(signal, FftEstimator(3, 1.0, 0.0))
    assert plain == pytest.approx(daily_sine(1), rel=1e-6)  # the next day is the same day
    with_margin = fft_estimate(signal, FftEstimator(3, 1.0, 0.2))
    assert with_margin == pytest.approx(1.2 * plain)


def test_crane_prediction_error_punishes_under_forecasts_more() -> None:
    actual = np.full(10, 100.0)
    assert prediction_error(actual, actual - 20) > prediction_error(actual, actual + 20)
    # MAE where an actual value is (nearly) zero.
    assert prediction_error(np.array([0.0, 10.0]), np.array([1.0, 13.0])) == pytest.approx(2.0)


def test_crane_preprocessing_drops_before_a_long_gap_and_fills_short_ones() -> None:
    samples = np.arange(60, dtype=np.float64)
    samples[5:19] = np.nan  # 14 missing steps: 75 minutes between neighbours, over an hour
    samples[40:44] = np.nan  # 4 missing: filled on the line
    kept, after = preprocess(samples)
    assert after == 60
    assert len(kept) == 36  # 41 samples from index 19, whole hours (12 steps) from the end
    assert kept[-1] == 59
    assert np.allclose(kept, np.arange(24, 60))


def test_crane_takes_the_largest_of_the_window_prediction_and_the_observed_metric() -> None:
    load = daily_sine(4)
    decision_steps = np.arange(len(load))
    anchors = decision_steps - 2
    decided = crane_decisions(load, decision_steps, anchors, CraneSettings())
    observed = np.ceil(load[np.maximum(anchors, 0)] / 1000.0 - 1e-9)
    assert np.all(np.isnan(decided[:2]))
    assert np.all(decided[2:] >= observed[2:])
    # After two days it forecasts: ahead of the daily rise it asks for the hour's peak.
    day3 = 2 * DAY_SAMPLES + 12  # an hour after a refresh in day 3
    window_peak = np.ceil(np.max(load[day3 : day3 + 13]) * 1.01 / 1000.0 - 1e-9)
    assert decided[day3] >= window_peak - 1
    assert np.all(decided[2 : 2 * DAY_SAMPLES] == observed[2 : 2 * DAY_SAMPLES])  # nothing to forecast from
