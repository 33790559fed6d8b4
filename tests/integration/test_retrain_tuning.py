"""The shortfall goal end to end against emulated AWS: retrain replays the held-out days,
writes the chosen quantile into the manifest, reports and measures it, and predict sizes
for it; with the goal off nothing of it happens."""

from __future__ import annotations

import pytest

from tests.integration.conftest import emitted_metrics
from tests.integration.test_retrain_handler import RETRAIN_AT, RetrainWorld, long_history, retrain_world

__all__ = ["long_history", "retrain_world"]

PREDICT_AT = RETRAIN_AT + 9 * 3600
"""Later the same day, when predict sizes for what retrain tuned."""


@pytest.fixture
def deployed_world(retrain_world: RetrainWorld, monkeypatch: pytest.MonkeyPatch) -> RetrainWorld:
    """The retrain world as deployed with GroupMaxSize 20, the emulated group's MaxSize."""
    monkeypatch.setenv("GROUP_MAX_SIZE", "20")
    return retrain_world


def test_retrain_tunes_the_quantile_for_the_default_goal_and_predict_sizes_for_it(
    deployed_world: RetrainWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world = deployed_world
    result = world.promoted_tonight()

    tuning = result["tuning"]
    assert tuning["goal_share"] == 0.01
    grid = tuning["grid"]
    assert [point["headroom_quantile"] for point in grid] == [
        0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99
    ]  # fmt: skip
    assert tuning["minutes_simulated"] == 11 * (2 * 1440 + 60)
    chosen = tuning["chosen"]
    assert chosen["replay_days"] == 2.0
    # The rule, read off the report: the cheapest of those short at most 1 %.
    meeting = [point for point in grid if point["short_share"] <= 0.01]
    cheapest = min(meeting, key=lambda point: (point["instance_hours_per_day"], point["short_share"]))
    assert chosen["headroom_quantile"] == cheapest["headroom_quantile"] == CHOSEN_ON_THIS_HISTORY
    assert chosen["met"] is True

    metadata = world.registry().current()
    assert metadata.tuning == chosen

    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["TunedHeadroomQuantile"] == CHOSEN_ON_THIS_HISTORY
    assert metrics["ReplayShortfallPercent"] == pytest.approx(chosen["replay_short_share"] * 100)
    assert not {"ShortfallGoalPercent", "ReplayInstanceHoursPerDay", "ShortfallGoalMet"} & set(metrics)

    decision = world.predict(PREDICT_AT)
    assert decision["status"] in {"scaled", "decided"}, decision["reason"]
    forecast = decision["forecast"]
    assert isinstance(forecast, dict)
    assert forecast["quantile"] == CHOSEN_ON_THIS_HISTORY
    assert forecast["headroom_quantile"]["source"] == "tuned"
    assert forecast["headroom_quantile"]["why"].startswith(
        "tuned nightly for a 1.00% goal: replay of 2 held-out days"
    )
    assert f"headroom quantile {CHOSEN_ON_THIS_HISTORY:g}, tuned nightly for a 1.00% goal" in str(
        decision["reason"]
    )


def test_with_the_goal_off_retrain_tunes_nothing_and_predict_sizes_as_set(
    retrain_world: RetrainWorld, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = retrain_world
    monkeypatch.setenv("TARGET_SHORTFALL_PERCENT", "off")
    result = world.promoted_tonight()
    assert "tuning" not in result
    assert result["tuning_note"] == "TargetShortfallPercent is off: predict sizes for HeadroomQuantile as set"
    assert world.registry().current().tuning == {}
    metrics = emitted_metrics(capsys.readouterr().out)
    assert not {"TunedHeadroomQuantile", "ReplayShortfallPercent"} & set(metrics)

    decision = world.predict(PREDICT_AT)
    forecast = decision["forecast"]
    assert isinstance(forecast, dict)
    assert forecast["quantile"] == 0.6
    assert forecast["headroom_quantile"] == {
        "value": 0.6,
        "source": "as set",
        "why": "as set: HeadroomQuantile 0.6 (TargetShortfallPercent off)",
    }
    assert "headroom quantile" not in str(decision["reason"])


CHOSEN_ON_THIS_HISTORY = 0.75
"""What the replay chose on this seeded synthetic history (the cheapest short at most 1 %)."""


def test_the_replay_runs_within_the_group_as_the_operator_left_it_tonight(
    deployed_world: RetrainWorld,
) -> None:
    # Deployed with GroupMaxSize 20; the operator has since lowered the group's MaxSize to 6
    # and raised its MinSize to 2 in the console.
    world = deployed_world
    world.session.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=world.shop.group_name, MinSize=2, MaxSize=6, DesiredCapacity=2
    )
    result = world.promoted_tonight()
    assert (result["tuning"]["group_min_size"], result["tuning"]["group_max_size"]) == (2, 6)
    assert "tuning_bounds_note" not in result


def test_a_group_that_cannot_be_read_is_replayed_within_the_configured_bounds_and_said(
    deployed_world: RetrainWorld,
) -> None:
    world = deployed_world
    world.session.client("autoscaling").delete_auto_scaling_group(
        AutoScalingGroupName=world.shop.group_name, ForceDelete=True
    )
    result = world.promoted_tonight()
    assert (result["tuning"]["group_min_size"], result["tuning"]["group_max_size"]) == (1, 20)
    assert result["tuning_bounds_note"].startswith("the group could not be read (GroupNotFoundError")
    assert result["tuning_bounds_note"].endswith("replayed within GroupMinSize 1 and GroupMaxSize 20")


def test_with_the_goal_off_retrain_never_reads_the_group_for_a_replay_it_does_not_run(
    deployed_world: RetrainWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = deployed_world
    monkeypatch.setenv("TARGET_SHORTFALL_PERCENT", "0")
    world.session.client("autoscaling").delete_auto_scaling_group(
        AutoScalingGroupName=world.shop.group_name, ForceDelete=True
    )
    result = world.promoted_tonight()
    assert result["tuning_note"] == "TargetShortfallPercent is off: predict sizes for HeadroomQuantile as set"
    assert "tuning_bounds_note" not in result
