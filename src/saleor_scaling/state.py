"""Predict's memory between runs: the last slot decided, the stabilization window, the
forecasts waiting to be scored, the floor it last decided and how long it has been in
fallback. Kept as one small JSON object in S3, read at the start of every run.

The object is validated field by field: a corrupt or forged state (wrong types, garbage
recommendations, a decision time far in the future) is reset, reported, and never lets
a run crash, act twice for one slot, or skip every slot after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

STATE_FORMAT = 1
MAX_FUTURE_SECONDS = 86400
"""A last decision later than this after the run's own slot is not a real decision (the
clock check refuses events that far ahead): it would make every run a duplicate."""
MAX_ENTRIES = 2000
"""Far more than a day of 5-minute recommendations or pending forecasts."""
MAX_CAPACITY = 100_000
"""Above any Auto Scaling group's size: a recommendation beyond it is garbage."""


class StateConflictError(Exception):
    """Another run wrote the state since this run read it (a concurrent run of the same
    slot): this run must not act."""


@dataclass
class DecisionState:
    last_decision_time: int = 0
    recommendations: list[tuple[int, int]] = field(default_factory=list)
    """(decision time, recommended capacity) of recent runs: the stabilization window."""
    forecasts: dict[int, float] = field(default_factory=dict)
    """Target time -> forecast mean capacity, scored when the target time is observed."""
    last_floor: int | None = None
    """The MinSize floor the last run decided to hold (whether or not its call landed)."""
    fallback_since: int | None = None
    """Decision time of the first of the consecutive fallbacks up to now (None: the last
    run decided)."""
    last_decision: dict[str, Any] = field(default_factory=dict)
    """Summary of the last run for a person reading the object."""

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "format": STATE_FORMAT,
            "last_decision_time": self.last_decision_time,
            "recommendations": [[t, r] for t, r in self.recommendations],
            "forecasts": {str(t): value for t, value in self.forecasts.items()},
            "last_decision": self.last_decision,
        }
        if self.last_floor is not None:
            document["last_floor"] = self.last_floor
        if self.fallback_since is not None:
            document["fallback_since"] = self.fallback_since
        return document


class _CorruptError(ValueError):
    pass


def parse_state(document: Any, decision_time: int) -> tuple[DecisionState, str | None]:
    """The state of a document, or a fresh state and the reason the document was refused."""
    if document is None or document == {}:
        return DecisionState(), None
    try:
        return _parse(document, decision_time), None
    except _CorruptError as error:
        return DecisionState(), str(error)


def _parse(document: Any, decision_time: int) -> DecisionState:
    if not isinstance(document, dict):
        raise _CorruptError(f"state is a {type(document).__name__}, not an object")
    if document.get("format") != STATE_FORMAT:
        raise _CorruptError(f"state format {document.get('format')!r} is not {STATE_FORMAT}")
    last = _integer(document.get("last_decision_time", 0), "last_decision_time")
    if last > decision_time + MAX_FUTURE_SECONDS:
        raise _CorruptError(
            f"last_decision_time {last} is more than a day after this run's slot {decision_time}"
        )
    recommendations = document.get("recommendations", [])
    if not isinstance(recommendations, list) or len(recommendations) > MAX_ENTRIES:
        raise _CorruptError("recommendations is not a list of at most 2000 entries")
    window: list[tuple[int, int]] = []
    for entry in recommendations:
        if not isinstance(entry, list) or len(entry) != 2:
            raise _CorruptError(f"recommendation {entry!r} is not [time, capacity]")
        when = _integer(entry[0], "recommendation time")
        capacity = _integer(entry[1], "recommended capacity")
        if capacity > MAX_CAPACITY or when > decision_time + MAX_FUTURE_SECONDS:
            raise _CorruptError(f"recommendation {entry!r} is out of range")
        window.append((when, capacity))
    forecasts = document.get("forecasts", {})
    if not isinstance(forecasts, dict) or len(forecasts) > MAX_ENTRIES:
        raise _CorruptError("forecasts is not an object of at most 2000 entries")
    pending: dict[int, float] = {}
    for key, value in forecasts.items():
        if not isinstance(key, str) or not key.isascii() or not key.isdigit():
            raise _CorruptError(f"forecast key {key!r} is not a time")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _CorruptError(f"forecast {key}: {value!r} is not a finite number")
        if not 0 <= value <= MAX_CAPACITY:
            raise _CorruptError(f"forecast {key}: {value!r} is out of range")
        pending[int(key)] = float(value)
    last_floor = document.get("last_floor")
    if last_floor is not None:
        last_floor = _integer(last_floor, "last_floor")
        if last_floor > MAX_CAPACITY:
            raise _CorruptError(f"last_floor {last_floor} is out of range")
    fallback_since = document.get("fallback_since")
    if fallback_since is not None:
        fallback_since = _integer(fallback_since, "fallback_since")
    summary = document.get("last_decision", {})
    if not isinstance(summary, dict):
        raise _CorruptError("last_decision is not an object")
    return DecisionState(last, window, pending, last_floor, fallback_since, summary)


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _CorruptError(f"{name} {value!r} is not a non-negative whole number")
    return value
