"""Auto Scaling: read the group's sizes and set its desired capacity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from saleor_scaling.policy import GroupCapacity

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
else:
    AutoScalingClient = Any


class GroupNotFoundError(Exception):
    pass


class AutoScalingGroup:
    def __init__(self, client: AutoScalingClient, group_name: str) -> None:
        self._client = client
        self.name = group_name

    def capacity(self) -> GroupCapacity:
        response = self._client.describe_auto_scaling_groups(AutoScalingGroupNames=[self.name])
        groups = response.get("AutoScalingGroups", [])
        if not groups or groups[0].get("Status") == "Delete in progress":
            raise GroupNotFoundError(f"Auto Scaling group {self.name!r} does not exist")
        group = groups[0]
        in_service = sum(
            1 for instance in group.get("Instances", []) if instance.get("LifecycleState") == "InService"
        )
        return GroupCapacity(
            min_size=int(group["MinSize"]),
            max_size=int(group["MaxSize"]),
            desired=int(group["DesiredCapacity"]),
            in_service=in_service,
        )

    def set_desired_capacity(self, desired: int, bounds: GroupCapacity) -> None:
        # AWS rejects a desired capacity outside [MinSize, MaxSize]; moto does not, so the
        # check lives here rather than being learned from the emulator.
        if not bounds.min_size <= desired <= bounds.max_size:
            raise ValueError(
                f"desired {desired} outside [{bounds.min_size}, {bounds.max_size}] of {self.name}"
            )
        # Predictive capacity is deliberate: a cooldown left by the reactive policy must not
        # block it, as AWS's own predictive scaling is not blocked by cooldowns.
        self._client.set_desired_capacity(
            AutoScalingGroupName=self.name, DesiredCapacity=desired, HonorCooldown=False
        )
