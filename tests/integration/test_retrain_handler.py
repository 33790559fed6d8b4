"""The retrain handler end to end against emulated AWS: from put metrics to a promoted
model that predict then serves, and each way retraining must refuse or keep the champion."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import botocore.client
import numpy as np
import pytest
from botocore.exceptions import ClientError

from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.local.emulator import (
    EmulatedShop,
    LocalLambdaContext,
    create_shop,
    publish_history,
    scheduled_event,
    set_function_clock,
)
from saleor_scaling.model import ModelNotFoundError
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ModelLocation
from saleor_scaling.training import TrainingConfig, build_model
from tests.conftest import REPO_ROOT, load_handler, synthetic_history
from tests.integration.conftest import MONDAY, emitted_metrics, iso

DAYS = 24
RETRAIN_AT = MONDAY + DAYS * 86400 + 3 * 3600 + 15 * 60  # 03:15 UTC, the nightly slot
IN_CLOUDWATCH_DAYS = 13  # PutMetricData refuses older timestamps; older days are in the backup


@pytest.fixture(scope="module")
def long_history() -> MetricHistory:
    return synthetic_history(MONDAY, DAYS + 1, peak_per_minute=12_000.0, seed=3)


@dataclass
class RetrainWorld:
    session: boto3.session.Session
    shop: EmulatedShop
    handler: ModuleType
    history: MetricHistory
    published_until: int = 0

    def seed(self, now: int, cloudwatch_days: int = IN_CLOUDWATCH_DAYS, backup: bool = True) -> None:
        """Metrics up to `now` as AWS holds them: recent days in CloudWatch, the rest in
        the S3 backup that earlier nights wrote."""
        end = now - now % 300
        cutoff = end - cloudwatch_days * 86400
        publish_history(
            self.session, self.shop, self.history.window(max(cutoff, self.history.start), end), now
        )
        self.published_until = end
        if backup and cutoff > self.history.start:
            self.archive().write(self.history.window(self.history.start, cutoff))

    def invoke(self, now: int = RETRAIN_AT) -> dict[str, Any]:
        result: dict[str, Any] = self.handler.lambda_handler(
            scheduled_event(iso(now)), LocalLambdaContext("retrain")
        )
        return result

    def promoted_tonight(self) -> dict[str, Any]:
        """The nightly run on the seeded history, which must promote its model."""
        self.seed(RETRAIN_AT)
        result = self.invoke()
        assert result["status"] == "promoted", result["reason"]
        return result

    def predict(self, now: int) -> dict[str, Any]:
        """The predict handler at `now`, after the metrics the shop emitted since the last
        publication, its event delivered 3 seconds late by its own clock."""
        until = now - now % 300
        if until > self.published_until:
            publish_history(self.session, self.shop, self.history.window(self.published_until, until), now)
            self.published_until = until
        predict = load_handler("predict")
        predict.reset_dependencies()
        set_function_clock(predict, lambda: now + 3.0)
        decision: dict[str, Any] = predict.lambda_handler(
            scheduled_event(iso(now)), LocalLambdaContext("predict")
        )
        return decision

    def registry(self) -> S3ModelRegistry:
        return S3ModelRegistry(self.session.client("s3"), ModelLocation(bucket=self.shop.bucket))

    def archive(self) -> S3HistoryArchive:
        return S3HistoryArchive(
            self.session.client("s3"), self.shop.bucket, f"history/{self.shop.group_name}"
        )

    def manifest_versions(self) -> int:
        versions = self.session.client("s3").list_object_versions(
            Bucket=self.shop.bucket, Prefix="models/manifest.json"
        )
        return len(versions.get("Versions", []))


@pytest.fixture
def retrain_world(aws, monkeypatch, long_history) -> RetrainWorld:
    shop = create_shop(aws, desired=6, max_size=20)
    for name, value in shop.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("N_ESTIMATORS", "30")
    return RetrainWorld(aws, shop, load_handler("retrain"), long_history)


def test_full_retrain_promotes_a_model_that_predict_then_serves(retrain_world, capsys, monkeypatch):
    world = retrain_world
    result = world.promoted_tonight()

    assert result["champion"] is None
    scores = result["scores"]
    assert scores["challenger"]["mae"] < scores["seasonal_naive"]["mae"]
    assert result["history"]["days_fetched"] >= IN_CLOUDWATCH_DAYS
    assert result["capacity_learned"] is True
    assert result["capacity_per_instance"] == pytest.approx(1000.0, rel=0.05)

    metadata = world.registry().current()
    assert metadata.model_version_id == result["model"]["model_version_id"]
    assert metadata.horizon_steps == 4  # 10 minutes of lead time after the 10-minute-old anchor
    assert metadata.size_bytes < 10_000_000
    assert metadata.scores["holdout_mae"] == pytest.approx(scores["challenger"]["mae"], rel=1e-3)
    assert set(metadata.library_versions) >= {"scikit-learn", "numpy", "scipy"}
    # The headroom was measured on the held-out days, on the busiest minute CloudWatch
    # recorded at a 1-minute period, and the promoted model carries it.
    assert result["headroom"]["basis"] == metadata.headroom["basis"] == "busiest minute"
    assert result["headroom"]["rows"] == result["holdout_rows"]
    # Training window: no row after the retrain's own clock.
    assert metadata.training_end < iso(RETRAIN_AT).replace("Z", "+00:00")

    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["Promoted"] == 1
    assert metrics["TrainingRows"] == result["training_rows"] > 0
    assert metrics["TrainingMae"] == pytest.approx(scores["challenger"]["mae"])
    assert metrics["BaselineMae"] == pytest.approx(scores["seasonal_naive"]["mae"])
    assert metrics["TrainingDurationSeconds"] > 0
    # Counters of what did not happen are not published (each metric is billed per hour sent).
    assert not {"Refused", "CorruptHistoryObjects", "RetrainErrors", "NotificationErrors"} & set(metrics)

    # CloudWatch's days are now in the backup too: history outlives CloudWatch.
    backed_up = world.archive().read(RETRAIN_AT - 3 * 86400, RETRAIN_AT - RETRAIN_AT % 300 - 300)
    assert np.sum(~np.isnan(backed_up[Metric.REQUESTS])) > 2 * 288
    assert np.sum(~np.isnan(backed_up[Metric.BUSIEST_MINUTE])) > 2 * 288

    # Predict, later that day, loads this exact model and decides with it.
    predict_at = RETRAIN_AT + 9 * 3600
    decision = world.predict(predict_at)
    assert decision["status"] in {"scaled", "decided"}, decision["reason"]
    assert decision["model"]["model_version_id"] == metadata.model_version_id
    actual = float(world.history.demand_per_minute()[(predict_at - predict_at % 300 + 600 - MONDAY) // 300])
    assert decision["forecast"]["demand_mean_per_minute"] == pytest.approx(actual, rel=0.15)
    # Capacity is sized for the busiest minute with the model's own headroom.
    forecast = decision["forecast"]
    assert forecast["headroom_basis"] == "busiest minute"
    assert 1.0 <= forecast["headroom"] < 2.0
    assert forecast["demand_upper_per_minute"] == pytest.approx(
        forecast["demand_mean_per_minute"] * forecast["headroom"], rel=1e-3
    )


def test_a_shop_with_a_day_of_history_is_refused_and_predict_warms_up_safely(retrain_world, capsys):
    # Two days make a daily-stage model (tests/integration/test_warm_up.py); one day makes none.
    world = retrain_world
    young_at = MONDAY + 86400 + 3 * 3600
    world.seed(young_at, cloudwatch_days=2)
    result = world.invoke(young_at)

    assert result["status"] == "refused"
    assert "need" in result["reason"]
    assert "days" in result["reason"]
    with pytest.raises(ModelNotFoundError):
        world.registry().current()
    assert emitted_metrics(capsys.readouterr().out)["Refused"] == 1
    assert result["warm_up"]["first_model_after"] == iso(MONDAY + 2 * 86400)

    before = world.session.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[world.shop.group_name]
    )["AutoScalingGroups"][0]
    decision = world.predict(young_at)
    assert decision["status"] == "warming-up"
    assert "FallbackUsed" not in emitted_metrics(capsys.readouterr().out)
    group = world.session.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[world.shop.group_name]
    )["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == before["DesiredCapacity"]
    assert group["MinSize"] == before["MinSize"]


def test_better_champion_is_kept_and_the_reason_given(retrain_world, monkeypatch):
    world = retrain_world
    world.seed(RETRAIN_AT)
    # A strong champion; the challenger is crippled by configuration.
    champion_model = build_model(
        world.history.window(MONDAY, RETRAIN_AT - 86400 - RETRAIN_AT % 300),
        TrainingConfig(horizon_steps=4, n_estimators=40),
        1000.0,
    )
    champion = world.registry().publish(champion_model.ensemble.to_npz(), champion_model.metadata)
    monkeypatch.setenv("N_ESTIMATORS", "10")
    monkeypatch.setenv("MAX_DEPTH", "4")

    result = world.invoke()

    assert result["status"] == "kept"
    assert "champion" in result["reason"]
    assert result["scores"]["champion"]["mae"] < result["scores"]["challenger_vs_champion"]["mae"]
    assert world.registry().current().model_version_id == champion.model_version_id
    assert world.manifest_versions() == 1
    # The kept champion serves with its own headroom: the challenger's is not reported as served.
    assert result["headroom"] is None


def test_challenger_that_is_not_worse_replaces_the_champion(retrain_world):
    world = retrain_world
    world.seed(RETRAIN_AT)
    # Last week's champion: trained before the held-out tail, judged on days it never saw.
    old = build_model(
        world.history.window(MONDAY, RETRAIN_AT - 7 * 86400 - RETRAIN_AT % 300),
        TrainingConfig(horizon_steps=4, n_estimators=10, max_depth=5),
        1000.0,
    )
    champion = world.registry().publish(old.ensemble.to_npz(), old.metadata)
    result = world.invoke()
    assert result["status"] == "promoted", result["reason"]
    assert "champion" in result["scores"]
    assert world.registry().current().model_version_id != champion.model_version_id


def test_corrupt_backup_is_skipped_refetched_and_reported(retrain_world, capsys):
    world = retrain_world
    world.seed(RETRAIN_AT)
    s3 = world.session.client("s3")
    archive = world.archive()
    old_day = MONDAY + 2 * 86400  # only in the backup: beyond what CloudWatch holds here
    recent_day = RETRAIN_AT - RETRAIN_AT % 86400 - 5 * 86400  # CloudWatch still has it
    s3.put_object(Bucket=world.shop.bucket, Key=archive.key_for(old_day), Body=b"not gzip at all")
    s3.put_object(
        Bucket=world.shop.bucket, Key=archive.key_for(recent_day), Body=gzip.compress(b'{"format": 99}')
    )

    result = world.invoke()

    assert result["status"] == "promoted", result["reason"]
    corrupt = result["history"]["corrupt_backups"]
    assert archive.key_for(old_day) in corrupt
    assert archive.key_for(recent_day) in corrupt
    assert emitted_metrics(capsys.readouterr().out)["CorruptHistoryObjects"] == 2
    # The recent day was read again from CloudWatch and backed up anew; the old one is a
    # gap (missing data, not zero load) and its bad bytes are not overwritten.
    repaired = world.archive().read(recent_day, recent_day + 86400)
    assert np.all(np.isfinite(repaired[Metric.REQUESTS]))
    assert (
        s3.get_object(Bucket=world.shop.bucket, Key=archive.key_for(old_day))["Body"].read()
        == b"not gzip at all"
    )


def test_impossible_values_are_dropped_not_learned(retrain_world):
    world = retrain_world
    world.seed(RETRAIN_AT)
    spoiled = world.history.window(MONDAY + 3 * 86400, MONDAY + 4 * 86400)
    values = dict(spoiled.values)
    values[Metric.REQUESTS] = np.full(len(spoiled), -5.0)
    values[Metric.CPU] = np.full(len(spoiled), 250.0)
    s3 = world.session.client("s3")
    key = world.archive().key_for(MONDAY + 3 * 86400)
    s3.delete_object(Bucket=world.shop.bucket, Key=key)
    world.archive().write(MetricHistory(start=spoiled.start, values=values))

    result = world.invoke()
    assert result["history"]["impossible_values_dropped"] == 2 * 288
    assert result["status"] == "promoted"


def test_backup_is_idempotent(retrain_world):
    world = retrain_world
    world.seed(RETRAIN_AT)
    world.invoke()
    s3 = world.session.client("s3")
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=world.shop.bucket, Prefix="history/")["Contents"]]
    before = {key: s3.get_object(Bucket=world.shop.bucket, Key=key)["Body"].read() for key in keys}
    world.invoke()
    after = {key: s3.get_object(Bucket=world.shop.bucket, Key=key)["Body"].read() for key in keys}
    assert before == after
    assert len(keys) == DAYS + 1  # one object per UTC day, the retrain day's first hours included


def test_cloudwatch_fault_changes_nothing(retrain_world, monkeypatch):
    world = retrain_world
    world.seed(RETRAIN_AT)

    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def throttled(self: Any, operation: str, params: Any) -> Any:
        if operation == "GetMetricData":
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", throttled)
    with pytest.raises(ClientError):
        world.invoke()
    with pytest.raises(ModelNotFoundError):
        world.registry().current()


def test_malformed_event_is_rejected(retrain_world):
    event = json.loads((REPO_ROOT / "events" / "malformed.json").read_text())
    with pytest.raises(ValueError, match="no 'time'"):
        retrain_world.handler.lambda_handler(event, LocalLambdaContext("retrain"))
    assert world_has_no_model(retrain_world)


def world_has_no_model(world: RetrainWorld) -> bool:
    try:
        world.registry().current()
    except ModelNotFoundError:
        return True
    return False


def test_sample_event_is_a_valid_scheduled_event(retrain_world):
    event = json.loads((REPO_ROOT / "events" / "retrain.json").read_text())
    assert event["detail-type"] == "Scheduled Event"
    # The sample's night has no metrics: a clear refusal, nothing published.
    result = retrain_world.handler.lambda_handler(event, LocalLambdaContext("retrain"))
    assert result["status"] == "refused"
    assert world_has_no_model(retrain_world)


def test_retrain_reads_the_calendar_learns_from_an_ended_event_and_keeps_it_out(retrain_world, caplog):
    world = retrain_world
    world.seed(RETRAIN_AT)
    sale_start = MONDAY + 20 * 86400 + 12 * 3600  # 2023-12-10T12:00:00Z, inside the window
    calendar = {
        "format": 1,
        "events": [
            {"name": "winter-sale", "start": iso(sale_start), "end": iso(sale_start + 7200), "capacity": 9}
        ],
    }
    s3 = world.session.client("s3")
    s3.put_object(Bucket=world.shop.bucket, Key="calendar/events.json", Body=json.dumps(calendar).encode())
    result = world.invoke()
    assert result["status"] == "promoted", result["reason"]
    assert result["event_steps_kept_out"] == 24
    [outcome] = result["event_outcomes"]
    assert outcome["name"] == "winter-sale"
    assert outcome["declared"] == "winter-sale: 2023-12-10T12:00:00Z to 2023-12-10T14:00:00Z, 9 instances"
    assert (outcome["steps_observed"], outcome["steps_in_event"]) == (24, 24)
    assert "calendar_warning" not in result

    # A forged calendar: the night trains as without events and logs a warning.
    s3.put_object(Bucket=world.shop.bucket, Key="calendar/events.json", Body=b"[" * 100_000)
    caplog.set_level("INFO", logger="retrain")
    again = world.invoke(RETRAIN_AT + 86400)
    assert again["calendar_warning"].startswith("calendar ignored, trained as without events: ")
    assert "over the 65536 byte bound" in again["calendar_warning"]
    assert "event_outcomes" not in again
    logged = [record for record in caplog.records if hasattr(record, "retrain")]
    assert [record.levelname for record in logged][-1] == "WARNING"
