"""Service Quotas and EC2: how many of the group's instances the account's On-Demand
quota allows, for the notice before a planned event (`predict_service._plan_events`).

AWS counts Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances in vCPUs
against one quota per Region, L-1216C47A
(https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html). Every
other instance of the account counts against the same quota, so what it allows is an
upper bound for the group; Spot instances count against another quota, not read here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
else:
    EC2Client = Any

ON_DEMAND_STANDARD_QUOTA_CODE = "L-1216C47A"
STANDARD_FAMILIES = frozenset("acdhimrtz")
MAX_INSTANCE_TYPES = 20
"""More types than a group of one size runs (the template allows four): a bound on the
DescribeInstanceTypes request."""


class QuotaUnknownError(Exception):
    """The quota or the instances' size cannot be read: no quota notice, never a scaling change."""


class OnDemandQuota:
    def __init__(self, service_quotas: Any, ec2: EC2Client) -> None:
        self._service_quotas = service_quotas
        self._ec2 = ec2

    def instances_allowed(self, instance_types: tuple[str, ...]) -> tuple[int, str]:
        """How many instances of the largest of `instance_types` the quota allows, and a
        sentence saying so."""
        if not instance_types:
            raise QuotaUnknownError("the group runs no instances: their size is unknown")
        if len(instance_types) > MAX_INSTANCE_TYPES:
            raise QuotaUnknownError(f"the group runs {len(instance_types)} instance types")
        other = sorted(t for t in instance_types if t[:1] not in STANDARD_FAMILIES)
        if other:
            raise QuotaUnknownError(
                f"{', '.join(other)[:80]} count against another quota than {ON_DEMAND_STANDARD_QUOTA_CODE}"
            )
        try:
            quota = self._service_quotas.get_service_quota(
                ServiceCode="ec2", QuotaCode=ON_DEMAND_STANDARD_QUOTA_CODE
            )["Quota"]["Value"]
            requested: Any = list(instance_types)  # the stubs list every type name as a Literal
            described = self._ec2.describe_instance_types(InstanceTypes=requested)["InstanceTypes"]
            vcpus = max(int(item["VCpuInfo"]["DefaultVCpus"]) for item in described)
        except Exception as error:  # any fault only skips the notice
            raise QuotaUnknownError(f"{type(error).__name__}: {str(error)[:200]}") from error
        if not (isinstance(quota, int | float) and math.isfinite(quota) and quota >= 0) or vcpus < 1:
            raise QuotaUnknownError(f"quota {quota!r} or {vcpus} vCPUs per instance is not a size")
        allowed = int(quota // vcpus)
        return allowed, (
            f"the account's On-Demand quota ({ON_DEMAND_STANDARD_QUOTA_CODE}) of {quota:g} vCPUs "
            f"allows at most {allowed} instances of {vcpus} vCPUs, fewer if the account runs others"
        )
