"""S3: the model registry (manifest + versioned model object)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from saleor_scaling.bounded import BoundError, read_body
from saleor_scaling.model import (
    MAX_MANIFEST_BYTES,
    MAX_MODEL_BYTES,
    ModelIntegrityError,
    ModelMetadata,
    ModelNotFoundError,
)
from saleor_scaling.settings import ModelLocation
from saleor_scaling.warmup import MAX_WARM_UP_BYTES, WarmUp, WarmUpError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NoSuchVersion", "NotFound"})


def is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code", "") in MISSING_KEY_CODES


class S3ModelRegistry:
    """The manifest is the pointer: it names one version of the model object. Writing the
    model first and the manifest last makes a promotion atomic for readers, and rolling
    back is restoring an earlier manifest version."""

    def __init__(self, client: S3Client, location: ModelLocation) -> None:
        self._client = client
        self.location = location

    def current(self, manifest_version: str | None = None) -> ModelMetadata:
        """The manifest (or one earlier version of it), read no further than
        MAX_MANIFEST_BYTES and validated field by field: anything else is a ModelError."""
        request: dict[str, str] = {"Bucket": self.location.bucket, "Key": self.location.manifest_key}
        if manifest_version:
            request["VersionId"] = manifest_version
        try:
            response = self._client.get_object(**request)  # type: ignore[arg-type]
        except ClientError as error:
            if is_missing(error):
                raise ModelNotFoundError(
                    f"no model manifest at s3://{self.location.bucket}/{self.location.manifest_key}"
                ) from error
            raise
        try:
            text = read_body(response, MAX_MANIFEST_BYTES, "model manifest")
        except BoundError as error:
            raise ModelIntegrityError(str(error)) from error
        return ModelMetadata.from_json(text)

    def model_bytes(self, metadata: ModelMetadata) -> bytes:
        """The object the manifest names, read no further than its size_bytes: an object
        that is longer, or claims to be, is refused without being read whole."""
        request: dict[str, str] = {"Bucket": self.location.bucket, "Key": metadata.model_key}
        if metadata.model_version_id:
            request["VersionId"] = metadata.model_version_id
        try:
            response = self._client.get_object(**request)  # type: ignore[arg-type]
        except ClientError as error:
            if is_missing(error):
                raise ModelIntegrityError(
                    f"manifest names {metadata.model_key} version "
                    f"{metadata.model_version_id or 'latest'}, which does not exist"
                ) from error
            raise
        limit = min(metadata.size_bytes, MAX_MODEL_BYTES)
        try:
            return read_body(response, limit, "model object")
        except BoundError as error:
            raise ModelIntegrityError(f"{error} (manifest field size_bytes)") from error

    def publish(self, blob: bytes, metadata: ModelMetadata) -> ModelMetadata:
        """Upload the model, then point the manifest at that exact version."""
        response = self._client.put_object(
            Bucket=self.location.bucket,
            Key=self.location.model_key,
            Body=blob,
            ContentType="application/octet-stream",
        )
        version_id = response.get("VersionId", "")
        published = metadata.with_artifact(
            blob, self.location.model_key, "" if version_id == "null" else version_id
        )
        self._client.put_object(
            Bucket=self.location.bucket,
            Key=self.location.manifest_key,
            Body=published.to_json().encode(),
            ContentType="application/json",
        )
        return published

    def warm_up(self) -> WarmUp | None:
        """Retrain's warm-up notice, or None where there is none. Unreadable or oversized
        is a WarmUpError: no notice, and predict says why."""
        try:
            response = self._client.get_object(Bucket=self.location.bucket, Key=self.location.warm_up_key)
        except ClientError as error:
            if is_missing(error):
                return None
            raise
        try:
            raw = read_body(response, MAX_WARM_UP_BYTES, "warm-up notice")
        except BoundError as error:
            raise WarmUpError(str(error)) from error
        return WarmUp.from_json(raw)

    def write_warm_up(self, notice: WarmUp) -> None:
        self._client.put_object(
            Bucket=self.location.bucket,
            Key=self.location.warm_up_key,
            Body=notice.to_json(),
            ContentType="application/json",
        )

    def clear_warm_up(self) -> None:
        """Deleting a missing key succeeds in S3: idempotent."""
        self._client.delete_object(Bucket=self.location.bucket, Key=self.location.warm_up_key)
