"""Hostile inputs against the real retrain handler on emulated AWS, inside retrain's
memory (run by tests/fuzz/test_hostile_inputs.py through tests/fuzz/limited_run.py).

Retrain reads the champion's manifest and model object and the history backup. The
world: the integration tests' 25-day shop, the last 3 days in CloudWatch and the rest in
the backup, a small forest (10 trees, depth 4, a 10-day window) so that an example
trains in about a second, and an honest champion promoted by a first run. Properties:

1. nothing escapes but an AWS fault re-raised after RetrainErrors;
2. a corrupt champion is reported unusable (the baseline alone then judges), and each
   corrupt history day is one CorruptHistoryObjects;
3. the manifest afterwards is the one found or a model predict can serve, never a
   half-written one;
4. all of it within retrain's 1024 MB.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.local.emulator import LocalLambdaContext, create_shop, scheduled_event
from saleor_scaling.model import ModelError, ServingBounds, load_verified
from saleor_scaling.series import MetricHistory
from saleor_scaling.settings import ModelLocation
from tests.conftest import load_handler
from tests.fuzz import strategies as hs
from tests.fuzz.harness import (
    CachedMetrics,
    emulated_aws,
    limit_memory,
    memory_limited,
    object_versions,
    remove_versions_since,
)
from tests.fuzz.profiles import examples, load_profile
from tests.integration.conftest import emitted_metrics, iso
from tests.integration.test_retrain_handler import RETRAIN_AT, RetrainWorld, long_history  # noqa: F401

load_profile()

DAY = 86400
MANIFEST_KEY = "models/manifest.json"
TRAINING_WINDOW_DAYS = 10
CAPACITY_PER_INSTANCE = 1000.0


class HostileRetrainWorld:
    def __init__(self, session: Any, patch: pytest.MonkeyPatch, history: MetricHistory) -> None:
        shop = create_shop(session, desired=6, max_size=20)
        for name, value in shop.environment().items():
            patch.setenv(name, value)
        for name, value in {
            "N_ESTIMATORS": "10",
            "MAX_DEPTH": "4",
            "TRAINING_WINDOW_DAYS": str(TRAINING_WINDOW_DAYS),
            "MIN_HISTORY_DAYS": "9",
            "POWERTOOLS_SERVICE_NAME": "retrain",
        }.items():
            patch.setenv(name, value)
        self.world = RetrainWorld(session, shop, load_handler("retrain"), history)
        self.world.seed(RETRAIN_AT, cloudwatch_days=3)
        self.s3 = session.client("s3")
        self.bucket = shop.bucket
        memo: dict[tuple[int, int, int], MetricHistory] = {}
        real_build_ports = self.world.handler.build_ports

        def build_ports(settings: Any, boto_session: Any) -> Any:
            ports = real_build_ports(settings, boto_session)
            ports.metrics = CachedMetrics(ports.metrics, memo)
            return ports

        patch.setattr(self.world.handler, "build_ports", build_ports)
        first = self.invoke()
        assert first[0] is not None, first
        assert first[0]["status"] == "promoted", first
        self.honest_manifest = self.s3.get_object(Bucket=self.bucket, Key=MANIFEST_KEY)["Body"].read()
        self.archive = S3HistoryArchive(self.s3, self.bucket, f"history/{shop.group_name}")
        self.honest_days = {
            day: self.s3.get_object(Bucket=self.bucket, Key=self.archive.key_for(day))["Body"].read()
            for day in self.archive.stored_days()
        }
        self.honest_versions = object_versions(self.s3, self.bucket)

    def reset(self) -> None:
        """Every object as the honest first run left it (see HostileWorld.reset)."""
        remove_versions_since(self.s3, self.bucket, self.honest_versions)

    def invoke(self) -> tuple[dict[str, Any] | None, BaseException | None, dict[str, float]]:
        printed = io.StringIO()
        import contextlib

        result: dict[str, Any] | None = None
        error: BaseException | None = None
        with contextlib.redirect_stdout(printed), memory_limited():
            try:
                result = self.world.handler.lambda_handler(
                    scheduled_event(iso(RETRAIN_AT)), LocalLambdaContext("retrain")
                )
            except Exception as raised:  # judged by the properties
                error = raised
        return result, error, emitted_metrics(printed.getvalue())

    def honest_model(self) -> bytes:
        manifest = json.loads(self.honest_manifest)
        body: bytes = self.s3.get_object(
            Bucket=self.bucket, Key=manifest["model_key"], VersionId=manifest["model_version_id"]
        )["Body"].read()
        return body

    def check_served_manifest(self, found: bytes) -> None:
        """Property 3: the manifest is the one the run found, or one predict can serve."""
        now = self.s3.get_object(Bucket=self.bucket, Key=MANIFEST_KEY)["Body"].read()
        if now == found:
            return
        registry = S3ModelRegistry(self.s3, ModelLocation(bucket=self.bucket))
        metadata = registry.current()
        try:
            load_verified(registry.model_bytes(metadata), metadata, ServingBounds(CAPACITY_PER_INSTANCE))
        except ModelError as error:
            pytest.fail(f"retrain left a manifest predict cannot serve: {error}")


@pytest.fixture(scope="module")
def retrain(long_history) -> Iterator[HostileRetrainWorld]:  # noqa: F811
    with emulated_aws() as (session, patch):
        world = HostileRetrainWorld(session, patch, long_history)
        limit_memory()  # from here on, every byte is the handler's run
        yield world


def assert_no_escape(
    world: HostileRetrainWorld, error: BaseException | None, metrics: dict[str, float]
) -> None:
    if error is None:
        return
    assert isinstance(error, world.world.handler.AWS_FAULTS), (
        f"{type(error).__name__} escaped: {error!s:.300}"
    )
    assert metrics.get("RetrainErrors") == 1


@settings(max_examples=examples(8))
@given(data=st.data())
def test_a_hostile_champion_manifest_is_reported_never_served(retrain, data):
    world = retrain
    manifest = data.draw(hs.manifests(json.loads(world.honest_manifest)), label="manifest")
    world.reset()
    world.s3.put_object(Bucket=world.bucket, Key=MANIFEST_KEY, Body=manifest.body)
    result, error, metrics = world.invoke()
    assert_no_escape(world, error, metrics)
    if result is not None and manifest.refuse:
        assert result["champion"] == {"usable": False, "error": result["champion"]["error"]}, result[
            "champion"
        ]
    world.check_served_manifest(manifest.body)


@settings(max_examples=examples(8))
@given(data=st.data())
def test_a_hostile_champion_model_is_reported_within_retrains_memory(retrain, data):
    world = retrain
    model = data.draw(hs.model_objects(world.honest_model()), label="model object")
    world.reset()
    import hashlib

    version = world.s3.put_object(Bucket=world.bucket, Key="models/model.npz", Body=model.body).get(
        "VersionId", ""
    )
    manifest = {
        **json.loads(world.honest_manifest),
        "model_version_id": "" if version == "null" else version,
        "sha256": hashlib.sha256(model.body).hexdigest(),
        "size_bytes": len(model.body),
    }
    body = json.dumps(manifest).encode()
    world.s3.put_object(Bucket=world.bucket, Key=MANIFEST_KEY, Body=body)
    result, error, metrics = world.invoke()
    assert_no_escape(world, error, metrics)
    if result is not None and model.refuse:
        assert result["champion"]["usable"] is False, result["champion"]
    world.check_served_manifest(body)


@settings(max_examples=examples(8))
@given(data=st.data())
def test_corrupt_history_days_are_counted_and_never_crash_retrain(retrain, data):
    world = retrain
    end = RETRAIN_AT - RETRAIN_AT % 300 - 300
    first = end - TRAINING_WINDOW_DAYS * DAY
    days = [day for day in world.honest_days if first - first % DAY + DAY <= day < end - 3 * DAY]
    chosen = data.draw(st.lists(st.sampled_from(days), min_size=1, max_size=3, unique=True), label="days")
    world.reset()
    for day in chosen:
        body = data.draw(hs.corrupt_days(world.honest_days[day]), label=iso(day))
        world.s3.put_object(Bucket=world.bucket, Key=world.archive.key_for(day), Body=body.body)
    result, error, metrics = world.invoke()
    assert_no_escape(world, error, metrics)
    assert metrics.get("CorruptHistoryObjects") == len(chosen), (result or {}).get("history")
