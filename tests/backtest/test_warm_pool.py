"""The warm pool in the simulated group (issue 25): instances taken from the pool serve
sooner than fresh launches, the pool refills with a whole boot, and its cost is counted
in the instance-hours the report compares. Expected values are worked out by hand from
the simulator's documented rules, on tiny traces."""

from __future__ import annotations

import re

import numpy as np
import pytest

from saleor_scaling.backtest.cli import main
from saleor_scaling.backtest.report import strategy_figures
from saleor_scaling.backtest.runner import run_backtest
from saleor_scaling.simulation.simulator import (
    PARKED_COST_SHARE,
    GroupSettings,
    TargetTracking,
    TargetTrackingSettings,
    WarmPoolSettings,
    simulate,
)
from tests.backtest.helpers import SetAt, small_config, synthetic_trace


def group(pool: str | None = None) -> GroupSettings:
    return GroupSettings(
        min_size=1,
        max_size=10,
        boot_delay_minutes=5,
        capacity_per_instance=1000.0,
        warm_pool=WarmPoolSettings.parse(pool) if pool else None,
    )


def run_plan(plan: dict[int, int], pool: str | None, minutes: int = 30) -> np.ndarray:
    record = simulate(
        np.full(minutes, 500.0), group(pool), predictive=SetAt(plan), initial=1, decision_every=1
    )
    return record.serving


# ---------------------------------------------------------------- ready sooner


def test_instances_from_a_stopped_pool_serve_three_minutes_after_the_scale_out() -> None:
    serving = run_plan({10: 3}, "Stopped:2")
    assert list(serving[9:16]) == [1, 1, 1, 1, 3, 3, 3]
    without = run_plan({10: 3}, None)
    assert list(without[9:16]) == [1, 1, 1, 1, 1, 1, 3]  # launch + 5


def test_each_state_has_its_own_warm_start_and_a_measured_one_can_be_given() -> None:
    assert list(run_plan({10: 2}, "Running:1")[10:12]) == [1, 2]
    assert list(run_plan({10: 2}, "Hibernated:1")[10:13]) == [1, 1, 2]
    assert list(run_plan({10: 2}, "Stopped:1")[10:14]) == [1, 1, 1, 2]
    assert list(run_plan({10: 2}, "Stopped:1:4")[10:15]) == [1, 1, 1, 1, 2]


def test_beyond_the_pool_the_rest_launch_fresh() -> None:
    serving = run_plan({10: 4}, "Stopped:2")
    assert list(serving[12:16]) == [1, 3, 3, 4]


def test_the_pool_refills_with_a_whole_boot_before_it_can_serve_again() -> None:
    # The two taken at 10 are replaced by launches into the pool, prepared at 15.
    early = run_plan({10: 3, 12: 1, 14: 3}, "Stopped:2")
    assert list(early[14:20]) == [1, 1, 1, 1, 1, 3]  # at 14 nothing prepared: fresh, + 5
    later = run_plan({10: 3, 12: 1, 15: 3}, "Stopped:2")
    assert list(later[15:19]) == [1, 1, 1, 3]  # at 15 prepared again: + 3


def test_a_rise_reactive_scaling_meets_is_short_fewer_minutes_with_a_pool() -> None:
    """500 then 2500 requests a minute from minute 20; one instance of 1000. The alarms see
    minutes 20, 21, 22 above target at minute 24 (1 minute late); capacity 3 is set then."""
    demand = np.array([500.0] * 20 + [2500.0] * 20)
    tracking = TargetTrackingSettings(alarm_delay_minutes=1)
    short = {}
    for pool in (None, "Running:2", "Hibernated:2", "Stopped:2"):
        record = simulate(demand, group(pool), TargetTracking(tracking))
        assert record.desired[24] == 3
        short[pool] = int(np.sum(demand > record.serving * 1000.0))
    # Short from minute 20 until the new instances serve: 29, 25, 26, 27.
    assert short == {None: 9, "Running:2": 5, "Hibernated:2": 6, "Stopped:2": 7}


# ---------------------------------------------------------------- the pool's cost


def test_a_parked_instance_costs_its_volume_only() -> None:
    # 30 GB x 0.08 a GB-month / 730 h / 0.0416 an hour (t3.medium)
    assert pytest.approx(0.07903, abs=1e-5) == PARKED_COST_SHARE


def test_the_pool_costs_its_state_each_minute_and_in_full_while_it_boots() -> None:
    record = simulate(
        np.full(30, 500.0), group("Stopped:2"), predictive=SetAt({10: 3}), initial=1, decision_every=1
    )
    assert record.pool_cost is not None
    assert record.pool_cost[9] == pytest.approx(0.15806, abs=1e-5)
    assert list(record.pool_cost[10:15]) == [2.0, 2.0, 2.0, 2.0, 2.0]  # two boot into the pool
    assert record.pool_cost[15] == pytest.approx(0.15806, abs=1e-5)
    running = simulate(np.full(30, 500.0), group("Running:2"), initial=1)
    assert running.pool_cost is not None
    assert list(running.pool_cost[:3]) == [2.0, 2.0, 2.0]
    assert simulate(np.full(30, 500.0), group(None), initial=1).pool_cost is None


def test_the_report_counts_the_pool_in_the_instance_hours_and_apart() -> None:
    demand = np.full(60, 500.0)
    ones = np.ones(60, dtype=np.int64)
    figures = strategy_figures(
        "reactive", demand, ones, ones, 0, 1000.0, slice(0, 60), pool_cost=np.full(60, 0.5)
    )
    assert figures.pool_instance_hours == 0.5
    assert figures.instance_hours == 1.5
    plain = strategy_figures("reactive", demand, ones, ones, 0, 1000.0, slice(0, 60))
    assert (plain.pool_instance_hours, plain.instance_hours) == (0.0, 1.0)


def test_a_backtest_with_a_pool_reports_its_cost() -> None:
    config = small_config(strategies=("reactive", "oracle"), warm_pool=WarmPoolSettings("Stopped", 2))
    report = run_backtest(synthetic_trace(1.0), config)
    reactive = report.figures["reactive"]
    minutes = reactive.minutes
    # At least two parked instances every minute; at most two in full.
    assert 2 * PARKED_COST_SHARE * minutes / 60 - 1e-9 <= reactive.pool_instance_hours <= 2 * minutes / 60
    assert report.figures["oracle"].pool_instance_hours == 0.0
    assert "Warm pool Stopped, 2 instances (ready 3 min after a scale-out)" in report.table()
    assert report.to_json()["config"]["warm_pool"] == {
        "state": "Stopped",
        "size": 2,
        "ready_minutes": None,
        "reuse_on_scale_in": False,
    }


# ---------------------------------------------------------------- AWS's default size, reuse on scale-in


def test_parsing_the_pool_forms() -> None:
    assert WarmPoolSettings.parse("stopped:2") == WarmPoolSettings("Stopped", 2)
    assert WarmPoolSettings.parse("Hibernated:1:2") == WarmPoolSettings("Hibernated", 1, 2)
    assert WarmPoolSettings.parse("Stopped:max:reuse") == WarmPoolSettings("Stopped", None, None, True)
    assert WarmPoolSettings.parse("Running:3:1:reuse") == WarmPoolSettings("Running", 3, 1, True)


def test_at_aws_default_size_the_pool_is_max_size_minus_desired_and_refills_on_scale_in() -> None:
    plan = SetAt({10: 4, 20: 1})
    record = simulate(np.full(30, 500.0), group("Stopped:max"), predictive=plan, initial=1, decision_every=1)
    assert record.pool_cost is not None
    assert record.pool_cost[9] == pytest.approx(0.71127, abs=1e-5)  # 10 - 1 = 9 parked
    assert record.pool_cost[10] == pytest.approx(0.47418, abs=1e-5)  # 3 taken, 10 - 4 = 6 left: no refill
    assert record.pool_cost[20] == pytest.approx(3.47418, abs=1e-5)  # back to 9: 3 boot into the pool
    assert record.pool_cost[25] == pytest.approx(0.71127, abs=1e-5)
    assert list(record.serving[12:14]) == [1, 4]  # all three warm


def test_reuse_on_scale_in_returns_instances_instead_of_booting_new_ones() -> None:
    plan = {10: 3, 12: 1, 13: 3}
    reused = simulate(
        np.full(30, 500.0), group("Stopped:2:reuse"), predictive=SetAt(plan), initial=1, decision_every=1
    )
    plain = simulate(
        np.full(30, 500.0), group("Stopped:2"), predictive=SetAt(plan), initial=1, decision_every=1
    )
    assert reused.pool_cost is not None
    assert plain.pool_cost is not None
    # At 12 the two scaled in return (stopping, billed that minute) and the two refills
    # still booting since 10 are terminated: the pool is back to 2, prepared from 13.
    assert reused.pool_cost[12] == 2.0
    assert reused.pool_cost[13] == 2.0  # taken again at 13: two refills boot
    assert list(plain.pool_cost[12:15]) == [2.0, 2.0, 2.0]
    # At 13 the returned pair is taken warm; without reuse the pool is still booting.
    assert list(reused.serving[13:17]) == [1, 1, 1, 3]
    assert list(plain.serving[13:18]) == [1, 1, 1, 1, 1]
    assert plain.serving[18] == 3


# ---------------------------------------------------------------- refused values


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Frozen:2", "warm pool state must be one of Running, Hibernated, Stopped, got 'Frozen'"),
        (
            "Stopped",
            "--warm-pool takes STATE:SIZE[:READY_MINUTES][:reuse], e.g. Stopped:2 or Stopped:max:reuse; got",
        ),
        ("Stopped:2:3:4", "--warm-pool takes STATE:SIZE[:READY_MINUTES][:reuse]"),
        ("Stopped:reuse", "--warm-pool takes STATE:SIZE[:READY_MINUTES][:reuse]"),
        ("Stopped:two", "warm pool size (or max) must be a whole number, got 'two'"),
        ("Stopped:2:soon", "warm pool ready minutes must be a whole number, got 'soon'"),
        ("Stopped:0", "a warm pool needs at least 1 instance, got 0"),
        ("Running:1:-1", "a warm pool's ready delay must be >= 0 minutes, got -1"),
    ],
)
def test_bad_warm_pool_values_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        WarmPoolSettings.parse(text)


def test_a_warm_start_slower_than_a_fresh_launch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"a warm start \(6 min\) cannot be slower than a fresh launch"):
        group("Stopped:1:6")


def test_the_cli_refuses_a_bad_warm_pool_before_reading_the_trace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-trace.csv", "--warm-pool", "Frozen:2", "--quiet"]) == 2
    assert (
        "saleor-backtest: warm pool state must be one of Running, Hibernated, Stopped"
        in capsys.readouterr().err
    )
    assert main(["no-such-trace.csv", "--warm-pool", "Stopped:1:9", "--quiet"]) == 2
    assert "cannot be slower than a fresh launch (boot delay 5 min)" in capsys.readouterr().err


def test_a_sweep_point_counts_the_pools_cost_in_its_instance_hours():
    """The sweep judges each setting as the report does: the pool's cost is in the
    instance-hours (120 minutes, 2 instances billed and 1 pooled instance at 0.5)."""
    from saleor_scaling.backtest.frontier import Judging, Setting, judge_setting
    from saleor_scaling.simulation.simulator import SimulationRecord

    minutes = 120
    demand = np.full(minutes, 1000.0)
    record = SimulationRecord(
        demand=demand,
        serving=np.full(minutes, 2, dtype=np.int64),
        billed=np.full(minutes, 2, dtype=np.int64),
        desired=np.full(minutes, 2, dtype=np.int64),
        cpu=np.full(minutes, 50.0),
        pool_cost=np.full(minutes, 0.5),
    )
    judging = Judging(demand, slice(0, minutes), np.full(minutes, 1, dtype=np.int64), 1000.0)
    point = judge_setting(Setting("reactive", "target", 70.0, True, lambda: record), judging)
    assert point.instance_hours == 5.0
    assert point.instance_hours_vs_oracle == 2.5
