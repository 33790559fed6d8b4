"""Everything read from the bucket is bounded before it is parsed, and every way a model,
manifest or state can be unreadable is the documented error, never another exception: a
file that is two formats at once, JSON nested deeper than the parser's stack, a manifest
padded or listed past what this code writes, an object longer than it claims."""

from __future__ import annotations

import gzip
import json
from typing import Any

import boto3
import numpy as np
import pytest

from saleor_scaling.adapters.history_archive import CorruptArchiveError, S3HistoryArchive
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.adapters.state_store import S3DecisionState
from saleor_scaling.model import (
    MAX_MANIFEST_BYTES,
    ModelIntegrityError,
    ModelMetadata,
    ServingBounds,
    load_verified,
)
from saleor_scaling.settings import ModelLocation
from tests.forged_artifacts import (
    forest_arrays,
    forest_npz,
    metadata_for,
    nested_json,
    npy_and_zip,
    npy_declaring,
    npz,
    npz_with_raw_member,
)

BOUNDS = ServingBounds(1000.0)
BUCKET = "model-bucket"
STATE_KEY = "state/saleor-api.json"


@pytest.fixture(scope="module")
def small_forest() -> bytes:
    return forest_npz([3, 2, 4])


@pytest.fixture(scope="module")
def manifest(small_forest: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(metadata_for(small_forest).to_json())
    return document


def _load(blob: bytes) -> Any:
    return load_verified(blob, metadata_for(blob), BOUNDS)


# The model object ---------------------------------------------------------------------


def test_the_forged_forest_of_these_tests_is_itself_servable(small_forest):
    """The control: the helpers build forests the loader accepts."""
    model = _load(small_forest)
    assert model.ensemble.tree_count == 3
    assert model.ensemble.node_count == 15 + 7 + 31


def test_a_file_that_is_both_an_npy_and_a_zip_is_an_integrity_error(small_forest):
    """np.load sees the `.npy` magic and returns an array, not an archive (a TypeError on
    today's `with`); zipfile sees the npz behind it."""
    with pytest.raises(ModelIntegrityError, match="npz"):
        _load(npy_and_zip(small_forest))


def test_an_npy_header_declaring_more_nodes_than_the_bound_is_refused_unread():
    arrays = forest_arrays([3])
    raw = npy_declaring((100_000_000_000,), "<f8", b"\0" * 64)
    with pytest.raises(ModelIntegrityError, match=r"threshold.* declares 100000000000"):
        _load(npz_with_raw_member(arrays, "threshold", raw))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (((15, 1), "<f8"), "one-dimensional"),
        (((15,), ">f8"), "dtype"),
        (((15,), "<f4"), "dtype"),
        (((16,), "<f8"), "declares 16"),  # one node more than the data holds
    ],
)
def test_an_npy_header_that_disagrees_with_the_forest_is_refused(header, expected):
    arrays = forest_arrays([3])
    shape, dtype = header
    raw = npy_declaring(shape, dtype, np.zeros(15).tobytes())
    with pytest.raises(ModelIntegrityError, match=expected):
        _load(npz_with_raw_member(arrays, "threshold", raw))


def test_bytes_after_an_array_are_refused():
    arrays = forest_arrays([3])
    raw = npy_declaring((15,), "<f8", np.zeros(15).tobytes() + b"\0" * 8)
    with pytest.raises(ModelIntegrityError, match="threshold"):
        _load(npz_with_raw_member(arrays, "threshold", raw))


def test_an_encrypted_member_is_an_integrity_error(small_forest):
    """zipfile raises RuntimeError (no password) for a member flagged encrypted."""
    flagged = bytearray(small_forest)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = flagged.find(signature)
        while start >= 0:
            flagged[start + flag_offset] |= 0x1
            start = flagged.find(signature, start + 1)
    with pytest.raises(ModelIntegrityError, match="npz"):
        _load(bytes(flagged))


def test_a_zip_with_data_before_it_is_refused(small_forest):
    """What this code writes starts with a zip entry; a prefix is a polyglot."""
    with pytest.raises(ModelIntegrityError, match="npz"):
        _load(b"\0" * 16 + small_forest)


def test_a_node_count_that_disagrees_with_the_arrays_is_refused_before_they_are_read():
    arrays = forest_arrays([3])
    arrays["node_count"] = np.array([131_071] * 30, dtype=np.int32)
    with pytest.raises(ModelIntegrityError, match="node_count"):
        _load(npz(arrays))


# The manifest ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "refusal"), [(100_000, "byte bound"), (20_000, "nested deeper than 8 levels")]
)
def test_a_manifest_nested_thousands_deep_is_an_integrity_error(depth, refusal):
    """json.loads raises RecursionError on both; the size or the depth is refused before
    parsing."""
    with pytest.raises(ModelIntegrityError, match=refusal):
        ModelMetadata.from_json(nested_json(depth))


def test_a_manifest_field_nested_past_the_depth_bound_is_refused(manifest):
    text = json.dumps(manifest).replace('"scores": {}', '"scores": ' + "[" * 40 + "]" * 40)
    with pytest.raises(ModelIntegrityError, match="nested deeper than"):
        ModelMetadata.from_json(text)


def test_brackets_inside_strings_do_not_count_as_depth(manifest):
    document = dict(manifest, trained_at='[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"{{{{{{{{{{{{{{{{{{{{')
    assert ModelMetadata.from_json(json.dumps(document)).trained_at.startswith("[[[")


def test_a_manifest_padded_past_its_bound_is_refused(manifest):
    """Whitespace JSON allows: it would parse, and it is not a manifest this code writes."""
    text = json.dumps(manifest)
    padded = text[:-1] + " " * MAX_MANIFEST_BYTES + "}"
    assert json.loads(padded) == manifest
    with pytest.raises(ModelIntegrityError, match=f"over the {MAX_MANIFEST_BYTES} byte bound"):
        ModelMetadata.from_json(padded)


def _bands(count: int) -> dict[str, Any]:
    return {
        "basis": "busiest minute",
        "rows": 200,
        "band_edges": [float(edge) for edge in range(1, count)],
        "factors": [[1.0] * 50 for _ in range(count)],
    }


def test_a_manifest_with_200000_headroom_bands_is_refused(manifest):
    """The probe's 52 MB manifest: refused on its size before it is parsed."""
    text = json.dumps(dict(manifest, headroom=_bands(200_000)))
    assert len(text) > 50_000_000
    with pytest.raises(ModelIntegrityError, match="byte bound"):
        ModelMetadata.from_json(text)


def test_more_headroom_bands_than_training_fits_are_refused(manifest):
    """Five bands fit in the size bound; the nightly job fits at most four."""
    with pytest.raises(ModelIntegrityError, match=r"manifest field headroom.* at most 4 bands"):
        ModelMetadata.from_json(json.dumps(dict(manifest, headroom=_bands(5))))
    assert ModelMetadata.from_json(json.dumps(dict(manifest, headroom=_bands(4)))).headroom


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scores", {f"score_{k}": 1.0 for k in range(1000)}),
        ("library_versions", {f"library_{k}": "1.0" for k in range(1000)}),
        ("library_versions", {"numpy": "1" * 300}),
        ("scores", {"x" * 300: 1.0}),
    ],
)
def test_every_manifest_list_and_map_is_bounded(manifest, field, value):
    with pytest.raises(ModelIntegrityError, match=f"manifest field {field}"):
        ModelMetadata.from_json(json.dumps(dict(manifest, **{field: value})))


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",  # not UTF-8
        b'{"rows": ' + b"9" * 5000 + b"}",  # past int's digit limit
        b"\x00",
        b"",
    ],
)
def test_undecodable_manifests_are_integrity_errors(raw):
    with pytest.raises(ModelIntegrityError):
        ModelMetadata.from_json(raw)


# Bounded reads from S3 ------------------------------------------------------------------


@pytest.fixture
def s3(aws: boto3.session.Session) -> Any:
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def _count_reads(s3: Any, monkeypatch: pytest.MonkeyPatch, content_length: int | None = None) -> list[Any]:
    """Record every read of a body, optionally with a false ContentLength."""
    real_get = s3.get_object
    reads: list[Any] = []

    def get_object(**kwargs: Any) -> Any:
        response = real_get(**kwargs)
        if content_length is not None:
            response["ContentLength"] = content_length
        real_read = response["Body"].read

        def read(amount: int | None = None) -> bytes:
            reads.append(amount)
            return bytes(real_read(amount))

        response["Body"].read = read
        return response

    monkeypatch.setattr(s3, "get_object", get_object)
    return reads


def test_a_manifest_of_150_mib_is_refused_on_its_content_length_unread(s3, monkeypatch, manifest):
    s3.put_object(Bucket=BUCKET, Key="models/manifest.json", Body=json.dumps(manifest).encode())
    reads = _count_reads(s3, monkeypatch, content_length=150 << 20)
    with pytest.raises(ModelIntegrityError, match="byte bound"):
        S3ModelRegistry(s3, ModelLocation(bucket=BUCKET)).current()
    assert reads == []


def test_a_manifest_longer_than_its_content_length_claims_is_read_no_further_than_the_bound(
    s3, monkeypatch, manifest
):
    text = json.dumps(manifest)
    s3.put_object(Bucket=BUCKET, Key="models/manifest.json", Body=(text[:-1] + " " * 200_000 + "}").encode())
    reads = _count_reads(s3, monkeypatch, content_length=100)
    with pytest.raises(ModelIntegrityError, match="byte bound"):
        S3ModelRegistry(s3, ModelLocation(bucket=BUCKET)).current()
    assert reads == [MAX_MANIFEST_BYTES + 1]


def test_a_model_object_longer_than_its_manifest_says_is_read_no_further(s3, monkeypatch, small_forest):
    s3.put_object(Bucket=BUCKET, Key="models/model.npz", Body=small_forest + b"\0" * 100_000)
    metadata = metadata_for(small_forest)
    reads = _count_reads(s3, monkeypatch, content_length=len(small_forest))
    with pytest.raises(ModelIntegrityError, match="size_bytes"):
        S3ModelRegistry(s3, ModelLocation(bucket=BUCKET)).model_bytes(metadata)
    assert reads == [len(small_forest) + 1]


def test_a_model_object_whose_content_length_disagrees_is_refused_unread(s3, monkeypatch, small_forest):
    s3.put_object(Bucket=BUCKET, Key="models/model.npz", Body=small_forest)
    reads = _count_reads(s3, monkeypatch, content_length=3_000_000_000)
    with pytest.raises(ModelIntegrityError, match="size_bytes"):
        S3ModelRegistry(s3, ModelLocation(bucket=BUCKET)).model_bytes(metadata_for(small_forest))
    assert reads == []


def test_a_state_nested_100000_deep_is_unreadable_not_a_recursion_error(s3):
    s3.put_object(Bucket=BUCKET, Key=STATE_KEY, Body=nested_json(100_000))
    stored = S3DecisionState(s3, BUCKET, STATE_KEY).load()
    assert stored.document is None
    assert "nested deeper than" in stored.unreadable
    assert stored.version  # reset with If-Match on this version


def test_a_state_longer_than_its_content_length_claims_is_read_no_further_than_the_bound(s3, monkeypatch):
    from saleor_scaling.adapters.state_store import MAX_STATE_BYTES

    s3.put_object(Bucket=BUCKET, Key=STATE_KEY, Body=b"{" + b" " * (MAX_STATE_BYTES + 10) + b"}")
    reads = _count_reads(s3, monkeypatch, content_length=2)
    stored = S3DecisionState(s3, BUCKET, STATE_KEY).load()
    assert stored.document is None
    assert "byte bound" in stored.unreadable
    assert reads == [MAX_STATE_BYTES + 1]


@pytest.mark.parametrize("body", [b"\xff\xfe", b'{"format": ' + b"9" * 5000 + b"}", b""])
def test_every_undecodable_state_is_unreadable(s3, body):
    s3.put_object(Bucket=BUCKET, Key=STATE_KEY, Body=body)
    stored = S3DecisionState(s3, BUCKET, STATE_KEY).load()
    assert stored.document is None
    assert stored.unreadable


def test_a_history_day_nested_past_the_depth_bound_is_a_corrupt_day_naming_it(s3):
    """History already caught RecursionError; it now shares the depth bound, refused unparsed."""
    archive = S3HistoryArchive(s3, BUCKET, "history/saleor-api")
    day = 1_700_438_400
    s3.put_object(Bucket=BUCKET, Key=archive.key_for(day), Body=gzip.compress(nested_json(50_000)))
    with pytest.raises(CorruptArchiveError, match="nested deeper than 8 levels"):
        archive._read_day(day)
    assert archive.corrupt_days == [archive.key_for(day)]
