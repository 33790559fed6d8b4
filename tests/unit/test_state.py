"""Predict's state document: what is kept, and what a corrupt or forged one becomes.

Every time in the state was written by an earlier run, so none can be later than this
run's clock plus the early-event tolerance (a forecast's target: that plus the longest
horizon). Every bound below is written as a literal and tested on both sides: the test
fails if the code's bound moves by one in either direction."""

from __future__ import annotations

import pytest

from saleor_scaling.settings import PredictSettings
from saleor_scaling.state import DecisionState, parse_state

SLOT = 1_701_172_800
"""2023-11-28T12:00:00Z, a 5-minute boundary: this run's decision time."""
CLOCK = SLOT + 30.0
"""The function's own clock: the event arrived 30 s after its slot."""
BASE_ENV = {
    "AUTO_SCALING_GROUP_NAME": "shop",
    "LOAD_BALANCER_FULL_NAME": "app/shop/123",
    "MODEL_BUCKET": "bucket",
}
SETTINGS = PredictSettings.from_env(BASE_ENV)
"""EVENT_MAX_EARLY_SECONDS 60, SCALE_IN_STABILIZATION_MINUTES 30 (the template's defaults)."""

LATEST = SLOT + 90
"""CLOCK + 60 s: the latest time any earlier run can have written."""
LATEST_TARGET = SLOT + 7290
"""LATEST + 7200 s: a forecast targets at most 24 steps after its run's slot (the longest
horizon, 26 steps for a 120-minute lead time, counts from the anchor 2 steps before the slot)."""


def parse(document, clock=CLOCK, settings=SETTINGS):
    return parse_state(document, SLOT, clock, settings)


def settings_with(**env):
    return PredictSettings.from_env({**BASE_ENV, **env})


def state(**fields):
    return {"format": 1, "last_decision_time": SLOT - 300, **fields}


def accepted(document, **kwargs):
    parsed, problem = parse(document, **kwargs)
    assert problem is None
    return parsed


def refused(document, **kwargs):
    parsed, problem = parse(document, **kwargs)
    assert problem
    assert parsed == DecisionState()
    return problem


def test_round_trip():
    written = DecisionState(SLOT - 300, [(SLOT - 600, 4), (SLOT - 300, 5)], {SLOT + 1200: 4.5}, {"time": "x"})
    assert parse(written.to_document()) == (written, None)


def test_what_the_state_keeps_and_nothing_else():
    written = DecisionState(SLOT - 300, [(SLOT - 600, 4)], {SLOT + 1200: 4.5}, {"time": "x"})
    assert written.to_document() == {
        "format": 1,
        "last_decision_time": SLOT - 300,
        "recommendations": [[SLOT - 600, 4]],
        "forecasts": {str(SLOT + 1200): 4.5},
        "last_decision": {"time": "x"},
    }


def test_missing_state_is_fresh_without_a_problem():
    assert parse({}) == (DecisionState(), None)
    assert parse(None) == (DecisionState(), None)


# --- times: nothing later than this run's clock allows ---------------------------------


def test_last_decision_time_bound_is_the_clock_plus_the_early_tolerance():
    assert accepted(state(last_decision_time=LATEST)).last_decision_time == SLOT + 90
    assert "last_decision_time" in refused(state(last_decision_time=LATEST + 1))


def test_probe_last_decision_23_hours_ahead_is_corrupt():
    """Before: accepted (the bound was +24 h), and every slot for a day was a duplicate."""
    assert "last_decision_time" in refused(state(last_decision_time=SLOT + 23 * 3600))


def test_without_a_clock_the_bound_is_the_decision_time_plus_the_early_tolerance():
    assert accepted(state(last_decision_time=SLOT + 60), clock=None).last_decision_time == SLOT + 60
    refused(state(last_decision_time=SLOT + 61), clock=None)


def test_with_the_clock_check_off_the_clock_does_not_widen_the_bound():
    """A replay's events carry recorded time, not the wall clock's."""
    replay = settings_with(EVENT_CLOCK_CHECK="off")
    accepted(state(last_decision_time=SLOT + 60), clock=SLOT + 86400.0, settings=replay)
    refused(state(last_decision_time=SLOT + 61), clock=SLOT + 86400.0, settings=replay)


def test_the_early_tolerance_is_the_configured_one():
    strict = settings_with(EVENT_MAX_EARLY_SECONDS="0")
    accepted(state(last_decision_time=SLOT + 30), settings=strict)
    refused(state(last_decision_time=SLOT + 31), settings=strict)


def test_a_clock_that_is_not_a_number_is_no_clock():
    accepted(state(last_decision_time=SLOT + 60), clock=float("nan"))
    refused(state(last_decision_time=SLOT + 61), clock=float("nan"))


def test_a_later_decision_within_the_bound_stays_a_duplicate_not_a_reset():
    """A late event after the next slot was decided: the state is real, the run a duplicate."""
    parsed = accepted(state(last_decision_time=SLOT + 300), clock=SLOT + 250.0)
    assert parsed.last_decision_time == SLOT + 300


def test_recommendation_time_bound():
    assert accepted(state(recommendations=[[LATEST, 3]])).recommendations == [(SLOT + 90, 3)]
    assert "recommendation" in refused(state(recommendations=[[LATEST + 1, 3]]))


def test_probe_recommendation_23_hours_ahead_is_corrupt():
    """Before: accepted; it raised MinSize 8 -> 14 and held scale-in for a day."""
    assert "recommendation" in refused(state(recommendations=[[SLOT + 23 * 3600, 100_000]]))


def test_probe_recommendation_10_days_ahead_is_corrupt():
    refused(state(recommendations=[[SLOT + 10 * 86400, 3]]))


def test_recommendations_older_than_the_window_are_dropped_not_corrupt():
    parsed = accepted(state(recommendations=[[SLOT - 1800, 9], [SLOT - 1799, 4], [0, 7]]))
    assert parsed.recommendations == [(SLOT - 1799, 4)]


def test_the_window_is_the_configured_one():
    parsed = accepted(
        state(recommendations=[[SLOT - 300, 9], [SLOT - 299, 4]]),
        settings=settings_with(SCALE_IN_STABILIZATION_MINUTES="5"),
    )
    assert parsed.recommendations == [(SLOT - 299, 4)]


def test_forecast_target_bound_is_the_longest_horizon_after_the_latest_run():
    assert accepted(state(forecasts={str(LATEST_TARGET): 2.0})).forecasts == {SLOT + 7290: 2.0}
    assert "forecast" in refused(state(forecasts={str(LATEST_TARGET + 1): 2.0}))


def test_a_forecast_key_of_thousands_of_digits_is_refused_without_a_crash():
    """Before: int() raised ValueError (over 4300 digits) out of parse_state: every run crashed."""
    refused(state(forecasts={"9" * 5000: 1.0}))


# --- fields earlier versions wrote -----------------------------------------------------


@pytest.mark.parametrize(
    "old_fields",
    [
        {"last_floor": 8, "fallback_since": SLOT - 900},
        # Whatever they hold: nothing reads them, so they can neither reset the state nor
        # hold anything (the floor is the lease on the group's tag, saleor_scaling.lease).
        {"last_floor": "5", "fallback_since": 4_102_444_800},
        {"last_floor": 100_001, "fallback_since": True},
        {"last_floor": None, "fallback_since": None},
    ],
)
def test_an_old_document_with_last_floor_and_fallback_since_still_loads(old_fields):
    parsed = accepted(state(recommendations=[[SLOT - 300, 3]], **old_fields))
    assert parsed == DecisionState(last_decision_time=SLOT - 300, recommendations=[(SLOT - 300, 3)])
    assert "last_floor" not in parsed.to_document()
    assert "fallback_since" not in parsed.to_document()


# --- sizes and counts -------------------------------------------------------------------


def test_recommended_capacity_bound():
    assert accepted(state(recommendations=[[SLOT - 300, 100_000]])).recommendations == [(SLOT - 300, 100_000)]
    refused(state(recommendations=[[SLOT - 300, 100_001]]))


def test_forecast_value_bound():
    assert accepted(state(forecasts={str(SLOT): 100_000.0})).forecasts == {SLOT: 100_000.0}
    refused(state(forecasts={str(SLOT): 100_000.001}))
    assert accepted(state(forecasts={str(SLOT): 0.0})).forecasts == {SLOT: 0.0}
    refused(state(forecasts={str(SLOT): -0.001}))


def test_recommendation_count_bound():
    assert len(accepted(state(recommendations=[[SLOT - 300, 1]] * 2000)).recommendations) == 2000
    refused(state(recommendations=[[SLOT - 300, 1]] * 2001))


def test_forecast_count_bound():
    forecasts = {str(SLOT - 300 * i): 1.0 for i in range(2001)}
    assert len(accepted(state(forecasts=dict(list(forecasts.items())[:2000]))).forecasts) == 2000
    refused(state(forecasts=forecasts))


# --- types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        [],
        "state",
        7,
        {"format": 2},
        {"format": True},
        {"format": 1.0},
        {"format": "1"},
        {"last_decision_time": SLOT - 300},
        state(last_decision_time=-5),
        state(last_decision_time=1.5),
        state(last_decision_time="1701172500"),
        state(last_decision_time=None),
        state(recommendations=[[SLOT - 300, 10**9]]),
        state(recommendations=[[SLOT - 300, True]]),
        state(recommendations=[[SLOT - 300, -1]]),
        state(recommendations=[[SLOT - 300, 2.0]]),
        state(recommendations=[[float(SLOT - 300), 2]]),
        state(recommendations=[[SLOT - 300]]),
        state(recommendations=[[SLOT - 300, 2, 3]]),
        state(recommendations=[{"time": SLOT - 300, "capacity": 2}]),
        state(recommendations={"0": [SLOT - 300, 2]}),
        state(recommendations=None),
        state(forecasts={"١٢": 1.0}),
        state(forecasts={"-300": 1.0}),
        state(forecasts={" 300": 1.0}),
        state(forecasts={"123": float("nan")}),
        state(forecasts={"123": float("inf")}),
        state(forecasts={"123": True}),
        state(forecasts={"123": "1.0"}),
        state(forecasts=[[123, 1.0]]),
        state(last_decision=[]),
        state(last_decision="scaled"),
    ],
)
def test_corrupt_documents_reset_with_a_reason(document):
    refused(document)


def test_optional_fields_may_be_absent():
    parsed = accepted(state())
    assert parsed == DecisionState(last_decision_time=SLOT - 300)
