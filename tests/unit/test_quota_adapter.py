"""The On-Demand quota adapter: what the account's vCPU quota allows in instances of the
group's size, and every way it refuses to guess (never a scaling change, only no notice)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from saleor_scaling.adapters.quotas import OnDemandQuota, QuotaUnknownError


def clients(quota_value: float | None, vcpus: dict[str, int]):
    quotas = boto3.client("service-quotas", region_name="us-east-1")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    quota_stub, ec2_stub = Stubber(quotas), Stubber(ec2)
    if quota_value is not None:
        quota_stub.add_response(
            "get_service_quota",
            {"Quota": {"QuotaCode": "L-1216C47A", "ServiceCode": "ec2", "Value": quota_value}},
            {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A"},
        )
        ec2_stub.add_response(
            "describe_instance_types",
            {
                "InstanceTypes": [
                    {"InstanceType": name, "VCpuInfo": {"DefaultVCpus": count}}
                    for name, count in vcpus.items()
                ]
            },
            {"InstanceTypes": sorted(vcpus)},
        )
    quota_stub.activate()
    ec2_stub.activate()
    return OnDemandQuota(quotas, ec2), quota_stub, ec2_stub


def test_the_quota_in_vcpus_is_whole_instances_of_the_largest_type():
    adapter, quota_stub, ec2_stub = clients(69.0, {"m6i.large": 2, "m6i.xlarge": 4})
    allowed, sentence = adapter.instances_allowed(("m6i.large", "m6i.xlarge"))
    assert allowed == 17  # 69 vCPUs hold 17 instances of 4, not 34 of 2
    assert sentence == (
        "the account's On-Demand quota (L-1216C47A) of 69 vCPUs allows at most 17 instances of "
        "4 vCPUs, fewer if the account runs others"
    )
    quota_stub.assert_no_pending_responses()
    ec2_stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("instance_types", "says"),
    [
        ((), "runs no instances"),
        (("g5.xlarge",), "g5.xlarge count against another quota"),
        (("t3.medium", "p4d.24xlarge"), "p4d.24xlarge count against another quota"),
        (tuple(f"m6i.{k}xlarge" for k in range(21)), "runs 21 instance types"),
    ],
)
def test_sizes_it_cannot_count_are_refused_before_any_call(instance_types, says):
    adapter, _, _ = clients(None, {})  # any call would fail: the stubs hold no response
    with pytest.raises(QuotaUnknownError, match=says):
        adapter.instances_allowed(instance_types)


def test_a_faulty_answer_is_unknown_not_a_size():
    quotas = boto3.client("service-quotas", region_name="us-east-1")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    stub = Stubber(quotas)
    stub.add_client_error("get_service_quota", "AccessDeniedException", "not allowed")
    stub.activate()
    with pytest.raises(QuotaUnknownError, match="AccessDeniedException"):
        OnDemandQuota(quotas, ec2).instances_allowed(("t3.medium",))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_an_absurd_quota_is_unknown(value):
    adapter, _, _ = clients(value, {"t3.medium": 2})
    with pytest.raises(QuotaUnknownError, match="is not a size"):
        adapter.instances_allowed(("t3.medium",))
