"""The rise figures: which minutes start a sudden rise, and what each strategy holds above
the oracle and is short in the minutes after one. Expected values are worked by hand."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.rises import rise_figures, sudden_rises
from saleor_scaling.backtest.runner import run_backtest
from saleor_scaling.backtest.traces import Trace
from tests.backtest.helpers import MONDAY

NAN = math.nan


def _rises(demand: Sequence[float], window: slice = slice(None)) -> tuple[tuple[int, ...], list[int]]:
    found = sudden_rises(
        np.array(demand), 1000.0, window, factor=1.5, level_minutes=4, after_minutes=3, step_minutes=1
    )
    return found.starts, np.flatnonzero(found.mask).tolist()


def test_a_rise_is_a_minute_over_the_factor_that_needs_an_instance_more() -> None:
    # Level 1000 (1 instance): 1600 is over 1.5x and needs 2. The next search starts after
    # the window [4, 7): at 7 the level is (1000 + 1600 + 1000 + 1000) / 4 = 1150, and
    # 3000 is over 1725 and needs 3 against 2.
    starts, minutes = _rises([1000] * 4 + [1600, 1000, 1000, 3000, 1000, 1000, 1000])
    assert starts == (4, 7)
    assert minutes == [4, 5, 6, 7, 8, 9]


def test_a_spike_inside_a_window_starts_no_rise() -> None:
    starts, minutes = _rises([1000] * 4 + [1600, 2600, 1000, 1000, 1000])
    assert starts == (4,)
    assert minutes == [4, 5, 6]


def test_not_a_rise_below_the_factor_or_within_the_same_instance() -> None:
    # 1400 is under 1.5 x 1000; 600 is 2x a level of 300 but both need one instance.
    assert _rises([1000] * 4 + [1400, 1000, 1000])[0] == ()
    assert _rises([300] * 4 + [600, 300, 300])[0] == ()
    # Just over: 1501 > 1.5 x 1000 and needs 2.
    assert _rises([1000] * 4 + [1501])[0] == (4,)


def test_a_level_mostly_unknown_or_an_unknown_minute_is_no_rise() -> None:
    # 3 of the 4 minutes before minute 4 unknown: no level.
    assert _rises([1000, NAN, NAN, NAN, 3000, 1000])[0] == ()
    # 2 of 4 known is enough: the level is 1000.
    assert _rises([1000, NAN, NAN, 1000, 3000, 1000])[0] == (4,)
    # Unknown minutes inside a window are not counted.
    starts, minutes = _rises([1000] * 4 + [3000, NAN, 1000])
    assert starts == (4,)
    assert minutes == [4, 6]


def test_only_rises_starting_in_the_evaluated_window_and_cut_at_its_end() -> None:
    demand = [1000] * 4 + [3000] + [1000] * 4 + [3000, 1000]
    assert _rises(demand, slice(5, 11)) == ((9,), [9, 10])
    assert _rises(demand, slice(0, 6)) == ((4,), [4, 5])


def test_a_rise_is_judged_on_the_step_mean_not_one_busy_minute() -> None:
    # An hour at 1,000, then a step whose mean is 1,520 (over 1.5 x 1,000, needing 2): a
    # rise from the step's first minute, 90 minutes long; a step of 1,480 is none.
    rise = [1000.0] * 60 + [1000.0] * 4 + [3600.0] + [1000.0] * 100
    found = sudden_rises(np.array(rise), 1000.0, slice(None))
    assert found.starts == (60,)
    assert (found.minutes, np.flatnonzero(found.mask)[[0, -1]].tolist()) == (90, [60, 149])
    quiet = [1000.0] * 60 + [1000.0] * 4 + [3400.0] + [1000.0] * 100
    assert sudden_rises(np.array(quiet), 1000.0, slice(None)).starts == ()
    # A step with 2 of its 5 minutes known is not judged.
    unknown = [1000.0] * 60 + [NAN, NAN, NAN, 5000.0, 5000.0] + [1000.0] * 10
    assert sudden_rises(np.array(unknown), 1000.0, slice(None)).starts == ()
    # The next step to search starts after the window, on the step grid: windows of 7
    # minutes end mid-step, the next rise is judged from minute 70.
    two = [1000.0] * 60 + [3000.0] * 5 + [1000.0] * 5 + [3000.0] * 5 + [1000.0] * 5
    assert sudden_rises(np.array(two), 1000.0, slice(None), after_minutes=7).starts == (60, 70)


def test_excess_is_billed_above_the_oracle_and_short_is_demand_above_serving() -> None:
    demand = np.array([1000.0] * 4 + [3000.0, 3000.0, 1000.0, 1000.0])
    found = sudden_rises(demand, 1000.0, slice(None), level_minutes=4, after_minutes=3, step_minutes=1)
    assert found.starts == (4,)
    serving = np.array([1, 1, 1, 1, 1, 3, 3, 3])
    billed = np.array([1, 1, 1, 3, 3, 3, 4, 1])
    oracle = np.array([1, 1, 1, 3, 3, 3, 1, 1])
    # Window [4, 7): billed above the oracle only at minute 6 (4 against 1): 3 minutes;
    # short only at minute 4 (3000 on 1 instance).
    figures = rise_figures("x", found, demand, serving, billed, oracle, 1000.0)
    assert figures.excess_instance_hours == 3 / 60
    assert figures.under_provisioned_minutes == 1
    # Below the oracle is no negative excess.
    under = rise_figures("y", found, demand, serving, np.array([1] * 8), oracle, 1000.0)
    assert under.excess_instance_hours == 0.0


def test_the_report_prints_and_writes_the_rise_figures() -> None:
    # A day of 1,000 requests a minute (one instance), 3,000 for minutes 600-629.
    demand = np.full(1440, 1000.0)
    demand[600:630] = 3000.0
    trace = Trace("one rise", MONDAY, demand, source_step_minutes=1, resample="none")
    report = run_backtest(trace, BacktestConfig(strategies=("reactive", "oracle"), scale_factor=1.0))
    rises = report.to_json()["rises"]
    assert rises["rises"] == 1
    assert rises["window_minutes"] == 90
    # Target tracking: datapoints 600-602 reach the alarm at 602-604, so at 604 it sets 3
    # (requests per target 3,000 against 1,000), serving from 609: minutes 600-608 short.
    # Its low alarm needs datapoints 630-644, the last seen at 646: 3 billed through 645,
    # 2 above the oracle's 1 for minutes 630-645 (16 minutes).
    assert rises["figures"]["reactive"] == {
        "strategy": "reactive",
        "excess_instance_hours": 0.5333,
        "under_provisioned_minutes": 9,
    }
    # The oracle launches at 595: never short, nothing above itself.
    assert rises["figures"]["oracle"] == {
        "strategy": "oracle",
        "excess_instance_hours": 0.0,
        "under_provisioned_minutes": 0,
    }
    table = report.table()
    assert "After 1 sudden rise(s) (a 5-minute mean over 1.5x the mean of the 60 minutes before" in table
    assert "reactive (target tracking)                    0.5              9" in table


def test_every_sweep_point_carries_its_rise_figures() -> None:
    from saleor_scaling.backtest.frontier import Judging, Setting, judge_setting
    from saleor_scaling.simulation.simulator import SimulationRecord

    demand = np.array([1000.0] * 4 + [3000.0, 3000.0, 1000.0, 1000.0])
    found = sudden_rises(demand, 1000.0, slice(None), level_minutes=4, after_minutes=3, step_minutes=1)
    record = SimulationRecord.empty(demand)
    record.serving[:] = [1, 1, 1, 1, 1, 3, 3, 3]
    record.billed[:] = [1, 1, 1, 3, 3, 3, 4, 1]
    oracle = np.array([1, 1, 1, 3, 3, 3, 1, 1])
    setting = Setting("x", "knob", 1.0, False, lambda: record)
    point = judge_setting(setting, Judging(demand, slice(None), oracle, 1000.0, found))
    assert (point.rise_excess_instance_hours, point.rise_under_provisioned_minutes) == (0.05, 1)
    without = judge_setting(setting, Judging(demand, slice(None), oracle, 1000.0))
    assert (without.rise_excess_instance_hours, without.rise_under_provisioned_minutes) == (None, None)
