"""The predict handler end to end against emulated AWS: each outcome and each fault."""

from __future__ import annotations

import json
import math

import pytest
from botocore.exceptions import ClientError

from saleor_scaling.adapters.autoscaling import GroupNotFoundError
from tests.conftest import REPO_ROOT
from tests.integration.conftest import NOW, emitted_metrics, iso


def test_scales_out_ahead_of_rising_load(world, capsys):
    queue = world.subscribe_queue()
    result = world.invoke()

    assert result["status"] == "scaled"
    decision = result["decision"]
    assert decision["action"] == "scale-out"
    assert world.desired() == decision["target"] > 2
    # The capacity set now covers the load that actually arrived at the target time.
    target_step = (NOW - NOW % 300) + 2 * 300
    actual_demand = float(world.history.demand_per_minute()[(target_step - world.history.start) // 300])
    assert decision["target"] >= math.ceil(actual_demand / 1000.0)
    assert result["forecast"]["target_time"] == iso(target_step)

    notices = world.notices(queue)
    assert len(notices) == 1
    assert "scale-out" in notices[0]["Subject"]
    assert json.loads(notices[0]["Message"])["decision"]["target"] == decision["target"]

    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["ScalingActions"] == 1
    assert "FallbackUsed" not in metrics  # published only by a run that falls back
    assert metrics["RecommendedCapacity"] == decision["target"]
    # The group's capacity is AWS/AutoScaling's (GroupDesiredCapacity), not ours to publish.
    assert not {"AppliedCapacity", "DesiredCapacity", "InServiceCapacity", "HeadroomFactor"} & set(metrics)
    assert metrics["PredictedCapacity"] == pytest.approx(result["forecast"]["capacity_upper"], rel=1e-3)


def test_scale_out_raises_the_floor_so_target_tracking_cannot_undo_it(world):
    result = world.invoke()
    target = result["decision"]["target"]
    described = world.describe()
    assert described["MinSize"] == result["decision"]["floor"] == target
    assert described["DesiredCapacity"] == target
    tags = {tag["Key"]: tag["Value"] for tag in described["Tags"]}
    # The lease: the floor predict holds, confirmed, the operator's MinSize, its expiry
    # (30 minutes after the slot) and the slot that acted.
    slot = NOW - NOW % 300
    assert tags["saleor-predictive-scaling:lease"] == (
        f"v1 floor={target} prior={target} base=1 until={slot + 1800} slot={slot}"
    )
    assert result["group"]["min"] == 1


def test_scale_in_lowers_the_floor_with_the_capacity(oversized_world):
    world = oversized_world
    world.invoke()  # first run: floor raised to the held capacity
    result = world.invoke(world.advance(NOW + 300))
    assert result["decision"]["action"] == "scale-in"
    assert world.desired() == 13  # one instance per run
    # The floor is what predictive needs, not the capacity of the moment: target tracking
    # may remove the excess faster, never below what the forecast needs.
    assert (
        world.describe()["MinSize"] == result["decision"]["floor"] == result["decision"]["recommended"] < 13
    )


def test_switching_back_to_forecast_only_releases_the_floor(world, monkeypatch):
    world.invoke()
    assert world.describe()["MinSize"] > 1
    monkeypatch.setenv("SCALING_MODE", "forecast-only")
    world.handler.reset_dependencies()
    result = world.invoke(world.advance(NOW + 300))
    described = world.describe()
    assert result["floor_released"] is True
    assert described["MinSize"] == 1  # the operator's value again
    assert described["DesiredCapacity"] > 1  # no instance removed by the release


def test_decision_log_line_explains_everything(world, caplog):
    # The handler's logger was bound to stdout when first imported, so read the record itself.
    caplog.set_level("INFO", logger="predict")
    world.invoke()
    decision_records = [record for record in caplog.records if hasattr(record, "decision")]
    assert len(decision_records) == 1
    record = decision_records[0].decision
    json.dumps(record)  # the log line must be serialisable as is
    for key in ("inputs", "group", "forecast", "reactive_floor", "decision", "model"):
        assert key in record, key
    assert record["decision"]["explanation"].startswith("scale-out: set desired")


def test_forecast_only_mode_never_changes_capacity(world, monkeypatch):
    monkeypatch.setenv("SCALING_MODE", "forecast-only")
    world.handler.reset_dependencies()
    result = world.invoke()
    assert result["status"] == "decided"
    assert result["decision"]["action"] == "scale-out"
    assert result["decision"]["applied"] is False
    assert world.desired() == 2


def test_event_can_downgrade_to_forecast_only(world):
    result = world.invoke(mode="forecast-only")
    assert result["mode"] == "forecast-only"
    assert world.desired() == 2


def test_event_cannot_upgrade_a_forecast_only_deployment(world, monkeypatch):
    monkeypatch.setenv("SCALING_MODE", "forecast-only")
    world.handler.reset_dependencies()
    result = world.invoke(mode="forecast-and-scale")
    assert result["mode"] == "forecast-only"
    assert world.desired() == 2


def test_same_event_twice_acts_once(oversized_world):
    world = oversized_world  # far above need: the policy scales in one step per run
    first = world.invoke()
    assert first["status"] == "scaled"
    assert world.desired() == 14
    second = world.invoke()
    assert second["status"] == "duplicate"
    assert world.desired() == 14


def test_scale_in_is_gradual_and_stabilized(oversized_world):
    world = oversized_world
    targets = []
    for k in range(3):
        result = world.invoke(world.advance(NOW + k * 300))
        targets.append(world.desired())
        assert result["decision"]["action"] == "scale-in"
    assert targets == [14, 13, 12]


def test_never_sets_more_than_max_size(world):
    world.session.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=world.shop.group_name, MaxSize=3
    )
    result = world.invoke()
    assert world.desired() == 3
    assert any("MaxSize 3" in clamp for clamp in result["decision"]["clamps"])


def test_no_model_is_a_safe_no_op(world, capsys):
    world.session.client("s3").delete_object(Bucket=world.shop.bucket, Key="models/manifest.json")
    result = world.invoke()
    assert result["status"] == "fallback"
    assert "no model manifest" in result["reason"]
    assert world.desired() == 2
    assert emitted_metrics(capsys.readouterr().out)["FallbackUsed"] == 1


def test_tampered_model_is_refused(world):
    metadata = world.registry().current()
    forged = metadata.to_json().replace(metadata.sha256, "0" * 64)
    world.session.client("s3").put_object(Bucket=world.shop.bucket, Key="models/manifest.json", Body=forged)
    result = world.invoke()
    assert result["status"] == "fallback"
    assert "sha256" in result["reason"]
    assert world.desired() == 2


def test_corrupt_manifest_is_refused(world):
    world.session.client("s3").put_object(Bucket=world.shop.bucket, Key="models/manifest.json", Body=b"{oops")
    result = world.invoke()
    assert result["status"] == "fallback"
    assert world.desired() == 2


def test_missing_metrics_are_a_safe_no_op(world):
    # An hour after the history ends: CloudWatch has nothing for the anchor bucket.
    result = world.invoke(iso(NOW + 26 * 3600))
    assert result["status"] == "fallback"
    assert "metrics missing or stale" in result["reason"]
    assert world.desired() == 2


def test_nan_metric_values_are_dropped_not_trusted(world):
    cloudwatch = world.session.client("cloudwatch")
    with pytest.raises(ClientError):
        # AWS refuses NaN values outright; the adapter also drops non-finite points.
        cloudwatch.put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[{"MetricName": "RequestCount", "Value": float("nan")}],
        )


def test_missing_group_is_a_clear_error_that_scales_nothing(world, monkeypatch, capsys):
    monkeypatch.setenv("AUTO_SCALING_GROUP_NAME", "no-such-group")
    world.handler.reset_dependencies()
    with pytest.raises(GroupNotFoundError, match="no-such-group"):
        world.invoke()
    assert world.desired() == 2
    assert emitted_metrics(capsys.readouterr().out)["PredictErrors"] == 1


def test_throttling_scales_nothing(world, monkeypatch, capsys):
    _, ports = world.handler.dependencies()

    def throttled(**_: object) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "GetMetricData")

    monkeypatch.setattr(ports.metrics._client, "get_metric_data", throttled)
    with pytest.raises(ClientError, match="Rate exceeded"):
        world.invoke()
    assert world.desired() == 2
    assert emitted_metrics(capsys.readouterr().out)["PredictErrors"] == 1


def test_failed_scaling_call_is_not_retried_into_a_second_action(world, monkeypatch):
    # One attempt per event: the decision is recorded before acting, so Lambda's retry of a
    # half-done run cannot act twice; the next scheduled run decides afresh.
    _, ports = world.handler.dependencies()
    original = ports.group._client.update_auto_scaling_group

    def fail_once(**kwargs: object) -> None:
        raise ClientError(
            {"Error": {"Code": "ScalingActivityInProgress", "Message": "busy"}}, "UpdateAutoScalingGroup"
        )

    monkeypatch.setattr(ports.group._client, "update_auto_scaling_group", fail_once)
    with pytest.raises(ClientError):
        world.invoke()
    monkeypatch.setattr(ports.group._client, "update_auto_scaling_group", original)
    assert world.invoke()["status"] == "duplicate"  # Lambda's retry of the same event
    assert world.desired() == 2
    assert world.invoke(world.advance(NOW + 300))["status"] == "scaled"


def test_malformed_event_is_rejected_and_scales_nothing(world, capsys):
    event = json.loads((REPO_ROOT / "events" / "malformed.json").read_text())
    from saleor_scaling.local.emulator import LocalLambdaContext

    with pytest.raises(ValueError, match="no 'time'"):
        world.handler.lambda_handler(event, LocalLambdaContext("predict"))
    assert world.desired() == 2
    assert emitted_metrics(capsys.readouterr().out)["InvalidEvents"] == 1


def test_model_is_cached_across_warm_invocations(world, monkeypatch):
    world.invoke()
    _, ports = world.handler.dependencies()
    assert len(ports.model_cache) == 1

    def no_download(metadata: object) -> bytes:
        raise AssertionError("model downloaded again while warm")

    monkeypatch.setattr(ports.models, "model_bytes", no_download)
    assert world.invoke(iso(NOW + 300))["status"] in {"scaled", "decided"}


def test_new_model_version_is_picked_up(world, trained_model):
    world.invoke()
    _, ports = world.handler.dependencies()
    first_key = next(iter(ports.model_cache))
    blob, metadata = trained_model
    world.registry().publish(blob, metadata)
    world.invoke(iso(NOW + 300))
    assert next(iter(ports.model_cache)) != first_key


def test_forecast_error_is_published_once_the_target_time_is_observed(world, capsys):
    world.invoke()
    capsys.readouterr()
    # Four steps later the anchor bucket is the first run's target bucket.
    result = world.invoke(world.advance(NOW + 4 * 300))
    assert result["forecast_error"] is not None
    metrics = emitted_metrics(capsys.readouterr().out)
    # In the decision log line, where the dashboard's Logs Insights widget reads it; a
    # metric would be billed every hour.
    assert not {"ForecastError", "ForecastAbsoluteError"} & set(metrics)
    assert abs(result["forecast_error"]) < 2.0  # instances
