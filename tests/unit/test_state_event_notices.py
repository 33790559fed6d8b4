"""The advance notices of planned events kept in predict's state: one per event, dropped
when the event ends, and a forged list resets the state like any other corrupt field."""

from __future__ import annotations

import pytest

from saleor_scaling.settings import PredictSettings
from saleor_scaling.state import DecisionState, parse_state

SLOT = 1_701_172_800
SETTINGS = PredictSettings.from_env(
    {"AUTO_SCALING_GROUP_NAME": "shop", "LOAD_BALANCER_FULL_NAME": "app/shop/1", "MODEL_BUCKET": "b"}
)


def parse(notices):
    document = {"format": 1, "last_decision_time": SLOT - 300, "event_notices": notices}
    return parse_state(document, SLOT, SLOT + 30.0, SETTINGS)


def test_notices_round_trip_and_are_absent_when_empty():
    state = DecisionState(last_decision_time=SLOT - 300, event_notices={"sale@1701200000": 1701300000})
    parsed, problem = parse_state(state.to_document(), SLOT, SLOT + 30.0, SETTINGS)
    assert problem is None
    assert parsed.event_notices == {"sale@1701200000": 1701300000}
    assert "event_notices" not in DecisionState(last_decision_time=SLOT - 300).to_document()


def test_the_bounds_are_accepted():
    parsed, problem = parse({f"e{k}@1": 1 for k in range(100)} | {})
    assert problem is None
    assert len(parsed.event_notices) == 100
    parsed, problem = parse({"a" * 80: 0})
    assert problem is None


@pytest.mark.parametrize(
    ("notices", "says"),
    [
        ([], "event_notices is not an object of at most 100 entries"),
        ({f"e{k}@1": 1 for k in range(101)}, "at most 100 entries"),
        ({"a" * 81: 1}, "is not an event"),
        ({"": 1}, "is not an event"),
        ({"sale@1": -1}, "event notice end -1"),
        ({"sale@1": True}, "event notice end True"),
        ({"sale@1": "1"}, "event notice end '1'"),
    ],
)
def test_a_forged_notice_list_resets_the_state(notices, says):
    parsed, problem = parse(notices)
    assert problem is not None
    assert says in problem
    assert parsed == DecisionState()
