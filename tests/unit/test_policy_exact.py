"""Exact tests of the capacity policy: every boundary at its literal value, every decision
compared whole (target, action, apply, floor and each clamp's wording).

test_policy.py checks the rules; these pin where each rule starts to bite, so that an
off-by-one (`<` for `<=`, a step of 2 for 1, a tolerance of the wrong sign) fails a test.
They were written against the survivors of a mutation run (`make mutate`, see
docs/reliability.md, "Mutation testing")."""

from __future__ import annotations

import math

import pytest

from saleor_scaling.labels import instances_for
from saleor_scaling.lease import Lease, LeaseError, decode
from saleor_scaling.policy import (
    Action,
    Decision,
    GroupCapacity,
    decide,
    hold_floor,
    reactive_floor,
)
from saleor_scaling.settings import PolicySettings, ScalingMode

SCALE = PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=1)
SCALE_STEP_2 = PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=2)
NO_SCALE_IN = PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=0)
FORECAST_ONLY = PolicySettings(mode=ScalingMode.FORECAST_ONLY, max_scale_in_step=1)
NAN = math.nan
HELD_BY_WINDOW = "by the 30-minute stabilization window"


def managed(desired: int, min_size: int = 1, max_size: int = 10, floor: int | None = None) -> GroupCapacity:
    """A group predict already manages: MinSize raised to `floor` (default: desired)."""
    return GroupCapacity(
        min_size=min_size,
        max_size=max_size,
        desired=desired,
        in_service=desired,
        current_min_size=desired if floor is None else floor,
    )


# --- reactive_floor: whole instances at exactly the reactive targets -----------------


@pytest.mark.parametrize(
    ("demand", "expected"),
    [
        (2000.0, 2),  # exactly two instances' worth: no third
        (2000.5, 3),
        (2001.0, 3),
        (1000.0, 1),
        (999.0, 1),
        (0.5, 1),  # any load at all needs an instance
        (0.01, 1),
        (0.0, 0),
        (-5.0, 0),  # impossible reading: no floor from it
        (math.inf, 0),  # not a reading at all
        (-math.inf, 0),
        (NAN, 0),
    ],
)
def test_reactive_floor_from_requests_is_exact(demand, expected):
    assert reactive_floor(demand, NAN, 0, 1000.0, 70.0) == expected


@pytest.mark.parametrize(
    ("cpu", "in_service", "expected"),
    [
        (70.0, 4, 4),  # at the target exactly: the same fleet, not one more
        (70.1, 4, 5),
        (35.0, 2, 1),
        (80.0, 1, 2),  # one hot instance needs a second
        (70.0, 1, 1),
        (0.5, 4, 1),  # any CPU at all: an instance
        (0.0, 4, 0),
        (50.0, 0, 0),  # no instance in service: CPU says nothing
        (math.inf, 4, 0),
        (NAN, 4, 0),
        (-90.0, -4, 0),  # impossible readings: no floor from them
    ],
)
def test_reactive_floor_from_cpu_is_exact(cpu, in_service, expected):
    assert reactive_floor(NAN, cpu, in_service, 1000.0, 70.0) == expected


def test_reactive_floor_takes_the_larger_need():
    assert reactive_floor(2500.0, 35.0, 2, 1000.0, 70.0) == 3  # requests 3, CPU 1
    assert reactive_floor(500.0, 140.0, 3, 1000.0, 70.0) == 6  # requests 1, CPU 6
    assert reactive_floor(3000.0, 70.0, 3, 1000.0, 70.0) == 3


# --- instances_for: rounding the forecast up -----------------------------------------


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        (3.0, 3),
        (3.0000000001, 3),  # float noise buys no fourth instance
        (3.01, 4),
        (2.5, 3),
        (1.0, 1),
        (0.0, 1),  # never fewer than one
        (-4.0, 1),
    ],
)
def test_instances_for_is_exact(capacity, expected):
    assert instances_for(capacity) == expected


@pytest.mark.parametrize("capacity", [math.inf, -math.inf, NAN])
def test_instances_for_refuses_what_is_not_a_number(capacity):
    with pytest.raises(ValueError, match="is not finite"):
        instances_for(capacity)


# --- decide: whole decisions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "forecast", "group", "floor", "recent", "settings", "expected"),
    [
        (
            "at the reactive floor exactly: nothing raised",
            5.0,
            managed(5),
            5,
            [],
            SCALE,
            Decision(5, 5, Action.HOLD, False, (), 5),
        ),
        (
            "one below the reactive floor: raised to it",
            4.0,
            managed(5),
            5,
            [],
            SCALE,
            Decision(5, 5, Action.HOLD, False, ("raised from 4 to reactive floor 5",), 5),
        ),
        (
            "forecast exactly MaxSize: no clamp",
            10.0,
            managed(4),
            0,
            [],
            SCALE,
            Decision(10, 10, Action.SCALE_OUT, True, (), 10),
        ),
        (
            "one above MaxSize: clamped",
            10.5,
            managed(4),
            0,
            [],
            SCALE,
            Decision(10, 10, Action.SCALE_OUT, True, ("clamped from 11 to MaxSize 10",), 10),
        ),
        (
            "forecast exactly MinSize: no clamp",
            3.0,
            managed(3, min_size=3),
            0,
            [],
            SCALE,
            Decision(3, 3, Action.HOLD, False, (), 3),
        ),
        (
            "one below MinSize: raised",
            2.0,
            managed(3, min_size=3),
            0,
            [],
            SCALE,
            Decision(3, 3, Action.HOLD, False, ("raised from 2 to MinSize 3",), 3),
        ),
        (
            "scale-in by exactly one step: not limited",
            4.0,
            managed(5),
            0,
            [],
            SCALE,
            Decision(4, 4, Action.SCALE_IN, True, (), 4),
        ),
        (
            "scale-in by two with a step of one: limited",
            3.0,
            managed(5),
            0,
            [],
            SCALE,
            Decision(3, 4, Action.SCALE_IN, True, ("scale-in limited to 1 instance(s) per run",), 4),
        ),
        (
            "scale-in by exactly two with a step of two",
            3.0,
            managed(5),
            0,
            [],
            SCALE_STEP_2,
            Decision(3, 3, Action.SCALE_IN, True, (), 3),
        ),
        (
            "scale-in by three with a step of two",
            2.0,
            managed(5),
            0,
            [],
            SCALE_STEP_2,
            Decision(2, 3, Action.SCALE_IN, True, ("scale-in limited to 2 instance(s) per run",), 3),
        ),
        (
            "window's highest equals the recommendation: nothing held",
            3.0,
            managed(4),
            0,
            [3, 2],
            SCALE,
            Decision(3, 3, Action.SCALE_IN, True, (), 3),
        ),
        (
            "window holds a scale-in part of the way",
            2.0,
            managed(6),
            0,
            [5, 1],
            SCALE_STEP_2,
            Decision(2, 5, Action.SCALE_IN, True, (f"scale-in to 2 held at 5 {HELD_BY_WINDOW}",), 5),
        ),
        (
            "window holds a scale-in entirely",
            2.0,
            managed(5),
            0,
            [5],
            SCALE,
            Decision(2, 5, Action.HOLD, False, (f"scale-in to 2 held at 5 {HELD_BY_WINDOW}",), 5),
        ),
        (
            # The window remembers 8 from when the group was bigger: it may hold the
            # capacity there is (5), never add to it.
            "window above desired never turns a scale-in into a scale-out",
            2.0,
            managed(5),
            0,
            [8],
            SCALE,
            Decision(2, 5, Action.HOLD, False, (f"scale-in to 2 held at 5 {HELD_BY_WINDOW}",), 5),
        ),
        (
            "window above desired, no scale-in wanted: held as is",
            5.0,
            managed(5),
            0,
            [8],
            SCALE,
            Decision(5, 5, Action.HOLD, False, (), 5),
        ),
        (
            "window above MaxSize: the floor stops at MaxSize",
            2.0,
            managed(10, floor=8),
            0,
            [12],
            SCALE,
            Decision(2, 10, Action.HOLD, True, (f"scale-in to 2 held at 10 {HELD_BY_WINDOW}",), 10),
        ),
        (
            "scale-in disabled: desired held, the floor drops to what is needed",
            1.0,
            managed(6),
            0,
            [],
            NO_SCALE_IN,
            Decision(
                1,
                6,
                Action.HOLD,
                True,
                ("predictive scale-in disabled (max step 0): target tracking scales in",),
                1,
            ),
        ),
        (
            # Moto (and a MaxSize lowered under a running group) can leave desired above
            # MaxSize: predict brings it to MaxSize, not one step down to 11.
            "desired above MaxSize is brought to MaxSize",
            2.0,
            GroupCapacity(min_size=1, max_size=10, desired=12, in_service=12, current_min_size=10),
            0,
            [],
            SCALE,
            Decision(
                2,
                10,
                Action.SCALE_IN,
                True,
                ("scale-in limited to 1 instance(s) per run", "clamped from 11 to MaxSize 10"),
                9,
            ),
        ),
        (
            "forecast-only: what would be done, and that nothing was",
            7.0,
            managed(4),
            0,
            [],
            FORECAST_ONLY,
            Decision(7, 7, Action.SCALE_OUT, False, ("forecast-only mode: nothing applied",), 7),
        ),
        (
            "forecast-only with nothing to change says nothing",
            4.0,
            managed(4),
            0,
            [],
            FORECAST_ONLY,
            Decision(4, 4, Action.HOLD, False, (), 4),
        ),
        (
            "only the floor changes: applied as a floor change",
            4.0,
            managed(4, floor=1),
            0,
            [],
            SCALE,
            Decision(4, 4, Action.HOLD, True, (), 4),
        ),
    ],
)
def test_decision_is_exact(case, forecast, group, floor, recent, settings, expected):
    assert decide(forecast, group, floor, recent, settings) == expected, case


def test_explanations_are_exact():
    scale_out = decide(7.0, managed(4), 0, [], SCALE)
    assert scale_out.explanation == "scale-out: set desired 7, floor 7 (forecast used as is)"
    would = decide(7.0, managed(4), 0, [], FORECAST_ONLY)
    assert (
        would.explanation == "scale-out: would set desired 7, floor 7 (forecast-only mode: nothing applied)"
    )
    hold = decide(4.0, managed(4), 0, [], SCALE)
    assert hold.explanation == "hold: hold desired 4, floor 4 (forecast used as is)"
    limited = decide(3.0, managed(5), 0, [], SCALE)
    assert limited.explanation == (
        "scale-in: set desired 4, floor 4 (scale-in limited to 1 instance(s) per run)"
    )


def test_stabilization_minutes_are_reported_as_configured():
    settings = PolicySettings(
        mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=1, scale_in_stabilization_minutes=45
    )
    decision = decide(2.0, managed(5), 0, [5], settings)
    assert decision.clamps == ("scale-in to 2 held at 5 by the 45-minute stabilization window",)


# --- hold_floor: the MinSize held under target tracking ------------------------------


@pytest.mark.parametrize(
    ("needed", "target", "group", "step", "expected"),
    [
        (4, 4, managed(4), 1, 4),
        (4, 6, managed(6, floor=4), 1, 4),  # never above what predictive needs
        (6, 4, managed(4), 1, 4),  # never above the desired capacity it sets
        (2, 4, managed(5, floor=5), 1, 4),  # falls one step per run
        (2, 5, managed(5, floor=5), 1, 4),
        (2, 3, managed(5, floor=5), 2, 3),
        (2, 2, managed(5, floor=4), 2, 2),  # exactly one step of two
        (1, 6, managed(6, floor=6), 0, 1),  # step 0: follows `needed` at once
        (1, 1, managed(3, min_size=3), 1, 3),  # never below the operator's MinSize
        (0, 0, managed(2, min_size=2, floor=2), 0, 2),
    ],
)
def test_hold_floor_is_exact(needed, target, group, step, expected):
    assert hold_floor(needed, target, group, step) == expected


def test_hold_floor_leaves_an_unmanaged_min_size_alone():
    group = GroupCapacity(
        min_size=1, max_size=10, desired=6, in_service=6, current_min_size=5, floor_managed=False
    )
    assert hold_floor(2, 2, group, 1) == 5
    assert hold_floor(9, 9, group, 1) == 5


# --- GroupCapacity and the lease tag: the bounds AWS enforces ---------------------------


def test_group_sizes_at_their_bounds_are_accepted():
    assert GroupCapacity(min_size=0, max_size=0, desired=0, in_service=0).floor == 0
    assert GroupCapacity(min_size=10, max_size=10, desired=10, in_service=10).floor == 10
    assert GroupCapacity(2, 10, 5, 5, current_min_size=10).floor == 10
    assert GroupCapacity(2, 10, 5, 5, current_min_size=0).floor == 0


@pytest.mark.parametrize(
    ("min_size", "max_size", "current", "message"),
    [
        (5, 4, None, "group sizes are inconsistent: min 5 max 4"),
        (-1, 4, None, "group sizes are inconsistent: min -1 max 4"),
        (1, 10, 11, r"MinSize 11 is outside \[0, MaxSize 10\]"),
        (1, 10, -1, r"MinSize -1 is outside \[0, MaxSize 10\]"),
    ],
)
def test_group_sizes_out_of_bounds_are_refused(min_size, max_size, current, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        GroupCapacity(min_size, max_size, 1, 1, current_min_size=current)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("v1 floor=10 prior=10 base=0 until=0 slot=0", Lease(10, 10, 0, 0, 0)),
        ("v1 floor=3 prior=4 base=3 until=999999999999 slot=5", Lease(3, 4, 3, 999999999999, 5)),
        (" v1 floor=2 prior=2 base=2 until=1 slot=1 ", Lease(2, 2, 2, 1, 1)),
        ("v1 floor=11 prior=11 base=0 until=0 slot=0", None),  # above MaxSize 10
        ("v1 floor=3 prior=10 base=4 until=0 slot=0", None),  # base above the floor
        ("v1 floor=3 prior=2 base=3 until=0 slot=0", None),  # base above the prior
        ("v1 floor=01 prior=1 base=0 until=0 slot=0", None),  # a leading zero
        ("v1 floor=-1 prior=1 base=0 until=0 slot=0", None),
        ("v1 floor=1 prior=1 base=0 until=1000000000000 slot=0", None),  # 13 digits
        ("v2 floor=1 prior=1 base=0 until=0 slot=0", None),
        ("v1 floor=1 prior=1 base=0 until=0", None),
        ("", None),
    ],
)
def test_lease_tags_decode_exactly(raw, expected):
    if expected is None:
        with pytest.raises(LeaseError):
            decode(raw, 10)
    else:
        assert decode(raw, 10) == expected
        assert decode(expected.encode(), 10) == expected
