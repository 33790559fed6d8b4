"""The served per-minute visibility rule is the backtest's `Observation` on per-minute
data, at every decision minute and history start (aligned or not)."""

from __future__ import annotations

from saleor_scaling.backtest.observed import PER_MINUTE
from saleor_scaling.simulation.visibility import CLOUDWATCH_BUCKETS


def test_the_served_rule_agrees_with_the_backtest_observation_on_per_minute_data() -> None:
    for start in (1_700_000_100, 1_700_000_160, 1_700_000_340):
        for minute in range(0, 24 * 60):
            decision_time = start + minute * 60
            assert CLOUDWATCH_BUCKETS.anchor(start, decision_time) == PER_MINUTE.anchor(start, decision_time)
        for step in range(-2, 300):
            assert CLOUDWATCH_BUCKETS.unit_span(start, step) == PER_MINUTE.unit_span(start, step)


def test_a_run_on_the_hour_reads_the_bucket_two_steps_back() -> None:
    start = 1_700_000_100  # on a 5-minute boundary
    assert CLOUDWATCH_BUCKETS.anchor(start, start + 60 * 60) == 10
    assert CLOUDWATCH_BUCKETS.unit_span(start, 10) == (50, 55)
