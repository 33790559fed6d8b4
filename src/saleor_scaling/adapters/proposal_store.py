"""S3: the events proposed from the shop's promotions (`saleor_scaling.promotions`), one
small JSON object only retrain writes (the bucket policy denies `proposals/` to every
other principal) and the operator's CLI reads."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from saleor_scaling.adapters.s3_store import is_missing
from saleor_scaling.bounded import BoundError, read_body
from saleor_scaling.calendar import CalendarError
from saleor_scaling.promotions import MAX_PROPOSALS_BYTES, PROPOSALS_KEY, Proposals

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


class S3Proposals:
    def __init__(self, client: S3Client, bucket: str, key: str = PROPOSALS_KEY) -> None:
        self._client = client
        self._bucket = bucket
        self.key = key

    def save(self, proposals: Proposals) -> None:
        self._client.put_object(
            Bucket=self._bucket,
            Key=self.key,
            Body=json.dumps(proposals.to_json(), indent=1).encode(),
            ContentType="application/json",
        )

    def load(self) -> Proposals | None:
        """None where retrain has written none; anything it could not have written is a
        CalendarError, read no further than MAX_PROPOSALS_BYTES."""
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self.key)
        except ClientError as error:
            if is_missing(error):
                return None
            raise
        try:
            raw = read_body(response, MAX_PROPOSALS_BYTES, "proposals")
        except BoundError as error:
            raise CalendarError(f"the proposals are unreadable: {error}") from error
        return Proposals.parse(raw)
