"""Saleor's promotions as proposed planned events (optional, off by default).

A promotion has a start and an end in the shop itself (`promotions` query, permission
MANAGE_DISCOUNTS). Retrain reads the upcoming ones nightly (`adapters.saleor`) and writes
them as proposals (`PROPOSALS_KEY`), never as events: a promotion is not always a traffic
event, so only the operator turns one into an event (`registry_cli events accept`), at
the multiplier the past events suggested, another one, or a declared capacity.

Everything the shop's API returns is read as untrusted: the page's size and nesting are
bounded before it is parsed (`saleor_scaling.bounded`), every field is checked for its
type, and a promotion's name becomes an event name only through `event_name` (ASCII
letters, digits and '-'), its original text kept cut and printable for the listing.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from saleor_scaling.bounded import parse_json
from saleor_scaling.calendar import (
    MAX_EVENT_DAYS,
    CalendarError,
    PlannedEvent,
    object_of_fields,
    parse_time,
)

PROMOTIONS_QUERY = """
query UpcomingPromotions($first: Int!, $after: String, $from: DateTime!, $until: DateTime!) {
  promotions(
    first: $first
    after: $after
    where: {startDate: {range: {gte: $from, lte: $until}}}
    sortBy: {field: START_DATE, direction: ASC}
  ) {
    pageInfo { hasNextPage endCursor }
    edges { node { id name startDate endDate } }
  }
}
"""
PAGE_SIZE = 100
"""Saleor serves at most 100 objects per query."""
MAX_PAGES = 5
MAX_PAGE_BYTES = 512 * 1024
"""100 promotions of a 255-character name (each character escaped as \\uXXXX, six bytes),
an id and two dates are under 200 KB; a larger page is not an answer to this query."""
MAX_PAGE_DEPTH = 8
"""data -> promotions -> edges -> [] -> edge -> node is six; an error's extensions two more."""
DAYS_AHEAD = 60
"""Promotions starting within this many days are proposed: enough to prepare for a sale."""
MAX_PROPOSALS = 50
MAX_PROPOSALS_BYTES = 64 * 1024
MAX_PROPOSALS_DEPTH = 3
PROPOSALS_KEY = "proposals/events.json"
PROPOSALS_FORMAT = 1
MAX_LABEL = 100
"""Characters of the promotion's own name kept for the listing."""
_MAX_CURSOR = 1000
_MAX_ID = 200
_SLUG_LENGTH = 50
_PROPOSAL_KEYS = frozenset(
    {"name", "start", "end", "multiplier", "multiplier_from", "promotion", "promotion_id"}
)
_PROPOSALS_FIELDS = frozenset({"format", "written_at", "proposals", "skipped"})


class PromotionsError(Exception):
    """The shop's API could not be read, or answered with something that is not an answer
    to the promotions query."""


@dataclass(frozen=True)
class Promotion:
    id: str
    name: str
    start: int
    """Epoch seconds."""
    end: int | None
    """Epoch seconds; None: the promotion has no end date."""


@dataclass(frozen=True)
class PromotionsPage:
    promotions: tuple[Promotion, ...]
    has_next_page: bool
    end_cursor: str | None


def parse_page(raw: bytes) -> PromotionsPage:
    """One response of PROMOTIONS_QUERY, refused (PromotionsError) unless every field the
    query asks for is there with the type the schema gives it."""
    try:
        document = parse_json(raw, MAX_PAGE_BYTES, "the promotions response", MAX_PAGE_DEPTH)
    except ValueError as error:  # BoundError, not UTF-8, not JSON
        raise PromotionsError(f"the promotions response is unreadable: {error}") from error
    if not isinstance(document, dict):
        raise PromotionsError(f"the promotions response is a {type(document).__name__}, not an object")
    errors = document.get("errors")
    if errors:
        raise PromotionsError(f"the shop refused the promotions query: {_first_message(errors)}")
    connection = _field(_field(document, "data", dict), "promotions", dict)
    info = _field(connection, "pageInfo", dict)
    has_next = _field(info, "hasNextPage", bool)
    cursor = info.get("endCursor")
    if cursor is not None and not (isinstance(cursor, str) and 0 < len(cursor) <= _MAX_CURSOR):
        raise PromotionsError("pageInfo.endCursor is not a cursor")
    if has_next and cursor is None:
        raise PromotionsError("pageInfo says there is a next page but gives no endCursor")
    edges = _field(connection, "edges", list)
    if len(edges) > PAGE_SIZE:
        raise PromotionsError(f"a page holds {len(edges)} promotions, more than the {PAGE_SIZE} asked for")
    return PromotionsPage(tuple(_promotion(edge) for edge in edges), has_next, cursor)


def _promotion(edge: Any) -> Promotion:
    if not isinstance(edge, dict):
        raise PromotionsError("an edge is not an object")
    node = _field(edge, "node", dict)
    identifier = _field(node, "id", str)
    name = _field(node, "name", str)
    if not 0 < len(identifier) <= _MAX_ID:
        raise PromotionsError("a promotion's id is empty or too long")
    try:
        start = parse_time(_field(node, "startDate", str), "a promotion's startDate")
        raw_end = node.get("endDate")
        end = None if raw_end is None else parse_time(raw_end, "a promotion's endDate")
    except CalendarError as error:
        raise PromotionsError(str(error)) from error
    return Promotion(identifier, name, start, end)


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise PromotionsError(
            f"the promotions response's {name} is {type(value).__name__}, not {kind.__name__}: "
            "the shop's schema may have changed"
        )
    return value


def _first_message(errors: Any) -> str:
    first = errors[0] if isinstance(errors, list) and errors else errors
    message = first.get("message") if isinstance(first, dict) else first
    return printable(str(message), 300)


def printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, control characters (line breaks, escapes) as spaces:
    what the shop's API chose to say is shown, never interpreted by a terminal or a log."""
    return "".join(" " if unicodedata.category(c).startswith("C") else c for c in text[:limit])


def event_name(promotion_name: str, start: int, taken: Iterable[str] = ()) -> str:
    """A calendar name for a promotion: its name in ASCII letters, digits and '-', then its
    start day (`black-friday-20261127`); `promotion-...` where nothing of the name is
    ASCII; `-2`, `-3` ... where the name is `taken` already."""
    ascii_name = unicodedata.normalize("NFKD", promotion_name[:200]).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:_SLUG_LENGTH].strip("-")
    base = f"{slug or 'promotion'}-{datetime.fromtimestamp(start, UTC):%Y%m%d}"
    used = set(taken)
    name, number = base, 1
    while name in used:
        number += 1
        name = f"{base}-{number}"
    return name


@dataclass(frozen=True)
class Proposal:
    """An upcoming promotion as the event it would be: accepted only by the operator."""

    name: str
    start: int
    end: int
    multiplier: float | None
    """Suggested by a past event's outcome (None: no past event suggested one)."""
    multiplier_from: str | None
    """The past event that suggested it."""
    promotion: str
    """The promotion's own name, cut and printable."""
    promotion_id: str

    def __post_init__(self) -> None:
        # The event's own checks (name, dates, length, multiplier); a capacity of 1 stands
        # for the size the operator has yet to choose.
        PlannedEvent(
            self.name,
            self.start,
            self.end,
            multiplier=self.multiplier,
            capacity=1 if self.multiplier is None else None,
        )
        if not isinstance(self.promotion, str) or len(self.promotion) > MAX_LABEL:
            raise CalendarError(f"proposal {self.name!r}: its promotion name is not a short string")
        if not isinstance(self.promotion_id, str) or not 0 < len(self.promotion_id) <= _MAX_ID:
            raise CalendarError(f"proposal {self.name!r}: its promotion id is not a short string")
        if self.multiplier_from is not None and not (
            isinstance(self.multiplier_from, str) and len(self.multiplier_from) <= MAX_LABEL
        ):
            raise CalendarError(f"proposal {self.name!r}: multiplier_from is not a name")
        # The past event that suggested a multiplier is written only beside it (`to_json`):
        # one without the other would read back as another proposal.
        if self.multiplier is None and self.multiplier_from is not None:
            raise CalendarError(f"proposal {self.name!r}: multiplier_from names no multiplier's source")

    def as_event(self, multiplier: float | None = None, capacity: int | None = None) -> PlannedEvent:
        """The event the operator accepts: the given size, else the suggested multiplier."""
        if multiplier is None and capacity is None:
            if self.multiplier is None:
                raise CalendarError(
                    f"proposal {self.name!r} has no suggested multiplier (no past event measured one): "
                    "give --multiplier or --capacity"
                )
            multiplier = self.multiplier
        return PlannedEvent(self.name, self.start, self.end, multiplier=multiplier, capacity=capacity)

    def describe(self) -> str:
        size = (
            f"x{self.multiplier:g} normal load (suggested by {self.multiplier_from})"
            if self.multiplier is not None
            else "no multiplier suggested yet"
        )
        return f"{self.name}: {_iso(self.start)} to {_iso(self.end)}, {size}; promotion {self.promotion!r}"

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "promotion": self.promotion,
            "promotion_id": self.promotion_id,
        }
        if self.multiplier is not None:
            document["multiplier"] = self.multiplier
            document["multiplier_from"] = self.multiplier_from
        return document

    @classmethod
    def from_json(cls, raw: Any) -> Proposal:
        raw = object_of_fields(raw, _PROPOSAL_KEYS, "a proposal")
        name = raw.get("name")
        if not isinstance(name, str):
            raise CalendarError(f"a proposal's name {str(name)[:70]!r} is not a string")
        return cls(
            name=name,
            start=parse_time(raw.get("start"), f"proposal {name!r}: start"),
            end=parse_time(raw.get("end"), f"proposal {name!r}: end"),
            multiplier=raw.get("multiplier"),
            multiplier_from=raw.get("multiplier_from"),
            promotion=raw.get("promotion"),  # checked in __post_init__
            promotion_id=raw.get("promotion_id"),
        )


@dataclass(frozen=True)
class Proposals:
    written_at: int
    proposals: tuple[Proposal, ...] = ()
    skipped: tuple[str, ...] = ()
    """Upcoming promotions that cannot be an event, each with why."""

    def __post_init__(self) -> None:
        if len(self.proposals) > MAX_PROPOSALS or len(self.skipped) > MAX_PROPOSALS:
            raise CalendarError(f"more than {MAX_PROPOSALS} proposals or skipped promotions")
        names = [proposal.name for proposal in self.proposals]
        if len(set(names)) != len(names):
            raise CalendarError("a proposal name appears more than once")
        if not all(isinstance(reason, str) and len(reason) <= 2 * MAX_LABEL for reason in self.skipped):
            raise CalendarError("a skipped promotion's reason is not a short string")

    def named(self, name: str) -> Proposal:
        for proposal in self.proposals:
            if proposal.name == name:
                return proposal
        raise CalendarError(f"no proposal named {name!r}: list them with `events proposals`")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PROPOSALS_FORMAT,
            "written_at": _iso(self.written_at),
            "proposals": [proposal.to_json() for proposal in self.proposals],
            "skipped": list(self.skipped),
        }

    @classmethod
    def parse(cls, raw: bytes | str) -> Proposals:
        """Bounded in size and nesting before parsing, then checked field by field."""
        try:
            document = parse_json(raw, MAX_PROPOSALS_BYTES, "proposals", MAX_PROPOSALS_DEPTH)
        except ValueError as error:
            raise CalendarError(f"the proposals are unreadable: {error}") from error
        if not isinstance(document, dict) or set(document) != _PROPOSALS_FIELDS:
            raise CalendarError(f"the proposals object does not hold exactly {sorted(_PROPOSALS_FIELDS)}")
        format_ = document["format"]
        if isinstance(format_, bool) or format_ != PROPOSALS_FORMAT:
            raise CalendarError(f"proposals format {str(format_)[:20]!r} is not {PROPOSALS_FORMAT}")
        proposals, skipped = document["proposals"], document["skipped"]
        if not isinstance(proposals, list) or not isinstance(skipped, list):
            raise CalendarError("the proposals' proposals or skipped is not a list")
        if len(proposals) > MAX_PROPOSALS or len(skipped) > MAX_PROPOSALS:
            raise CalendarError(f"more than {MAX_PROPOSALS} proposals or skipped promotions")
        return cls(
            written_at=parse_time(document["written_at"], "proposals written_at"),
            proposals=tuple(Proposal.from_json(proposal) for proposal in proposals),
            skipped=tuple(skipped),
        )


def learned_multiplier(event_outcomes: Iterable[dict[str, Any]]) -> tuple[float, str] | None:
    """The multiplier the most recently ended past event suggests, with its name (None:
    no ended event raised the load), from retrain's `event_outcomes` records."""
    suggested = [
        (str(outcome["end"]), float(outcome["suggested_multiplier"]), str(outcome["name"]))
        for outcome in event_outcomes
        if isinstance(outcome.get("suggested_multiplier"), int | float)
        and math.isfinite(outcome["suggested_multiplier"])
    ]
    if not suggested:
        return None
    _, multiplier, name = max(suggested)
    return multiplier, name


def propose(promotions: Iterable[Promotion], now: int, learned: tuple[float, str] | None) -> Proposals:
    """The upcoming promotions as proposals, soonest first, at most MAX_PROPOSALS; a
    promotion without an end date, longer than an event may be, already over or starting
    after the DAYS_AHEAD asked for is skipped with why."""
    proposals: list[Proposal] = []
    skipped: list[str] = []
    multiplier, source = learned if learned is not None else (None, None)
    seen: set[str] = set()
    for promotion in sorted(promotions, key=lambda p: (p.start, p.id)):
        if promotion.id in seen:
            continue  # served twice (a repeated item, a cursor that did not move): one proposal
        seen.add(promotion.id)
        label = printable(promotion.name, MAX_LABEL)
        why = ""
        if promotion.end is None:
            why = "has no end date"
        elif promotion.end <= now:
            why = "is over"
        elif promotion.start > now + DAYS_AHEAD * 86400:
            # Not an answer to the query; accepted, a start over a year ahead would make
            # predict refuse the whole calendar.
            why = f"starts after the {DAYS_AHEAD} days asked for"
        elif promotion.end - promotion.start > MAX_EVENT_DAYS * 86400:
            why = f"lasts more than {MAX_EVENT_DAYS} days (an event may not)"
        elif len(proposals) >= MAX_PROPOSALS:
            why = f"is past the first {MAX_PROPOSALS} proposals"
        if why:
            if len(skipped) < MAX_PROPOSALS:
                skipped.append(f"{label!r} {why}"[: 2 * MAX_LABEL])
            continue
        assert promotion.end is not None
        try:
            proposals.append(
                Proposal(
                    name=event_name(promotion.name, promotion.start, (p.name for p in proposals)),
                    start=promotion.start,
                    end=promotion.end,
                    multiplier=multiplier,
                    multiplier_from=source,
                    promotion=label,
                    promotion_id=promotion.id,
                )
            )
        except CalendarError as error:
            if len(skipped) < MAX_PROPOSALS:
                skipped.append(f"{label!r} cannot be an event: {error}"[: 2 * MAX_LABEL])
    return Proposals(now, tuple(proposals), tuple(skipped))


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
