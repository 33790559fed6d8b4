"""Table tests of the capacity policy: every rule, and the order they apply in."""

from __future__ import annotations

import pytest

from saleor_scaling.policy import Action, GroupCapacity, decide, reactive_floor
from saleor_scaling.settings import PolicySettings, ScalingMode

SCALE = PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=1)


def group(
    desired: int,
    min_size: int = 1,
    max_size: int = 10,
    in_service: int | None = None,
    current_min: int | None = None,
) -> GroupCapacity:
    """A group predictive already manages: its MinSize floor sits at its desired capacity
    unless `current_min` says otherwise."""
    return GroupCapacity(
        min_size,
        max_size,
        desired,
        desired if in_service is None else in_service,
        max(min_size, desired) if current_min is None else current_min,
    )


@pytest.mark.parametrize(
    ("case", "forecast", "grp", "floor", "recent", "settings", "target", "action", "apply", "clamp"),
    [
        ("scale out at once", 6.2, group(2), 0, [], SCALE, 7, Action.SCALE_OUT, True, None),
        ("exact capacity needs no extra box", 4.0, group(4), 0, [], SCALE, 4, Action.HOLD, False, None),
        ("hold when forecast matches", 3.5, group(4), 0, [], SCALE, 4, Action.HOLD, False, None),
        ("clamp to MaxSize", 25.0, group(5), 0, [], SCALE, 10, Action.SCALE_OUT, True, "MaxSize 10"),
        ("raise to MinSize", 0.2, group(3, min_size=3), 0, [], SCALE, 3, Action.HOLD, False, "MinSize 3"),
        (
            "reactive floor beats low forecast",
            1.0,
            group(5),
            5,
            [],
            SCALE,
            5,
            Action.HOLD,
            False,
            "reactive floor 5",
        ),
        (
            "floor above desired scales out",
            2.0,
            group(3),
            6,
            [],
            SCALE,
            6,
            Action.SCALE_OUT,
            True,
            "reactive floor 6",
        ),
        (
            "scale in one step at a time",
            2.0,
            group(8),
            0,
            [],
            SCALE,
            7,
            Action.SCALE_IN,
            True,
            "1 instance(s) per run",
        ),
        (
            "scale in by two when allowed",
            2.0,
            group(8),
            0,
            [],
            PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=2),
            6,
            Action.SCALE_IN,
            True,
            "2 instance(s) per run",
        ),
        (
            "stabilization holds scale-in",
            2.0,
            group(8),
            0,
            [8, 5],
            SCALE,
            8,
            Action.HOLD,
            False,
            "stabilization",
        ),
        (
            "stabilization allows partial scale-in",
            2.0,
            group(8),
            0,
            [7, 3],
            SCALE,
            7,
            Action.SCALE_IN,
            True,
            "stabilization",
        ),
        (
            # Desired capacity is held, but the MinSize floor falls to what predictive
            # needs (1), so target tracking can scale in: applied, as a floor change.
            "scale-in disabled",
            1.0,
            group(6),
            0,
            [],
            PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=0),
            6,
            Action.HOLD,
            True,
            "scale-in disabled",
        ),
        (
            "stabilization never blocks scale-out",
            9.0,
            group(4),
            0,
            [2, 2],
            SCALE,
            9,
            Action.SCALE_OUT,
            True,
            None,
        ),
        (
            "forecast-only never applies",
            9.0,
            group(4),
            0,
            [],
            PolicySettings(),
            9,
            Action.SCALE_OUT,
            False,
            "forecast-only",
        ),
        (
            "scale in never below MinSize",
            0.1,
            group(2, min_size=2),
            0,
            [],
            SCALE,
            2,
            Action.HOLD,
            False,
            "MinSize 2",
        ),
    ],
)
def test_decide(case, forecast, grp, floor, recent, settings, target, action, apply, clamp):
    decision = decide(forecast, grp, floor, recent, settings)
    assert decision.target == target, case
    assert decision.action is action, case
    assert decision.apply is apply, case
    if clamp is None:
        assert not any("forecast-only" not in c for c in decision.clamps), decision.clamps
    else:
        assert any(clamp in c for c in decision.clamps), (case, decision.clamps)
    assert grp.min_size <= decision.target <= grp.max_size


def test_mode_argument_overrides_settings():
    decision = decide(9.0, group(4), 0, [], SCALE, mode=ScalingMode.FORECAST_ONLY)
    assert decision.action is Action.SCALE_OUT
    assert not decision.apply
    assert "would set desired 9, floor 9" in decision.explanation


@pytest.mark.parametrize(
    ("case", "forecast", "grp", "target", "floor", "apply"),
    [
        ("first run raises the floor to what serves", 4.0, group(4, current_min=1), 4, 4, True),
        ("scale-out raises floor and desired together", 6.2, group(2, current_min=2), 7, 7, True),
        ("scale-in lowers the floor one step", 2.0, group(8), 7, 7, True),
        ("floor never below the operator's MinSize", 0.5, group(2, min_size=2), 2, 2, False),
        # Predict scales in one step, but its floor stays at what it needs (5): the
        # instances target tracking added are target tracking's to remove.
        ("target tracking scaled above the floor", 5.0, group(7, current_min=5), 6, 5, True),
        ("floor in place: nothing to do", 3.5, group(4), 4, 4, False),
    ],
)
def test_floor_under_target_tracking(case, forecast, grp, target, floor, apply):
    decision = decide(forecast, grp, 0, [], SCALE)
    assert (decision.target, decision.floor, decision.apply) == (target, floor, apply), case
    assert grp.min_size <= decision.floor <= decision.target


def test_forecast_only_never_moves_the_floor():
    decision = decide(4.0, group(4, current_min=1), 0, [], SCALE, mode=ScalingMode.FORECAST_ONLY)
    assert decision.floor == 4
    assert not decision.apply


def test_recommended_is_what_stabilization_remembers():
    decision = decide(2.0, group(8), 0, [], SCALE)
    assert decision.recommended == 2
    assert decision.target == 7


@pytest.mark.parametrize(
    ("demand", "cpu", "in_service", "expected"),
    [
        (2500.0, 30.0, 4, 3),  # requests need 3 (1000 per instance); CPU needs 2
        (500.0, 90.0, 4, 6),  # CPU hot: 4 * 90 / 70 -> 6
        (float("nan"), float("nan"), 4, 0),  # nothing known: no floor
        (3000.0, float("nan"), 0, 3),
        (0.0, 0.0, 3, 0),
    ],
)
def test_reactive_floor(demand, cpu, in_service, expected):
    assert reactive_floor(demand, cpu, in_service, 1000.0, 70.0) == expected


def test_forecast_must_be_finite():
    with pytest.raises(ValueError, match="not finite"):
        decide(float("nan"), group(4), 0, [], SCALE)


def test_inconsistent_group_is_rejected():
    with pytest.raises(ValueError, match="inconsistent"):
        GroupCapacity(min_size=5, max_size=2, desired=3, in_service=3)
