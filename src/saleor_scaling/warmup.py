"""The warm-up notice: a new shop has no model yet, and that is not a fault.

Until a first model exists predict cannot forecast. On a young shop that is expected (the
first model needs `retrain_service.MIN_DAILY_HISTORY_DAYS` of history), on an established
one it is a fault worth a page (a deleted manifest, a retrain that keeps failing). Predict
tells the two apart by one object only retrain writes, next to the manifest: each retrain
that refuses for too little history and finds no model serving writes this notice, saying
how much history there is and when the first model is expected. Predict, finding no
manifest, reports "warming up" (its own status and metric, no fallback alarm) only while a
notice is valid.

A notice expires by itself: it is valid for one nightly run plus a margin
(`MAX_VALIDITY_SECONDS`), so only the retrain that runs every night keeps a shop warming
up. A promotion deletes it; if that delete fails, the notice still expires within a day,
and it is read only when there is no manifest at all. So a manifest deleted from an
established shop is a fallback (and the alarm) at most a day after the last refusal, never
a warm-up that lasts. Anything malformed, or with times predict cannot trust, is no notice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from saleor_scaling.bounded import parse_json

WARM_UP_VERSION = 1
MAX_WARM_UP_BYTES = 4096
MAX_VALIDITY_SECONDS = 26 * 3600
"""A notice outlives the night it was written by two hours: the next nightly retrain
renews it (or deletes it by promoting), so a shop is warming up only while retrain runs."""
MAX_EXPECTED_SECONDS = 400 * 86400
CLOCK_TOLERANCE_SECONDS = 60
MAX_REASON_CHARS = 600
_FIELDS = frozenset(
    {"version", "written_at", "until", "history_days", "needed_days", "first_model_after", "reason"}
)


class WarmUpError(ValueError):
    """The object is not a notice this code writes."""


@dataclass(frozen=True)
class WarmUp:
    written_at: int
    """When retrain wrote it (its run's clock, epoch seconds)."""
    until: int
    """After this it is no notice: predict's missing model is a fallback again."""
    history_days: float
    """Days from the first to the last known RequestCount when it was written."""
    needed_days: float
    """Days of history the first model needs."""
    first_model_after: int
    """When the history will span `needed_days`: the first nightly retrain after this can
    promote the first model (if it beats the same time yesterday)."""
    reason: str
    """Retrain's words for why it did not train."""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": WARM_UP_VERSION,
                "written_at": self.written_at,
                "until": self.until,
                "history_days": round(self.history_days, 3),
                "needed_days": self.needed_days,
                "first_model_after": self.first_model_after,
                "reason": self.reason[:MAX_REASON_CHARS],
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> WarmUp:
        try:
            data = parse_json(raw, MAX_WARM_UP_BYTES, "warm-up notice")
        except ValueError as error:
            raise WarmUpError(f"warm-up notice is unreadable: {error}") from error
        if not isinstance(data, dict) or set(data) != _FIELDS:
            raise WarmUpError("warm-up notice does not hold exactly the fields this code writes")
        if data["version"] != WARM_UP_VERSION or isinstance(data["version"], bool):
            raise WarmUpError(f"warm-up notice version {data['version']!r} != {WARM_UP_VERSION}")
        for name in ("written_at", "until", "first_model_after"):
            if not isinstance(data[name], int) or isinstance(data[name], bool) or data[name] < 0:
                raise WarmUpError(f"warm-up notice field {name} must be epoch seconds")
        for name in ("history_days", "needed_days"):
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise WarmUpError(f"warm-up notice field {name} must be a number")
            if not 0 <= value <= 400:
                raise WarmUpError(f"warm-up notice field {name} {value!r} is not in [0, 400] days")
        if not isinstance(data["reason"], str) or len(data["reason"]) > MAX_REASON_CHARS:
            raise WarmUpError("warm-up notice field reason must be a short string")
        return cls(
            written_at=data["written_at"],
            until=data["until"],
            history_days=float(data["history_days"]),
            needed_days=float(data["needed_days"]),
            first_model_after=data["first_model_after"],
            reason=data["reason"],
        )

    def invalid_at(self, now: float) -> str | None:
        """Why this notice does not hold at `now` (None: it holds). A notice from the
        future, one valid for longer than a night, or one that expects the first model
        absurdly late was not written by this code's retrain and counts for nothing."""
        if self.written_at > now + CLOCK_TOLERANCE_SECONDS:
            return f"the warm-up notice was written in the future ({self.written_at})"
        if self.until - self.written_at > MAX_VALIDITY_SECONDS or self.until < self.written_at:
            return "the warm-up notice claims a validity longer than one nightly run"
        if not self.written_at - 86400 <= self.first_model_after <= self.written_at + MAX_EXPECTED_SECONDS:
            return "the warm-up notice expects the first model at an impossible time"
        if now >= self.until:
            return f"the warm-up notice expired at {self.until}: the retrain that wrote it ran over a day ago"
        return None

    def hours_to_first_model(self, now: float) -> float:
        """Hours until the history spans what the first model needs (0 once it does: the
        next nightly retrain can promote it)."""
        return max(0.0, (self.first_model_after - now) / 3600.0)
