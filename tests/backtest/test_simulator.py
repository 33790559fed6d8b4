"""Mechanics of the simulated group and of target tracking as AWS documents it."""

from __future__ import annotations

import numpy as np
import pytest

from saleor_scaling.simulation.simulator import (
    GroupSettings,
    SimulatedGroup,
    SimulationRecord,
    TargetTracking,
    TargetTrackingSettings,
    simulate,
)
from tests.backtest.helpers import SetAt

GROUP = GroupSettings(min_size=1, max_size=10, boot_delay_minutes=5, capacity_per_instance=1000.0)


def test_capacity_serves_exactly_boot_delay_minutes_after_launch() -> None:
    record = simulate(np.full(30, 500.0), GROUP, predictive=SetAt({10: 3}), initial=1, decision_every=1)
    assert record.billed[9] == 1
    assert record.billed[10] == 3
    assert record.serving[14] == 1  # still booting at launch + 4
    assert record.serving[15] == 3  # serving at launch + delay
    assert len(record.actions) == 1


def test_scale_in_removes_at_once_pending_first() -> None:
    group = SimulatedGroup(GROUP, initial=2)
    group.set_desired(0, 4, "out")  # two pending until minute 5
    group.set_desired(2, 3, "in")
    assert group.desired == 3
    assert group.serving(2) == 2
    assert group.serving(5) == 3
    group.set_desired(6, 1, "in")
    assert group.serving(6) == 1
    assert not group.set_desired(7, 0, "in")  # MinSize holds
    assert group.desired == 1


def tracking(**overrides: object) -> TargetTracking:
    settings = {"alarm_delay_minutes": 0, **overrides}
    return TargetTracking(TargetTrackingSettings(**settings))  # type: ignore[arg-type]


def run(demand: list[float], initial: int = 2, **overrides: object) -> SimulationRecord:
    return simulate(np.array(demand), GROUP, tracking(**overrides), initial=initial)


def test_two_high_datapoints_do_not_scale_out_three_do() -> None:
    calm, high = 1000.0, 2600.0  # on 2 instances: 500 and 1,300 requests each (target 1,000)
    two = run([calm] * 10 + [high] * 2 + [calm] * 10)
    assert two.actions == []
    three = run([calm] * 10 + [high] * 3 + [calm] * 10)
    # Datapoints of minutes 10, 11, 12 reach the alarm at minute 13 (no alarm delay).
    assert [(a.minute, a.before, a.after) for a in three.actions] == [(13, 2, 3)]


def test_alarm_delay_postpones_the_scale_out() -> None:
    record = run([1000.0] * 10 + [2600.0] * 10, alarm_delay_minutes=1)
    assert record.actions[0].minute == 13 + 1


def test_new_capacity_is_proportional_and_rounded_up() -> None:
    # 2 instances at 2.2x the target: ceil(2 * 2.2) = 5 (request count policy; CPU caps at 100 %).
    record = run([1000.0] * 5 + [4400.0] * 10)
    assert record.actions[0].after == 5
    # CPU alone, saturated at 100 %, would ask for ceil(2 * 100 / 70) = 3: the larger wins.


def test_scale_in_needs_fifteen_low_datapoints() -> None:
    low = 500.0  # 4 instances at 125 requests each, far below 90 % of the target
    fourteen = run([low] * 14 + [3500.0] * 10, initial=4)
    assert all(a.after >= a.before for a in fourteen.actions)
    fifteen = run([low] * 16, initial=4)
    # Minutes 0..14 low; the alarm fires at minute 15 and sizes for the metric:
    # ceil(4 * 125 / 1000) = 1.
    assert [(a.minute, a.after) for a in fifteen.actions] == [(15, 1)]


@pytest.mark.parametrize(
    ("share_of_target", "ratio", "fires"),
    [(0.92, 0.9, False), (0.88, 0.9, True), (0.8, 0.7, False), (0.65, 0.7, True)],
)
def test_low_alarm_threshold_is_a_share_of_the_target(
    share_of_target: float, ratio: float, fires: bool
) -> None:
    policies = tracking(scale_in_ratio=ratio)
    for _ in range(15):
        policies.observe(70.0 * share_of_target, 1000.0 * share_of_target, 4)
    assert policies.low_alarms_all() is fires
    assert not policies.high_alarms()


def test_scale_in_only_when_every_policy_is_low() -> None:
    policies = tracking()
    for _ in range(15):
        policies.observe(20.0, 950.0, 4)  # CPU low, requests per target not
    assert not policies.low_alarms_all()


def test_scale_in_waits_for_warm_up() -> None:
    warm = GroupSettings(boot_delay_minutes=2, warmup_minutes=30, capacity_per_instance=1000.0)
    plan = SetAt({0: 3})  # launch one more at minute 0: warming until minute 30
    record = simulate(np.full(60, 300.0), warm, tracking(), predictive=plan, initial=2, decision_every=100)
    scale_ins = [a for a in record.actions if a.after < a.before]
    assert scale_ins
    assert scale_ins[0].minute == 30


def test_repeated_alarm_invocations_during_warm_up_do_not_stack() -> None:
    # The high alarm stays in ALARM while the new instance boots: one scale-out only.
    record = run([1000.0] * 5 + [2600.0] * 8 + [1000.0] * 10)
    outs = [a for a in record.actions if a.after > a.before]
    assert len(outs) == 1


def test_missing_datapoints_breach_no_alarm() -> None:
    record = run([np.nan] * 30, initial=4)
    assert record.actions == []


def test_min_size_keeps_a_floor() -> None:
    record = run([0.0] * 40, initial=3)
    assert record.serving[-1] == 1
