"""Upcoming Saleor promotions become proposals, never events: a name the calendar accepts
whatever the shop called it, the multiplier a past event suggested, and a stored form
read back as warily as the calendar."""

from __future__ import annotations

import json
from typing import Any

import pytest

from saleor_scaling.calendar import CalendarError
from saleor_scaling.promotions import (
    Promotion,
    Proposal,
    Proposals,
    event_name,
    learned_multiplier,
    propose,
)

NOW = 1_795_000_000  # 2026-11-18T11:06:40Z
FRIDAY = 1_795_759_200  # 2026-11-27T06:00:00Z
HOUR = 3600


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Black Friday", "black-friday-20261127"),
        ("  Été -30 % !!  ", "ete-30-20261127"),
        ("Распродажа", "promotion-20261127"),
        ("", "promotion-20261127"),
        ("../../calendar/events.json", "calendar-events-json-20261127"),
        ("x" * 300, "x" * 50 + "-20261127"),
        ("a\r\nb\x1b[31m", "a-b-31m-20261127"),
    ],
)
def test_an_event_name_from_any_promotion_name(name, expected):
    assert event_name(name, FRIDAY) == expected


def test_a_taken_name_gets_a_number():
    taken = ["sale-20261127", "sale-20261127-2"]
    assert event_name("Sale", FRIDAY, taken) == "sale-20261127-3"


def promotion(number: int, name: str = "Sale", start: int = FRIDAY, hours: float | None = 18) -> Promotion:
    end = None if hours is None else start + int(hours * HOUR)
    return Promotion(f"UHJvbW90aW9uOj{number}", name, start, end)


def test_proposals_soonest_first_with_the_learned_multiplier_and_what_was_skipped():
    proposals = propose(
        [
            promotion(3, "Cyber Monday", FRIDAY + 3 * 86400),
            promotion(1, "Black Friday"),
            promotion(2, "Free shipping forever", hours=None),
            promotion(4, "Winter\nclearance", hours=15 * 24),
            promotion(5, "Sale", hours=1),
            promotion(6, "Sale", hours=2),
        ],
        NOW,
        (2.5, "winter-sale"),
    )
    assert [p.to_json() for p in proposals.proposals] == [
        {
            "name": "black-friday-20261127",
            "start": "2026-11-27T06:00:00Z",
            "end": "2026-11-28T00:00:00Z",
            "promotion": "Black Friday",
            "promotion_id": "UHJvbW90aW9uOj1",
            "multiplier": 2.5,
            "multiplier_from": "winter-sale",
        },
        {
            "name": "sale-20261127",
            "start": "2026-11-27T06:00:00Z",
            "end": "2026-11-27T07:00:00Z",
            "promotion": "Sale",
            "promotion_id": "UHJvbW90aW9uOj5",
            "multiplier": 2.5,
            "multiplier_from": "winter-sale",
        },
        {
            "name": "sale-20261127-2",
            "start": "2026-11-27T06:00:00Z",
            "end": "2026-11-27T08:00:00Z",
            "promotion": "Sale",
            "promotion_id": "UHJvbW90aW9uOj6",
            "multiplier": 2.5,
            "multiplier_from": "winter-sale",
        },
        {
            "name": "cyber-monday-20261130",
            "start": "2026-11-30T06:00:00Z",
            "end": "2026-12-01T00:00:00Z",
            "promotion": "Cyber Monday",
            "promotion_id": "UHJvbW90aW9uOj3",
            "multiplier": 2.5,
            "multiplier_from": "winter-sale",
        },
    ]
    assert proposals.skipped == (
        "'Free shipping forever' has no end date",
        "'Winter clearance' lasts more than 14 days (an event may not)",
    )


def test_without_a_past_event_a_proposal_has_no_multiplier_and_accepting_needs_one():
    [proposal] = propose([promotion(1, "Black Friday")], NOW, None).proposals
    assert proposal.multiplier is None
    assert "multiplier" not in proposal.to_json()
    with pytest.raises(CalendarError, match="give --multiplier or --capacity"):
        proposal.as_event()
    assert proposal.as_event(capacity=12).capacity == 12
    assert proposal.as_event(multiplier=3.0).multiplier == 3.0


def test_at_most_fifty_proposals():
    many = [promotion(k, f"Drop {k}", FRIDAY + k * HOUR, hours=1) for k in range(80)]
    proposals = propose(many, NOW, None)
    assert len(proposals.proposals) == 50
    assert proposals.proposals[-1].name == "drop-49-20261129"
    assert len(proposals.skipped) == 30
    assert proposals.skipped[0] == "'Drop 50' is past the first 50 proposals"


def test_the_learned_multiplier_is_the_most_recently_ended_events():
    outcomes: list[dict[str, Any]] = [
        {"name": "spring", "end": "2026-04-02T00:00:00Z", "suggested_multiplier": 4.0},
        {"name": "newsletter", "end": "2026-10-02T00:00:00Z", "suggested_multiplier": None},
        {"name": "autumn", "end": "2026-10-01T00:00:00Z", "suggested_multiplier": 1.8},
    ]
    assert learned_multiplier(outcomes) == (1.8, "autumn")
    assert learned_multiplier(outcomes[1:2]) is None
    assert learned_multiplier([]) is None


def test_stored_proposals_read_back_and_anything_else_is_refused():
    proposals = propose([promotion(1, "Black Friday")], NOW, (2.5, "winter-sale"))
    text = json.dumps(proposals.to_json())
    assert Proposals.parse(text) == proposals
    document: dict[str, Any] = json.loads(text)
    changes: list[tuple[dict[str, Any], str]] = [
        ({"format": 2}, "format '2' is not 1"),
        ({"extra": 1}, "does not hold exactly"),
        ({"proposals": [{**document["proposals"][0], "name": "../x"}]}, "must be 1-64 characters"),
        ({"proposals": [{**document["proposals"][0], "multiplier": 0.5}]}, "must be a number above 1"),
        ({"proposals": [{**document["proposals"][0], "capacity": 3}]}, "unknown field"),
        ({"proposals": [{**document["proposals"][0], "promotion": "p" * 101}]}, "not a short string"),
        ({"proposals": [document["proposals"][0]] * 2}, "more than once"),
        ({"proposals": [document["proposals"][0]] * 51}, "more than 50"),
    ]
    for change, message in changes:
        with pytest.raises(CalendarError, match=message):
            Proposals.parse(json.dumps({**document, **change}))
    with pytest.raises(CalendarError, match="nested deeper"):
        Proposals.parse("[" * 10 + "]" * 10)
    with pytest.raises(CalendarError, match="over the 65536 byte bound"):
        Proposals.parse(b" " * 65537)


def test_a_proposal_accepts_as_the_event_it_describes():
    proposal = Proposal(
        "black-friday-20261127", FRIDAY, FRIDAY + 18 * HOUR, 2.5, "winter-sale", "Black Friday", "UHJv"
    )
    event = proposal.as_event()
    assert (event.name, event.start, event.end, event.multiplier, event.capacity) == (
        "black-friday-20261127",
        FRIDAY,
        FRIDAY + 18 * HOUR,
        2.5,
        None,
    )
    assert proposal.describe() == (
        "black-friday-20261127: 2026-11-27T06:00:00Z to 2026-11-28T00:00:00Z, "
        "x2.5 normal load (suggested by winter-sale); promotion 'Black Friday'"
    )


def test_a_promotion_outside_the_window_asked_for_is_skipped_not_proposed():
    # The query asks for starts in the next 60 days; a shop that answers 2099 would,
    # accepted, make predict refuse the whole calendar (a start over 366 days ahead).
    far = Promotion("UHJvbW90aW9uOjk=", "Someday", 4_070_908_800, 4_070_912_400)  # 2099-01-01
    later = Promotion("UHJvbW90aW9uOjg=", "Next spring", NOW + 61 * 86400, NOW + 62 * 86400)
    proposals = propose([far, later, promotion(1, "Black Friday")], NOW, None)
    assert [p.name for p in proposals.proposals] == ["black-friday-20261127"]
    assert proposals.skipped == (
        "'Next spring' starts after the 60 days asked for",
        "'Someday' starts after the 60 days asked for",
    )


def test_a_promotion_served_twice_is_proposed_once():
    # A shop that repeats an item across pages (or a cursor that does not move).
    proposals = propose([promotion(1, "Black Friday"), promotion(1, "Black Friday")], NOW, None)
    assert [p.name for p in proposals.proposals] == ["black-friday-20261127"]
    assert proposals.skipped == ()
