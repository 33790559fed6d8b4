"""The reason a refused state gives, word for word: predict logs and reports it, and an
operator reads it to find which field was corrupt or forged. Times are literal: the run's
slot 1701172800 (2023-11-28T12:00:00Z), its clock 30 s later, so the latest time an earlier
run can have written is 1701172890 and the latest forecast target 1701180090."""

from __future__ import annotations

import pytest

from saleor_scaling.settings import PredictSettings
from saleor_scaling.state import DecisionState, parse_state

SLOT = 1_701_172_800
CLOCK = 1_701_172_830.0
SETTINGS = PredictSettings.from_env(
    {"AUTO_SCALING_GROUP_NAME": "shop", "LOAD_BALANCER_FULL_NAME": "app/shop/123", "MODEL_BUCKET": "bucket"}
)


def reason(document: object) -> str | None:
    parsed, problem = parse_state(document, SLOT, CLOCK, SETTINGS)
    if problem is not None:
        assert parsed == DecisionState()
    return problem


def doc(**fields: object) -> dict[str, object]:
    return {"format": 1, "last_decision_time": 1_701_172_500, **fields}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([1, 2], "state is a list, not an object"),
        ("state", "state is a str, not an object"),
        ({"format": 2}, "state format 2 is not 1"),
        ({"format": "1"}, "state format '1' is not 1"),
        ({"format": True}, "state format True is not 1"),
        ({"last_decision_time": 5}, "state format None is not 1"),
        (
            doc(last_decision_time=1_701_172_891),
            "last_decision_time 1701172891 is after 1701172890, the latest an earlier run can have "
            "written (this run's clock plus EVENT_MAX_EARLY_SECONDS)",
        ),
        (doc(last_decision_time=-1), "last_decision_time -1 is not a non-negative whole number"),
        (doc(last_decision_time=None), "last_decision_time None is not a non-negative whole number"),
        (doc(last_decision_time=1.5), "last_decision_time 1.5 is not a non-negative whole number"),
        (doc(recommendations={}), "recommendations is not a list of at most 2000 entries"),
        (doc(recommendations=[[1] * 2] * 2001), "recommendations is not a list of at most 2000 entries"),
        (doc(recommendations=[[1_701_172_800]]), "recommendation [1701172800] is not [time, capacity]"),
        (doc(recommendations=[(1, 2)]), "recommendation (1, 2) is not [time, capacity]"),
        (doc(recommendations=[[1, 2, 3]]), "recommendation [1, 2, 3] is not [time, capacity]"),
        (
            doc(recommendations=[[1_701_172_891, 2]]),
            "recommendation time 1701172891 is after 1701172890, the latest an earlier run can have "
            "written (this run's clock plus EVENT_MAX_EARLY_SECONDS)",
        ),
        (doc(recommendations=[["1", 2]]), "recommendation time '1' is not a non-negative whole number"),
        (doc(recommendations=[[1, 100_001]]), "recommended capacity 100001 is above 100000"),
        (doc(recommendations=[[1, -1]]), "recommended capacity -1 is not a non-negative whole number"),
        (doc(forecasts=[]), "forecasts is not an object of at most 2000 entries"),
        (
            doc(forecasts={str(1_701_172_800 + k): 1.0 for k in range(2001)}),
            "forecasts is not an object of at most 2000 entries",
        ),
        (doc(forecasts={"abc": 1.0}), "forecast key 'abc' is not a time"),
        (doc(forecasts={"1" * 30: 1.0}), "forecast key '11111111111111111111' is not a time"),
        (doc(forecasts={"1" * 13: 1.0}), "forecast key '1111111111111' is not a time"),
        (
            doc(forecasts={"1701180091": 1.0}),
            "forecast target time 1701180091 is after 1701180090, the latest an earlier run can have "
            "written (this run's clock plus EVENT_MAX_EARLY_SECONDS plus the longest forecast horizon)",
        ),
        (doc(forecasts={"1701172800": "x"}), "forecast 1701172800: 'x' is not a finite number"),
        (doc(forecasts={"1701172800": True}), "forecast 1701172800: True is not a finite number"),
        (doc(forecasts={"1701172800": float("nan")}), "forecast 1701172800: nan is not a finite number"),
        (doc(forecasts={"1701172800": -1.0}), "forecast 1701172800: -1.0 is out of [0, 100000]"),
        (doc(forecasts={"1701172800": 100_000.5}), "forecast 1701172800: 100000.5 is out of [0, 100000]"),
        (doc(last_decision=[]), "last_decision is not an object"),
    ],
)
def test_the_reason_for_each_refusal(document, expected):
    assert reason(document) == expected


def test_a_document_with_only_its_format_is_the_fresh_state():
    parsed, problem = parse_state({"format": 1}, SLOT, CLOCK, SETTINGS)
    assert problem is None
    assert parsed.last_decision_time == 0
    assert parsed == DecisionState(0, [], {}, {})


def test_every_bound_accepted_at_its_value():
    document = doc(
        last_decision_time=1_701_172_890,
        recommendations=[[1_701_172_890, 100_000]],
        forecasts={"1701180090": 100_000, "1701172800": 0},
        last_decision={"note": "kept"},
    )
    parsed, problem = parse_state(document, SLOT, CLOCK, SETTINGS)
    assert problem is None
    assert parsed == DecisionState(
        1_701_172_890,
        [(1_701_172_890, 100_000)],
        {1_701_180_090: 100_000.0, 1_701_172_800: 0.0},
        {"note": "kept"},
    )
    assert isinstance(parsed.forecasts[1_701_180_090], float)


def test_the_window_keeps_only_recommendations_after_its_start():
    """30 minutes before the slot is 1701171000: at it, out of the window; a second later, in."""
    parsed, problem = parse_state(
        doc(recommendations=[[1_701_171_000, 7], [1_701_171_001, 6]]), SLOT, CLOCK, SETTINGS
    )
    assert problem is None
    assert parsed.recommendations == [(1_701_171_001, 6)]


def test_the_document_written_back():
    written = DecisionState(1_701_172_800, [(1_701_172_500, 4)], {1_701_173_400: 2.5}, {"a": 1})
    assert written.to_document() == {
        "format": 1,
        "last_decision_time": 1_701_172_800,
        "recommendations": [[1_701_172_500, 4]],
        "forecasts": {"1701173400": 2.5},
        "last_decision": {"a": 1},
    }
    assert DecisionState().to_document() == {
        "format": 1,
        "last_decision_time": 0,
        "recommendations": [],
        "forecasts": {},
        "last_decision": {},
    }


def test_a_forecast_key_of_twelve_digits_is_a_time_and_thirteen_is_not():
    """MAX_TIME_DIGITS is 12: a zero-padded key of 12 digits is the time it spells."""
    parsed, problem = parse_state(doc(forecasts={"001701172800": 2.0}), SLOT, CLOCK, SETTINGS)
    assert problem is None
    assert parsed.forecasts == {1_701_172_800: 2.0}
    assert reason(doc(forecasts={"0001701172800": 2.0})) == "forecast key '0001701172800' is not a time"
