"""Watchdog: gives the MinSize floor back when its lease has expired and predict did not.

Predict gives back an expired floor at the start of every run, before it reads anything
that could fail. This function covers the runs that never start: a crash at import, a
broken layer, a throttled, disabled or deleted predict function. It runs on its own
schedule with nothing but the Lambda runtime's boto3 and `saleor_scaling.lease` (shipped
inside this function, no layers: functions/watchdog/Makefile), so what breaks predict
cannot break it. It acts only once predict has missed the release by a grace period (a
run), so the two do not race in normal operation, and it never raises MinSize.

Its decision is one JSON log line; it publishes no metric of its own: a release by the
watchdog means predict has not decided for longer than the lease, which the no-decision
alarm on RecommendedCapacity already reports.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3

from saleor_scaling.lease import (
    LEASE_TAG,
    LEGACY_APPLIED_TAG,
    LEGACY_BASE_TAG,
    Lease,
    judge,
)

DEFAULT_GRACE_SECONDS = 300
"""One predict run: predict itself gives an expired floor back at its first run after the
expiry; the watchdog steps in only when that run did not happen."""


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
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
    groups = client.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name]).get(
        "AutoScalingGroups", []
    )
    if not groups:
        return {"group": group_name, "status": "no-group"}
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
    outcome: dict[str, Any] = {"group": group_name, "min_size": min_size, "note": ownership.note}
    if not ownership.due(now, grace_seconds):
        held = ownership.lease is not None and ownership.base is not None and min_size > ownership.base
        outcome["status"] = "held" if held else "nothing-held"
        if held and ownership.lease is not None:
            outcome["lease_until"] = ownership.lease.until
        return outcome
    assert ownership.lease is not None
    assert ownership.base is not None
    released = ownership.release(now)
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
