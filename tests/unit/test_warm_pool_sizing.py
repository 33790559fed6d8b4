"""Predict sizes the warm pool from the forecast (issue 25): enough prepared instances for
the highest need of the coming hour above the desired capacity it sets, within the
operator's bounds (WARM_POOL_MIN_SIZE, WARM_POOL_MAX_SIZE) and the group's MaxSize, in the
same decision and the same decision line; applied only in forecast-and-scale mode, never
a change to the group's desired capacity or MinSize. Expected values written out."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from saleor_scaling.predict_service import PredictPorts, Status, run_predict
from saleor_scaling.settings import (
    ConfigurationError,
    PolicySettings,
    PredictSettings,
    ScalingMode,
)
from saleor_scaling.warm_pool import PoolBounds, PoolConfiguration, coming_peak_demand, size_pool
from tests.unit.fakes import FakeGroup, memory_ports, shop_settings
from tests.unit.test_forged_state_in_predict import MONDAY, SLOT, shop

BASE_ENV = {
    "AUTO_SCALING_GROUP_NAME": "shop",
    "LOAD_BALANCER_FULL_NAME": "app/shop/123",
    "MODEL_BUCKET": "bucket",
}
ELEVEN = MONDAY + 8 * 86400 + 11 * 3600
"""11:00 UTC on the synthetic shop's ninth day, before its midday rise."""
STOPPED = PoolConfiguration(state="Stopped", min_size=1, max_prepared_capacity=-1, reuse_on_scale_in=False)


# --- the rule -----------------------------------------------------------------------------------


def test_the_pool_holds_the_coming_peak_above_the_target():
    decision = size_pool(needed=9, target=5, group_max=20, current=STOPPED, bounds=PoolBounds(1, 6))
    assert decision.size == 4
    assert decision.clamps == ()
    assert decision.changes is True
    assert decision.explanation == "warm pool at least 1 -> 4 (the coming hour needs up to 9, desired 5)"
    fixed = PoolConfiguration(state="Stopped", min_size=2, max_prepared_capacity=2, reuse_on_scale_in=False)
    resized = size_pool(needed=9, target=5, group_max=20, current=fixed, bounds=PoolBounds(1, 6))
    assert resized.explanation == "warm pool 2 -> 4 (the coming hour needs up to 9, desired 5)"


def test_the_operators_bounds_hold():
    high = size_pool(needed=30, target=5, group_max=40, current=STOPPED, bounds=PoolBounds(1, 6))
    assert high.size == 6
    assert high.clamps == ("limited from 25 to WARM_POOL_MAX_SIZE 6",)
    low = size_pool(needed=3, target=5, group_max=20, current=STOPPED, bounds=PoolBounds(2, 6))
    assert low.size == 2
    assert low.clamps == ("raised from 0 to WARM_POOL_MIN_SIZE 2",)


def test_no_pool_instance_beyond_what_max_size_lets_into_service():
    """Instances the group can never take (desired at MaxSize) are kept by nobody."""
    decision = size_pool(needed=12, target=8, group_max=10, current=STOPPED, bounds=PoolBounds(0, 6))
    assert decision.size == 2
    assert decision.clamps == ("limited from 4 to 2, MaxSize 10 minus desired 8",)
    # The operator's minimum still holds: the template's pool keeps it anyway.
    at_max = size_pool(needed=12, target=10, group_max=10, current=STOPPED, bounds=PoolBounds(1, 6))
    assert at_max.size == 1
    assert at_max.clamps == (
        "limited from 2 to 0, MaxSize 10 minus desired 10",
        "raised from 0 to WARM_POOL_MIN_SIZE 1",
    )


def test_an_absolute_size_is_set_once():
    """MinSize and MaxGroupPreparedCapacity equal: AWS keeps exactly that many (any other
    MaxGroupPreparedCapacity makes the pool follow the desired capacity instead)."""
    current = PoolConfiguration(
        state="Hibernated", min_size=3, max_prepared_capacity=3, reuse_on_scale_in=True
    )
    same = size_pool(needed=8, target=5, group_max=20, current=current, bounds=PoolBounds(0, 6))
    assert (same.size, same.changes) == (3, False)
    assert same.explanation == "warm pool holds 3 (the coming hour needs up to 8, desired 5)"
    drifted = PoolConfiguration(
        state="Hibernated", min_size=3, max_prepared_capacity=-1, reuse_on_scale_in=True
    )
    assert (
        size_pool(needed=8, target=5, group_max=20, current=drifted, bounds=PoolBounds(0, 6)).changes is True
    )


def test_the_coming_peak_is_the_same_hour_yesterday_and_last_week():
    demand = np.full(2016 + 40, np.nan)
    index = 2016 + 20
    demand[index + 3 - 288] = 700.0  # yesterday, 3 steps after the anchor
    demand[index + 5 - 2016] = 900.0  # last week, 5 steps after
    demand[index + 13 - 288] = 5000.0  # yesterday, beyond the 12 steps
    demand[index - 288] = 4000.0  # yesterday at the anchor: the past, not the coming hour
    assert coming_peak_demand(demand, index, 12) == 900.0
    assert math.isnan(coming_peak_demand(np.full(3000, np.nan), 2900, 12))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WARM_POOL_MIN_SIZE": "3", "WARM_POOL_MAX_SIZE": "2"},
            "WARM_POOL_MIN_SIZE=3 is above WARM_POOL_MAX_SIZE=2",
        ),
        ({"WARM_POOL_MAX_SIZE": "101"}, "WARM_POOL_MAX_SIZE=101 must be a finite number in [0, 100]"),
        ({"WARM_POOL_MIN_SIZE": "-1"}, "WARM_POOL_MIN_SIZE=-1 must be a finite number in [0, 100]"),
    ],
)
def test_bad_bounds_are_named(env, message):
    with pytest.raises(ConfigurationError) as caught:
        PredictSettings.from_env({**BASE_ENV, **env})
    assert str(caught.value) == message


def test_sizing_is_off_unless_a_maximum_is_given():
    assert PredictSettings.from_env(BASE_ENV).warm_pool_bounds is None
    # The template's WarmPoolMinSize (1) reaches predict whether or not it sizes the pool.
    assert PredictSettings.from_env({**BASE_ENV, "WARM_POOL_MIN_SIZE": "1"}).warm_pool_bounds is None
    sized = PredictSettings.from_env({**BASE_ENV, "WARM_POOL_MIN_SIZE": "1", "WARM_POOL_MAX_SIZE": "4"})
    assert sized.warm_pool_bounds == PoolBounds(1, 4)


# --- in a predict run ------------------------------------------------------------------------


class FakePool:
    def __init__(self, current: PoolConfiguration | None, fail: bool = False) -> None:
        self.current = current
        self.fail = fail
        self.resized: list[tuple[int, PoolConfiguration]] = []

    def describe(self) -> PoolConfiguration | None:
        return self.current

    def resize(self, size: int, current: PoolConfiguration) -> None:
        if self.fail:
            raise RuntimeError("throttled")
        self.resized.append((size, current))


def settings(mode: ScalingMode, minimum: int = 0, maximum: int = 8) -> PredictSettings:
    return shop_settings(
        PolicySettings(mode=mode, max_scale_in_step=1),
        warm_pool_min_size=minimum,
        warm_pool_max_size=maximum,
    )


def ports(group: FakeGroup, pool: FakePool | None) -> PredictPorts:
    history, blob, metadata = shop()
    return memory_ports(history, group, blob, metadata, warm_pool=pool)


def peak_shop_group() -> FakeGroup:
    return FakeGroup(desired=1, min_size=1, max_size=20)


def test_forecast_and_scale_sizes_the_pool_in_the_same_decision():
    """11:00 on the synthetic shop's ninth day: the forecast needs 0.95 instance (desired
    1); the same hour yesterday peaks at 1,360 requests a minute, which at the forecast's
    headroom (1.0034) needs 2 instances: the pool holds the one above the desired capacity."""
    history, _, _ = shop()
    demand = history.demand_per_minute()
    anchor = (ELEVEN - 600 - history.start) // 300
    yesterday = [demand[anchor + step - 288] for step in range(1, 15)]
    last_week = [demand[anchor + step - 2016] for step in range(1, 15)]
    assert (round(max(yesterday)), round(max(last_week))) == (1360, 1299)
    group, pool = peak_shop_group(), FakePool(STOPPED)
    result = run_predict(ELEVEN, settings(ScalingMode.FORECAST_AND_SCALE), ports(group, pool))
    assert result.status is Status.DECIDED
    record = result.log_record()
    assert record["decision"]["target"] == 1
    assert record["decision"]["warm_pool"] == {
        "size_before": 1,
        "max_prepared_before": -1,
        "size": 1,
        "coming_hour_needs": 2,
        "clamps": [],
        "applied": True,
        "explanation": "warm pool at least 1 -> 1 (the coming hour needs up to 2, desired 1)",
    }
    # MinSize 1 with AWS's default MaxGroupPreparedCapacity (-1) is no absolute size: set both.
    assert pool.resized == [(1, STOPPED)]
    assert result.reason == (
        "hold: hold desired 1, floor 1 (forecast used as is); "
        "warm pool at least 1 -> 1 (the coming hour needs up to 2, desired 1)"
    )
    # The pool never moves the group: desired capacity and MinSize are the decision's.
    assert (group.desired, group.min_size) == (1, 1)


def test_a_pool_of_the_right_size_is_left_as_it_is():
    group, pool = peak_shop_group(), FakePool(PoolConfiguration("Stopped", 1, 1, False))
    result = run_predict(ELEVEN, settings(ScalingMode.FORECAST_AND_SCALE), ports(group, pool))
    assert pool.resized == []
    assert result.log_record()["decision"]["warm_pool"]["explanation"] == (
        "warm pool holds 1 (the coming hour needs up to 2, desired 1)"
    )
    assert result.log_record()["decision"]["warm_pool"]["applied"] is False


def test_a_quiet_hour_shrinks_the_pool_to_the_operators_minimum():
    """03:00: the coming hour falls; nothing above the desired capacity is needed."""
    group, pool = peak_shop_group(), FakePool(PoolConfiguration("Stopped", 4, 4, True))
    result = run_predict(SLOT, settings(ScalingMode.FORECAST_AND_SCALE, minimum=1), ports(group, pool))
    assert result.decision is not None
    assert result.decision.target == 2
    assert pool.resized == [(1, PoolConfiguration("Stopped", 4, 4, True))]
    assert result.log_record()["decision"]["warm_pool"]["clamps"] == ["raised from 0 to WARM_POOL_MIN_SIZE 1"]


def test_forecast_only_says_what_it_would_set_and_changes_nothing():
    group, pool = peak_shop_group(), FakePool(PoolConfiguration("Stopped", 0, 0, False))
    result = run_predict(ELEVEN, settings(ScalingMode.FORECAST_ONLY), ports(group, pool))
    assert result.status is Status.DECIDED
    assert pool.resized == []
    record = result.log_record()["decision"]["warm_pool"]
    assert record["applied"] is False
    assert record["size_before"] == 0
    assert record["size"] == 1
    assert record["explanation"] == "would set warm pool 0 -> 1 (the coming hour needs up to 2, desired 1)"
    assert result.reason.endswith("; would set warm pool 0 -> 1 (the coming hour needs up to 2, desired 1)")


def test_a_dry_run_sizes_nothing():
    group, pool = peak_shop_group(), FakePool(PoolConfiguration("Stopped", 0, 0, False))
    result = run_predict(ELEVEN, settings(ScalingMode.FORECAST_AND_SCALE), ports(group, pool), dry_run=True)
    assert pool.resized == []
    assert "set the warm pool's size to 1 (MinSize and MaxGroupPreparedCapacity)" in result.would


def test_a_failed_resize_is_a_warning_and_the_capacity_decision_stands():
    group, pool = FakeGroup(desired=1, min_size=1, max_size=20), FakePool(STOPPED, fail=True)
    result = run_predict(ELEVEN, settings(ScalingMode.FORECAST_AND_SCALE, minimum=3), ports(group, pool))
    assert result.status in {Status.SCALED, Status.DECIDED}
    assert result.warm_pool_note == "warning: could not size the warm pool (RuntimeError: throttled)"
    assert result.reason.endswith(
        "; could not set warm pool at least 1 -> 3 (the coming hour needs up to 2, desired 1)"
    )
    assert result.log_record()["warm_pool_note"] == result.warm_pool_note


def test_a_group_without_a_pool_is_noted_and_left_alone():
    group, pool = peak_shop_group(), FakePool(None)
    result = run_predict(ELEVEN, settings(ScalingMode.FORECAST_AND_SCALE), ports(group, pool))
    assert result.warm_pool is None
    assert result.warm_pool_note == "the group has no warm pool: nothing to size (WARM_POOL_MAX_SIZE 8)"
    assert pool.resized == []


def test_without_a_maximum_predict_never_reads_the_pool():
    group = peak_shop_group()

    class Untouchable(FakePool):
        def describe(self) -> Any:
            raise AssertionError("read although sizing is off")

    result = run_predict(
        ELEVEN, settings(ScalingMode.FORECAST_AND_SCALE, maximum=0), ports(group, Untouchable(None))
    )
    assert result.warm_pool is None
    assert "warm_pool" not in result.log_record().get("decision", {})
