"""S3: the calendar of planned events, one small JSON object only the operator writes.

Predict and retrain read it (their roles may read `calendar/*` and write nothing there);
the operator's CLI edits it with conditional writes: the object is written back only if it
is still the version read (`If-Match` on its ETag), or still absent (`If-None-Match: *`),
so two operators editing at once cannot lose each other's event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from saleor_scaling.adapters.s3_store import is_missing
from saleor_scaling.adapters.state_store import CONFLICT_CODES
from saleor_scaling.bounded import BoundError, read_body
from saleor_scaling.calendar import CALENDAR_KEY, MAX_CALENDAR_BYTES, Calendar, CalendarError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


class CalendarConflictError(Exception):
    """The calendar changed since it was read: someone else edited it."""


@dataclass(frozen=True)
class StoredCalendar:
    calendar: Calendar
    version: str | None
    """The object's ETag, or None where there is no calendar yet."""


class S3Calendar:
    def __init__(self, client: S3Client, bucket: str, key: str = CALENDAR_KEY) -> None:
        self._client = client
        self._bucket = bucket
        self.key = key

    def load(self, now: int | None = None) -> StoredCalendar:
        """The calendar and its version; no object is an empty calendar. Anything that is
        not a calendar this code could have written is a CalendarError, read no further
        than MAX_CALENDAR_BYTES."""
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self.key)
        except ClientError as error:
            if is_missing(error):
                return StoredCalendar(Calendar(), None)
            raise
        etag = str(response["ETag"])
        try:
            raw = read_body(response, MAX_CALENDAR_BYTES, "calendar")
        except BoundError as error:
            raise CalendarError(f"the calendar is unreadable: {error}") from error
        return StoredCalendar(Calendar.parse(raw, now), etag)

    def events(self, now: int) -> Calendar:
        """What predict reads: the calendar alone. Malformed or unreadable (access denied,
        S3 unavailable) is a `CalendarError`: predict then decides as without events."""
        try:
            return self.load(now).calendar
        except (ClientError, BotoCoreError) as error:
            raise CalendarError(f"the calendar could not be read: {type(error).__name__}: {error}") from error

    def save(self, calendar: Calendar, version: str | None) -> None:
        condition: dict[str, str] = {"IfMatch": version} if version else {"IfNoneMatch": "*"}
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=self.key,
                Body=json.dumps(calendar.to_json(), indent=1).encode(),
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "") in CONFLICT_CODES:
                raise CalendarConflictError(
                    f"s3://{self._bucket}/{self.key} changed since it was read: someone else edited "
                    "the calendar; list it and try again"
                ) from error
            raise
