"""The MinSize floor predict raises is a lease, recorded on the Auto Scaling group itself.

Predict raises the group's MinSize as a floor under target tracking, so that target
tracking's scale-in cannot undo a scale-out made ahead of the load. A floor that had to be
*released* would stay wherever a run failed to release it (a persistent AWS fault, a
corrupt object, a crash at import), and the shop would pay for its peak. So the floor is a
lease: it carries an expiry, a successful decision renews it, and once it has expired the
first run of predict that starts, or else the watchdog function, gives MinSize back to the
operator's value, before it reads anything else (the model, the metrics, its S3 state).

One tag on the group, `saleor-predictive-scaling:lease`, holds the whole record:

    v1 floor=8 prior=7 base=1 until=1765080000 slot=1765078200

- `floor`: the MinSize predict set, or is about to set. The tag is written *before*
  MinSize is changed: a failed tag write leaves MinSize alone, so the record is never
  older than the group.
- `prior`: the MinSize predict held before a change, so that an UpdateAutoScalingGroup
  call that failed after its tag write is still recognised as predict's floor. Once the
  call has returned, the record is confirmed (`prior` = `floor`, a second write; the next
  run confirms it if that write fails), so that a value predict held earlier is not
  predict's any more.
- `base`: the operator's MinSize, never undercut and given back when the lease ends.
- `until`: the expiry (epoch seconds).
- `slot`: the last schedule slot that acted on the group: a redelivered event of that slot
  is a duplicate even when predict's S3 state was lost or reset.

Ownership is decided by the record alone, never by predict's S3 state: a MinSize equal to
`floor` (or, while a change is unconfirmed, `prior`) is predict's; any other value was set
by someone else (an operator raising it for a sale, a scheduled action) and becomes the
operator's MinSize. A value can only be told apart from predict's by being different from
it: an operator "setting" MinSize to exactly the value predict holds changes nothing on
the group, and the floor stays predict's (leased, expiring); the one other ambiguity is
an operator writing predict's previous value in the moment between a change and its
confirmation. Deleting the tag hands MinSize to the operator outright.

This module is plain Python with no dependency beyond the standard library: the watchdog
function ships it without the layers, so that it still runs when predict cannot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

LEASE_TAG = "saleor-predictive-scaling:lease"
LEGACY_BASE_TAG = "saleor-predictive-scaling:base-min-size"
LEGACY_APPLIED_TAG = "saleor-predictive-scaling:applied-min-size"
PROJECT_TAG_KEYS = (LEASE_TAG, LEGACY_BASE_TAG, LEGACY_APPLIED_TAG)
"""Every tag key the project writes or removes; the functions' IAM policies allow no other
(template.yaml). The two legacy keys are the records before the lease (read once, then
removed)."""

CLOCK_TOLERANCE_SECONDS = 60
"""EVENT_MAX_EARLY_SECONDS: no run acts on a slot more than this ahead of its own clock,
so no real record holds a slot, or an expiry past a renewal, later than this."""

MAX_TAG_VALUE_LENGTH = 256
"""Auto Scaling's limit on a tag value; a longer one is refused before it is parsed."""

_SIZE = r"(0|[1-9][0-9]{0,5})"
_TIME = r"(0|[1-9][0-9]{0,11})"
_PATTERN = re.compile(rf"v1 floor={_SIZE} prior={_SIZE} base={_SIZE} until={_TIME} slot={_TIME}", re.ASCII)
_LEGACY_SIZE = re.compile(r"[0-9]{1,6}", re.ASCII)


class LeaseError(ValueError):
    """A lease tag that is not one predict could have written."""


@dataclass(frozen=True)
class Lease:
    floor: int
    prior: int
    base: int
    until: int
    slot: int

    def encode(self) -> str:
        return (
            f"v1 floor={self.floor} prior={self.prior} base={self.base} until={self.until} slot={self.slot}"
        )

    @property
    def pending(self) -> bool:
        """Written before its MinSize change, not yet confirmed after it."""
        return self.prior != self.floor

    def confirmed(self, min_size: int) -> Lease:
        """The record once the group's MinSize is known to be `min_size` (the change
        landed, or it did not): the previous value is no longer predict's."""
        return replace(self, floor=min_size, prior=min_size)

    def owns(self, min_size: int) -> bool:
        return min_size in (self.floor, self.prior)

    def expired(self, now: float) -> bool:
        return now >= self.until


def decode(text: str, max_size: int) -> Lease:
    """The lease a tag holds; `LeaseError` for anything predict could not have written."""
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise LeaseError(f"lease tag of {len(text)} characters (a lease is under 100)")
    match = _PATTERN.fullmatch(text.strip())
    if match is None:
        raise LeaseError(f"lease tag {text[:80]!r} is not 'v1 floor=N prior=N base=N until=T slot=T'")
    floor, prior, base, until, slot = (int(group) for group in match.groups())
    if not base <= min(floor, prior) or max(floor, prior) > max_size:
        raise LeaseError(
            f"lease tag {text!r}: base {base} above the floor, or a floor above MaxSize {max_size}"
        )
    return Lease(floor, prior, base, until, slot)


@dataclass(frozen=True)
class Ownership:
    """Who set the group's MinSize, judged from the lease tag alone."""

    min_size: int
    """MinSize now."""
    base: int | None
    """The operator's MinSize (None: unknown, because the tag cannot be trusted; MinSize is
    then left alone)."""
    lease: Lease | None
    """The lease predict holds on MinSize now (None: MinSize is the operator's)."""
    adopted: bool = False
    """MinSize was set outside predict: `base` is that new value, to be recorded."""
    note: str = ""
    """What was found, for the decision log; starts with 'warning:' when a tag is unusable."""
    slot: int = 0
    """The last slot the record says acted on the group (kept when MinSize is adopted)."""

    @property
    def managed(self) -> bool:
        return self.base is not None

    def due(self, now: float, grace_seconds: float = 0.0) -> bool:
        """True when a lease above the operator's MinSize has expired (by `grace_seconds`
        at least): MinSize must go back to `base`."""
        return (
            self.lease is not None
            and self.base is not None
            and self.min_size > self.base
            and now >= self.lease.until + grace_seconds
        )

    def release(self) -> Lease:
        """The record to write before MinSize goes back to the operator's: the floor is the
        base, the MinSize held now stays recognisable as predict's (`prior`) until the
        UpdateAutoScalingGroup call has landed."""
        assert self.lease is not None
        assert self.base is not None
        return Lease(self.base, self.min_size, self.base, 0, self.lease.slot)


def judge(
    min_size: int,
    max_size: int,
    lease_tag: str | None,
    now: float,
    lease_seconds: int,
    legacy_base_tag: str | None = None,
    legacy_applied_tag: str | None = None,
) -> Ownership:
    """Who set MinSize now. `now` is the judge's own clock; `lease_seconds` the longest
    lease predict writes (a record expiring later cannot be predict's)."""
    if lease_tag is None:
        return _judge_legacy(min_size, max_size, legacy_base_tag, legacy_applied_tag)
    try:
        lease = decode(lease_tag, max_size)
    except LeaseError as error:
        return Ownership(
            min_size,
            None,
            None,
            note=f"warning: {error}; MinSize {min_size} is left alone (delete the tag to hand it over)",
        )
    notes: list[str] = []
    if lease.slot > now + CLOCK_TOLERANCE_SECONDS:
        # A slot in the future would make every run until then a duplicate.
        notes.append(f"warning: lease slot {lease.slot} is after the clock; ignored")
        lease = replace(lease, slot=0)
    if lease.until > now + lease_seconds + CLOCK_TOLERANCE_SECONDS:
        notes.append(
            f"warning: lease expiry {lease.until} is later than any renewal predict writes; "
            "treated as expired"
        )
        lease = replace(lease, until=0)
    if lease.owns(min_size):
        return Ownership(min_size, lease.base, lease, note="; ".join(notes), slot=lease.slot)
    notes.append(
        f"MinSize {min_size} was set outside predict (its lease holds {lease.floor}): "
        "adopted as the operator's MinSize"
    )
    return Ownership(min_size, min_size, None, adopted=True, note="; ".join(notes), slot=lease.slot)


def _judge_legacy(min_size: int, max_size: int, base_tag: str | None, applied_tag: str | None) -> Ownership:
    """Groups scaled before the lease existed: the floor recorded by the old tags is a lease
    that has already expired, so it is given back on the first run."""
    if base_tag is None:
        return Ownership(min_size, min_size, None)
    base = _legacy_size(base_tag, max_size)
    if base is None:
        return Ownership(
            min_size,
            None,
            None,
            note=(
                f"warning: tag base-min-size {base_tag!r} is not a size in [0, MaxSize {max_size}]; "
                f"ignored, MinSize {min_size} is left alone"
            ),
        )
    applied = _legacy_size(applied_tag, max_size) if applied_tag is not None else None
    ours = min_size in (base, applied) or (applied is None and min_size > base)
    if ours and min_size >= base:
        return Ownership(min_size, base, Lease(min_size, min_size, base, 0, 0))
    return Ownership(
        min_size,
        min_size,
        None,
        adopted=True,
        note=f"MinSize {min_size} was set outside predict: adopted as the operator's MinSize",
    )


def _legacy_size(raw: str | None, max_size: int) -> int | None:
    if raw is None or not _LEGACY_SIZE.fullmatch(raw.strip()):
        return None
    value = int(raw.strip())
    return value if value <= max_size else None
