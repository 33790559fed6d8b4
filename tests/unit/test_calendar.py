"""The calendar of planned events: what is accepted, what is refused and why, and what a
declared event asks of one decision. Every bound is tested on both sides, as a literal."""

from __future__ import annotations

import json
import math

import pytest

from saleor_scaling.calendar import (
    Calendar,
    CalendarError,
    PlannedEvent,
    PlannedFloor,
    peak_capacity,
    planned_floor,
)
from saleor_scaling.policy import GroupCapacity, decide
from saleor_scaling.settings import PolicySettings, ScalingMode

START = 1_764_835_200
"""2025-12-04T08:00:00Z."""
NOW = START - 3 * 86400


def event(**fields):
    raw: dict[str, object] = {
        "name": "black-friday",
        "start": "2025-12-04T08:00:00Z",
        "end": "2025-12-04T20:00:00Z",
    }
    raw.update(fields)
    if "multiplier" not in raw and "capacity" not in raw:
        raw["multiplier"] = 3
    return {key: value for key, value in raw.items() if value is not None}


def calendar(*events, **document):
    return json.dumps({"format": 1, "events": list(events), **document})


def refused(raw, now=NOW):
    with pytest.raises(CalendarError) as caught:
        Calendar.parse(raw, now)
    return str(caught.value)


def test_a_valid_calendar_round_trips():
    parsed = Calendar.parse(
        calendar(event(lead_minutes=30), event(name="drop", capacity=12, multiplier=None)), NOW
    )
    first, second = parsed.events
    assert first == PlannedEvent("black-friday", START, START + 12 * 3600, multiplier=3, lead_minutes=30)
    assert second.capacity == 12
    assert second.multiplier is None
    assert Calendar.parse(json.dumps(parsed.to_json()), NOW) == parsed


def test_a_zone_other_than_utc_is_read_as_the_same_instant():
    parsed = Calendar.parse(calendar(event(start="2025-12-04T09:00:00+01:00")), NOW)
    assert parsed.events[0].start == START


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"name": ""}, "event name"),
        ({"name": "-starts-with-dash"}, "event name"),
        ({"name": "a" * 65}, "1-64 characters"),
        ({"name": "semi;colon"}, "event name"),
        ({"name": "new\nline"}, "event name"),
        ({"name": 7}, "not a string"),
        ({"start": "2025-12-04T08:00:00"}, "no time zone"),
        ({"start": "next friday"}, "not an ISO 8601 time"),
        ({"start": 1764835200}, "not an ISO 8601 time"),
        ({"end": "2025-12-04T08:00:00Z"}, "not after its start"),
        ({"end": "2025-12-04T07:00:00Z"}, "not after its start"),
        ({"end": "2025-12-18T08:00:01Z"}, "over 14"),
        ({"start": "1989-12-31T23:00:00Z", "end": "1990-01-01T01:00:00Z"}, "between 1990 and 2100"),
        ({"multiplier": 1}, "multiplier 1"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"multiplier": 50.01}, "at most 50"),
        ({"multiplier": float("nan")}, "multiplier"),
        ({"multiplier": True}, "multiplier"),
        ({"multiplier": "3"}, "multiplier"),
        ({"multiplier": 3, "capacity": 5}, "exactly one of multiplier or capacity"),
        ({"capacity": 0, "multiplier": None}, "capacity 0"),
        ({"capacity": 10_001, "multiplier": None}, "[1, 10000]"),
        ({"capacity": 2.5, "multiplier": None}, "capacity 2.5"),
        ({"lead_minutes": -1}, "lead_minutes -1"),
        ({"lead_minutes": 721}, "[0, 720]"),
        ({"lead_minutes": 30.0}, "lead_minutes 30.0"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_a_bad_event_refuses_the_calendar_with_a_clear_error(fields, says):
    assert says in refused(calendar(event(**fields)))


def test_the_bounds_themselves_are_accepted():
    accepted = Calendar.parse(
        calendar(
            event(name="a" * 64, multiplier=50, lead_minutes=720, end="2025-12-18T08:00:00Z"),
            event(name="b", capacity=10_000, multiplier=None),
            event(name="c", multiplier=1.01),
        ),
        NOW,
    )
    assert len(accepted.events) == 3


def test_a_start_more_than_a_year_ahead_is_a_typo():
    ahead = START - 366 * 86400
    assert Calendar.parse(calendar(event()), ahead).events
    assert "more than 366 days ahead" in refused(calendar(event()), ahead - 1)


def test_count_size_depth_and_shape_are_bounded():
    events = [event(name=f"e{k}") for k in range(101)]
    assert "101 events, at most 100" in refused(calendar(*events))
    assert len(Calendar.parse(calendar(*events[:100]), NOW).events) == 100
    assert "over the 65536 byte bound" in refused(calendar(event(), padding="x" * 70_000))
    assert "nested deeper" in refused('{"format": 1, "events": [[[[]]]]}')
    assert "appear more than once" in refused(calendar(event(), event()))
    assert "format" in refused(calendar(event(), format=2))
    assert "not an object" in refused("[]")
    assert "unreadable" in refused(b"\xff\xfe")
    assert "other than format and events" in refused(calendar(event(), extra=1))


def asked(*args) -> PlannedFloor:
    floor = planned_floor(*args)
    assert floor is not None
    return floor


NORMAL = 4000.0
"""Requests per minute at every step of the test's normal week."""


def normal(_step: int) -> float:
    return NORMAL


def test_an_event_is_honoured_from_one_boot_delay_plus_its_lead_until_its_end():
    raised = PlannedEvent("sale", START, START + 3600, capacity=9, lead_minutes=30)
    reach = 1200  # the decision sizes for 20 minutes ahead (anchor 2 steps back + horizon 4)
    opens = START - 1800 - reach
    assert planned_floor([raised], opens - 300, opens - 300 + reach, normal, 1000.0) is None
    assert asked([raised], opens, opens + reach, normal, 1000.0).capacity == 9
    assert asked([raised], START + 3300, START + 3300 + reach, normal, 1000.0).capacity == 9
    assert planned_floor([raised], START + 3600, START + 3600 + reach, normal, 1000.0) is None


def test_a_multiplier_sizes_the_normal_load_and_the_largest_event_wins():
    tripled = PlannedEvent("tripled", START, START + 3600, multiplier=3)
    declared = PlannedEvent("declared", START, START + 7200, capacity=11)
    # 3 x 4000/min at 1000/min per instance: 12 instances.
    both = asked([tripled, declared], START, START + 600, normal, 1000.0)
    assert (both.capacity, both.event.name) == (12, "tripled")
    after = asked([tripled, declared], START + 3600, START + 4200, normal, 1000.0)
    assert (after.capacity, after.event.name) == (11, "declared")


def test_an_unknown_normal_load_asks_for_nothing_and_says_so():
    tripled = PlannedEvent("tripled", START, START + 3600, multiplier=3)
    unknown = asked([tripled], START, START + 600, lambda _step: math.nan, 1000.0)
    assert unknown.capacity == 0
    assert unknown.unsized == ("tripled",)
    assert peak_capacity(tripled, lambda _step: math.nan, 1000.0) == 0
    assert peak_capacity(tripled, normal, 1000.0) == 12


GROUP = GroupCapacity(min_size=1, max_size=20, desired=4, in_service=4)
POLICY = PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE)


def test_decide_raises_the_target_and_the_floor_to_the_event_and_names_it():
    planned = planned_floor(
        [PlannedEvent("sale", START, START + 3600, capacity=9)], START, START, normal, 1000.0
    )
    decision = decide(4.2, GROUP, 2, [], POLICY, planned=planned)
    assert (decision.recommended, decision.target, decision.floor) == (9, 9, 9)
    assert "raised from 5 to 9 for event 'sale' (declared capacity 9)" in decision.explanation
    above = decide(12.5, GROUP, 2, [], POLICY, planned=planned)
    assert above.target == 13
    assert "event 'sale' asks for 9" in above.explanation


def test_an_event_above_max_size_is_clamped_with_a_note():
    planned = planned_floor(
        [PlannedEvent("sale", START, START + 3600, capacity=30)], START, START, normal, 1000.0
    )
    decision = decide(4.2, GROUP, 2, [], POLICY, planned=planned)
    assert (decision.target, decision.floor) == (20, 20)
    assert "clamped from 30 to MaxSize 20" in decision.explanation
