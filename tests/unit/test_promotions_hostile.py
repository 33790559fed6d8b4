"""What the shop's API answers and what the bucket holds as proposals are hostile input:
whatever they are, reading them gives a checked object or the module's own error, never
another exception and never an object outside its bounds. Hypothesis damages a valid
answer (a field replaced, dropped or added, anywhere in it) and builds arbitrary JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saleor_scaling.calendar import CalendarError
from saleor_scaling.promotions import (
    MAX_LABEL,
    MAX_PROPOSALS,
    PAGE_SIZE,
    Promotion,
    PromotionsError,
    Proposals,
    parse_page,
    propose,
)

NOW = 1_795_000_000  # 2026-11-18T11:06:40Z
FRIDAY = 1_795_759_200  # 2026-11-27T06:00:00Z
HOUR = 3600

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["2026-11-27T06:00:00+00:00", "2026-11-27T06:00:00", "9999-12-31T23:59:59Z", "nan", ""]),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def valid_page() -> dict[str, Any]:
    nodes = [
        {"id": "UHJvbW90aW9uOjE=", "name": "Black Friday", "startDate": "2026-11-27T06:00:00+00:00",
         "endDate": "2026-11-28T00:00:00+00:00"},
        {"id": "UHJvbW90aW9uOjI=", "name": "Cyber Monday", "startDate": "2026-11-30T06:00:00+00:00",
         "endDate": None},
    ]  # fmt: skip
    return {
        "data": {
            "promotions": {
                "pageInfo": {"hasNextPage": True, "endCursor": "YXJyYXk6MQ=="},
                "edges": [{"node": node, "cursor": f"c{k}"} for k, node in enumerate(nodes)],
            }
        }
    }


def valid_proposals() -> dict[str, Any]:
    promotions = [
        Promotion("UHJvbW90aW9uOjE=", "Black Friday", FRIDAY, FRIDAY + 18 * HOUR),
        Promotion("UHJvbW90aW9uOjI=", "Cyber Monday", FRIDAY + 72 * HOUR, None),
    ]
    document: dict[str, Any] = propose(promotions, NOW, (2.5, "black-friday-2025")).to_json()
    return document


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in `document` a value sits, the root included."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, (*prefix, index))
    return found


@st.composite
def damaged(draw: st.DrawFn, original: dict[str, Any]) -> Any:
    """`original` with one to three places replaced by any JSON, dropped, or given an
    extra key."""
    document: Any = original
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(document)))
        if not where:
            document = draw(json_values)
            continue
        parent: Any = document
        for step in where[:-1]:
            parent = parent[step]
        what = draw(st.sampled_from(["replace", "drop", "add"]))
        if what == "replace":
            parent[where[-1]] = draw(json_values)
        elif what == "drop":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return document


def as_bytes(document: Any, raw: bytes | None) -> bytes:
    return raw if raw is not None else json.dumps(document).encode()


raw_bytes = st.one_of(st.none(), st.binary(max_size=64), st.just(b"[" * 10_000), st.just(b'{"a":' * 50))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), raw=raw_bytes)
def test_a_hostile_promotions_answer_is_read_whole_or_refused_with_why(data, raw):
    document = data.draw(damaged(valid_page()))
    try:
        page = parse_page(as_bytes(document, raw))
    except PromotionsError:
        return
    assert len(page.promotions) <= PAGE_SIZE
    assert page.end_cursor is not None or not page.has_next_page
    for promotion in page.promotions:
        assert isinstance(promotion.name, str)
        assert 0 < len(promotion.id) <= 200
        assert isinstance(promotion.start, int)
        assert promotion.end is None or isinstance(promotion.end, int)
    # What reading accepted, proposing accepts too: it never raises on a page parse_page let in.
    proposals = propose(page.promotions, NOW, None)
    assert len(proposals.proposals) <= MAX_PROPOSALS
    assert all(len(proposal.promotion) <= MAX_LABEL for proposal in proposals.proposals)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), raw=raw_bytes)
def test_hostile_stored_proposals_are_read_whole_or_refused_with_why(data, raw):
    document = data.draw(damaged(valid_proposals()))
    try:
        proposals = Proposals.parse(as_bytes(document, raw))
    except CalendarError:
        return
    assert len(proposals.proposals) <= MAX_PROPOSALS
    for proposal in proposals.proposals:
        assert proposal.start < proposal.end
        assert proposal.multiplier is None or (
            not isinstance(proposal.multiplier, bool) and math.isfinite(proposal.multiplier)
        )
        assert isinstance(proposal.promotion, str)
        assert len(proposal.promotion) <= MAX_LABEL
    # Whatever was accepted is written back as it was read: the listing and `accept` see
    # the same proposals the next time they are read.
    assert Proposals.parse(json.dumps(proposals.to_json())) == proposals


def test_the_damage_reaches_every_place_of_both_documents():
    assert len(paths(valid_page())) == 21
    assert len(paths(valid_proposals())) == 14


def test_a_stored_proposal_naming_the_source_of_no_multiplier_is_refused():
    # Found by the property above: written back, it lost its multiplier_from and so read
    # as another proposal than the one accepted.
    document = valid_proposals()
    del document["proposals"][0]["multiplier"]
    with pytest.raises(CalendarError) as refused:
        Proposals.parse(json.dumps(document))
    assert str(refused.value) == (
        "proposal 'black-friday-20261127': multiplier_from names no multiplier's source"
    )


def test_a_stored_proposal_with_an_overlong_source_name_is_refused():
    document = valid_proposals()
    document["proposals"][0]["multiplier_from"] = "x" * (MAX_LABEL + 1)
    with pytest.raises(CalendarError) as refused:
        Proposals.parse(json.dumps(document))
    assert str(refused.value) == "proposal 'black-friday-20261127': multiplier_from is not a name"
