"""Planned events: the sales the operator declares ahead of time (not EventBridge events:
those are `saleor_scaling.events`).

No forecaster sees a one-off sale in the history; the shop knows its date. The operator
declares each event once (`registry_cli events add`), and predict, the preview and the
backtest size for it with the same function, `planned_floor`:

- from `lead_minutes` plus one boot delay before the start (the decision whose target
  step reaches the lead window) until the end, the capacity predict recommends, and so
  the MinSize floor it leases, is at least the event's capacity;
- the event's capacity is either declared (`capacity` instances) or `multiplier` times
  the normal load at that step (`normal_demand`: the demand at the same time last week,
  else yesterday, as `training.seasonal_naive`; it never sees the event's own rise, so
  the multiplier is not applied twice to a load the event already raised);
- overlapping events are allowed: the largest capacity wins.

Nothing here writes state: when the event ends its capacity simply stops being asked for,
and the floor comes down as every floor does (the stabilization window, one step per run,
the lease's expiry if predict stops).

The calendar is one small JSON object (`CALENDAR_KEY` in the model bucket), read bounded
like every other object and validated field by field. A calendar that fails any check is
refused whole (`CalendarError`): predict then decides as if there were no events and says
why, since an event half-read could size the shop for the wrong day.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from saleor_scaling import STEP_SECONDS
from saleor_scaling.bounded import parse_json
from saleor_scaling.labels import instances_for
from saleor_scaling.series import FloatArray

CALENDAR_AREA = "calendar"
CALENDAR_KEY = "calendar/events.json"
CALENDAR_FORMAT = 1
MAX_EVENTS = 100
MAX_CALENDAR_BYTES = 64 * 1024
"""100 events of at most about 250 bytes each (a 64-character name, two timestamps, two
numbers) are under 25 KB; a larger object is not one the CLI wrote."""
MAX_CALENDAR_DEPTH = 3
"""calendar -> events -> one event: nothing deeper is ours."""
MAX_EVENT_DAYS = 14
"""A sale longer than two weeks is the shop's normal load, which the model learns."""
MAX_DAYS_AHEAD = 366
"""An event is declared at most a year ahead: a later date is a typo (2062 for 2026)."""
MIN_MULTIPLIER = 1.0
"""Exclusive: a multiplier of 1 or less asks for nothing the forecast does not."""
MAX_MULTIPLIER = 50.0
MAX_CAPACITY = 10_000
"""Instances; above any group this project scales (Auto Scaling's MaxSize is the real cap)."""
MAX_LEAD_MINUTES = 12 * 60
"""Capacity raised half a day early is enough for any warm-up; more is a typo."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_EVENT_KEYS = frozenset({"name", "start", "end", "multiplier", "capacity", "lead_minutes"})
_STEPS_PER_DAY = 86400 // STEP_SECONDS
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
"""Old enough for the public traces the backtest replays (NASA, 1995)."""


class CalendarError(ValueError):
    """A calendar or an event that this code did not write or must not act on."""


@dataclass(frozen=True)
class PlannedEvent:
    name: str
    start: int
    """Epoch seconds."""
    end: int
    multiplier: float | None = None
    """The event's load as a multiple of the normal load (None: `capacity` is declared)."""
    capacity: int | None = None
    """Instances the event needs, declared (None: `multiplier` sizes it)."""
    lead_minutes: int = 0
    """Capacity is raised this much earlier than one boot delay before the start."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise CalendarError(
                f"event name {str(self.name)[:70]!r} must be 1-64 characters of letters, digits, '.', '_' "
                "or '-', starting with a letter or digit"
            )
        label = f"event {self.name!r}"
        if not self.end > self.start:
            raise CalendarError(
                f"{label}: its end {_iso(self.end)} is not after its start {_iso(self.start)}"
            )
        if self.end - self.start > MAX_EVENT_DAYS * 86400:
            raise CalendarError(
                f"{label}: lasts {(self.end - self.start) / 86400:.1f} days, over {MAX_EVENT_DAYS}"
            )
        if (self.multiplier is None) == (self.capacity is None):
            raise CalendarError(f"{label}: give exactly one of multiplier or capacity")
        if self.multiplier is not None:
            value = self.multiplier
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not MIN_MULTIPLIER < value <= MAX_MULTIPLIER
            ):
                raise CalendarError(
                    f"{label}: multiplier {value!r} must be a number above {MIN_MULTIPLIER:g} "
                    f"and at most {MAX_MULTIPLIER:g}"
                )
        if self.capacity is not None:
            _whole(self.capacity, 1, MAX_CAPACITY, f"{label}: capacity")
        _whole(self.lead_minutes, 0, MAX_LEAD_MINUTES, f"{label}: lead_minutes")

    @property
    def raise_from(self) -> int:
        """The earliest target step the event's capacity is sized for."""
        return self.start - self.lead_minutes * 60

    @property
    def key(self) -> str:
        """Names this event at this date: a notice about it is sent once per key."""
        return f"{self.name}@{self.start}"

    def describe(self) -> str:
        size = (
            f"{self.capacity} instances" if self.capacity is not None else f"x{self.multiplier:g} normal load"
        )
        lead = f", raised {self.lead_minutes} min early" if self.lead_minutes else ""
        return f"{self.name}: {_iso(self.start)} to {_iso(self.end)}, {size}{lead}"

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name, "start": _iso(self.start), "end": _iso(self.end)}
        if self.multiplier is not None:
            document["multiplier"] = self.multiplier
        if self.capacity is not None:
            document["capacity"] = self.capacity
        if self.lead_minutes:
            document["lead_minutes"] = self.lead_minutes
        return document

    @classmethod
    def from_json(cls, raw: Any, now: int | None = None) -> PlannedEvent:
        """One event as the calendar holds it; `now` (when known) refuses a start more than
        MAX_DAYS_AHEAD ahead of it."""
        raw = object_of_fields(raw, _EVENT_KEYS, "an event")
        name = raw.get("name")
        if not isinstance(name, str):
            raise CalendarError(f"an event's name {name!r} is not a string")
        event = cls(
            name=name,
            start=parse_time(raw.get("start"), f"event {name!r}: start"),
            end=parse_time(raw.get("end"), f"event {name!r}: end"),
            multiplier=raw.get("multiplier"),
            capacity=raw.get("capacity"),
            lead_minutes=raw.get("lead_minutes", 0),
        )
        if now is not None and event.start > now + MAX_DAYS_AHEAD * 86400:
            raise CalendarError(
                f"event {name!r}: starts {_iso(event.start)}, more than {MAX_DAYS_AHEAD} days ahead"
            )
        return event


@dataclass(frozen=True)
class Calendar:
    events: tuple[PlannedEvent, ...] = ()

    def __post_init__(self) -> None:
        if len(self.events) > MAX_EVENTS:
            raise CalendarError(f"the calendar holds {len(self.events)} events, at most {MAX_EVENTS}")
        names = [event.name for event in self.events]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise CalendarError(f"event name(s) {duplicates} appear more than once")

    def named(self, name: str) -> PlannedEvent:
        for event in self.events:
            if event.name == name:
                return event
        raise CalendarError(f"no event named {name!r} in the calendar")

    def with_event(self, event: PlannedEvent) -> Calendar:
        if any(existing.name == event.name for existing in self.events):
            raise CalendarError(f"an event named {event.name!r} exists already: remove it first")
        return Calendar(tuple(sorted((*self.events, event), key=lambda e: (e.start, e.name))))

    def without(self, name: str) -> Calendar:
        self.named(name)
        return Calendar(tuple(event for event in self.events if event.name != name))

    def to_json(self) -> dict[str, Any]:
        return {"format": CALENDAR_FORMAT, "events": [event.to_json() for event in self.events]}

    @classmethod
    def from_document(cls, document: Any, now: int | None = None) -> Calendar:
        if not isinstance(document, dict):
            raise CalendarError(f"the calendar is a {type(document).__name__}, not an object")
        if set(document) - {"format", "events"}:
            raise CalendarError("the calendar holds fields other than format and events")
        format_ = document.get("format")
        if isinstance(format_, bool) or format_ != CALENDAR_FORMAT:
            raise CalendarError(f"calendar format {str(format_)[:20]!r} is not {CALENDAR_FORMAT}")
        events = document.get("events")
        if not isinstance(events, list):
            raise CalendarError("the calendar's events is not a list")
        if len(events) > MAX_EVENTS:
            raise CalendarError(f"the calendar holds {len(events)} events, at most {MAX_EVENTS}")
        return cls(tuple(PlannedEvent.from_json(event, now) for event in events))

    @classmethod
    def parse(cls, raw: bytes | str, now: int | None = None) -> Calendar:
        """A calendar from its JSON text, bounded in size and nesting before it is parsed."""
        try:
            document = parse_json(raw, MAX_CALENDAR_BYTES, "calendar", MAX_CALENDAR_DEPTH)
        except ValueError as error:  # BoundError, not UTF-8, not JSON
            raise CalendarError(f"the calendar is unreadable: {error}") from error
        return cls.from_document(document, now)


@dataclass(frozen=True)
class PlannedFloor:
    """What the events active at one decision ask for."""

    capacity: int
    """Instances: the largest of the active events' capacities."""
    event: PlannedEvent
    """The event that asks for it."""
    basis: str
    """How the capacity was sized, for the decision line."""
    unsized: tuple[str, ...] = ()
    """Active multiplier events whose normal load is unknown at this step (not applied)."""

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.event.name,
            "capacity": self.capacity,
            "basis": self.basis,
            "start": _iso(self.event.start),
            "end": _iso(self.event.end),
        }
        if self.unsized:
            record["unsized"] = list(self.unsized)
        return record


def active(events: Iterable[PlannedEvent], decision_time: int, target_time: int) -> list[PlannedEvent]:
    """The events a decision at `decision_time`, sizing for `target_time`, must honour:
    its target step is at or after the event's lead window opens, and the event has not
    ended. A run whose forecast reaches one boot delay ahead thus raises capacity one boot
    delay (plus the lead) before the start, and holds it through the end."""
    return [event for event in events if target_time >= event.raise_from and decision_time < event.end]


def planned_floor(
    events: Iterable[PlannedEvent],
    decision_time: int,
    target_time: int,
    normal_demand: Callable[[int], float],
    capacity_per_instance: float,
) -> PlannedFloor | None:
    """The capacity the declared events ask of one decision (None: no event active).
    `normal_demand(step_time)` is the normal load, requests per minute, at a step (NaN:
    unknown); a multiplier event is sized at the target step, kept inside [start, end)
    (during the lead it is sized for its first step). A multiplier event whose normal load
    is unknown asks for nothing and is listed in `unsized` (capacity 0 when it is alone)."""
    best: PlannedFloor | None = None
    unsized: list[PlannedEvent] = []
    for event in active(events, decision_time, target_time):
        if event.capacity is not None:
            capacity, basis = event.capacity, f"declared capacity {event.capacity}"
        else:
            assert event.multiplier is not None
            step = min(max(target_time, event.start), event.end - 1)
            step -= step % STEP_SECONDS
            normal = normal_demand(step)
            if not (math.isfinite(normal) and normal >= 0):
                unsized.append(event)
                continue
            capacity = max(1, instances_for(event.multiplier * normal / capacity_per_instance))
            basis = f"x{event.multiplier:g} the normal load {normal:.0f}/min at {_iso(step)}"
        if best is None or capacity > best.capacity:
            best = PlannedFloor(capacity, event, basis)
    if not unsized:
        return best
    names = tuple(event.name for event in unsized)
    if best is None:
        return PlannedFloor(0, unsized[0], "normal load unknown: not applied", names)
    return PlannedFloor(best.capacity, best.event, best.basis, names)


def peak_capacity(
    event: PlannedEvent,
    normal_demand: Callable[[int], float],
    capacity_per_instance: float,
    span_seconds: int = 86400,
) -> int:
    """The most instances `event` asks for over its first `span_seconds` (what an advance
    notice compares with MaxSize); 0 where its normal load is unknown throughout."""
    if event.capacity is not None:
        return event.capacity
    needs = 0
    for step in range(
        event.start - event.start % STEP_SECONDS, min(event.end, event.start + span_seconds), STEP_SECONDS
    ):
        planned = planned_floor((event,), step, step, normal_demand, capacity_per_instance)
        if planned is not None:
            needs = max(needs, planned.capacity)
    return needs


@dataclass(frozen=True)
class PreviewStep:
    time: int
    normal: float
    """Instances the normal load needs at this step (NaN: its normal load is unknown)."""
    planned: float
    """Instances the event holds at this step (at least `normal`; NaN: unknown)."""


def preview(
    event: PlannedEvent,
    normal_demand: Callable[[int], float],
    capacity_per_instance: float,
    reach_seconds: int,
) -> list[PreviewStep]:
    """The event's planned capacity by 5 minutes, from the first decision that honours it
    (`reach_seconds`, one boot delay, plus the lead before the start) to its end, beside
    what the normal load needs. Capacity set by a decision serves from its target step:
    the steps listed are target steps."""
    steps: list[PreviewStep] = []
    first = event.raise_from - event.raise_from % STEP_SECONDS
    for target in range(first, event.end + reach_seconds, STEP_SECONDS):
        decision_time = target - reach_seconds
        if decision_time >= event.end:
            break
        normal_load = normal_demand(target)
        normal = (
            float(max(1, instances_for(normal_load / capacity_per_instance)))
            if math.isfinite(normal_load) and normal_load >= 0
            else math.nan
        )
        floor = planned_floor((event,), decision_time, target, normal_demand, capacity_per_instance)
        if floor is None:
            planned = normal
        elif floor.unsized:
            planned = math.nan
        elif math.isfinite(normal):
            planned = max(normal, float(floor.capacity))
        else:
            planned = float(floor.capacity)  # a declared capacity needs no normal load
        steps.append(PreviewStep(target, normal, planned))
    return steps


def upcoming(events: Iterable[PlannedEvent], now: int, within_seconds: int) -> list[PlannedEvent]:
    """Events whose lead window opens within `within_seconds` of `now` and that have not ended."""
    return [event for event in events if event.raise_from - now <= within_seconds and now < event.end]


def object_of_fields(raw: Any, fields: frozenset[str], what: str) -> dict[str, Any]:
    """`raw` if it is an object holding none but `fields`; `what` names it in the error
    ("an event", "a proposal")."""
    if not isinstance(raw, dict):
        raise CalendarError(f"{what} is a {type(raw).__name__}, not an object")
    unknown = set(raw) - fields
    if unknown:
        raise CalendarError(f"{what} has unknown field(s) {sorted(str(key)[:30] for key in unknown)}")
    return raw


def parse_time(raw: Any, what: str) -> int:
    """Epoch seconds of an ISO 8601 time with a zone (2026-11-27T06:00:00+01:00, ...Z)."""
    if not isinstance(raw, str) or len(raw) > 40:
        raise CalendarError(f"{what} {str(raw)[:45]!r} is not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise CalendarError(f"{what} {raw!r} is not an ISO 8601 time") from error
    if parsed.tzinfo is None:
        raise CalendarError(f"{what} {raw!r} has no time zone (add Z or +01:00)")
    if not _EARLIEST <= parsed <= datetime(2100, 1, 1, tzinfo=UTC):
        raise CalendarError(f"{what} {raw!r} is not between 1990 and 2100")
    return int(parsed.timestamp())


def _whole(value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CalendarError(f"{what} {value!r} must be a whole number in [{low}, {high}]")
    return value


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def event_steps(first_step: int, count: int, events: Iterable[PlannedEvent]) -> npt.NDArray[np.bool_]:
    """True at each of `count` steps from `first_step` (epoch seconds) whose bucket overlaps
    an event's [start, end): the steps the seasonal features and the training targets must
    not take for a normal day."""
    inside = np.zeros(count, dtype=bool)
    for event in events:
        first = max(0, (event.start - first_step) // STEP_SECONDS)
        last = min(count, -(-(event.end - first_step) // STEP_SECONDS))
        if first < last:
            inside[first:last] = True
    return inside


def normal_load(
    demand: FloatArray, position: int, newest: int, inside_events: npt.NDArray[np.bool_] | None = None
) -> float:
    """The normal load at step `position` of `demand` (requests per minute of consecutive
    steps), as a multiplier is sized on: the same time last week, else yesterday
    (`training.seasonal_naive`), among the steps known at `newest` and never a step of a
    planned event (`inside_events`); NaN where neither is known. Predict, the backtest and
    the outcome of a past event all read it here."""
    for period in (7 * _STEPS_PER_DAY, _STEPS_PER_DAY):
        before = position - period
        if (
            0 <= before <= newest
            and math.isfinite(demand[before])
            and not (inside_events is not None and inside_events[before])
        ):
            return float(demand[before])
    return math.nan


SUGGESTION_SHARE_OF_NORMAL_PEAK = 0.25
"""A suggested multiplier is measured where the normal load is at least a quarter of its
peak over the event: a ratio to a night-time trickle would size the whole day for noise."""
SUGGESTION_STEP = 0.1
"""Suggestions are rounded up to a tenth: the precision an operator declares."""


@dataclass(frozen=True)
class EventOutcome:
    """What an event did to the load, against the normal load it was sized on."""

    event: PlannedEvent
    observed_peak: float
    """Requests per minute: the largest 5-minute bucket inside the event."""
    peak_time: int
    normal_at_peak: float
    """The normal load (same time last week, else yesterday) at the peak's step."""
    needed_multiplier: float
    """The smallest multiplier that would have covered the observed load at every step
    where the normal load is at least SUGGESTION_SHARE_OF_NORMAL_PEAK of its peak."""
    steps_observed: int
    steps_in_event: int

    @property
    def suggested_multiplier(self) -> float | None:
        """For the next similar event: `needed_multiplier` rounded up to a tenth, within the
        calendar's bounds; None where the event did not raise the load (not a traffic event)."""
        if not self.needed_multiplier > MIN_MULTIPLIER:
            return None
        rounded = math.ceil(round(self.needed_multiplier / SUGGESTION_STEP, 6)) * SUGGESTION_STEP
        return round(min(MAX_MULTIPLIER, rounded), 1)

    def record(self) -> dict[str, Any]:
        return {
            "name": self.event.name,
            "start": _iso(self.event.start),
            "end": _iso(self.event.end),
            "declared": self.event.describe(),
            "observed_peak_per_minute": round(self.observed_peak, 1),
            "peak_time": _iso(self.peak_time),
            "normal_at_peak_per_minute": round(self.normal_at_peak, 1),
            "needed_multiplier": round(self.needed_multiplier, 2),
            "suggested_multiplier": self.suggested_multiplier,
            "steps_observed": self.steps_observed,
            "steps_in_event": self.steps_in_event,
        }

    def describe(self) -> str:
        suggestion = self.suggested_multiplier
        advice = (
            f"suggested multiplier for a similar event: {suggestion:g}"
            if suggestion is not None
            else "the load did not rise above normal: not a traffic event"
        )
        return (
            f"{self.event.name}: observed peak {self.observed_peak:.0f}/min at {_iso(self.peak_time)} "
            f"against a normal {self.normal_at_peak:.0f}/min there; x{self.needed_multiplier:.2f} needed "
            f"({self.steps_observed} of {self.steps_in_event} steps observed); {advice}"
        )


def event_outcome(
    event: PlannedEvent, first_step: int, demand: FloatArray, events: Iterable[PlannedEvent] = ()
) -> EventOutcome | None:
    """What `event` did, from the demand per minute of consecutive steps from `first_step`:
    the observed load inside it against the normal load (same time last week, else
    yesterday, as `planned_floor` sizes a multiplier; a step of any of `events` is never
    taken for normal). None when the history holds no step of the event with both known."""
    count = len(demand)
    not_normal = event_steps(first_step, count, (event, *events))
    first = max(0, (event.start - first_step) // STEP_SECONDS)
    last = min(count, -(-(event.end - first_step) // STEP_SECONDS))
    steps_in_event = -(-(event.end - event.start) // STEP_SECONDS)
    observed: list[tuple[int, float, float]] = []
    for position in range(first, last):
        load = float(demand[position])
        if not math.isfinite(load):
            continue
        normal = normal_load(demand, position, count - 1, not_normal)
        if math.isfinite(normal):
            observed.append((position, load, normal))
    if not observed:
        return None
    peak_position, peak, normal_at_peak = max(observed, key=lambda step: step[1])
    normal_peak = max(normal for _, _, normal in observed)
    ratios = [
        load / normal
        for _, load, normal in observed
        if normal > 0 and normal >= SUGGESTION_SHARE_OF_NORMAL_PEAK * normal_peak
    ]
    return EventOutcome(
        event=event,
        observed_peak=peak,
        peak_time=first_step + peak_position * STEP_SECONDS,
        normal_at_peak=normal_at_peak,
        needed_multiplier=max(ratios) if ratios else math.nan,
        steps_observed=len(observed),
        steps_in_event=steps_in_event,
    )
