"""S3 backup of the raw 5-minute series: one gzip JSON object per UTC day.

History outlives CloudWatch's retention this way, and predict reads last week's values
from here instead of pulling a week from CloudWatch every five minutes. Writes are
idempotent merges: re-backing up a day never erases a value with a later gap.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from botocore.exceptions import ClientError

from saleor_scaling import STEP_SECONDS
from saleor_scaling.adapters.s3_store import is_missing
from saleor_scaling.series import Metric, MetricHistory

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

DAY_SECONDS = 86400
ARCHIVE_FORMAT = 1


class CorruptArchiveError(Exception):
    """A backup object exists but cannot be read; it is skipped, never overwritten blindly."""


class S3HistoryArchive:
    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.rstrip("/")
        self.corrupt_days: list[str] = []
        self._sealed: MutableMapping[int, MetricHistory] = {}
        """Days read once that can no longer change (kept while the container is warm)."""

    def key_for(self, day_start: int) -> str:
        day = datetime.fromtimestamp(day_start, UTC)
        return f"{self._prefix}/{day:%Y/%m/%d}.json.gz"

    def read(self, start: int, end: int, sealed_before: int | None = None) -> MetricHistory:
        """History [start, end) from the daily objects (NaN where none); days that end
        before `sealed_before` are cached."""
        result = MetricHistory.empty(start, max(0, (end - start) // STEP_SECONDS))
        for day_start in range(start - start % DAY_SECONDS, end, DAY_SECONDS):
            day = self._sealed.get(day_start)
            if day is None:
                try:
                    day = self._read_day(day_start)
                except CorruptArchiveError:
                    continue  # missing data for the reader; listed in corrupt_days
                if day is None:
                    continue
                if sealed_before is not None and day_start + DAY_SECONDS <= sealed_before:
                    self._sealed[day_start] = day
            result = result.combine(day.window(max(start, day.start), min(end, day.end)))
        return result.window(start, end)

    def write(self, history: MetricHistory) -> list[str]:
        """Merge `history` into its days' objects; returns the keys written."""
        written: list[str] = []
        first_day = history.start - history.start % DAY_SECONDS
        for day_start in range(first_day, history.end, DAY_SECONDS):
            part = history.window(day_start, day_start + DAY_SECONDS)
            if not any(np.any(~np.isnan(part[metric])) for metric in Metric):
                continue
            try:
                existing = self._read_day(day_start)
            except CorruptArchiveError:
                existing = None  # the bad version stays in the versioned bucket
            merged = existing.combine(part) if existing is not None else part
            key = self.key_for(day_start)
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=gzip.compress(_encode(merged).encode(), mtime=0),
                ContentType="application/json",
                ContentEncoding="gzip",
            )
            self._sealed.pop(day_start, None)
            written.append(key)
        return written

    def _read_day(self, day_start: int) -> MetricHistory | None:
        key = self.key_for(day_start)
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if is_missing(error):
                return None
            raise
        try:
            return _decode(gzip.decompress(response["Body"].read()), day_start)
        except (OSError, ValueError, KeyError, TypeError) as error:
            if key not in self.corrupt_days:
                self.corrupt_days.append(key)
            raise CorruptArchiveError(f"s3://{self._bucket}/{key} is unreadable: {error}") from error


def _encode(history: MetricHistory) -> str:
    return json.dumps(
        {
            "format": ARCHIVE_FORMAT,
            "start": history.start,
            "step": history.step,
            "series": {
                metric.value: [None if np.isnan(v) else round(float(v), 6) for v in history[metric]]
                for metric in Metric
            },
        },
        separators=(",", ":"),
    )


def _decode(raw: bytes, day_start: int) -> MetricHistory:
    document = json.loads(raw)
    if document.get("format") != ARCHIVE_FORMAT or document.get("step") != STEP_SECONDS:
        raise ValueError(f"unknown archive format {document.get('format')}/{document.get('step')}")
    start = int(document["start"])
    if start != day_start:
        raise ValueError(f"object starts at {start}, expected {day_start}")
    series = document["series"]
    length = len(series[Metric.REQUESTS.value])
    # A series added after a day was backed up (the busiest minute) reads as missing there.
    values = {
        metric: np.array(
            [np.nan if v is None else float(v) for v in series.get(metric.value, [None] * length)],
            dtype=np.float64,
        )
        for metric in Metric
    }
    return MetricHistory(start=start, values=values)
