"""Watchdog: gives the MinSize floor back when its lease has expired and predict did not.

Predict gives back an expired floor at the start of every run, before it reads anything
that could fail. This function covers the runs that never start: a crash at import, a
broken layer, a throttled, disabled or deleted predict function. It runs on its own
schedule with nothing but the Lambda runtime's boto3 and `saleor_scaling.lease` (shipped
inside this function, no layers: functions/watchdog/Makefile), so what breaks predict
cannot break it. It acts only once predict has missed the release by a grace period (a
run), so the two do not race in normal operation, and it never raises MinSize.

It is also the stack's `Custom::FloorLeaseRelease` resource: when the stack is deleted
(`sam delete`), after predict and its schedule are gone, it gives back any floor predict
holds, expired or not, and removes the project's tags, so the shop does not keep paying
for the last floor predict raised.

Its decision is one JSON log line; it publishes no metric of its own: a release by the
watchdog means predict has not decided for longer than the lease, which the no-decision
alarm on RecommendedCapacity already reports.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from saleor_scaling.lease import (
    LEASE_TAG,
    LEGACY_APPLIED_TAG,
    LEGACY_BASE_TAG,
    PROJECT_TAG_KEYS,
    Lease,
    Ownership,
    judge,
)

DEFAULT_GRACE_SECONDS = 300
"""One predict run: predict itself gives an expired floor back at its first run after the
expiry; the watchdog steps in only when that run did not happen."""


FIRST_RETRAIN_TYPE = "Custom::FirstRetrain"


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and "RequestType" in event and "ResponseURL" in event:
        if event.get("ResourceType") == FIRST_RETRAIN_TYPE:
            return first_retrain(event, boto3.client("lambda"), time.time())
        return custom_resource(event, boto3.client("autoscaling"))
    outcome = release_expired_floor(
        boto3.client("autoscaling"),
        os.environ["AUTO_SCALING_GROUP_NAME"],
        now=time.time(),
        lease_seconds=_minutes(os.environ.get("FALLBACK_RELEASE_MINUTES", "30")) * 60,
        grace_seconds=DEFAULT_GRACE_SECONDS,
    )
    print(json.dumps({"level": "INFO", "service": "watchdog", "watchdog": outcome}))
    return outcome


def release_expired_floor(
    client: Any, group_name: str, now: float, lease_seconds: int, grace_seconds: int
) -> dict[str, Any]:
    """Give MinSize back to the operator's value if predict's lease on it has expired by
    `grace_seconds`; otherwise change nothing. Returns what was found and done."""
    found = _judge_group(client, group_name, now, lease_seconds)
    if found is None:
        return {"group": group_name, "status": "no-group"}
    min_size, _, ownership = found
    outcome: dict[str, Any] = {"group": group_name, "min_size": min_size, "note": ownership.note}
    if not ownership.due(now, grace_seconds):
        held = ownership.lease is not None and ownership.base is not None and min_size > ownership.base
        outcome["status"] = "held" if held else "nothing-held"
        if held and ownership.lease is not None:
            outcome["lease_until"] = ownership.lease.until
        return outcome
    assert ownership.lease is not None
    assert ownership.base is not None
    released = ownership.release()
    # The same order as predict: the record first, so a failure leaves MinSize as it was.
    _write(client, group_name, released)
    client.update_auto_scaling_group(AutoScalingGroupName=group_name, MinSize=ownership.base)
    _write(client, group_name, released.confirmed(ownership.base))
    outcome.update(
        status="released",
        released_to=ownership.base,
        reason=f"the floor's lease expired at {ownership.lease.until} and predict has not given it back",
    )
    return outcome


def custom_resource(event: dict[str, Any], client: Any) -> dict[str, Any]:
    """CloudFormation's custom resource protocol: Create and Update record nothing; Delete
    gives the floor back and removes the project's tags. The answer always goes to the
    pre-signed ResponseURL, or CloudFormation would wait an hour for it."""
    group_name = str(event.get("ResourceProperties", {}).get("AutoScalingGroupName", ""))
    outcome: dict[str, Any] = {"group": group_name, "request": event.get("RequestType")}
    status, reason = "SUCCESS", ""
    if event.get("RequestType") == "Delete" and group_name:
        try:
            outcome.update(hand_back(client, group_name))
        except (ClientError, BotoCoreError) as error:
            status = "FAILED"
            reason = (
                f"could not give MinSize of {group_name} back ({error}); set it and delete the "
                f"tag {LEASE_TAG} by hand, then delete the stack again"
            )
    _respond(event, status, reason or json.dumps(outcome)[:200], f"floor-lease-{group_name}")
    outcome["status"] = status
    print(
        json.dumps(
            {"level": "INFO" if status == "SUCCESS" else "ERROR", "service": "watchdog", "watchdog": outcome}
        )
    )
    return outcome


def first_retrain(event: dict[str, Any], client: Any, now: float) -> dict[str, Any]:
    """`Custom::FirstRetrain`: on Create (and on an Update that names another function)
    start one retraining without waiting for it. The answer is always SUCCESS: a shop
    without a first model is no reason to roll a deploy back, and a retraining that could
    not start is logged here as an ERROR and shows as predict's fallback alarm (no model
    and no warm-up notice) until the nightly run."""
    arn = str(event.get("ResourceProperties", {}).get("RetrainFunctionArn", ""))
    outcome: dict[str, Any] = {"request": event.get("RequestType"), "retrain_function": arn}
    level = "INFO"
    if event.get("RequestType") in ("Create", "Update") and arn:
        started = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        payload = {
            "version": "0",
            "id": f"first-retrain-{event.get('RequestId', '')}",
            "detail-type": "Scheduled Event",
            "source": "saleor-predictive-scaling.deploy",
            "time": started,
            "detail": {},
        }
        try:
            client.invoke(FunctionName=arn, InvocationType="Event", Payload=json.dumps(payload).encode())
            outcome["started"] = started
        except (ClientError, BotoCoreError) as error:
            level = "ERROR"
            outcome["error"] = (
                f"could not start the first retraining ({error}); the nightly one will run, or start "
                "it by hand (README, 'The first model')"
            )
    _respond(event, "SUCCESS", json.dumps(outcome)[:200], "first-retrain")
    print(json.dumps({"level": level, "service": "watchdog", "first_retrain": outcome}))
    return outcome


def hand_back(client: Any, group_name: str) -> dict[str, Any]:
    """The scaler is being removed: MinSize back to the operator's value now (expired or
    not), then no project tag left on the group. A group already gone is nothing to do."""
    # Judged at no particular time: any lease counts as expired, nobody will renew it.
    found = _judge_group(client, group_name, math.inf, 0)
    if found is None:
        return {"released": "no-group"}
    min_size, tags, ownership = found
    result: dict[str, Any] = {"min_size": min_size, "note": ownership.note}
    if ownership.due(math.inf):
        assert ownership.base is not None
        client.update_auto_scaling_group(AutoScalingGroupName=group_name, MinSize=ownership.base)
        result["released_to"] = ownership.base
    present = [key for key in PROJECT_TAG_KEYS if key in tags]
    if present:
        client.delete_tags(
            Tags=[
                {"ResourceId": group_name, "ResourceType": "auto-scaling-group", "Key": key}
                for key in present
            ]
        )
    result["tags_removed"] = present
    return result


def _respond(event: dict[str, Any], status: str, reason: str, physical_id: str) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason,
            "PhysicalResourceId": event.get("PhysicalResourceId") or physical_id,
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
        }
    ).encode()
    # The pre-signed S3 URL expects no content type (it is part of the signature).
    request = urllib.request.Request(
        str(event["ResponseURL"]), data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        response.read()


def _judge_group(
    client: Any, group_name: str, now: float, lease_seconds: int
) -> tuple[int, dict[str, str], Ownership] | None:
    """MinSize, the tags and who set MinSize (None: no such group)."""
    groups = client.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name]).get(
        "AutoScalingGroups", []
    )
    if not groups:
        return None
    group = groups[0]
    tags = {tag.get("Key"): tag.get("Value") for tag in group.get("Tags", [])}
    min_size = int(group["MinSize"])
    ownership = judge(
        min_size,
        int(group["MaxSize"]),
        tags.get(LEASE_TAG),
        now,
        lease_seconds,
        tags.get(LEGACY_BASE_TAG),
        tags.get(LEGACY_APPLIED_TAG),
    )
    return min_size, tags, ownership


def _write(client: Any, group_name: str, lease: Lease) -> None:
    client.create_or_update_tags(
        Tags=[
            {
                "ResourceId": group_name,
                "ResourceType": "auto-scaling-group",
                "Key": LEASE_TAG,
                "Value": lease.encode(),
                "PropagateAtLaunch": False,
            }
        ]
    )


def _minutes(raw: str) -> int:
    value = int(raw)
    if not 5 <= value <= 24 * 60:
        raise ValueError(f"FALLBACK_RELEASE_MINUTES {raw!r} is not in [5, 1440]")
    return value
