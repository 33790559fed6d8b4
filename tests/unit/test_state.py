"""Predict's state document: what is kept, and what a corrupt or forged one becomes."""

from __future__ import annotations

import pytest

from saleor_scaling.state import DecisionState, parse_state

SLOT = 1_701_172_800


def test_round_trip():
    state = DecisionState(SLOT, [(SLOT - 300, 4), (SLOT, 5)], {SLOT + 1200: 4.5}, 5, None, {"time": "x"})
    parsed, problem = parse_state(state.to_document(), SLOT + 300)
    assert problem is None
    assert parsed == state


@pytest.mark.parametrize(
    "document",
    [
        [],
        "state",
        7,
        {"format": 2},
        {"format": 1, "last_decision_time": -5},
        {"format": 1, "last_decision_time": 1.5},
        {"format": 1, "last_decision_time": SLOT + 2 * 86400},
        {"format": 1, "recommendations": [[SLOT, 10**9]]},
        {"format": 1, "recommendations": [[SLOT, True]]},
        {"format": 1, "recommendations": [[SLOT]]},
        {"format": 1, "recommendations": [[SLOT, 1]] * 5000},
        {"format": 1, "forecasts": {"١٢": 1.0}},
        {"format": 1, "forecasts": {"123": float("nan")}},
        {"format": 1, "forecasts": {"123": -1.0}},
        {"format": 1, "last_floor": "5"},
        {"format": 1, "fallback_since": None, "last_decision": []},
    ],
)
def test_corrupt_documents_reset_with_a_reason(document):
    state, problem = parse_state(document, SLOT)
    assert problem
    assert state == DecisionState()


def test_missing_state_is_fresh_without_a_problem():
    assert parse_state({}, SLOT) == (DecisionState(), None)
    assert parse_state(None, SLOT) == (DecisionState(), None)
