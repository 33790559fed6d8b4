"""The watchdog gives back a floor whose lease expired when predict could not: the path
that holds when predict cannot run at all (a crash at import, a broken layer, a throttled
or disabled function). Real handler, emulated Auto Scaling group."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import boto3
import pytest

from saleor_scaling.lease import LEASE_TAG, Lease, decode
from saleor_scaling.local.emulator import LocalLambdaContext, create_shop
from tests.conftest import REPO_ROOT, load_handler
from tests.integration.cfn_response import ResponseCatcher

EXPIRY = 1_800_000_000  # the lease's `until`
GRACE = 300


@pytest.fixture
def group(aws: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> Any:
    shop = create_shop(aws, min_size=1, max_size=20, desired=9)
    monkeypatch.setenv("AUTO_SCALING_GROUP_NAME", shop.group_name)
    return aws.client("autoscaling"), shop.group_name


def set_group(group: Any, min_size: int, lease: str | None) -> None:
    client, name = group
    client.update_auto_scaling_group(AutoScalingGroupName=name, MinSize=min_size)
    if lease is not None:
        client.create_or_update_tags(
            Tags=[
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": LEASE_TAG,
                    "Value": lease,
                    "PropagateAtLaunch": False,
                }
            ]
        )


def described(group: Any) -> dict[str, Any]:
    client, name = group
    found: dict[str, Any] = client.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ][0]
    return found


def invoke_at(group: Any, monkeypatch: pytest.MonkeyPatch, now: float) -> dict[str, Any]:
    handler = load_handler("watchdog")
    monkeypatch.setattr(handler.time, "time", lambda: now)
    result: dict[str, Any] = handler.lambda_handler({"source": "aws.events"}, LocalLambdaContext("watchdog"))
    return result


HELD = f"v1 floor=8 prior=8 base=1 until={EXPIRY} slot={EXPIRY - 1800}"


def test_an_expired_lease_is_given_back_once_predict_missed_it(group, monkeypatch):
    set_group(group, 8, HELD)
    assert invoke_at(group, monkeypatch, EXPIRY - 1)["status"] == "held"
    assert invoke_at(group, monkeypatch, EXPIRY + GRACE - 1)["status"] == "held"  # predict's turn
    assert described(group)["MinSize"] == 8
    released = invoke_at(group, monkeypatch, EXPIRY + GRACE)
    assert released["status"] == "released"
    assert released["released_to"] == 1
    group_now = described(group)
    assert group_now["MinSize"] == 1
    assert group_now["DesiredCapacity"] == 9  # no instance removed: target tracking decides
    tags = {tag["Key"]: tag["Value"] for tag in group_now["Tags"]}
    # Confirmed, and the slot kept: a redelivered event of that slot is still a duplicate.
    assert decode(tags[LEASE_TAG], 20) == Lease(1, 1, 1, 0, EXPIRY - 1800)
    assert invoke_at(group, monkeypatch, EXPIRY + 2 * GRACE)["status"] == "nothing-held"


@pytest.mark.parametrize(
    ("min_size", "lease"),
    [
        (12, HELD),  # the operator raised MinSize for a sale: theirs, never lowered
        (8, None),  # no lease: nobody but the operator set it
        (8, "v1 floor=8 prior=8 base=9 until=0 slot=0"),  # a record predict cannot have written
        (8, "garbage"),
    ],
)
def test_a_min_size_predict_does_not_hold_is_never_touched(group, monkeypatch, min_size, lease):
    set_group(group, min_size, lease)
    outcome = invoke_at(group, monkeypatch, EXPIRY + 10 * GRACE)
    assert outcome["status"] == "nothing-held"
    assert described(group)["MinSize"] == min_size


def test_the_watchdog_never_raises_min_size(group, monkeypatch):
    set_group(group, 3, "v1 floor=3 prior=3 base=3 until=0 slot=0")
    invoke_at(group, monkeypatch, EXPIRY)
    assert described(group)["MinSize"] == 3


def test_a_missing_group_is_a_no_op(aws, monkeypatch):
    monkeypatch.setenv("AUTO_SCALING_GROUP_NAME", "gone")
    handler = load_handler("watchdog")
    assert handler.lambda_handler({}, LocalLambdaContext("watchdog"))["status"] == "no-group"


def test_its_decision_is_one_json_log_line(group, monkeypatch, capsys):
    set_group(group, 8, HELD)
    invoke_at(group, monkeypatch, EXPIRY + GRACE)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["watchdog"]["status"] for line in lines] == ["released"]


def test_the_watchdog_imports_nothing_but_the_lease_and_the_runtime():
    """What breaks predict's layers must not stop it: apart from boto3 (in the Lambda
    runtime) it may import only the standard library and saleor_scaling.lease."""
    probe = (
        "import sys, runpy\n"
        f"sys.path.insert(0, {str(REPO_ROOT / 'functions' / 'watchdog')!r})\n"
        "before = set(sys.modules)\n"
        "import app\n"
        "ours = sorted(m for m in set(sys.modules) - before if m.startswith('saleor_scaling'))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'numpy', 'sklearn', 'aws_lambda_powertools', 'scipy'})\n"
        "print(ours, heavy)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert completed.stdout.strip() == "['saleor_scaling', 'saleor_scaling.lease'] []"


# --- The custom resource: `sam delete` gives the floor back ---------------------------


@pytest.fixture
def catcher() -> Any:
    caught = ResponseCatcher()
    yield caught
    caught.close()


def request(kind: str, group_name: str, url: str) -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/saleor-scaling/1",
        "RequestId": "r-1",
        "LogicalResourceId": "FloorLeaseRelease",
        "PhysicalResourceId": f"floor-lease-{group_name}",
        "ResourceType": "Custom::FloorLeaseRelease",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "AutoScalingGroupName": group_name},
    }


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    handler = load_handler("watchdog")
    result: dict[str, Any] = handler.lambda_handler(event, LocalLambdaContext("watchdog"))
    return result


def test_creating_the_stack_changes_nothing_and_answers(group, catcher):
    set_group(group, 8, HELD)
    invoke(request("Create", group[1], catcher.url))
    assert [body["Status"] for body in catcher.bodies] == ["SUCCESS"]
    assert catcher.bodies[0]["PhysicalResourceId"] == f"floor-lease-{group[1]}"
    assert described(group)["MinSize"] == 8


def test_deleting_the_stack_gives_a_live_floor_back_and_removes_the_tags(group, catcher):
    set_group(group, 8, f"v1 floor=8 prior=8 base=1 until={10**11} slot=0")  # not expired
    client, name = group
    client.create_or_update_tags(
        Tags=[
            {
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
                "Key": "Name",
                "Value": "saleor",
                "PropagateAtLaunch": True,
            }
        ]
    )
    outcome = invoke(request("Delete", name, catcher.url))
    assert outcome["released_to"] == 1
    assert [body["Status"] for body in catcher.bodies] == ["SUCCESS"]
    after = described(group)
    assert after["MinSize"] == 1
    assert after["DesiredCapacity"] == 9  # no instance removed by this
    assert {tag["Key"] for tag in after["Tags"]} == {"Name"}  # the operator's tags stay


def test_deleting_the_stack_leaves_an_operators_min_size(group, catcher):
    set_group(group, 12, HELD)  # the operator raised it: not predict's
    invoke(request("Delete", group[1], catcher.url))
    assert described(group)["MinSize"] == 12
    assert not described(group)["Tags"]


def test_deleting_after_the_group_is_gone_succeeds(aws, catcher):
    invoke(request("Delete", "gone", catcher.url))
    assert [body["Status"] for body in catcher.bodies] == ["SUCCESS"]


def test_a_failed_release_fails_the_delete_with_what_to_do(group, catcher, monkeypatch):
    from botocore.exceptions import ClientError

    set_group(group, 8, HELD)
    handler = load_handler("watchdog")

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "UpdateAutoScalingGroup")

    client = boto3.client("autoscaling")
    monkeypatch.setattr(client, "update_auto_scaling_group", denied)
    handler.custom_resource(request("Delete", group[1], catcher.url), client)
    (body,) = catcher.bodies
    assert body["Status"] == "FAILED"
    assert "set it and delete the tag" in body["Reason"]
    assert described(group)["MinSize"] == 8


# --- The custom resource: the first retraining at deploy time ----------------------------

RETRAIN_ARN = "arn:aws:lambda:us-east-1:123456789012:function:saleor-scaling-RetrainFunction-abc"
DEPLOYED_AT = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class RecordingLambda:
    """A Lambda client that records invocations, or refuses them with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        self.calls.append(kwargs)
        return {"StatusCode": 202}


def retrain_request(kind: str, url: str) -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/saleor-scaling/1",
        "RequestId": "r-7",
        "LogicalResourceId": "FirstRetrain",
        "ResourceType": "Custom::FirstRetrain",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "RetrainFunctionArn": RETRAIN_ARN},
    }


def test_creating_the_stack_starts_one_retraining_without_waiting_for_it(catcher):
    client = RecordingLambda()
    outcome = load_handler("watchdog").first_retrain(
        retrain_request("Create", catcher.url), client, DEPLOYED_AT
    )

    (call,) = client.calls
    assert call["FunctionName"] == RETRAIN_ARN
    assert call["InvocationType"] == "Event"  # asynchronous: the deploy does not wait
    payload = json.loads(call["Payload"])
    assert payload["time"] == "2023-11-14T22:13:20Z"  # the retrain's clock is the deploy's
    assert payload["source"] == "saleor-predictive-scaling.deploy"
    assert outcome["started"] == "2023-11-14T22:13:20Z"
    (body,) = catcher.bodies
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "first-retrain"


def test_the_retrain_handler_accepts_what_the_deploy_sends():
    """The payload is a scheduled event the retrain handler reads its clock from."""
    from saleor_scaling.events import scheduled_event_time

    client = RecordingLambda()
    catcher = ResponseCatcher()
    try:
        load_handler("watchdog").first_retrain(retrain_request("Create", catcher.url), client, DEPLOYED_AT)
    finally:
        catcher.close()
    assert scheduled_event_time(json.loads(client.calls[0]["Payload"])) == 1_700_000_000


def test_deleting_the_stack_starts_no_retraining(catcher):
    client = RecordingLambda()
    load_handler("watchdog").first_retrain(retrain_request("Delete", catcher.url), client, DEPLOYED_AT)
    assert client.calls == []
    assert [body["Status"] for body in catcher.bodies] == ["SUCCESS"]


def test_a_retraining_that_cannot_start_never_fails_the_deploy_and_says_so(catcher, capsys):
    from botocore.exceptions import ClientError

    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Invoke")
    outcome = load_handler("watchdog").first_retrain(
        retrain_request("Create", catcher.url), RecordingLambda(denied), DEPLOYED_AT
    )
    assert [body["Status"] for body in catcher.bodies] == ["SUCCESS"]
    assert "could not start the first retraining" in outcome["error"]
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["level"] == "ERROR"


def test_the_handler_routes_the_first_retraining_by_resource_type(catcher, monkeypatch):
    handler = load_handler("watchdog")
    client = RecordingLambda()
    monkeypatch.setattr(handler.boto3, "client", lambda service, **kwargs: client)
    handler.lambda_handler(retrain_request("Create", catcher.url), LocalLambdaContext("watchdog"))
    assert [call["FunctionName"] for call in client.calls] == [RETRAIN_ARN]
