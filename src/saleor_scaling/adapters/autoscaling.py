"""Auto Scaling: read the group's sizes and tags, set its desired capacity and the MinSize floor.

Predictive scaling raises the group's MinSize to the capacity it needs, as a floor under
target tracking: otherwise target tracking's scale-in alarm, seeing the low CPU of
instances added ahead of the load, would remove them before the load arrives. Two tags
on the group make that floor safe to share with an operator:

- `saleor-predictive-scaling:base-min-size`: the operator's own MinSize, which predict
  never goes below and gives back when it lets go of the floor;
- `saleor-predictive-scaling:applied-min-size`: the MinSize predict itself last set. A
  MinSize that is neither this nor what predict last decided was set by someone else (an
  operator raising it for a sale, a scheduled action) and becomes the new base
  (`policy.read_floor`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from saleor_scaling.policy import GroupCapacity, GroupFacts

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
else:
    AutoScalingClient = Any


TAG_PREFIX = "saleor-predictive-scaling:"
BASE_MIN_SIZE_TAG = f"{TAG_PREFIX}base-min-size"
APPLIED_MIN_SIZE_TAG = f"{TAG_PREFIX}applied-min-size"
PROJECT_TAG_KEYS = (BASE_MIN_SIZE_TAG, APPLIED_MIN_SIZE_TAG)
"""The only tag keys predict writes; its IAM policy allows no others (template.yaml)."""


class GroupNotFoundError(Exception):
    pass


class AutoScalingGroup:
    def __init__(self, client: AutoScalingClient, group_name: str) -> None:
        self._client = client
        self.name = group_name
        self._base_tagged = False

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
        self._base_tagged = tags.get(BASE_MIN_SIZE_TAG) is not None
        return GroupFacts(
            min_size=int(group["MinSize"]),
            max_size=int(group["MaxSize"]),
            desired=int(group["DesiredCapacity"]),
            in_service=in_service,
            base_tag=tags.get(BASE_MIN_SIZE_TAG),
            applied_tag=tags.get(APPLIED_MIN_SIZE_TAG),
        )

    def set_capacity(self, desired: int, floor: int, bounds: GroupCapacity) -> None:
        """Desired capacity and MinSize floor in one UpdateAutoScalingGroup call (a cooldown
        left by the reactive policy does not block it, as it does not block AWS's own
        predictive scaling). Without a trustworthy operator MinSize only desired capacity
        is set."""
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
        if not self._base_tagged:
            # Written before MinSize is ever raised: the tag is the only record of the
            # operator's value once the floor is up.
            self.record_base(bounds.min_size)
        self._client.update_auto_scaling_group(
            AutoScalingGroupName=self.name, MinSize=floor, DesiredCapacity=desired
        )

    def set_floor(self, floor: int, bounds: GroupCapacity) -> None:
        """MinSize alone (instances stay; target tracking removes them when their load
        says so): giving the floor back, all at once or a step at a time."""
        if not bounds.min_size <= floor <= bounds.max_size:
            raise ValueError(f"floor {floor} does not fit [{bounds.min_size}, {bounds.max_size}]")
        self._client.update_auto_scaling_group(AutoScalingGroupName=self.name, MinSize=floor)

    def record_applied(self, floor: int) -> None:
        """The MinSize predict has just set, so that a later MinSize it did not set is
        recognised as the operator's."""
        self._tag(APPLIED_MIN_SIZE_TAG, floor)

    def record_base(self, base: int) -> None:
        """The operator's MinSize, as predict must never undercut it."""
        self._tag(BASE_MIN_SIZE_TAG, base)
        self._base_tagged = True

    def _tag(self, key: str, value: int) -> None:
        self._client.create_or_update_tags(
            Tags=[
                {
                    "ResourceId": self.name,
                    "ResourceType": "auto-scaling-group",
                    "Key": key,
                    "Value": str(value),
                    "PropagateAtLaunch": False,
                }
            ]
        )
