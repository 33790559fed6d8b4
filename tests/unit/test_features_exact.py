"""Exact tests of the features: each column worked out by hand on a history built for it
(a ramp, whose 3-step means are known), the shift and mean helpers at their edges, and no
floating-point warning on gaps and empty steps.

Written against the survivors of a mutation run (`make mutate`, docs/reliability.md,
"Mutation testing")."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from saleor_scaling.features import (
    FEATURE_NAMES,
    _centered_mean,
    _nanmean_columns,
    _shift,
    build_features,
    demand_from_log_ratio,
)
from saleor_scaling.series import Metric, MetricHistory

START = 1_700_000_100  # on the 5-minute grid
NAN = math.nan
COLUMN = {name: index for index, name in enumerate(FEATURE_NAMES)}


def ramp(steps: int) -> MetricHistory:
    """Demand k + 1 requests a minute at step k (5 (k + 1) requests in the 5-minute step)."""
    history = MetricHistory.empty(START, steps)
    history[Metric.REQUESTS][:] = 5.0 * (np.arange(steps) + 1.0)
    return history


def test_daily_features_compare_the_same_horizon_one_day_earlier():
    # Step 400, horizon 6: one day earlier the target was step 400 - 288 + 6 = 118 and "now"
    # was step 112. The centered 3-step mean of the ramp at step k is k + 1 (k, k+1, k+2),
    # and the level (mean of the last three steps) at 400 is 400.
    row = build_features(ramp(500), 6, "UTC")[400]
    assert row[COLUMN["daily_delta"]] == pytest.approx(math.log1p(119.0) - math.log1p(113.0), abs=1e-12)
    assert row[COLUMN["daily_ratio"]] == pytest.approx(math.log1p(119.0) - math.log1p(400.0), abs=1e-12)
    assert row[COLUMN["log_level"]] == pytest.approx(math.log1p(400.0), abs=1e-12)
    assert row[COLUMN["lag_1"]] == pytest.approx(math.log1p(400.0) - math.log1p(400.0), abs=1e-12)
    assert row[COLUMN["lag_12"]] == pytest.approx(math.log1p(389.0) - math.log1p(400.0), abs=1e-12)
    # Less than a week of history: the weekly features are missing, not made up.
    assert math.isnan(row[COLUMN["weekly_delta"]])
    assert math.isnan(row[COLUMN["weekly_ratio"]])


def test_error_ratio_is_exact_and_missing_without_requests():
    history = MetricHistory.empty(START, 6)
    history[Metric.REQUESTS][:] = [100.0, 0.0, 0.0, 0.5, 40.0, NAN]
    history[Metric.ERRORS_5XX][:] = [5.0, 3.0, 0.0, 0.5, NAN, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a step without requests (3 / 0, 0 / 0) is no RuntimeWarning
        features = build_features(history, 6, "UTC")
    np.testing.assert_array_equal(features[:, COLUMN["error_ratio"]], [0.05, NAN, NAN, 1.0, 0.0, NAN])


def test_features_of_an_empty_history_are_an_empty_table():
    features = build_features(MetricHistory.empty(START, 0), 6, "UTC")
    assert features.shape == (0, len(FEATURE_NAMES))
    assert features.dtype == np.float64


def test_gaps_raise_no_floating_point_warning():
    history = ramp(20)
    history[Metric.REQUESTS][5:12] = NAN
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = build_features(history, 6, "UTC")
    # Step 9 has no demand in steps 7-9: no level.
    assert math.isnan(features[9, COLUMN["log_level"]])


def test_shift_is_exact_at_every_length():
    values = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(_shift(values, 0), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(_shift(values, 1), [NAN, 1.0, 2.0])
    np.testing.assert_array_equal(_shift(values, 2), [NAN, NAN, 1.0])
    np.testing.assert_array_equal(_shift(values, 3), [NAN, NAN, NAN])
    np.testing.assert_array_equal(_shift(values, 4), [NAN, NAN, NAN])
    np.testing.assert_array_equal(_shift(values, -1), [2.0, 3.0, NAN])
    np.testing.assert_array_equal(_shift(values, -2), [3.0, NAN, NAN])
    np.testing.assert_array_equal(_shift(values, -3), [NAN, NAN, NAN])
    np.testing.assert_array_equal(_shift(values, -4), [NAN, NAN, NAN])


def test_centered_mean_looks_one_step_each_way():
    np.testing.assert_allclose(_centered_mean(np.array([1.0, 2.0, 6.0, NAN])), [1.5, 3.0, 4.0, 6.0])


def test_a_column_of_gaps_has_no_mean():
    stacked = np.array([[NAN, 1.0, 0.0], [NAN, 3.0, NAN]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(_nanmean_columns(stacked), [NAN, 2.0, 0.0])


@pytest.mark.parametrize(
    ("level", "log_ratio", "expected"),
    [
        (math.log1p(0.5), 0.0, 0.5),  # under one request a minute stays what it is
        (math.log1p(100.0), math.log(2.0), 201.0),  # (1 + 100) x 2 - 1
        (0.0, -1.0, 0.0),  # expm1 below zero: no negative demand
    ],
)
def test_demand_from_log_ratio_is_exact(level, log_ratio, expected):
    assert float(demand_from_log_ratio(level, np.array(log_ratio))) == pytest.approx(expected, abs=1e-9)
