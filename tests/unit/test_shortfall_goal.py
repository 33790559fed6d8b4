"""The shortfall goal's manifest field and the quantile each predict run sizes for
(`shortfall_goal`), the choice rule, and the replay's edge cases (`simulation.replay`),
with every expected value written down."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from saleor_scaling.lease import Lease
from saleor_scaling.model import ModelMetadata
from saleor_scaling.policy import GroupFacts
from saleor_scaling.retrain_service import RetrainPorts, RetrainResult, RetrainStatus, _replay_bounds
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import (
    ConfigurationError,
    PolicySettings,
    PredictSettings,
    RetrainSettings,
    ShortfallGoal,
)
from saleor_scaling.shortfall_goal import cheapest_meeting, quantile_for_run, tuned_setting
from saleor_scaling.simulation.replay import (
    QUANTILE_GRID,
    Replay,
    ReplaySettings,
    minute_demand,
    replay_holdout,
)
from tests.forged_artifacts import manifest_document

SHA = "0123456789abcdef" * 4
POLICY = PolicySettings(headroom_quantile=0.6)
GOAL = ShortfallGoal(percent=1.0, quantile_floor=0.5)
TUNING = {
    "goal_share": 0.01,
    "headroom_quantile": 0.75,
    "met": True,
    "replay_short_share": 0.008,
    "instance_hours_per_day": 123.4,
    "replay_days": 2.0,
}


def forged(**changes: Any) -> dict[str, Any]:
    return {**TUNING, **changes}


# --- the quantile a run sizes for ------------------------------------------------------


def test_a_trustworthy_tuning_sets_the_quantile_and_says_why() -> None:
    choice = quantile_for_run(TUNING, POLICY, GOAL)
    assert choice.value == 0.75
    assert choice.why == (
        "tuned nightly for a 1.00% goal: replay of 2 held-out days short 0.80% of minutes "
        "for 123.4 instance-hours a day"
    )
    assert choice.record() == {"value": 0.75, "source": "tuned", "why": choice.why}


def test_a_goal_no_quantile_met_is_said() -> None:
    choice = quantile_for_run(forged(met=False, headroom_quantile=0.99), POLICY, GOAL)
    assert choice.value == 0.99
    assert choice.why.startswith("tuned nightly for a 1.00% goal, which no quantile met: the least short")


def test_tuning_off_sizes_for_headroom_quantile_as_set_whatever_the_model_carries() -> None:
    off = ShortfallGoal(percent=0.0)
    choice = quantile_for_run(TUNING, POLICY, off)
    assert choice.value == 0.6
    assert choice.tuned is None
    assert choice.why == "as set: HeadroomQuantile 0.6 (TargetShortfallPercent off)"


def test_a_model_without_tuning_sizes_for_headroom_quantile_as_set() -> None:
    absent: object
    for absent in ({}, None):
        choice = quantile_for_run(absent, POLICY, GOAL)
        assert choice.value == 0.6
        assert choice.why == "as set: HeadroomQuantile 0.6 (the model carries no tuning)"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (forged(headroom_quantile=5.0), "headroom_quantile 5.0 is out of bounds (allowed [0.5, 0.99])"),
        (forged(headroom_quantile=0.3), "headroom_quantile 0.3 is out of bounds (allowed [0.5, 0.99])"),
        (forged(headroom_quantile=0.999), "headroom_quantile 0.999 is out of bounds (allowed [0.5, 0.99])"),
        (forged(headroom_quantile=float("nan")), "headroom_quantile is not a finite number"),
        (forged(headroom_quantile="0.9"), "headroom_quantile is not a finite number"),
        (forged(headroom_quantile=True), "headroom_quantile is not a finite number"),
        (forged(met="yes"), "met is not true or false"),
        (forged(replay_short_share=-0.1), "replay_short_share -0.1 is out of bounds"),
        (forged(instance_hours_per_day=1e9), "instance_hours_per_day 1000000000.0 is out of bounds"),
        (forged(replay_days=400.0), "replay_days 400.0 is out of bounds"),
        (forged(goal_share=0.9), "goal_share 0.9 is out of bounds"),
        ({**TUNING, "scale_in_stabilization_minutes": 0}, "its fields are not the ones retrain writes"),
        ({k: v for k, v in TUNING.items() if k != "met"}, "its fields are not the ones retrain writes"),
        ([0.9], "the model carries no tuning"),
        ("0.9", "the model carries no tuning"),
    ],
)
def test_a_forged_or_absurd_tuning_is_ignored_whole(raw: Any, why: str) -> None:
    choice = quantile_for_run(raw, POLICY, GOAL)
    assert choice.value == 0.6
    assert choice.tuned is None
    assert why in choice.why


def test_a_tuned_quantile_under_the_operators_floor_is_ignored() -> None:
    choice = quantile_for_run(TUNING, POLICY, ShortfallGoal(percent=1.0, quantile_floor=0.8))
    assert choice.value == 0.6
    assert "headroom_quantile 0.75 is out of bounds (allowed [0.8, 0.99])" in choice.why


def test_a_tuning_for_another_goal_is_ignored_until_the_next_retrain() -> None:
    setting, why = tuned_setting(TUNING, ShortfallGoal(percent=0.5))
    assert setting is None
    assert why == (
        "the model's tuning was for a 1.00% goal, not TargetShortfallPercent 0.5: "
        "ignored until tonight's retrain"
    )


def test_a_manifest_with_a_forged_tuning_still_serves_its_model() -> None:
    document = manifest_document(sha256=SHA, tuning={"headroom_quantile": 1e308, "extra": ["x"]})
    metadata = ModelMetadata.from_json(json.dumps(document))
    assert metadata.tuning == {"headroom_quantile": 1e308, "extra": ["x"]}
    assert quantile_for_run(metadata.tuning, POLICY, GOAL).value == 0.6


def test_a_manifest_written_before_tuning_reads_as_untuned() -> None:
    document = manifest_document(sha256=SHA)
    document.pop("tuning", None)
    assert ModelMetadata.from_json(json.dumps(document)).tuning == {}


# --- settings --------------------------------------------------------------------------

SHOP = {"AUTO_SCALING_GROUP_NAME": "g", "LOAD_BALANCER_FULL_NAME": "app/lb/0123abcd", "MODEL_BUCKET": "b"}


def test_the_goal_is_read_once_validated_and_bounded() -> None:
    assert PredictSettings.from_env(SHOP).shortfall_goal == ShortfallGoal(1.0, 0.5)
    assert RetrainSettings.from_env({**SHOP, "TARGET_SHORTFALL_PERCENT": "off"}).shortfall_goal.on is False
    assert RetrainSettings.from_env({**SHOP, "TARGET_SHORTFALL_PERCENT": "0"}).shortfall_goal.on is False
    assert PredictSettings.from_env({**SHOP, "TARGET_SHORTFALL_PERCENT": "20"}).shortfall_goal.share == 0.2
    for bad, message in (
        ("20.5", r"TARGET_SHORTFALL_PERCENT=20\.5 must be a finite number in \[0, 20\]"),
        ("-1", r"TARGET_SHORTFALL_PERCENT=-1\.0 must be a finite number in \[0, 20\]"),
        ("nan", r"TARGET_SHORTFALL_PERCENT=nan must be a finite number"),
        ("1%", r"TARGET_SHORTFALL_PERCENT='1%' is not a number"),
    ):
        with pytest.raises(ConfigurationError, match=message):
            PredictSettings.from_env({**SHOP, "TARGET_SHORTFALL_PERCENT": bad})
    with pytest.raises(ConfigurationError, match=r"TUNED_HEADROOM_QUANTILE_FLOOR=0\.4 must be"):
        RetrainSettings.from_env({**SHOP, "TUNED_HEADROOM_QUANTILE_FLOOR": "0.4"})


def test_retrain_reads_the_policy_and_group_bounds_it_replays() -> None:
    settings = RetrainSettings.from_env(
        {
            **SHOP,
            "HEADROOM_QUANTILE": "0.7",
            "SCALE_IN_STABILIZATION_MINUTES": "15",
            "MAX_SCALE_IN_STEP": "2",
            "GROUP_MIN_SIZE": "2",
            "GROUP_MAX_SIZE": "12",
        }
    )
    assert (settings.policy.headroom_quantile, settings.policy.scale_in_stabilization_minutes) == (0.7, 15)
    assert settings.policy.max_scale_in_step == 2
    assert (settings.group_min_size, settings.group_max_size) == (2, 12)
    with pytest.raises(ConfigurationError, match="GROUP_MIN_SIZE=5 is above GROUP_MAX_SIZE=4"):
        RetrainSettings.from_env({**SHOP, "GROUP_MIN_SIZE": "5", "GROUP_MAX_SIZE": "4"})


# --- the choice rule -------------------------------------------------------------------


def test_the_cheapest_meeting_the_goal_is_chosen_else_none_and_the_least_short() -> None:
    points = [(0.5, 0.030, 100.0), (0.7, 0.009, 110.0), (0.8, 0.004, 120.0), (0.9, 0.004, 118.0)]
    chosen, least = cheapest_meeting(points, 0.01, lambda p: p[1], lambda p: p[2])
    assert chosen == (0.7, 0.009, 110.0)
    assert least == (0.9, 0.004, 118.0)
    chosen, least = cheapest_meeting(points, 0.001, lambda p: p[1], lambda p: p[2])
    assert chosen is None
    assert least == (0.9, 0.004, 118.0)


# --- the replay ------------------------------------------------------------------------

START = 1_700_000_100  # on a 5-minute boundary


def flat_history(days: float, requests_per_step: float, busiest: float = math.nan) -> MetricHistory:
    steps = int(days * 288)
    values = {metric: np.full(steps, np.nan) for metric in Metric}
    values[Metric.REQUESTS] = np.full(steps, requests_per_step)
    values[Metric.BUSIEST_MINUTE] = np.full(steps, busiest)
    values[Metric.DESIRED] = np.full(steps, 1.0)
    return MetricHistory(start=START, values=values)


@dataclass
class _Forecast:
    demand_upper: float


class FlatForecaster:
    """Forecasts `demand` for every row, sized up by the quantile (any rising rule will do)."""

    def __init__(self, demand: float) -> None:
        self.demand = demand

    def forecast_rows(
        self, features: Any, levels: Any, quantile: float, burstiness: Any = None
    ) -> list[_Forecast]:
        return [_Forecast(self.demand * (1 + quantile)) for _ in range(len(levels))]


def settings(**fields: Any) -> RetrainSettings:
    from saleor_scaling.settings import ModelLocation

    base: dict[str, Any] = {
        "auto_scaling_group_name": "g",
        "load_balancer_full_name": "app/lb/0123abcd",
        "model": ModelLocation(bucket="b"),
    }
    return RetrainSettings(**{**base, **fields})


def replay_flat_days(history: MetricHistory, forecast_demand: float, replay: RetrainSettings) -> Replay | str:
    """The replay of every step after the first day, as held out, by a forecaster that
    sees `forecast_demand` at every anchor (no features, no level)."""
    holdout_start = 288
    anchors = np.arange(holdout_start, len(history))
    return replay_holdout(
        history,
        FlatForecaster(forecast_demand),  # type: ignore[arg-type]
        anchors,
        np.zeros((len(anchors), 1)),
        np.zeros(len(anchors)),
        1000.0,
        ReplaySettings.of(replay),
        holdout_start,
    )


def test_a_goal_no_quantile_meets_takes_the_least_short_and_says_so() -> None:
    # 3,000 requests a minute against the two instances of 1,000 that MaxSize 2 allows
    # (target tracking reaches them within the hour before the replayed days): every
    # quantile is short every minute, and costs 48 instance-hours a day.
    history = flat_history(3, 15_000.0)
    replay = replay_flat_days(history, 3000.0, settings(group_min_size=1, group_max_size=2))
    assert not isinstance(replay, str)
    assert replay.chosen.to_manifest() == {
        "goal_share": 0.01,
        "headroom_quantile": 0.5,
        "met": False,
        "replay_short_share": 1.0,
        "instance_hours_per_day": 48.0,
        "replay_days": 2.0,
    }
    assert [point.headroom_quantile for point in replay.points] == list(QUANTILE_GRID)
    assert replay.minutes_simulated == 11 * (2 * 1440 + 60)


def test_the_cheapest_quantile_that_meets_the_goal_is_chosen() -> None:
    # 1,000 requests a step = 200 a minute: one instance serves it; more cost more.
    history = flat_history(3, 1_000.0)
    replay = replay_flat_days(
        history, 700.0, settings(group_min_size=1, group_max_size=4, shortfall_goal=ShortfallGoal(1.0, 0.6))
    )
    assert not isinstance(replay, str)
    # The floor 0.6 leaves 0.6 ... 0.99; at 0.6 and up to 0.65 700 x 1.65 = 1,155 needs 2
    # instances, from 0.7 3: 0.6 is the cheapest and is short no minute.
    assert replay.points[0].headroom_quantile == 0.6
    assert replay.chosen.headroom_quantile == 0.6
    assert replay.chosen.met is True
    assert replay.chosen.replay_short_share == 0.0
    # One instance all along, the second from the first run that reads a held-out anchor
    # (10 minutes in): (2,880 + 2,870) minutes over 2 days.
    assert replay.chosen.instance_hours_per_day == 47.917


def test_too_little_held_out_data_tunes_nothing_and_says_why() -> None:
    history = flat_history(3, 1_000.0)
    history.values[Metric.REQUESTS][400:] = np.nan  # the held-out days lose most of their data
    replay = replay_flat_days(history, 200.0, settings())
    assert replay == (
        "the held-out days hold 560 minutes of known demand, under the 1440 (a day) a goal in "
        "minutes short needs"
    )


def test_each_step_is_replayed_as_its_busiest_minute_and_the_rest_spread() -> None:
    history = flat_history(1 / 288 * 2, 1_000.0, busiest=400.0)
    history.values[Metric.BUSIEST_MINUTE][1] = np.nan
    assert minute_demand(history, 0).tolist() == [
        150.0, 150.0, 400.0, 150.0, 150.0,
        200.0, 200.0, 200.0, 200.0, 200.0,
    ]  # fmt: skip


class ReadGroup:
    def __init__(self, facts: GroupFacts | Exception) -> None:
        self.facts = facts

    def describe(self) -> GroupFacts:
        if isinstance(self.facts, Exception):
            raise self.facts
        return self.facts


def replay_bounds(facts: GroupFacts | Exception | None) -> tuple[tuple[int, int], str]:
    group = None if facts is None else ReadGroup(facts)
    ports = RetrainPorts(None, None, None, None, group=group)  # type: ignore[arg-type]
    result = RetrainResult(RetrainStatus.REFUSED)
    bounds = _replay_bounds(1_800_000_000, settings(group_min_size=1, group_max_size=20), ports, result)
    return bounds, result.tuning_bounds_note


def test_the_replay_runs_beneath_a_floor_predict_leased_at_the_operators_min_size() -> None:
    # Predict raised MinSize to 5 for a peak; the operator's own MinSize, 2, is in the lease.
    lease = Lease(floor=5, prior=5, base=2, until=1_800_000_600, slot=1_799_999_700).encode()
    assert replay_bounds(GroupFacts(5, 8, 5, 5, lease_tag=lease)) == ((2, 8), "")
    # A MinSize nobody leased is the operator's own.
    assert replay_bounds(GroupFacts(3, 8, 3, 3)) == ((3, 8), "")
    # MinSize 0 is the operator's to set; the simulated group starts at one instance.
    assert replay_bounds(GroupFacts(0, 8, 0, 0)) == ((1, 8), "")


def test_without_a_group_or_with_an_unreadable_one_the_configured_bounds_are_replayed() -> None:
    assert replay_bounds(None) == ((1, 20), "")
    bounds, note = replay_bounds(RuntimeError("throttled"))
    assert bounds == (1, 20)
    assert note == (
        "the group could not be read (RuntimeError: throttled); "
        "replayed within GroupMinSize 1 and GroupMaxSize 20"
    )
    bounds, note = replay_bounds(GroupFacts(0, 0, 0, 0))
    assert bounds == (1, 20)
    assert note == "the group's MaxSize is 0; replayed within GroupMinSize 1 and GroupMaxSize 20"
