"""Predict's memory between runs: the last slot decided, the stabilization window, the
forecasts waiting to be scored and the planned events already noticed. Kept as one small
JSON object in S3, read at the start of every run. (The MinSize floor is not kept here: it
is a lease on the group's own tag, `saleor_scaling.lease`.)

The object is validated field by field: a corrupt or forged state (wrong types, garbage
recommendations, a time later than any earlier run can have written) is reset, reported,
and never lets a run crash, act twice for one slot, skip the slots after it or hold
scale-in beyond the stabilization window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from saleor_scaling import STEP_SECONDS
from saleor_scaling.model import MAX_HORIZON_STEPS
from saleor_scaling.settings import ANCHOR_OFFSET_STEPS, PredictSettings

STATE_FORMAT = 1
MAX_ENTRIES = 2000
"""Far more than a day of 5-minute recommendations or pending forecasts."""
MAX_CAPACITY = 100_000
"""Above any Auto Scaling group's size: a recommendation beyond it is garbage."""
FORECAST_REACH_SECONDS = (MAX_HORIZON_STEPS - ANCHOR_OFFSET_STEPS) * STEP_SECONDS
"""How far after its run's slot a forecast can target: the longest horizon a manifest may
declare, counted from the anchor bucket two steps before the slot (7200 s)."""
MAX_TIME_DIGITS = 12
"""Epoch seconds have 10 digits until 2286; a longer key is no time (and int() of over
4300 digits raises)."""


class StateConflictError(Exception):
    """Another run wrote the state since this run read it (a concurrent run of the same
    slot): this run must not act."""


@dataclass
class DecisionState:
    last_decision_time: int = 0
    recommendations: list[tuple[int, int]] = field(default_factory=list)
    """(decision time, recommended capacity) of recent runs: the stabilization window
    (`Decision.window_entry`: without the reactive floor when WINDOW_HOLDS_REACTIVE_FLOOR
    is off)."""
    forecasts: dict[int, float] = field(default_factory=dict)
    """Target time -> forecast mean capacity, scored when the target time is observed."""
    last_decision: dict[str, Any] = field(default_factory=dict)
    """Summary of the last run for a person reading the object."""
    event_notices: dict[str, int] = field(default_factory=dict)
    """Planned events (`PlannedEvent.key`) whose advance notice was sent -> the event's
    end; an entry is dropped once its event has ended, so nothing is left to clean up."""

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "format": STATE_FORMAT,
            "last_decision_time": self.last_decision_time,
            "recommendations": [[t, r] for t, r in self.recommendations],
            "forecasts": {str(t): value for t, value in self.forecasts.items()},
            "last_decision": self.last_decision,
        }
        if self.event_notices:
            document["event_notices"] = dict(self.event_notices)
        return document


class _CorruptError(ValueError):
    pass


def parse_state(
    document: Any, decision_time: int, clock: float | None, settings: PredictSettings
) -> tuple[DecisionState, str | None]:
    """The state of a document, or a fresh state and the reason the document was refused.

    `clock` is the function's own clock when the run started (None where there is none: a
    replay of recorded time). Every time in the state was written by an earlier run, whose
    event was at most EVENT_MAX_EARLY_SECONDS ahead of its clock: a later one is forged or
    corrupt, and would make every slot up to it a duplicate or hold a fallback forever."""
    if document is None or document == {}:
        return DecisionState(), None
    try:
        return _parse(document, _Limits.for_run(decision_time, clock, settings)), None
    except _CorruptError as error:
        return DecisionState(), str(error)


@dataclass(frozen=True)
class _Limits:
    latest: float
    """No run before this one can have decided a later slot."""
    window_start: int
    """Recommendations at or before it are out of the stabilization window: dropped."""

    @classmethod
    def for_run(cls, decision_time: int, clock: float | None, settings: PredictSettings) -> _Limits:
        # With the clock check off (a replay) events are not held to the clock, so neither
        # is the state they wrote: the run's own time is the only clock there is.
        if clock is None or not math.isfinite(clock) or not settings.event_clock_check:
            now = float(decision_time)
        else:
            now = clock
        window_seconds = settings.policy.scale_in_stabilization_minutes * 60
        return cls(now + settings.event_max_early_seconds, decision_time - window_seconds)

    def check_time(self, when: int, name: str, reach: int = 0) -> int:
        if when > self.latest + reach:
            raise _CorruptError(
                f"{name} {when} is after {self.latest + reach:.0f}, the latest an earlier run "
                "can have written (this run's clock plus EVENT_MAX_EARLY_SECONDS"
                f"{' plus the longest forecast horizon' if reach else ''})"
            )
        return when


def _parse(document: Any, limits: _Limits) -> DecisionState:
    if not isinstance(document, dict):
        raise _CorruptError(f"state is a {type(document).__name__}, not an object")
    format_ = document.get("format")
    if isinstance(format_, bool) or not isinstance(format_, int) or format_ != STATE_FORMAT:
        raise _CorruptError(f"state format {format_!r} is not {STATE_FORMAT}")
    last = limits.check_time(
        _integer(document.get("last_decision_time", 0), "last_decision_time"), "last_decision_time"
    )
    recommendations = document.get("recommendations", [])
    if not isinstance(recommendations, list) or len(recommendations) > MAX_ENTRIES:
        raise _CorruptError(f"recommendations is not a list of at most {MAX_ENTRIES} entries")
    window: list[tuple[int, int]] = []
    for entry in recommendations:
        if not isinstance(entry, list) or len(entry) != 2:
            raise _CorruptError(f"recommendation {entry!r} is not [time, capacity]")
        when = limits.check_time(_integer(entry[0], "recommendation time"), "recommendation time")
        capacity = _capacity(entry[1], "recommended capacity")
        if when > limits.window_start:  # older ones no longer hold scale-in
            window.append((when, capacity))
    forecasts = document.get("forecasts", {})
    if not isinstance(forecasts, dict) or len(forecasts) > MAX_ENTRIES:
        raise _CorruptError(f"forecasts is not an object of at most {MAX_ENTRIES} entries")
    pending: dict[int, float] = {}
    for key, value in forecasts.items():
        if not isinstance(key, str) or not key.isascii() or not key.isdigit() or len(key) > MAX_TIME_DIGITS:
            raise _CorruptError(f"forecast key {str(key)[:20]!r} is not a time")
        target = limits.check_time(int(key), "forecast target time", FORECAST_REACH_SECONDS)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _CorruptError(f"forecast {key}: {value!r} is not a finite number")
        if not 0 <= value <= MAX_CAPACITY:
            raise _CorruptError(f"forecast {key}: {value!r} is out of [0, {MAX_CAPACITY}]")
        pending[target] = float(value)
    # Earlier versions also wrote last_floor and fallback_since; nothing reads them since
    # the floor became a lease on the group's tag, so an old document's are ignored.
    summary = document.get("last_decision", {})
    if not isinstance(summary, dict):
        raise _CorruptError("last_decision is not an object")
    return DecisionState(last, window, pending, summary, _event_notices(document))


MAX_EVENT_NOTICES = 100
"""The calendar's MAX_EVENTS: one notice per declared event at most."""
MAX_EVENT_KEY_LENGTH = 80
"""A 64-character event name, '@' and its start in epoch seconds."""


def _event_notices(document: dict[str, Any]) -> dict[str, int]:
    notices = document.get("event_notices", {})
    if not isinstance(notices, dict) or len(notices) > MAX_EVENT_NOTICES:
        raise _CorruptError(f"event_notices is not an object of at most {MAX_EVENT_NOTICES} entries")
    for key, end in notices.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_EVENT_KEY_LENGTH:
            raise _CorruptError(f"event notice key {str(key)[:20]!r} is not an event")
        _integer(end, "event notice end")
    return dict(notices)


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _CorruptError(f"{name} {value!r} is not a non-negative whole number")
    return value


def _capacity(value: Any, name: str) -> int:
    capacity = _integer(value, name)
    if capacity > MAX_CAPACITY:
        raise _CorruptError(f"{name} {capacity} is above {MAX_CAPACITY}")
    return capacity
