"""The warm pool adapter against moto's Auto Scaling: predict resizes the pool and keeps
its state and reuse policy (PutWarmPool replaces the whole configuration; moto, as AWS,
makes a pool sent without a state Stopped)."""

from __future__ import annotations

import pytest

from saleor_scaling.adapters.autoscaling import WarmPool
from saleor_scaling.warm_pool import PoolConfiguration

GROUP = "saleor-api"


def make_group(session) -> None:
    ec2 = session.client("ec2")
    template = ec2.create_launch_template(
        LaunchTemplateName="saleor",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.medium"},
    )
    session.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"]},
        MinSize=1,
        MaxSize=10,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
    )


def test_a_group_without_a_pool_reads_as_none(aws):
    make_group(aws)
    assert WarmPool(aws.client("autoscaling"), GROUP).describe() is None


def test_resizing_keeps_the_state_and_the_reuse_policy(aws):
    make_group(aws)
    client = aws.client("autoscaling")
    client.put_warm_pool(
        AutoScalingGroupName=GROUP,
        MinSize=1,
        PoolState="Hibernated",
        InstanceReusePolicy={"ReuseOnScaleIn": True},
    )
    pool = WarmPool(client, GROUP)
    current = pool.describe()
    assert current == PoolConfiguration("Hibernated", 1, -1, True)
    pool.resize(3, current)
    configuration = client.describe_warm_pool(AutoScalingGroupName=GROUP)["WarmPoolConfiguration"]
    assert configuration["MinSize"] == 3
    assert configuration["MaxGroupPreparedCapacity"] == 3
    assert configuration["PoolState"] == "Hibernated"
    assert configuration["InstanceReusePolicy"] == {"ReuseOnScaleIn": True}
    assert pool.describe() == PoolConfiguration("Hibernated", 3, 3, True)


@pytest.mark.parametrize("size", [-1, 101])
def test_a_size_aws_refuses_is_refused_here(aws, size):
    make_group(aws)
    client = aws.client("autoscaling")
    client.put_warm_pool(AutoScalingGroupName=GROUP, MinSize=1, PoolState="Stopped")
    pool = WarmPool(client, GROUP)
    with pytest.raises(ValueError, match=rf"^warm pool size {size} is outside \[0, 100\]$"):
        pool.resize(size, PoolConfiguration("Stopped", 1, -1, False))
    assert client.describe_warm_pool(AutoScalingGroupName=GROUP)["WarmPoolConfiguration"]["MinSize"] == 1
