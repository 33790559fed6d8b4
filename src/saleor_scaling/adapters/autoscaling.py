"""Auto Scaling: read the group's sizes and tags, set its desired capacity and the MinSize
floor, and record the floor's lease on the group (`saleor_scaling.lease` says why the
floor is a lease and how ownership of MinSize is judged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from saleor_scaling.lease import (
    LEASE_TAG,
    LEGACY_APPLIED_TAG,
    LEGACY_BASE_TAG,
    PROJECT_TAG_KEYS,
    Lease,
)
from saleor_scaling.policy import GroupCapacity, GroupFacts
from saleor_scaling.warm_pool import PoolConfiguration

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
else:
    AutoScalingClient = Any


__all__ = ["PROJECT_TAG_KEYS", "AutoScalingGroup", "GroupNotFoundError", "WarmPool"]


class GroupNotFoundError(Exception):
    pass


class AutoScalingGroup:
    def __init__(self, client: AutoScalingClient, group_name: str) -> None:
        self._client = client
        self.name = group_name
        self._legacy_tags: list[str] = []

    def describe(self) -> GroupFacts:
        response = self._client.describe_auto_scaling_groups(AutoScalingGroupNames=[self.name])
        groups = response.get("AutoScalingGroups", [])
        if not groups or groups[0].get("Status") == "Delete in progress":
            raise GroupNotFoundError(f"Auto Scaling group {self.name!r} does not exist")
        group = groups[0]
        in_service = sum(
            1 for instance in group.get("Instances", []) if instance.get("LifecycleState") == "InService"
        )
        tags = {tag.get("Key"): tag.get("Value") for tag in group.get("Tags", [])}
        self._legacy_tags = [key for key in (LEGACY_BASE_TAG, LEGACY_APPLIED_TAG) if key in tags]
        return GroupFacts(
            min_size=int(group["MinSize"]),
            max_size=int(group["MaxSize"]),
            desired=int(group["DesiredCapacity"]),
            in_service=in_service,
            lease_tag=tags.get(LEASE_TAG),
            legacy_base_tag=tags.get(LEGACY_BASE_TAG),
            legacy_applied_tag=tags.get(LEGACY_APPLIED_TAG),
            instance_types=tuple(
                sorted({str(i["InstanceType"]) for i in group.get("Instances", []) if i.get("InstanceType")})
            ),
        )

    def set_capacity(self, desired: int, floor: int, bounds: GroupCapacity) -> None:
        """Desired capacity and MinSize floor in one UpdateAutoScalingGroup call (a cooldown
        left by the reactive policy does not block it, as it does not block AWS's own
        predictive scaling). Without a trustworthy operator MinSize only desired capacity
        is set. The lease naming `floor` must be written first (`write_lease`)."""
        # AWS rejects a desired capacity outside [MinSize, MaxSize]; moto does not, so the
        # checks live here rather than being learned from the emulator.
        if not bounds.floor_managed:
            if not bounds.floor <= desired <= bounds.max_size:
                raise ValueError(f"desired {desired} does not fit [{bounds.floor}, {bounds.max_size}]")
            self._client.update_auto_scaling_group(AutoScalingGroupName=self.name, DesiredCapacity=desired)
            return
        if not bounds.min_size <= floor <= desired <= bounds.max_size:
            raise ValueError(
                f"floor {floor} and desired {desired} do not fit [{bounds.min_size}, {bounds.max_size}] "
                f"of {self.name}"
            )
        self._client.update_auto_scaling_group(
            AutoScalingGroupName=self.name, MinSize=floor, DesiredCapacity=desired
        )

    def set_floor(self, floor: int, bounds: GroupCapacity) -> None:
        """MinSize alone (instances stay; target tracking removes them when their load
        says so): giving the floor back."""
        if not bounds.min_size <= floor <= bounds.max_size:
            raise ValueError(f"floor {floor} does not fit [{bounds.min_size}, {bounds.max_size}]")
        self._client.update_auto_scaling_group(AutoScalingGroupName=self.name, MinSize=floor)

    def write_lease(self, lease: Lease) -> None:
        """The lease, before the MinSize it names is set: if this write fails, MinSize is
        not changed, so the record on the group is never older than the group."""
        self._client.create_or_update_tags(
            Tags=[
                {
                    "ResourceId": self.name,
                    "ResourceType": "auto-scaling-group",
                    "Key": LEASE_TAG,
                    "Value": lease.encode(),
                    "PropagateAtLaunch": False,
                }
            ]
        )
        if self._legacy_tags:
            # The lease supersedes them; left behind, they would mislead a reader.
            self._client.delete_tags(
                Tags=[
                    {"ResourceId": self.name, "ResourceType": "auto-scaling-group", "Key": key}
                    for key in self._legacy_tags
                ]
            )
            self._legacy_tags = []


MAX_POOL_SIZE = 100
"""The most WARM_POOL_MAX_SIZE allows; AWS refuses a negative MinSize, which moto accepts."""


class WarmPool:
    """The group's warm pool: read it, and give it an absolute size (`saleor_scaling.warm_pool`)."""

    def __init__(self, client: AutoScalingClient, group_name: str) -> None:
        self._client = client
        self.name = group_name

    def describe(self) -> PoolConfiguration | None:
        """None: the group has no warm pool (or it is being deleted)."""
        configuration = self._client.describe_warm_pool(AutoScalingGroupName=self.name).get(
            "WarmPoolConfiguration"
        )
        if not configuration or configuration.get("Status") == "PendingDelete":
            return None
        prepared = configuration.get("MaxGroupPreparedCapacity")
        return PoolConfiguration(
            state=str(configuration.get("PoolState", "Stopped")),
            min_size=int(configuration.get("MinSize", 0)),
            max_prepared_capacity=-1 if prepared is None else int(prepared),
            reuse_on_scale_in=bool(configuration.get("InstanceReusePolicy", {}).get("ReuseOnScaleIn", False)),
        )

    def resize(self, size: int, current: PoolConfiguration) -> None:
        """MinSize and MaxGroupPreparedCapacity both `size`: AWS then keeps exactly that many.
        PutWarmPool replaces the whole configuration, so the pool's state and reuse policy
        are sent again as they were (left out, AWS would make a Hibernated pool Stopped)."""
        if not 0 <= size <= MAX_POOL_SIZE:
            raise ValueError(f"warm pool size {size} is outside [0, {MAX_POOL_SIZE}]")
        self._client.put_warm_pool(
            AutoScalingGroupName=self.name,
            MinSize=size,
            MaxGroupPreparedCapacity=size,
            PoolState=current.state,  # type: ignore[arg-type]
            InstanceReusePolicy={"ReuseOnScaleIn": current.reuse_on_scale_in},
        )
