"""Exact tests of the labels: capacity needed, and the per-instance capacity learned from
history (which steps count, how many are enough, where the estimate is clamped).

Each expected value is worked out by hand in the comments. Written against the survivors
of a mutation run (`make mutate`, docs/reliability.md, "Mutation testing")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saleor_scaling.labels import CapacityEstimate, capacity_needed, estimate_capacity_per_instance
from saleor_scaling.series import Metric, MetricHistory

START = 1_700_000_100  # on the 5-minute grid
STEP_MINUTES = 5
NAN = math.nan


def history_of(rows: list[tuple[float, float, float]]) -> MetricHistory:
    """One step per (demand per minute, instances in service, CPU %)."""
    history = MetricHistory.empty(START, len(rows))
    for index, (demand, in_service, cpu) in enumerate(rows):
        history[Metric.REQUESTS][index] = demand * STEP_MINUTES
        history[Metric.IN_SERVICE][index] = in_service
        history[Metric.CPU][index] = cpu
    return history


# 1500 requests a minute on 2 instances at 35 % CPU: 750 per instance at 35 %, so 1500 per
# instance at the 70 % target.
PLAIN = (1500.0, 2.0, 35.0)
# Steps that count, each at a boundary: CPU exactly 10 %, one instance, half a request a minute.
AT_THE_BOUNDARIES = [(100.0, 1.0, 10.0), (0.5, 1.0, 10.0)]
# Steps that must not count: no load, CPU under 10 %, no instance, and gaps.
NOT_USABLE = [
    (0.0, 2.0, 50.0),
    (1000.0, 2.0, 9.99),
    (1000.0, 0.0, 50.0),
    (1000.0, 0.5, 50.0),
    (NAN, 2.0, 35.0),
    (1500.0, NAN, 35.0),
    (1500.0, 2.0, NAN),
]


def test_exactly_a_day_of_usable_steps_is_learned_from():
    history = history_of([PLAIN] * 286 + AT_THE_BOUNDARIES + NOT_USABLE)
    estimate = estimate_capacity_per_instance(history, 70.0, 1000.0)
    assert estimate == CapacityEstimate(1500.0, learned=True, rows_used=288, reason="median over history")


def test_one_step_short_of_a_day_keeps_the_default():
    history = history_of([PLAIN] * 285 + AT_THE_BOUNDARIES + NOT_USABLE)
    estimate = estimate_capacity_per_instance(history, 70.0, 1000.0)
    assert estimate == CapacityEstimate(
        1000.0,
        learned=False,
        rows_used=287,
        reason="only 287 steps with load, instances and CPU >= 10.0%",
    )


@pytest.mark.parametrize(
    ("row", "expected", "reason"),
    [
        # 5000 per instance at 70 % is above 4 x 1000: clamped to 4000.
        ((5000.0, 1.0, 70.0), 4000.0, "clamped from 5000.0"),
        # 100 per instance at 70 % is under 1000 / 4: raised to 250.
        ((100.0, 1.0, 70.0), 250.0, "clamped from 100.0"),
        # Exactly 4 x the default: kept, not clamped.
        ((4000.0, 1.0, 70.0), 4000.0, "median over history"),
    ],
)
def test_the_estimate_stays_within_four_times_the_default(row, expected, reason):
    estimate = estimate_capacity_per_instance(history_of([row] * 300), 70.0, 1000.0)
    assert estimate == CapacityEstimate(expected, learned=True, rows_used=300, reason=reason)


def test_the_estimate_is_scaled_to_the_target_cpu():
    # 1500 per instance at 35 % CPU is 3000 at 70 % but 2400 at 56 %.
    history = history_of([(1500.0, 1.0, 35.0)] * 288)
    assert estimate_capacity_per_instance(history, 56.0, 1000.0).requests_per_minute == 2400.0


@pytest.mark.parametrize(
    ("demand", "capacity", "expected"),
    [(2500.0, 1000.0, 2.5), (1.0, 0.5, 2.0), (0.0, 1000.0, 0.0), (3.0, 1e-3, 3000.0)],
)
def test_capacity_needed_is_demand_over_capacity(demand, capacity, expected):
    assert float(capacity_needed(demand, capacity)) == expected


def test_capacity_needed_is_float64_whatever_it_is_given():
    needed = capacity_needed(np.array([1.0, 3.0], dtype=np.float32), 3.0)
    assert needed.dtype == np.float64
    np.testing.assert_array_equal(needed, [1.0 / 3.0, 1.0])


@pytest.mark.parametrize("capacity", [0.0, -1.0])
def test_capacity_needed_refuses_a_capacity_that_is_not_positive(capacity):
    with pytest.raises(ValueError, match=r"^capacity_per_instance must be > 0$"):
        capacity_needed(1.0, capacity)
