"""List the model versions the nightly job promoted, and roll back to an earlier one.

    python -m saleor_scaling.registry_cli list --bucket BUCKET
    python -m saleor_scaling.registry_cli rollback --bucket BUCKET [--to MANIFEST_VERSION_ID]
        [--capacity-per-instance N]

The manifest is the pointer predict follows; every promotion wrote a new version of it in
the versioned bucket. Rolling back re-publishes an earlier manifest version as the newest
(nothing is deleted, so a rollback can itself be rolled back). The manifest and the model
it names are read and validated as predict reads and validates them (bounded in size and
nesting, every field within bounds, the arrays a servable forest; nothing is unpickled,
so an old or forged manifest cannot run code on this machine) before the pointer moves,
and predict picks it up within five minutes. A version that cannot be read is listed as
unreadable with the reason, skipped by a plain rollback, and refused as a `--to` target.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.model import ModelError, ModelMetadata, ServingBounds, load_verified
from saleor_scaling.settings import ModelLocation

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


@dataclass(frozen=True)
class ManifestVersion:
    version_id: str
    last_modified: str
    is_latest: bool
    metadata: ModelMetadata | None
    """None where that manifest version cannot be read or is out of bounds."""
    error: str = ""
    """Why `metadata` is None."""


class RollbackError(Exception):
    pass


MAX_REASON_LENGTH = 300
"""An unreadable version's reason is one line of the listing: a forged manifest chooses
the text an error quotes, so it is cut and its line breaks removed."""


def manifest_versions(client: S3Client, location: ModelLocation) -> list[ManifestVersion]:
    """Newest first. Each version is read as predict reads the manifest: one that cannot
    be (too large, too deep, not JSON, out of bounds) is listed with why."""
    registry = S3ModelRegistry(client, location)
    versions: list[ManifestVersion] = []
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.manifest_key):
        for entry in page.get("Versions", []):
            if entry["Key"] != location.manifest_key:
                continue
            error = ""
            try:
                metadata: ModelMetadata | None = registry.current(entry["VersionId"])
            except ModelError as refused:
                metadata, error = None, " ".join(str(refused).split())[:MAX_REASON_LENGTH]
            versions.append(
                ManifestVersion(
                    entry["VersionId"], entry["LastModified"].isoformat(), entry["IsLatest"], metadata, error
                )
            )
    versions.sort(key=lambda version: version.last_modified, reverse=True)
    return versions


DEFAULT_CAPACITY_PER_INSTANCE = 1000.0
"""The template's CapacityPerInstance default."""


def rollback(
    client: S3Client,
    location: ModelLocation,
    to_version: str | None = None,
    capacity_per_instance: float = DEFAULT_CAPACITY_PER_INSTANCE,
) -> ManifestVersion:
    """Make an earlier manifest version current again (by default the newest readable one
    before the current: unreadable versions are skipped); refuses a target that is
    unreadable, or whose model is missing or fails validation against the stack's
    CAPACITY_PER_INSTANCE."""
    versions = manifest_versions(client, location)
    if to_version is None:
        earlier = [version for version in versions[1:] if version.metadata is not None]
        if not earlier:
            skipped = len(versions[1:])
            raise RollbackError(
                "there is no earlier model version to roll back to"
                + (f" ({skipped} earlier version(s) unreadable)" if skipped else "")
            )
        target = earlier[0]
    else:
        matches = [version for version in versions if version.version_id == to_version]
        if not matches:
            raise RollbackError(f"manifest version {to_version} does not exist")
        target = matches[0]
    if target.metadata is None:
        raise RollbackError(f"manifest version {target.version_id} is unreadable: {target.error}")
    try:
        load_verified(
            S3ModelRegistry(client, location).model_bytes(target.metadata),
            target.metadata,
            ServingBounds(capacity_per_instance),
        )
    except ModelError as error:
        raise RollbackError(f"model of manifest version {target.version_id} cannot serve: {error}") from error
    client.copy_object(
        Bucket=location.bucket,
        Key=location.manifest_key,
        CopySource={"Bucket": location.bucket, "Key": location.manifest_key, "VersionId": target.version_id},
    )
    return target


def main(argv: list[str] | None = None, client: S3Client | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["list", "rollback"])
    parser.add_argument("--bucket", required=True, help="the stack's ModelBucketName output")
    parser.add_argument("--manifest-key", default="models/manifest.json")
    parser.add_argument(
        "--to", dest="to_version", help="manifest version id (default: the one before the current)"
    )
    parser.add_argument(
        "--capacity-per-instance",
        type=float,
        default=DEFAULT_CAPACITY_PER_INSTANCE,
        help="the stack's CapacityPerInstance parameter: the model's capacity must lie within x/÷ 4 of it",
    )
    args = parser.parse_args(argv)
    s3 = client or boto3.client("s3")
    location = ModelLocation(bucket=args.bucket, manifest_key=args.manifest_key)
    if args.command == "list":
        for version in manifest_versions(s3, location):
            meta = version.metadata
            detail = (
                f"model {meta.model_version_id} trained {meta.trained_at} "
                f"on {meta.rows} rows to {meta.training_end}, "
                f"held-out MAE {meta.scores.get('holdout_mae', float('nan')):.1f}"
                if meta
                else f"unreadable: {version.error}"
            )
            print(
                f"{'*' if version.is_latest else ' '} {version.version_id}  {version.last_modified}  {detail}"
            )
        return 0
    try:
        if not args.capacity_per_instance > 0:
            raise RollbackError("--capacity-per-instance must be > 0")
        target = rollback(s3, location, args.to_version, args.capacity_per_instance)
    except RollbackError as error:
        print(f"rollback refused: {error}", file=sys.stderr)
        return 2
    trained = target.metadata.trained_at if target.metadata else "?"
    print(f"manifest now points at the model of manifest version {target.version_id} (trained {trained})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
