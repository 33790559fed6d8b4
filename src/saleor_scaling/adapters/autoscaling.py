"""Auto Scaling: read the group's sizes, set its desired capacity and the MinSize floor.

Predictive scaling raises the group's MinSize to the capacity it sets, as a floor under
target tracking: otherwise target tracking's scale-in alarm, seeing the low CPU of
instances added ahead of the load, would remove them before the load arrives. The
operator's own MinSize is kept in a tag on the group, so that the floor can always be
lowered back to it (by predict's gradual scale-in, or at once in forecast-only mode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from saleor_scaling.policy import GroupCapacity

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
else:
    AutoScalingClient = Any


BASE_MIN_SIZE_TAG = "saleor-predictive-scaling:base-min-size"


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
        current_min = int(group["MinSize"])
        tagged = {tag.get("Key"): tag.get("Value") for tag in group.get("Tags", [])}.get(BASE_MIN_SIZE_TAG)
        self._base_tagged = tagged is not None
        base_min = _parse_size(tagged, current_min)
        return GroupCapacity(
            min_size=min(base_min, current_min),
            max_size=int(group["MaxSize"]),
            desired=int(group["DesiredCapacity"]),
            in_service=in_service,
            current_min_size=current_min,
        )

    def set_capacity(self, desired: int, floor: int, bounds: GroupCapacity) -> None:
        """Desired capacity and MinSize floor in one UpdateAutoScalingGroup call (a cooldown
        left by the reactive policy does not block it, as it does not block AWS's own
        predictive scaling)."""
        # AWS rejects a desired capacity outside [MinSize, MaxSize]; moto does not, so the
        # checks live here rather than being learned from the emulator.
        if not bounds.min_size <= floor <= desired <= bounds.max_size:
            raise ValueError(
                f"floor {floor} and desired {desired} do not fit [{bounds.min_size}, {bounds.max_size}] "
                f"of {self.name}"
            )
        self._remember_base_min(bounds)
        self._client.update_auto_scaling_group(
            AutoScalingGroupName=self.name, MinSize=floor, DesiredCapacity=desired
        )

    def release_floor(self, bounds: GroupCapacity) -> bool:
        """Give MinSize back to the operator's value (instances stay; target tracking
        removes them when their load says so). True if it changed."""
        if bounds.floor <= bounds.min_size:
            return False
        self._client.update_auto_scaling_group(AutoScalingGroupName=self.name, MinSize=bounds.min_size)
        return True

    def _remember_base_min(self, bounds: GroupCapacity) -> None:
        if getattr(self, "_base_tagged", False):
            return
        # Written before MinSize is ever raised: the tag is the only record of the
        # operator's value once the floor is up.
        self._client.create_or_update_tags(
            Tags=[
                {
                    "ResourceId": self.name,
                    "ResourceType": "auto-scaling-group",
                    "Key": BASE_MIN_SIZE_TAG,
                    "Value": str(bounds.min_size),
                    "PropagateAtLaunch": False,
                }
            ]
        )
        self._base_tagged = True


def _parse_size(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default
