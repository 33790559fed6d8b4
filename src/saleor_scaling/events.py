"""What the functions read from an EventBridge scheduled event: its `time` is the run's
clock, so that a run is deterministic and can be replayed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def parse_event_time(raw: str) -> int:
    """Epoch seconds of an EventBridge `time` (ISO 8601, e.g. 2026-11-24T10:05:00Z)."""
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as error:
        raise ValueError(f"event time {raw!r} is not an ISO 8601 timestamp") from error
    if parsed.tzinfo is None:
        raise ValueError(f"event time {raw!r} has no time zone")
    return int(parsed.timestamp())


def scheduled_event_time(event: Mapping[str, Any]) -> int:
    """The run's clock; a ValueError that says what is wrong for anything else."""
    raw_time = event.get("time")
    if not isinstance(raw_time, str):
        raise ValueError("event has no 'time': expected an EventBridge scheduled event")
    return parse_event_time(raw_time)
