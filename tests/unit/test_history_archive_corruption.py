"""A history object in S3 is input we did not write ourselves the moment anyone else can
write the bucket: every shape that is not a day as `S3HistoryArchive.write` leaves it, and
every object too big to be one, is a corrupt day (missing data, listed, counted), never an
exception that stops predict or retrain, and never a decompression that fills the Lambda's
memory."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from typing import Any

import boto3
import numpy as np
import pytest

from saleor_scaling.adapters.history_archive import (
    MAX_COMPRESSED_BYTES,
    MAX_DOCUMENT_BYTES,
    CorruptArchiveError,
    S3HistoryArchive,
    _encode,
)
from saleor_scaling.series import Metric
from tests.conftest import synthetic_history

MONDAY = 1_700_438_400  # 2023-11-20 00:00 UTC
DAY = 86400
BUCKET = "history-bucket"
PREFIX = "history/saleor-api"
STEPS = DAY // 300
BAD_DAY = MONDAY + DAY
"""The day each case breaks, between two good ones."""


@pytest.fixture
def s3(aws: boto3.session.Session) -> Any:
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def archive(s3: Any) -> S3HistoryArchive:
    return S3HistoryArchive(s3, BUCKET, PREFIX)


def written_document() -> bytes:
    """A day exactly as `S3HistoryArchive.write` encodes it, before gzip."""
    return _encode(synthetic_history(MONDAY, 3).window(BAD_DAY, BAD_DAY + DAY)).encode()


def good_document() -> dict[str, Any]:
    """The written day, decoded: each bad case below breaks one thing in it."""
    document: dict[str, Any] = json.loads(written_document())
    return document


def with_series(**changes: Any) -> dict[str, Any]:
    document = good_document()
    document["series"].update(changes)
    return document


def with_value(metric: Metric, value: Any, index: int = 10) -> dict[str, Any]:
    document = good_document()
    document["series"][metric.value][index] = value
    return document


def with_field(name: str, value: Any) -> dict[str, Any]:
    document = good_document()
    document[name] = value
    return document


BAD_DOCUMENTS: dict[str, bytes] = {
    "a JSON list": b"[1, 2, 3]",
    "a JSON string": b'"history"',
    "a JSON number": b"42",
    "JSON null": b"null",
    "JSON true": b"true",
    "series is a list": json.dumps(with_field("series", [1, 2])).encode(),
    "series is null": json.dumps(with_field("series", None)).encode(),
    "no requests series": json.dumps(
        {**good_document(), "series": {"cpu": good_document()["series"]["cpu"]}}
    ).encode(),
    "a series is a dict": json.dumps(with_series(cpu={"0": 1.0})).encode(),
    "a series is a string": json.dumps(with_series(requests="1,2,3")).encode(),
    "a series is a number": json.dumps(with_series(desired=3)).encode(),
    "a series is too short": json.dumps(with_series(cpu=[1.0] * (STEPS - 1))).encode(),
    "a series is too long": json.dumps(with_series(requests=[1.0] * (STEPS + 1))).encode(),
    "a value is a string": json.dumps(with_value(Metric.REQUESTS, "12")).encode(),
    "a value is a bool": json.dumps(with_value(Metric.CPU, True)).encode(),
    "a value is a nested list": json.dumps(with_value(Metric.REQUESTS, [1.0])).encode(),
    "a value is an object": json.dumps(with_value(Metric.IN_SERVICE, {"v": 2})).encode(),
    "a value is NaN": json.dumps(with_value(Metric.REQUESTS, float("nan"))).encode(),
    "a value is Infinity": json.dumps(with_value(Metric.CPU, float("inf"))).encode(),
    "a value overflows to infinity": json.dumps(with_value(Metric.REQUESTS, 12345.0))
    .replace("12345.0", "1e999")
    .encode(),
    "a value is a 400-digit integer": json.dumps(with_value(Metric.REQUESTS, 10**400)).encode(),
    "start is a string": json.dumps(with_field("start", str(MONDAY))).encode(),
    "start is a float": json.dumps(with_field("start", float(MONDAY))).encode(),
    "start is another day": json.dumps(with_field("start", MONDAY)).encode(),
    "format is true": json.dumps(with_field("format", True)).encode(),
    "step is a string": json.dumps(with_field("step", "300")).encode(),
    "deeply nested arrays": b"[" * 200_000 + b"]" * 200_000,
    "not UTF-8": b'{"format": 1, "\xff\xfe": 2}',
}


def put(s3: Any, key: str, body: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_a_good_day_reads_back(s3):
    store = archive(s3)
    history = synthetic_history(MONDAY, 1)
    store.write(history)
    read = store.read(MONDAY, MONDAY + DAY)
    assert np.allclose(read[Metric.REQUESTS], history[Metric.REQUESTS], atol=1e-6)
    assert store.corrupt_days == []


def test_a_day_backed_up_before_a_series_existed_reads_it_as_missing(s3):
    document = good_document()
    del document["series"][Metric.BUSIEST_MINUTE.value]
    store = archive(s3)
    put(s3, store.key_for(BAD_DAY), gzip.compress(json.dumps(document).encode()))
    read = store.read(BAD_DAY, BAD_DAY + DAY)
    assert np.isnan(read[Metric.BUSIEST_MINUTE]).all()
    assert np.isfinite(read[Metric.REQUESTS]).any()
    assert store.corrupt_days == []


@pytest.mark.parametrize("raw", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_a_document_of_the_wrong_shape_is_a_corrupt_day(s3, raw):
    store = archive(s3)
    key = store.key_for(BAD_DAY)
    store.write(synthetic_history(MONDAY, 3))  # good neighbours on either side
    put(s3, key, gzip.compress(raw))

    read = store.read(MONDAY, MONDAY + 3 * DAY)  # predict's and retrain's path: never raises

    requests = read[Metric.REQUESTS]
    assert np.isnan(requests[STEPS : 2 * STEPS]).all()  # the bad day is missing data
    assert np.isfinite(requests[:STEPS]).all()
    assert np.isfinite(requests[2 * STEPS :]).all()
    assert store.corrupt_days == [key]
    with pytest.raises(CorruptArchiveError):
        store._read_day(BAD_DAY)  # the one error the callers expect, and only it
    assert store.corrupt_days == [key]  # listed once however often it is read


def test_writing_over_a_corrupt_day_replaces_it_with_good_data(s3):
    store = archive(s3)
    put(s3, store.key_for(MONDAY), gzip.compress(b"[1, 2]"))
    store.write(synthetic_history(MONDAY, 1))
    assert np.isfinite(archive(s3).read(MONDAY, MONDAY + DAY)[Metric.REQUESTS]).all()


def test_truncated_and_non_gzip_objects_are_corrupt_days(s3):
    store = archive(s3)
    whole = gzip.compress(written_document())
    put(s3, store.key_for(MONDAY), whole[: len(whole) // 2])
    put(s3, store.key_for(MONDAY + DAY), b"not gzip at all")
    read = store.read(MONDAY, MONDAY + 2 * DAY)
    assert np.isnan(read[Metric.REQUESTS]).all()
    assert store.corrupt_days == [store.key_for(MONDAY), store.key_for(MONDAY + DAY)]


def test_the_document_bound_is_generous_for_the_largest_real_day():
    """Every value at its longest JSON spelling still fits well inside the bound."""
    longest = json.dumps(-2.2250738585072014e-308)
    assert len(longest) <= 25
    document = good_document()
    for metric in Metric:
        document["series"][metric.value] = [-2.2250738585072014e-308] * STEPS
    assert len(json.dumps(document, separators=(",", ":"))) * 10 < MAX_DOCUMENT_BYTES


def gzip_bomb(inflated_bytes: int, chunk: bytes = b" " * (1 << 20)) -> bytes:
    """gzip of `inflated_bytes` spaces, built a chunk at a time so this test stays small."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [deflater.compress(chunk) for _ in range(inflated_bytes // len(chunk))]
    parts.append(deflater.flush())
    return b"".join(parts)


def test_a_gzip_bomb_is_refused_without_inflating_it(s3):
    bomb = gzip_bomb(300 << 20)  # 300 MiB of spaces: valid JSON whitespace, then nothing
    assert len(bomb) < MAX_COMPRESSED_BYTES  # it passes the compressed-size bound
    store = archive(s3)
    put(s3, store.key_for(MONDAY), bomb)

    tracemalloc.start()
    try:
        read = store.read(MONDAY, MONDAY + DAY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert np.isnan(read[Metric.REQUESTS]).all()
    assert store.corrupt_days == [store.key_for(MONDAY)]
    # The compressed body (about 300 KB) and the bounded output buffer, not 300 MiB.
    assert peak < MAX_DOCUMENT_BYTES + 2 * len(bomb) + (4 << 20), f"peak {peak / 2**20:.1f} MiB"
    print(f"gzip bomb of {len(bomb)} bytes read with a peak of {peak / 2**20:.2f} MiB traced")


def test_a_valid_document_padded_past_the_bound_is_refused(s3):
    """The bound holds for a document that would parse: padding is whitespace JSON allows."""
    raw = written_document()
    padded = raw[:-1] + b" " * MAX_DOCUMENT_BYTES + raw[-1:]
    assert json.loads(padded)["start"] == BAD_DAY
    store = archive(s3)
    put(s3, store.key_for(BAD_DAY), gzip.compress(padded))
    assert np.isnan(store.read(BAD_DAY, BAD_DAY + DAY)[Metric.REQUESTS]).all()
    assert store.corrupt_days == [store.key_for(BAD_DAY)]


def test_an_oversized_object_is_refused_before_its_body_is_read(s3, monkeypatch):
    store = archive(s3)
    put(s3, store.key_for(MONDAY), b"\x1f\x8b" + b"\0" * MAX_COMPRESSED_BYTES)
    real_get = s3.get_object
    bodies_read: list[int | None] = []

    def get_object(**kwargs: Any) -> Any:
        response = real_get(**kwargs)
        real_read = response["Body"].read

        def read(amount: int | None = None) -> bytes:
            bodies_read.append(amount)
            return bytes(real_read(amount))

        response["Body"].read = read
        return response

    monkeypatch.setattr(s3, "get_object", get_object)
    assert np.isnan(store.read(MONDAY, MONDAY + DAY)[Metric.REQUESTS]).all()
    assert store.corrupt_days == [store.key_for(MONDAY)]
    assert bodies_read == []  # ContentLength alone refused it


def test_a_body_longer_than_its_content_length_claims_is_still_bounded(s3, monkeypatch):
    """Whatever ContentLength says, no more than the bound is read from the stream."""
    store = archive(s3)
    put(s3, store.key_for(MONDAY), b"\x1f\x8b" + b"\0" * MAX_COMPRESSED_BYTES)
    real_get = s3.get_object

    def get_object(**kwargs: Any) -> Any:
        response = real_get(**kwargs)
        response["ContentLength"] = 100
        return response

    monkeypatch.setattr(s3, "get_object", get_object)
    assert np.isnan(store.read(MONDAY, MONDAY + DAY)[Metric.REQUESTS]).all()
    assert store.corrupt_days == [store.key_for(MONDAY)]
