"""Learning from past events: a declared event is no normal day for the seasonal features
or the training targets, and its outcome (observed load against the normal load it was
sized on) suggests the multiplier of the next similar event. Expected values are literals
worked out by hand from the shapes below."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saleor_scaling.calendar import PlannedEvent, event_outcome, event_steps, normal_load
from saleor_scaling.features import FEATURE_NAMES, build_features
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.training import training_rows

MONDAY = 1_699_833_600
"""2023-11-13T00:00:00Z."""
DAY = 86400
STEPS = 288
HORIZON = 4


def at(day: int, hour: float) -> int:
    return MONDAY + day * DAY + int(hour * 3600)


def step(day: int, hour: float) -> int:
    return (at(day, hour) - MONDAY) // 300


def history_of(per_minute: np.ndarray) -> MetricHistory:
    history = MetricHistory.empty(MONDAY, len(per_minute))
    history.values[Metric.REQUESTS][:] = per_minute * 5  # 5-minute sums
    return history


LAUNCH = PlannedEvent("launch", at(1, 10), at(1, 12), multiplier=3.0)
"""Tuesday 10:00-12:00: the load is 300/min against a flat 100/min."""


def launch_week(days: int = 9) -> np.ndarray:
    demand = np.full(days * STEPS, 100.0)
    demand[step(1, 10) : step(1, 12)] = 300.0
    return demand


def test_event_steps_marks_every_bucket_the_event_overlaps():
    odd = PlannedEvent("odd", at(0, 0) + 420, at(0, 0) + 1320, capacity=5)  # 00:07 to 00:22
    assert event_steps(MONDAY, 6, [odd]).tolist() == [False, True, True, True, True, False]
    assert event_steps(MONDAY, 3, []).tolist() == [False, False, False]
    before_history = PlannedEvent("old", MONDAY - 3600, MONDAY - 600, capacity=5)
    assert event_steps(MONDAY, 3, [before_history]).tolist() == [False, False, False]


def test_same_time_last_week_and_yesterday_do_not_see_the_launch():
    history = history_of(launch_week())
    inside = event_steps(MONDAY, len(history), [LAUNCH])
    weekly, daily = FEATURE_NAMES.index("weekly_ratio"), FEATURE_NAMES.index("daily_ratio")
    lag_1 = FEATURE_NAMES.index("lag_1")
    week_later = step(8, 10.5) - HORIZON  # sizes Tuesday 10:30 a week on
    day_later = step(2, 10.5) - HORIZON

    unmasked = build_features(history, HORIZON, "UTC")
    # Before: log1p(300) - log1p(100) = 5.70711 - 4.61512, the launch read as a normal Tuesday.
    assert unmasked[week_later, weekly] == pytest.approx(1.092, abs=1e-3)
    assert unmasked[day_later, daily] == pytest.approx(1.092, abs=1e-3)

    masked = build_features(history, HORIZON, "UTC", inside)
    # The launch's steps read as the normal day there: the same time a day before (no
    # week before on day 1), 100/min, so both ratios are log1p(100) - log1p(100).
    assert masked[week_later, weekly] == 0.0
    assert masked[day_later, daily] == 0.0
    # Recent lags still see the launch as the load it is, during it.
    assert masked[step(1, 11), lag_1] == pytest.approx(0.0, abs=1e-9)
    # Without any normal day before it, an event's steps are missing.
    first_day = PlannedEvent("first-day", at(0, 10), at(0, 12), capacity=5)
    unknown = build_features(history, HORIZON, "UTC", event_steps(MONDAY, len(history), [first_day]))
    assert math.isnan(unknown[step(1, 10.5) - HORIZON, daily])
    # Away from the launch nothing changes.
    far = step(5, 3)
    assert np.array_equal(masked[far], unmasked[far], equal_nan=True)


def test_the_launch_is_no_training_target_and_no_anchor():
    history = history_of(launch_week())
    inside = event_steps(MONDAY, len(history), [LAUNCH])
    # 9 days of 288 steps less the 4 whose target is past the end.
    assert len(training_rows(history, HORIZON, "UTC").targets) == 2588
    rows = training_rows(history, HORIZON, "UTC", inside)
    # Less the 24 anchors inside 10:00-12:00 and the 4 before it (09:40-09:55) whose
    # target is inside.
    assert len(rows.targets) == 2560
    kept = set(rows.step_indices.tolist())
    assert step(1, 10) - 5 in kept
    assert step(1, 10) - 4 not in kept
    assert step(1, 12) - 1 not in kept
    assert step(1, 12) in kept


def outcome_week() -> np.ndarray:
    """8 days: 100/min from 06:00, 1/min at night; on day 7 an event from 05:00 to 12:00
    brings 50/min at night (x50 a trickle), 150/min 06:00-10:00 and 300/min 10:00-12:00."""
    demand = np.full(8 * STEPS, 100.0)
    for day in range(8):
        demand[step(day, 0) : step(day, 6)] = 1.0
    demand[step(7, 5) : step(7, 6)] = 50.0
    demand[step(7, 6) : step(7, 10)] = 150.0
    demand[step(7, 10) : step(7, 12)] = 300.0
    return demand


SALE = PlannedEvent("sale", at(7, 5), at(7, 12), multiplier=2.0)


def test_the_outcome_measures_the_peak_against_the_normal_load_it_was_sized_on():
    outcome = event_outcome(SALE, MONDAY, outcome_week())
    assert outcome is not None
    assert outcome.observed_peak == 300.0
    assert outcome.peak_time == at(7, 10)
    assert outcome.normal_at_peak == 100.0
    # x50 over the night's trickle is left out: the normal load there is under a quarter
    # of its peak over the event.
    assert outcome.needed_multiplier == 3.0
    assert outcome.suggested_multiplier == 3.0
    assert (outcome.steps_observed, outcome.steps_in_event) == (84, 84)
    assert outcome.record() == {
        "name": "sale",
        "start": "2023-11-20T05:00:00Z",
        "end": "2023-11-20T12:00:00Z",
        "declared": "sale: 2023-11-20T05:00:00Z to 2023-11-20T12:00:00Z, x2 normal load",
        "observed_peak_per_minute": 300.0,
        "peak_time": "2023-11-20T10:00:00Z",
        "normal_at_peak_per_minute": 100.0,
        "needed_multiplier": 3.0,
        "suggested_multiplier": 3.0,
        "steps_observed": 84,
        "steps_in_event": 84,
    }
    assert outcome.describe() == (
        "sale: observed peak 300/min at 2023-11-20T10:00:00Z against a normal 100/min there; "
        "x3.00 needed (84 of 84 steps observed); suggested multiplier for a similar event: 3"
    )


def test_an_earlier_event_is_not_taken_for_the_normal_load():
    demand = outcome_week()
    demand[step(0, 10) : step(0, 12)] = 600.0  # last week's same sale
    earlier = PlannedEvent("earlier", at(0, 10), at(0, 12), multiplier=6.0)
    blind = event_outcome(SALE, MONDAY, demand)
    assert blind is not None
    assert blind.normal_at_peak == 600.0
    # 300 against last week's 600: the sale would read as no traffic event at all.
    assert blind.needed_multiplier == 0.5
    assert blind.suggested_multiplier is None
    seeing = event_outcome(SALE, MONDAY, demand, [earlier])
    assert seeing is not None
    assert seeing.normal_at_peak == 100.0  # yesterday's, not last week's sale
    assert seeing.suggested_multiplier == 3.0


def test_suggestions_round_up_to_a_tenth_and_stay_in_bounds():
    demand = np.full(8 * STEPS, 100.0)
    short = PlannedEvent("short", at(7, 10), at(7, 11), capacity=3)
    demand[step(7, 10) : step(7, 11)] = 204.0
    outcome = event_outcome(short, MONDAY, demand)
    assert outcome is not None
    assert outcome.suggested_multiplier == 2.1
    demand[step(7, 10) : step(7, 11)] = 9000.0
    outcome = event_outcome(short, MONDAY, demand)
    assert outcome is not None
    assert outcome.needed_multiplier == 90.0
    assert outcome.suggested_multiplier == 50.0  # the calendar's MAX_MULTIPLIER


def test_an_event_that_raised_nothing_suggests_nothing():
    demand = np.full(8 * STEPS, 100.0)
    quiet = PlannedEvent("newsletter", at(7, 10), at(7, 11), multiplier=2.0)
    outcome = event_outcome(quiet, MONDAY, demand)
    assert outcome is not None
    assert outcome.needed_multiplier == 1.0
    assert outcome.suggested_multiplier is None
    assert outcome.describe().endswith("the load did not rise above normal: not a traffic event")


def test_no_outcome_without_observed_load_or_normal_load():
    demand = np.full(8 * STEPS, 100.0)
    demand[step(7, 10) : step(7, 11)] = np.nan
    gap = PlannedEvent("gap", at(7, 10), at(7, 11), capacity=3)
    assert event_outcome(gap, MONDAY, demand) is None
    first_day = PlannedEvent("first-day", at(0, 10), at(0, 11), capacity=3)
    assert event_outcome(first_day, MONDAY, np.full(8 * STEPS, 100.0)) is None
    partly = event_outcome(PlannedEvent("late", at(7, 23), at(8, 1), capacity=3), MONDAY, demand)
    assert partly is not None
    assert (partly.steps_observed, partly.steps_in_event) == (12, 24)


def test_the_normal_load_is_last_week_else_yesterday_visible_and_never_an_event():
    demand = np.full(8 * STEPS, np.nan)
    position = step(7, 10)
    demand[position - 7 * STEPS] = 700.0
    demand[position - STEPS] = 600.0
    newest = position - 1
    assert normal_load(demand, position, newest) == 700.0
    inside = np.zeros(len(demand), dtype=bool)
    inside[position - 7 * STEPS] = True  # last week's was a sale: yesterday's
    assert normal_load(demand, position, newest, inside) == 600.0
    inside[position - STEPS] = True
    assert math.isnan(normal_load(demand, position, newest, inside))
    # Only what is visible at `newest`: yesterday's step is not yet, last week's is.
    assert normal_load(demand, position, position - STEPS - 1) == 700.0
    assert math.isnan(normal_load(demand, position, position - 7 * STEPS - 1))
    demand[position - 7 * STEPS] = np.nan  # a gap: yesterday's
    assert normal_load(demand, position, newest) == 600.0
