"""Exact tests of `drop_impossible_values`: which datapoints become gaps, at every step.

Predict passes the demand ceiling (DEMAND_CEILING_FACTOR x the largest trained demand) as
`ceilings`, so that a forged or corrupt RequestCount is missing data in every step the
features read, not only in the anchor step. The boundary is the ceiling itself: equal is
load, anything above is not."""

from __future__ import annotations

import math

import numpy as np

from saleor_scaling.series import Metric, MetricHistory, drop_impossible_values

START = 1_700_000_100  # on the 5-minute grid
NAN = math.nan


def history_with(requests: list[float], cpu: list[float] | None = None) -> MetricHistory:
    history = MetricHistory.empty(START, len(requests))
    history[Metric.REQUESTS][:] = requests
    if cpu is not None:
        history[Metric.CPU][:] = cpu
    return history


def test_the_ceiling_applies_to_every_step_not_only_the_newest():
    # 5-minute sums: a ceiling of 1000/min is 5000 per step.
    history = history_with([5001.0, 9e9, 5000.0, 4999.0, 5001.0, 5000.0])
    cleaned, dropped = drop_impossible_values(history, {Metric.REQUESTS: 5000.0})
    np.testing.assert_array_equal(cleaned[Metric.REQUESTS], [NAN, NAN, 5000.0, 4999.0, NAN, 5000.0])
    assert dropped == 3


def test_without_ceilings_only_physically_impossible_values_go():
    history = history_with([9e9, -1.0, 0.0, math.inf, NAN, 12.0], cpu=[100.0, 100.5, 0.0, -0.1, 50.0, NAN])
    cleaned, dropped = drop_impossible_values(history)
    np.testing.assert_array_equal(cleaned[Metric.REQUESTS], [9e9, NAN, 0.0, NAN, NAN, 12.0])
    np.testing.assert_array_equal(cleaned[Metric.CPU], [100.0, NAN, 0.0, NAN, 50.0, NAN])
    # Gaps that were there are not counted: 2 requests, 2 CPU readings.
    assert dropped == 4


def test_a_ceiling_above_the_physical_bound_does_not_raise_it():
    history = history_with([1.0, 2.0], cpu=[100.0, 101.0])
    cleaned, dropped = drop_impossible_values(history, {Metric.CPU: 1000.0})
    np.testing.assert_array_equal(cleaned[Metric.CPU], [100.0, NAN])
    assert dropped == 1


def test_the_input_is_left_as_it_was():
    history = history_with([7000.0, 1.0])
    cleaned, _ = drop_impossible_values(history, {Metric.REQUESTS: 5000.0})
    np.testing.assert_array_equal(history[Metric.REQUESTS], [7000.0, 1.0])
    assert (cleaned.start, cleaned.step, len(cleaned)) == (START, history.step, 2)
