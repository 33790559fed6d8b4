"""S3: predict's decision state, one small JSON object written with conditional writes.

Each run reads the object with its ETag and writes it back only if the object is still
that version (`If-Match`), or still absent (`If-None-Match: *`). Two runs of the same
slot (a retry racing the original, a duplicate delivery) can both read it, but only the
first write lands; the second gets 412 Precondition Failed and does not act.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from saleor_scaling.adapters.s3_store import is_missing
from saleor_scaling.bounded import parse_json, read_body
from saleor_scaling.state import StateConflictError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

MAX_STATE_BYTES = 1_000_000
"""The state holds at most a few thousand short entries (`state.MAX_ENTRIES` of each
list, under 30 bytes each: about 120 KB), far below this; a larger object is corrupt and
is not read into memory (ContentLength is checked before the body is read, and the body
is read no further than this whatever ContentLength says)."""
CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


@dataclass(frozen=True)
class StoredState:
    document: Any
    """The parsed JSON (any type: `state.parse_state` judges it), or None if unreadable."""
    version: str | None
    """The object's ETag, or None where there is no object yet."""
    unreadable: str = ""
    """Why the object could not be parsed at all (not UTF-8 JSON, too large, nested too
    deep): predict then resets the state."""


class S3DecisionState:
    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key

    def load(self) -> StoredState:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key)
        except ClientError as error:
            if is_missing(error):
                return StoredState({}, None)
            raise
        etag = str(response["ETag"])
        try:
            return StoredState(
                parse_json(
                    read_body(response, MAX_STATE_BYTES, "state object"), MAX_STATE_BYTES, "state object"
                ),
                etag,
            )
        except Exception as error:  # not UTF-8, not JSON, too large or too deep: all unreadable
            # The object's earlier versions stay in the versioned bucket for inspection.
            return StoredState(None, etag, f"state object is unreadable: {type(error).__name__}: {error}")

    def save(self, document: dict[str, Any], version: str | None) -> None:
        condition: dict[str, str] = {"IfMatch": version} if version else {"IfNoneMatch": "*"}
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=self._key,
                Body=json.dumps(document, sort_keys=True).encode(),
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "") in CONFLICT_CODES:
                raise StateConflictError(
                    f"s3://{self._bucket}/{self._key} changed since it was read: another run wrote it"
                ) from error
            raise
