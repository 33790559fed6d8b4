"""S3 backup of the raw 5-minute series: one gzip JSON object per UTC day.

History outlives CloudWatch's retention this way, and predict reads last week's values
from here instead of pulling a week from CloudWatch every five minutes. Writes are
idempotent merges: re-backing up a day never erases a value with a later gap.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
from botocore.exceptions import ClientError

from saleor_scaling import STEP_SECONDS
from saleor_scaling.adapters.s3_store import is_missing
from saleor_scaling.bounded import parse_json, read_body
from saleor_scaling.series import FloatArray, Metric, MetricHistory

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

DAY_SECONDS = 86400
DAY_STEPS = DAY_SECONDS // STEP_SECONDS
ARCHIVE_FORMAT = 1
MAX_DOCUMENT_BYTES = 1 << 20
"""The largest day document read (1 MiB). The largest a real day can be: 7 series x 288
values x at most 25 characters (the longest float JSON spelling, "-2.2250738585072014e-308",
is 24, plus its comma) = 50,400 bytes, plus the keys and framing (under 200 bytes): about
51 KB. 1 MiB is 20 times that, room for series added later, and still nothing to a 512 MB
Lambda; anything bigger is not a day we wrote, and inflating it could be a gzip bomb."""
MAX_COMPRESSED_BYTES = 1 << 20
"""The largest object read from S3 (1 MiB): gzip never grows a document much past its size
(5 bytes per 32 KB stored block), so a day's object is at most about MAX_DOCUMENT_BYTES."""
GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's setting for a gzip header and trailer around the deflate stream."""


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

    def stored_days(self) -> list[int]:
        """The UTC day starts that have an object under the prefix, oldest first (keys that
        are not a day's `key_for` are ignored). Only the backtest's own-history source lists
        the backup; predict and retraining read the days they need by key."""
        days: set[int] = set()
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{self._prefix}/"):
            for entry in page.get("Contents", []):
                name = entry.get("Key", "")[len(self._prefix) + 1 :]
                try:
                    day = datetime.strptime(name, "%Y/%m/%d.json.gz").replace(tzinfo=UTC)
                except ValueError:
                    continue
                if self.key_for(int(day.timestamp())) == entry.get("Key"):
                    days.add(int(day.timestamp()))
        return sorted(days)

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
            # Sizes are checked before anything is read or inflated: an object that cannot
            # be a day must not cost predict its memory (512 MB) on the way to being refused.
            compressed = read_body(response, MAX_COMPRESSED_BYTES, "object")
            return _decode(_inflate(compressed), day_start)
        except (ValueError, zlib.error, RecursionError) as error:
            # Every way a day can be unreadable (not gzip, truncated, too big, not JSON,
            # nested too deep, not the document's shape) ends here: the readers treat it
            # as missing data.
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


def _inflate(compressed: bytes) -> bytes:
    """The gzip object's content, refused once it exceeds MAX_DOCUMENT_BYTES: zlib stops
    at the bound, so a bomb never inflates further than that (gzip.decompress would
    materialise all of it first). Concatenated members are read, as gzip allows."""
    inflated = bytearray()
    rest = compressed
    while True:
        inflater = zlib.decompressobj(GZIP_WBITS)
        inflated += inflater.decompress(rest, MAX_DOCUMENT_BYTES - len(inflated) + 1)
        if len(inflated) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"inflates past the {MAX_DOCUMENT_BYTES} byte bound of a day")
        if not inflater.eof:
            raise ValueError("gzip stream is truncated")
        rest = inflater.unused_data
        if not rest.strip(b"\0"):  # gzip tolerates zero padding after the last member
            return bytes(inflated)


def _decode(raw: bytes, day_start: int) -> MetricHistory:
    """The day `_encode` wrote, or ValueError: the document is checked field by field, as
    anything the bucket holds may be foreign (a list, a string, wrong types, NaN)."""
    document = parse_json(raw, MAX_DOCUMENT_BYTES, "day document")
    if not isinstance(document, Mapping):
        raise ValueError(f"document is a JSON {type(document).__name__}, not an object")
    archive_format, step, start = document.get("format"), document.get("step"), document.get("start")
    if not (_is_int(archive_format) and archive_format == ARCHIVE_FORMAT) or not (
        _is_int(step) and step == STEP_SECONDS
    ):
        raise ValueError(f"unknown archive format {archive_format!r}/{step!r}")
    if not _is_int(start) or start != day_start:
        raise ValueError(f"object starts at {start!r}, expected {day_start}")
    series = document.get("series")
    if not isinstance(series, Mapping):
        raise ValueError(f"series is a JSON {type(series).__name__}, not an object")
    if Metric.REQUESTS.value not in series:
        raise ValueError("no requests series")
    # A series added after a day was backed up (the busiest minute) reads as missing there.
    values = {
        metric: _series_values(metric, series[metric.value])
        if metric.value in series
        else np.full(DAY_STEPS, np.nan)
        for metric in Metric
    }
    return MetricHistory(start=day_start, values=values)


def _series_values(metric: Metric, raw: object) -> FloatArray:
    """One series: a list of exactly a day's steps, each a finite number or null (missing)."""
    if not isinstance(raw, list) or len(raw) != DAY_STEPS:
        size = f" of {len(raw)}" if isinstance(raw, list) else ""
        raise ValueError(f"{metric.value} is a JSON {type(raw).__name__}{size}, not {DAY_STEPS} values")
    values = np.full(DAY_STEPS, np.nan)
    for index, value in enumerate(raw):
        if value is None:
            continue
        # bool is an int to Python, never a measurement; NaN and out-of-range literals
        # (1e999 parses as inf, a 400-digit integer overflows float) are not values the
        # writer can produce.
        number = float(value) if _is_number(value) and abs(value) < _FLOAT_LIMIT else math.nan
        if not math.isfinite(number):
            raise ValueError(f"{metric.value}[{index}] is {value!r:.40}, not a finite number or null")
        values[index] = number
    return values


_FLOAT_LIMIT = 2.0**1023
"""Below float's maximum: a JSON integer this large compares without overflowing."""


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
