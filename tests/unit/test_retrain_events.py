"""Retrain learns from the planned events the operator declared: each event that ended
inside the history gets its outcome in the run's record (and so in its notice), with the
multiplier it suggests; its steps are kept out of what the model learns as normal. A
calendar that cannot be read is a warning, never a failed night."""

from __future__ import annotations

from typing import Any

from saleor_scaling.calendar import Calendar, CalendarError, PlannedEvent
from saleor_scaling.local.memory import MemoryArchive, MemoryMetrics, MemoryNotifier, MemoryRegistry
from saleor_scaling.retrain_service import RetrainPorts, RetrainResult, RetrainStatus, run_retrain
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ModelLocation, RetrainSettings
from tests.conftest import synthetic_history

MONDAY = 1_700_438_400  # 2023-11-20 00:00 UTC
DAY = 86400
DAYS = 24
RETRAIN_AT = MONDAY + DAYS * DAY + 3 * 3600 + 15 * 60
WEEK_STEPS = 7 * 288
SALE_START = MONDAY + 16 * DAY + 12 * 3600  # Wednesday 2023-12-06 12:00 UTC
SALE_STEPS = 24  # two hours
SETTINGS = RetrainSettings(
    auto_scaling_group_name="saleor-api",
    load_balancer_full_name="app/saleor/0123456789abcdef",
    model=ModelLocation(bucket="models"),
    n_estimators=10,
)
"""The nightly job's settings, with forests small enough for a unit test."""


class FixedCalendar:
    def __init__(self, calendar: Calendar | None = None, error: str = "") -> None:
        self.calendar, self.error = calendar, error

    def events(self, now: int) -> Calendar:
        if self.error:
            raise CalendarError(self.error)
        assert self.calendar is not None
        return self.calendar


def shop_with_a_sale(multiplier: float) -> MetricHistory:
    """The synthetic shop, its RequestCount inside the sale `multiplier` times the same
    time last week's."""
    history = synthetic_history(MONDAY, DAYS + 1, peak_per_minute=10_000.0, seed=5)
    values = {metric: array.copy() for metric, array in history.values.items()}
    first = (SALE_START - MONDAY) // 300
    requests = values[Metric.REQUESTS]
    requests[first : first + SALE_STEPS] = (
        multiplier * requests[first - WEEK_STEPS : first - WEEK_STEPS + SALE_STEPS]
    )
    return MetricHistory(start=MONDAY, values=values)


def retrain(history: MetricHistory, calendar: FixedCalendar | None) -> RetrainResult:
    ports = RetrainPorts(
        MemoryMetrics(history), MemoryArchive(), MemoryRegistry(), MemoryNotifier(), calendar=calendar
    )
    return run_retrain(RETRAIN_AT, SETTINGS, ports)


def sale(**size: Any) -> PlannedEvent:
    return PlannedEvent("winter-sale", SALE_START, SALE_START + SALE_STEPS * 300, **size)


def test_an_ended_event_is_recorded_with_the_multiplier_it_suggests():
    upcoming = PlannedEvent("next-sale", RETRAIN_AT + DAY, RETRAIN_AT + 2 * DAY, multiplier=2.0)
    result = retrain(shop_with_a_sale(2.5), FixedCalendar(Calendar((sale(capacity=30), upcoming))))
    assert result.status is RetrainStatus.PROMOTED
    [outcome] = result.event_outcomes  # the upcoming sale has no outcome yet
    assert outcome["name"] == "winter-sale"
    assert outcome["declared"] == "winter-sale: 2023-12-06T12:00:00Z to 2023-12-06T14:00:00Z, 30 instances"
    assert outcome["needed_multiplier"] == 2.5
    assert outcome["suggested_multiplier"] == 2.5
    assert (outcome["steps_observed"], outcome["steps_in_event"]) == (24, 24)
    record = result.log_record()
    assert record["event_outcomes"] == [outcome]
    assert record["event_steps_kept_out"] == 24


def test_an_event_still_on_is_kept_out_but_not_yet_judged():
    on = PlannedEvent("still-on", RETRAIN_AT - 3600, RETRAIN_AT + 3600, multiplier=2.0)
    result = retrain(shop_with_a_sale(1.0), FixedCalendar(Calendar((on,))))
    assert result.event_outcomes == []
    # 02:15 up to 03:05, the last bucket retrain reads (03:10 is still filling at 03:15).
    assert result.events_kept_out == 11


def test_without_events_nothing_is_recorded():
    result = retrain(shop_with_a_sale(1.0), FixedCalendar(Calendar()))
    assert result.status is RetrainStatus.PROMOTED
    record = result.log_record()
    assert "event_outcomes" not in record
    assert "event_steps_kept_out" not in record


def test_an_unreadable_calendar_is_a_warning_and_the_night_trains_as_without_events():
    result = retrain(shop_with_a_sale(2.5), FixedCalendar(error="the calendar is unreadable: not JSON"))
    assert result.status is RetrainStatus.PROMOTED
    assert result.calendar_warning == (
        "calendar ignored, trained as without events: the calendar is unreadable: not JSON"
    )
    assert result.log_record()["calendar_warning"] == result.calendar_warning
    assert result.event_outcomes == []
    assert result.events_kept_out == 0
