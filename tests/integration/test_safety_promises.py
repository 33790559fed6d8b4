"""The README's safety promises, attacked through the real predict handler against
emulated AWS: an operator changing the group under predict, stale and forged events,
absurd metrics, internal errors, a failed notice, corrupt state and concurrent runs.

Each test here failed on the code before issue 11; each asserts what the group looks like
afterwards, not only what the handler said.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from saleor_scaling.adapters.state_store import S3DecisionState
from saleor_scaling.lease import LEASE_TAG, LEGACY_APPLIED_TAG, LEGACY_BASE_TAG, Lease, decode
from saleor_scaling.local.emulator import LocalLambdaContext, scheduled_event, set_function_clock
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ConfigurationError
from tests.integration.conftest import NOW, PredictWorld, emitted_metrics, iso

STEP = 300


def set_min_size(world: PredictWorld, min_size: int) -> None:
    """What an operator (or a scheduled action) does before a sale."""
    world.session.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=world.shop.group_name, MinSize=min_size
    )


def tags(world: PredictWorld) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in world.describe()["Tags"]}


def set_tag(world: PredictWorld, key: str, value: str) -> None:
    world.session.client("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": world.shop.group_name,
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": value,
                "PropagateAtLaunch": False,
            }
        ]
    )


def min_size(world: PredictWorld) -> int:
    return int(world.describe()["MinSize"])


def delete_model(world: PredictWorld) -> None:
    world.session.client("s3").delete_object(Bucket=world.shop.bucket, Key="models/manifest.json")


def state_key(world: PredictWorld) -> str:
    return f"state/{world.shop.group_name}/predict-state.json"


def put_state(world: PredictWorld, body: bytes) -> None:
    world.session.client("s3").put_object(Bucket=world.shop.bucket, Key=state_key(world), Body=body)


# --- Operators and the MinSize floor -------------------------------------------------


def lease(world: PredictWorld) -> Lease:
    return decode(tags(world)[LEASE_TAG], int(world.describe()["MaxSize"]))


def test_operator_raising_min_size_is_adopted_never_lowered(world):
    first = world.invoke()
    floor = first["decision"]["floor"]
    assert min_size(world) == floor > 1
    set_min_size(world, floor + 1)  # the README: raise MinSize for a sale

    for k in range(1, 4):
        result = world.invoke(world.advance(NOW + k * STEP))
        assert min_size(world) >= floor + 1, result["reason"]
    assert lease(world).base == floor + 1
    assert result["group"]["min"] == floor + 1


def test_adoption_is_explained_in_the_decision_log(world):
    floor = world.invoke()["decision"]["floor"]
    set_min_size(world, floor + 2)
    result = world.invoke(world.advance(NOW + STEP))
    assert "adopted as the operator's MinSize" in result["floor_note"]


def test_forecast_only_release_restores_the_operators_latest_min_size(world, monkeypatch):
    floor = world.invoke()["decision"]["floor"]
    set_min_size(world, 12)
    assert floor != 12
    monkeypatch.setenv("SCALING_MODE", "forecast-only")
    world.handler.reset_dependencies()
    world.invoke(world.advance(NOW + STEP))
    assert min_size(world) == 12  # not the first base, 1
    assert lease(world).base == 12


def test_forecast_only_gives_the_floor_back_at_once(world, monkeypatch):
    floor = world.invoke()["decision"]["floor"]
    assert floor > 1
    monkeypatch.setenv("SCALING_MODE", "forecast-only")
    world.handler.reset_dependencies()
    result = world.invoke(world.advance(NOW + STEP))
    assert min_size(world) == 1
    assert result["floor_released"] is True
    assert world.desired() == floor  # no instance removed: target tracking decides


def test_operator_lowering_min_size_is_respected_too(world, monkeypatch):
    floor = world.invoke()["decision"]["floor"]
    set_min_size(world, 1)  # the operator wants the floor gone
    monkeypatch.setenv("SCALING_MODE", "forecast-only")
    world.handler.reset_dependencies()
    world.invoke(world.advance(NOW + STEP))
    assert min_size(world) == 1
    assert floor > 1


@pytest.mark.parametrize(
    "bad_tag",
    [
        "-1",
        "abc",
        "",
        "v1 floor=3 prior=3 base=4 until=0 slot=0",  # base above the floor
        "v1 floor=999 prior=999 base=1 until=0 slot=0",  # above MaxSize
        "v1 floor=2 prior=2 base=1 until=0",  # a field missing
        "v1 floor=２ prior=2 base=1 until=0 slot=0",  # a digit that is not ASCII
        "v1 floor=2 prior=2 base=1 until=0 slot=0" + " " * 300,
    ],
)
def test_invalid_lease_tag_is_ignored_and_min_size_left_alone(world, bad_tag, caplog):
    caplog.set_level("WARNING", logger="predict")
    set_min_size(world, 2)
    set_tag(world, LEASE_TAG, bad_tag)
    result = world.invoke()
    assert min_size(world) == 2  # left alone, neither raised nor lowered
    assert result["group"]["floor_managed"] is False
    assert result["floor_note"].startswith("warning:")
    assert world.desired() >= 2
    assert tags(world)[LEASE_TAG] == bad_tag  # predict does not overwrite what it cannot read
    assert any("warning" in json.dumps(getattr(r, "decision", {})) for r in caplog.records)


def test_invalid_lease_tag_never_lowers_a_raised_floor(oversized_world, monkeypatch):
    world = oversized_world
    set_min_size(world, 15)
    set_tag(world, LEASE_TAG, "oops")
    for k in range(3):
        world.invoke(world.advance(NOW + k * STEP))
    assert min_size(world) == 15
    monkeypatch.setenv("SCALING_MODE", "forecast-only")
    world.handler.reset_dependencies()
    world.invoke(world.advance(NOW + 3 * STEP))
    assert min_size(world) == 15  # forecast-only does not release to an unknown value


def test_the_lease_records_what_predict_set(world):
    result = world.invoke()
    floor = result["decision"]["floor"]
    slot = NOW - NOW % STEP
    assert lease(world) == Lease(floor=floor, prior=floor, base=1, until=slot + 1800, slot=slot)
    assert result["floor_lease_until"] == iso(slot + 1800)


def test_legacy_tags_are_a_lease_that_has_expired(world):
    # A group scaled before the lease existed: base 1, predict's floor 6.
    set_min_size(world, 6)
    set_tag(world, LEGACY_BASE_TAG, "1")
    set_tag(world, LEGACY_APPLIED_TAG, "6")
    result = world.invoke()
    assert result["floor_released"] is True  # given back first, then decided afresh
    assert LEGACY_BASE_TAG not in tags(world)
    assert LEGACY_APPLIED_TAG not in tags(world)
    assert lease(world).base == 1


# --- The floor is a lease: released by every path that cannot decide -----------------


def test_long_fallback_gives_the_floor_back_when_the_lease_expires(world):
    floor = world.invoke()["decision"]["floor"]
    assert floor >= 4
    delete_model(world)
    floors = []
    for k in range(1, 10):  # 45 minutes of fallbacks
        result = world.invoke(iso(NOW + k * STEP))
        assert result["status"] == "fallback"
        floors.append(min_size(world))
    # Held while the lease runs (a short outage must not drop capacity): the runs of the
    # first 25 minutes; the run at 30 minutes finds it expired and gives it all back.
    assert floors == [floor] * 5 + [1] * 4
    assert world.desired() >= floor  # no instance removed by predict: target tracking decides


def test_a_decision_renews_the_lease(world):
    world.invoke()
    manifest = world.session.client("s3").get_object(Bucket=world.shop.bucket, Key="models/manifest.json")
    body = manifest["Body"].read()
    delete_model(world)
    for k in range(1, 5):
        assert world.invoke(iso(NOW + k * STEP))["status"] == "fallback"
    world.session.client("s3").put_object(Bucket=world.shop.bucket, Key="models/manifest.json", Body=body)
    renewed = world.invoke(world.advance(NOW + 5 * STEP))
    assert renewed["status"] in {"scaled", "decided"}
    slot = NOW - NOW % STEP + 5 * STEP
    assert lease(world).until == slot + 1800
    floor = min_size(world)
    delete_model(world)
    for k in range(6, 11):  # 25 minutes after the renewal: still held
        world.invoke(iso(NOW + k * STEP))
        assert min_size(world) == floor


def test_lease_length_is_a_setting(world, monkeypatch):
    monkeypatch.setenv("FALLBACK_RELEASE_MINUTES", "5")
    world.handler.reset_dependencies()
    floor = world.invoke()["decision"]["floor"]
    assert floor > 1
    delete_model(world)
    world.invoke(iso(NOW + STEP))  # the one renewal it missed
    assert min_size(world) == 1


def access_denied(*args: Any, **kwargs: Any) -> Any:
    raise ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not authorized to perform GetMetricData"}},
        "GetMetricData",
    )


def test_a_persistent_aws_fault_still_gives_the_floor_back(world, monkeypatch, capsys):
    """Issue 21 (1): an IAM change makes GetMetricData fail for hours. Every run is a fault
    (PredictErrors); the floor it raised must still go back when its lease expires."""
    floor = world.invoke()["decision"]["floor"]
    assert floor >= 4
    _, ports = world.handler.dependencies()
    monkeypatch.setattr(ports.metrics._client, "get_metric_data", access_denied)
    floors = []
    for k in range(1, 9):
        with pytest.raises(ClientError):
            world.invoke(iso(NOW + k * STEP))
        floors.append(min_size(world))
    assert floors == [floor] * 5 + [1] * 3
    assert emitted_metrics(capsys.readouterr().out)["PredictErrors"] == 1


def test_a_crash_after_the_release_still_released(world, monkeypatch):
    floor = world.invoke()["decision"]["floor"]
    import saleor_scaling.predict_service as service

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug anywhere after the group was read")

    monkeypatch.setattr(service, "decide", broken)
    for k in range(1, 7):
        with pytest.raises(ZeroDivisionError):
            world.invoke(world.advance(NOW + k * STEP))
    assert floor > 1
    assert min_size(world) == 1


def test_a_corrupt_model_every_run_still_gives_the_floor_back(world):
    floor = world.invoke()["decision"]["floor"]
    world.session.client("s3").put_object(
        Bucket=world.shop.bucket, Key="models/manifest.json", Body=b'{"format": ' + b"[" * 5000
    )
    for k in range(1, 7):
        world.invoke(iso(NOW + k * STEP))
    assert floor > 1
    assert min_size(world) == 1


class FlakyTags:
    """An Auto Scaling client whose lease writes fail from the n-th on (throttling, a tag
    policy): everything else goes through."""

    def __init__(self, client: Any, fail_from: int) -> None:
        self._client, self.writes, self.fail_from = client, 0, fail_from

    def create_or_update_tags(self, **kwargs: Any) -> Any:
        self.writes += 1
        if self.writes >= self.fail_from:
            raise ClientError(
                {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "CreateOrUpdateTags"
            )
        return self._client.create_or_update_tags(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_an_operators_sale_min_size_is_never_undercut_after_a_lost_tag_write(oversized_world, monkeypatch):
    """Issue 21 (3): predict holds 15, the next write of its record fails while it wants
    to lower the floor, then the operator sets MinSize 15 for a sale... and every other
    value. Whatever failed before, predict never goes below what the operator set."""
    world = oversized_world
    set_min_size(world, 2)
    first = world.invoke()
    held = min_size(world)
    assert held == first["decision"]["floor"] >= 8
    _, ports = world.handler.dependencies()
    flaky = FlakyTags(ports.group._client, fail_from=1)
    monkeypatch.setattr(ports.group, "_client", flaky)
    with pytest.raises(ClientError):
        world.invoke(world.advance(NOW + STEP))  # wants to lower the floor: its record fails first
    assert min_size(world) == held  # so the floor was not touched either
    monkeypatch.setattr(ports.group, "_client", flaky._client)
    set_min_size(world, held + 1)  # the operator, for a sale
    for k in range(2, 12):
        world.invoke(world.advance(NOW + k * STEP))
        assert min_size(world) >= held + 1  # raised again as the load rises, never below
    assert lease(world).base == held + 1


def test_a_lost_confirmation_is_confirmed_by_the_next_run(oversized_world, monkeypatch):
    """The floor went 12 -> 11, its confirmation was lost: 12 must not stay predict's, or an
    operator setting 12 for a sale would be undercut."""
    world = oversized_world
    set_min_size(world, 12)
    set_tag(world, LEASE_TAG, f"v1 floor=12 prior=12 base=2 until={NOW + 600} slot=0")
    _, ports = world.handler.dependencies()
    flaky = FlakyTags(ports.group._client, fail_from=2)  # the pending write lands, not its confirmation
    monkeypatch.setattr(ports.group, "_client", flaky)
    result = world.invoke()
    assert "could not confirm" in result["floor_note"]
    assert min_size(world) == 11
    assert (lease(world).floor, lease(world).prior) == (11, 12)
    monkeypatch.setattr(ports.group, "_client", flaky._client)
    world.invoke(world.advance(NOW + STEP))
    assert not lease(world).pending
    assert lease(world).floor == min_size(world) == 10
    set_min_size(world, 12)  # the operator sets the value predict held two runs ago
    for k in range(2, 7):
        result = world.invoke(world.advance(NOW + k * STEP))
        assert min_size(world) == 12, result["reason"]
    assert lease(world).base == 12


def test_a_forged_far_expiry_is_treated_as_expired(world):
    set_min_size(world, 9)
    set_tag(world, LEASE_TAG, "v1 floor=9 prior=9 base=1 until=4102444800 slot=0")  # the year 2100
    result = world.invoke()
    assert result["floor_released"] is True
    assert "later than any renewal" in result["floor_note"]


def test_a_forged_future_slot_does_not_block_the_runs(world):
    set_tag(world, LEASE_TAG, f"v1 floor=1 prior=1 base=1 until=0 slot={NOW + 23 * 3600}")
    result = world.invoke()
    assert result["status"] in {"scaled", "decided"}
    assert "slot" in result["floor_note"]


# --- One action per slot, whatever happened to the state -----------------------------


def test_a_slot_that_acted_does_not_act_again_after_the_state_is_lost(oversized_world):
    """Issue 21 (8): 15 -> 14, the state object is corrupted, the same event redelivered:
    it must not act again (14 -> 13)."""
    world = oversized_world
    assert world.invoke()["status"] == "scaled"
    assert world.desired() == 14
    put_state(world, b"{oops")
    again = world.invoke()
    assert again["status"] == "duplicate"
    assert world.desired() == 14
    world.session.client("s3").delete_object(Bucket=world.shop.bucket, Key=state_key(world))
    assert world.invoke()["status"] == "duplicate"
    assert world.desired() == 14


# --- The reactive floor without its fleet size ---------------------------------------


def test_missing_in_service_at_the_anchor_does_not_inflate_the_cpu_floor(world):
    """Issue 21 (4): no GroupInServiceInstances datapoint at the anchor, 8 instances now,
    CPU measured when 2 ran at 90 %: the floor must not be 8 x 90 / 70 = 11."""
    world.session.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=world.shop.group_name, MaxSize=30, DesiredCapacity=8
    )
    _, ports = world.handler.dependencies()
    real_fetch = ports.metrics.fetch

    def without_in_service(start: int, end: int, now: int) -> Any:
        history = real_fetch(start, end, now)
        values = dict(history.values)
        in_service = np.array(values[Metric.IN_SERVICE], copy=True)
        in_service[-1] = np.nan
        values[Metric.IN_SERVICE] = in_service
        cpu = np.array(values[Metric.CPU], copy=True)
        cpu[-1] = 90.0
        values[Metric.CPU] = cpu
        return MetricHistory(start=history.start, values=values)

    ports.metrics.fetch = without_in_service
    result = world.invoke()
    demand_floor = math.ceil(result["inputs"]["demand_per_minute"] / 1000.0 - 1e-9)
    assert result["reactive_floor"] == demand_floor <= 8


# --- MAX_SCALE_IN_STEP=0 -------------------------------------------------------------


def test_disabled_scale_in_does_not_pin_the_group(oversized_world, monkeypatch):
    world = oversized_world  # 15 instances for load that needs about 8
    monkeypatch.setenv("MAX_SCALE_IN_STEP", "0")
    world.handler.reset_dependencies()
    result = world.invoke()
    assert world.desired() == 15  # predict never scales in
    floor = result["decision"]["floor"]
    assert min_size(world) == floor == result["decision"]["recommended"] < 15  # target tracking may


# --- The reactive floor's CPU --------------------------------------------------------


def test_reactive_floor_uses_the_fleet_in_service_when_cpu_was_measured(world):
    # At the anchor bucket 7 instances served at about 67 % CPU; the group now has 20
    # (an operator, or target tracking, just added them). CPU of 7 instances needs 7,
    # not 20 x 67 / 70 = 20.
    world.session.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=world.shop.group_name, MaxSize=30, DesiredCapacity=20
    )
    result = world.invoke()
    assert result["inputs"]["in_service_at_anchor"] == pytest.approx(7.0)
    assert result["reactive_floor"] <= 8


# --- Events and time -----------------------------------------------------------------


def test_stale_event_is_rejected_and_scales_nothing(world, capsys):
    # A 20-hour-old event (a replay, a retry from a dead-letter queue) with no state yet.
    result = world.invoke(received_after=20 * 3600)
    assert result["status"] == "rejected"
    assert "stale" in result["reason"]
    assert world.desired() == 2
    assert emitted_metrics(capsys.readouterr().out)["RejectedEvents"] == 1


def test_early_event_is_rejected_and_does_not_block_the_real_slot(world):
    early = world.invoke(iso(NOW + STEP), received_after=-STEP)
    assert early["status"] == "rejected"
    assert "early" in early["reason"]
    assert world.desired() == 2
    world.invoke()  # the run due now
    real = world.invoke(world.advance(NOW + STEP))  # the slot the early event named
    assert real["status"] in {"scaled", "decided"}


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T23:55:00Z"])
def test_absurd_event_years_are_rejected(world, when, capsys):
    event = scheduled_event(when)
    set_function_clock(world.handler, lambda: float(NOW))
    result = world.handler.lambda_handler(event, LocalLambdaContext("predict"))
    assert result["status"] == "rejected"
    assert world.desired() == 2
    assert emitted_metrics(capsys.readouterr().out)["RejectedEvents"] == 1
    assert world.invoke()["status"] in {"scaled", "decided"}  # the real slot is not blocked


def test_clock_check_can_be_turned_off_explicitly_for_replays(world, monkeypatch):
    monkeypatch.setenv("EVENT_CLOCK_CHECK", "off")
    world.handler.reset_dependencies()
    assert world.invoke(received_after=20 * 3600)["status"] in {"scaled", "decided"}


@pytest.mark.parametrize("event", [[], ["time"], "2023-11-28T12:00:17Z", None, 5])
def test_event_that_is_not_an_object_is_an_invalid_event(world, event, capsys):
    with pytest.raises(ValueError, match="not an object"):
        world.handler.lambda_handler(event, LocalLambdaContext("predict"))
    assert emitted_metrics(capsys.readouterr().out)["InvalidEvents"] == 1
    assert world.desired() == 2


# --- Absurd metric values ------------------------------------------------------------


def put_at_anchor(
    world: PredictWorld, namespace: str, name: str, dimension: dict[str, str], value: float
) -> None:
    anchor = NOW - NOW % STEP - 2 * STEP
    world.session.client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [dimension],  # type: ignore[list-item]
                "Timestamp": datetime.fromtimestamp(anchor + 30, UTC),
                "Value": value,
            }
        ],
    )


@pytest.mark.parametrize("requests", [1e12, 1e300])
def test_absurd_request_count_is_a_fallback_not_max_size(world, requests):
    put_at_anchor(
        world,
        "AWS/ApplicationELB",
        "RequestCount",
        {"Name": "LoadBalancer", "Value": world.shop.load_balancer_full_name},
        requests,
    )
    result = world.invoke()
    assert result["status"] == "fallback"
    assert "sanity ceiling" in result["reason"]
    assert world.desired() == 2


def test_absurd_request_count_before_the_anchor_is_missing_data_not_load(world):
    """The ceiling applies to every step the features read, not only the anchor: one forged
    RequestCount a step earlier must not drive the forecast to MaxSize."""
    anchor = NOW - NOW % STEP - 2 * STEP
    world.session.client("cloudwatch").put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "RequestCount",
                "Dimensions": [{"Name": "LoadBalancer", "Value": world.shop.load_balancer_full_name}],
                "Timestamp": datetime.fromtimestamp(anchor - STEP + 30, UTC),
                "Value": 1e12,
            }
        ],
    )
    result = world.invoke()
    assert result["status"] in {"scaled", "decided"}, result["reason"]
    assert result["implausible_values"] >= 1
    # Clean, this slot sets 8 (test_predict_handler): the forgery moves it by an instance at most.
    assert result["decision"]["target"] <= 9
    assert world.desired() <= 9


def test_impossible_cpu_is_missing_data(world):
    put_at_anchor(
        world,
        "AWS/EC2",
        "CPUUtilization",
        {"Name": "AutoScalingGroupName", "Value": world.shop.group_name},
        5000.0,
    )
    result = world.invoke()
    # Averaged with the real datapoint, CPU reads above 100 %: impossible, so missing.
    assert result["inputs"]["cpu_percent"] is None
    assert result["implausible_values"] >= 1
    assert world.desired() < 20  # sized on the forecast, not pushed to MaxSize


# --- Internal errors and notices -----------------------------------------------------


def test_bad_setting_gets_the_fault_metric_and_a_log_line(world, monkeypatch, capsys, caplog):
    monkeypatch.setenv("CAPACITY_PER_INSTANCE", "nan")
    world.handler.reset_dependencies()
    with pytest.raises(ConfigurationError, match="CAPACITY_PER_INSTANCE"):
        world.invoke()
    assert emitted_metrics(capsys.readouterr().out)["PredictErrors"] == 1
    assert "internal error (ConfigurationError); nothing scaled" in caplog.messages
    assert world.desired() == 2


@pytest.mark.parametrize("error", [ZeroDivisionError("division by zero"), OverflowError("math range")])
def test_internal_error_gets_the_fault_metric(world, monkeypatch, capsys, caplog, error):
    import saleor_scaling.predict_service as service

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(service, "decide", broken)
    with pytest.raises(type(error)):
        world.invoke()
    assert emitted_metrics(capsys.readouterr().out)["PredictErrors"] == 1
    assert f"internal error ({type(error).__name__}); nothing scaled" in caplog.messages
    assert world.desired() == 2


def test_failed_notice_after_scaling_is_reported_as_scaled(world, monkeypatch, capsys):
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", world.shop.topic_arn + "-deleted")
    world.handler.reset_dependencies()
    result = world.invoke()
    assert result["status"] == "scaled"
    assert world.desired() == result["decision"]["target"] > 2
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["NotificationErrors"] == 1
    assert "PredictErrors" not in metrics
    assert "notification_error" in json.dumps(result)
    assert world.invoke()["status"] == "duplicate"  # a retry does not scale again


# --- State ---------------------------------------------------------------------------


CORRUPT_STATES = {
    "not json": b"{oops",
    "a list": b"[1, 2, 3]",
    "wrong types": json.dumps(
        {"format": 1, "last_decision_time": "soon", "recommendations": "many"}
    ).encode(),
    "garbage recommendations": json.dumps(
        {"format": 1, "last_decision_time": 0, "recommendations": [["x", None], [1]]}
    ).encode(),
    "forecast not a number": json.dumps({"format": 1, "forecasts": {"123": "NaN"}}).encode(),
    "far future": json.dumps({"format": 1, "last_decision_time": 253402300500}).encode(),
    "bool for a time": json.dumps({"format": 1, "last_decision_time": True}).encode(),
}


@pytest.mark.parametrize("body", list(CORRUPT_STATES.values()), ids=list(CORRUPT_STATES))
def test_corrupt_state_is_reset_and_the_slot_still_acts_once(oversized_world, body, capsys):
    world = oversized_world
    put_state(world, body)
    first = world.invoke()
    assert first["status"] == "scaled", first["reason"]
    assert first["state_reset"]
    assert world.desired() == 14
    assert emitted_metrics(capsys.readouterr().out)["StateResets"] == 1
    assert world.invoke()["status"] == "duplicate"  # Lambda's retry of the same event
    assert world.desired() == 14
    assert world.invoke(world.advance(NOW + STEP))["status"] == "scaled"  # later slots are not blocked


class RacingState:
    """A state store whose first load lets another run of the same slot finish before it
    returns: the two runs read the same version of the state."""

    def __init__(self, store: S3DecisionState, other_run: Any) -> None:
        self.store = store
        self.other_run = other_run
        self.raced = False

    def load(self) -> Any:
        snapshot = self.store.load()
        if not self.raced:
            self.raced = True
            self.other_run()
        return snapshot

    def save(self, document: dict[str, Any], version: str | None) -> None:
        self.store.save(document, version)


def race_two_runs(world: PredictWorld, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Invoke the same slot twice, the second run reading the state while the first has
    not yet written it; the statuses in the order the runs finished."""
    _, ports = world.handler.dependencies()
    real_store = ports.state
    outcomes: list[str] = []

    def other_run() -> None:
        monkeypatch.setattr(ports, "state", real_store)
        outcomes.append(world.invoke()["status"])
        monkeypatch.setattr(ports, "state", racing)

    racing = RacingState(real_store, other_run)
    monkeypatch.setattr(ports, "state", racing)
    outcomes.append(world.invoke()["status"])
    return outcomes


def test_two_concurrent_runs_of_one_slot_act_once(oversized_world, monkeypatch):
    world = oversized_world
    world.invoke(iso(NOW - STEP))  # a state object exists: If-Match on its version
    world.set_desired(15)
    assert race_two_runs(world, monkeypatch) == ["scaled", "duplicate"]
    assert world.desired() == 14  # one step, not two


def test_concurrent_first_runs_with_no_state_act_once(oversized_world, monkeypatch):
    world = oversized_world  # no state object yet: If-None-Match
    assert race_two_runs(world, monkeypatch) == ["scaled", "duplicate"]
    assert world.desired() == 14


def test_oversized_state_object_is_not_read(world):
    put_state(world, b" " * 2_000_000)
    result = world.invoke()
    assert "over" in result["state_reset"]
    assert result["status"] in {"scaled", "decided"}


def test_replayed_event_after_a_later_slot_is_a_duplicate_not_a_reset(world):
    world.invoke()
    # The next slot's event 60 s early (EVENT_MAX_EARLY_SECONDS), then the earlier event
    # again 240 s late (EVENT_MAX_DELAY_SECONDS), at the same moment of the function's clock.
    world.invoke(world.advance(NOW + STEP), received_after=-60)
    again = world.invoke(iso(NOW), received_after=240)
    assert again["status"] == "duplicate"
    assert not again.get("state_reset")


def test_event_sample_time_keeps_its_clock_check(world):
    event = scheduled_event(iso(NOW))
    set_function_clock(world.handler, lambda: float(NOW + 10 * 60))
    assert world.handler.lambda_handler(event, LocalLambdaContext("predict"))["status"] == "rejected"
