"""Series alignment, feature construction (no look-ahead) and labels."""

from __future__ import annotations

import numpy as np
import pytest

from saleor_scaling.features import (
    FEATURE_NAMES,
    LEVEL_STEPS,
    STEPS_PER_DAY,
    STEPS_PER_WEEK,
    build_features,
    demand_from_log_ratio,
    log_level,
    target_log_ratio,
)
from saleor_scaling.labels import capacity_needed, estimate_capacity_per_instance, instances_for
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.training import training_rows
from tests.conftest import synthetic_history

MONDAY = 1_700_438_400  # 2023-11-20 00:00 UTC, a Monday


def test_from_points_places_values_and_leaves_gaps_nan():
    history = MetricHistory.from_points(
        MONDAY, MONDAY + 1500, {Metric.REQUESTS: [(MONDAY, 10.0), (MONDAY + 600, 30.0), (MONDAY + 9999, 1.0)]}
    )
    assert len(history) == 5
    np.testing.assert_array_equal(history[Metric.REQUESTS][:3], [10.0, np.nan, 30.0])
    assert np.isnan(history[Metric.CPU]).all()


def test_combine_never_lets_a_gap_erase_a_value():
    older = MetricHistory.from_points(
        MONDAY, MONDAY + 900, {Metric.REQUESTS: [(MONDAY, 1.0), (MONDAY + 300, 2.0)]}
    )
    newer = MetricHistory.from_points(MONDAY + 300, MONDAY + 1200, {Metric.REQUESTS: [(MONDAY + 600, 9.0)]})
    combined = older.combine(newer)
    assert combined.start == MONDAY
    assert len(combined) == 4
    np.testing.assert_array_equal(combined[Metric.REQUESTS], [1.0, 2.0, 9.0, np.nan])


def test_unaligned_start_is_rejected():
    with pytest.raises(ValueError, match="aligned"):
        MetricHistory.empty(MONDAY + 7, 3)


def test_features_use_no_future_values():
    history = synthetic_history(MONDAY, 9)
    index = len(history) - 50
    before = build_features(history, 4, "UTC")[index]
    for metric in Metric:
        history[metric][index + 1 :] = 1e6  # rewrite the future wildly
    after = build_features(history, 4, "UTC")[index]
    np.testing.assert_array_equal(before, after)


def test_feature_shape_and_seasonal_availability():
    history = synthetic_history(MONDAY, 8)
    features = build_features(history, 4, "UTC")
    assert features.shape == (len(history), len(FEATURE_NAMES))
    weekly = FEATURE_NAMES.index("weekly_ratio")
    daily = FEATURE_NAMES.index("daily_ratio")
    assert np.isnan(features[STEPS_PER_DAY - 10, daily])
    assert np.isfinite(features[STEPS_PER_DAY + 10, daily])
    assert np.isnan(features[STEPS_PER_WEEK - 10, weekly])
    assert np.isfinite(features[STEPS_PER_WEEK + 10, weekly])


def test_calendar_features_follow_the_shop_time_zone_across_dst():
    # 2023-03-26 01:00 UTC: Europe/Berlin jumps from UTC+1 to UTC+2.
    start = 1_679_788_800  # 2023-03-26 00:00 UTC
    history = synthetic_history(start, 1)
    features = build_features(history, 4, "Europe/Berlin")
    hour = FEATURE_NAMES.index("hour_of_day")
    weekday = FEATURE_NAMES.index("day_of_week")
    assert features[0, hour] == pytest.approx(1.0)  # 00:00 UTC is 01:00 CET
    assert features[12, hour] == pytest.approx(3.0)  # 01:00 UTC is 03:00 CEST
    assert features[0, weekday] == 6.0  # Sunday


def test_target_round_trips_to_future_demand():
    history = synthetic_history(MONDAY, 2)
    demand = history.demand_per_minute()
    target = target_log_ratio(history, 4)
    level = log_level(demand)
    recovered = demand_from_log_ratio(level[:-4], target[:-4])
    np.testing.assert_allclose(recovered, demand[4:], rtol=1e-9)
    assert np.isnan(target[-4:]).all()


def test_gaps_stay_missing_in_targets():
    history = synthetic_history(MONDAY, 2)
    history[Metric.REQUESTS][100] = np.nan
    assert np.isnan(target_log_ratio(history, 4)[96])


def test_capacity_labels():
    np.testing.assert_allclose(capacity_needed(np.array([0.0, 1500.0]), 1000.0), [0.0, 1.5])
    assert instances_for(1.5) == 2
    assert instances_for(3.0000000001) == 3
    assert instances_for(0.0) == 1
    with pytest.raises(ValueError, match="capacity_per_instance"):
        capacity_needed(1.0, 0.0)


def test_capacity_per_instance_is_learned_from_history():
    history = synthetic_history(MONDAY, 3, capacity_per_instance=800.0)
    estimate = estimate_capacity_per_instance(history, 70.0, 1000.0)
    assert estimate.learned
    assert estimate.requests_per_minute == pytest.approx(800.0, rel=0.03)


def test_capacity_falls_back_to_default_on_thin_history():
    history = synthetic_history(MONDAY, 0.5)
    estimate = estimate_capacity_per_instance(history, 70.0, 1000.0)
    assert not estimate.learned
    assert estimate.requests_per_minute == 1000.0


def test_capacity_estimate_is_clamped_near_the_default():
    history = synthetic_history(MONDAY, 3, capacity_per_instance=6000.0)
    estimate = estimate_capacity_per_instance(history, 70.0, 1000.0)
    assert estimate.requests_per_minute == 4000.0
    assert "clamped" in estimate.reason


def test_training_skips_anchors_where_the_shop_was_down_but_keeps_quiet_nights():
    history = synthetic_history(MONDAY, 10)
    down = slice(5 * STEPS_PER_DAY, 5 * STEPS_PER_DAY + 24)  # two hours serving nothing
    history.values[Metric.REQUESTS][down] = 0.0
    rows = training_rows(history, 4, "UTC")
    anchors = set(rows.step_indices.tolist())
    # Inside the outage the level is zero: what follows it is no demand pattern.
    assert not anchors & set(range(down.start + LEVEL_STEPS, down.stop))
    # The synthetic shop's quietest hours (about a tenth of its peak) are still learned.
    demand = history.demand_per_minute()
    quiet = np.flatnonzero(demand < 0.2 * np.nanmax(demand))
    assert len(quiet) > 100
    assert len(anchors & set(quiet.tolist())) > 0.9 * len(
        set(quiet.tolist()) - set(range(down.start, down.stop + 4))
    )
