"""An emulated shop for tests and the local run: real boto3 calls against moto.

It builds what the SAM stack would (a VPC, an ALB, an Auto Scaling group, a versioned
model bucket, an SNS topic) and publishes metric history as ALB, EC2 and Auto Scaling
would. moto accepts more than AWS does; where it matters, this module enforces AWS's
limits itself (PutMetricData: 1,000 datums a request, timestamps at most two weeks old).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import numpy.typing as npt

from saleor_scaling import STEP_SECONDS
from saleor_scaling.series import FloatArray, Metric, MetricHistory

PUT_METRIC_DATA_MAX_DATUMS = 1000
PUT_METRIC_DATA_MAX_AGE_SECONDS = 14 * 86400

METRIC_SOURCES: dict[Metric, tuple[str, str, str]] = {
    Metric.REQUESTS: ("AWS/ApplicationELB", "RequestCount", "lb"),
    Metric.RESPONSE_TIME: ("AWS/ApplicationELB", "TargetResponseTime", "lb"),
    Metric.ERRORS_5XX: ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "lb"),
    Metric.CPU: ("AWS/EC2", "CPUUtilization", "asg"),
    Metric.DESIRED: ("AWS/AutoScaling", "GroupDesiredCapacity", "asg"),
    Metric.IN_SERVICE: ("AWS/AutoScaling", "GroupInServiceInstances", "asg"),
}


@dataclass(frozen=True)
class EmulatedShop:
    group_name: str
    load_balancer_full_name: str
    bucket: str
    topic_arn: str
    region: str

    def environment(self, **overrides: str) -> dict[str, str]:
        """The predict/retrain functions' environment, as template.yaml sets it."""
        env = {
            "AUTO_SCALING_GROUP_NAME": self.group_name,
            "LOAD_BALANCER_FULL_NAME": self.load_balancer_full_name,
            "MODEL_BUCKET": self.bucket,
            "NOTIFICATION_TOPIC_ARN": self.topic_arn,
            "SCALING_MODE": "forecast-and-scale",
            "AWS_DEFAULT_REGION": self.region,
            "POWERTOOLS_SERVICE_NAME": "predict",
            "POWERTOOLS_METRICS_NAMESPACE": "SaleorPredictiveScaling",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        env.update(overrides)
        return env


def create_shop(
    session: boto3.session.Session,
    *,
    group_name: str = "saleor-api",
    min_size: int = 1,
    max_size: int = 10,
    desired: int = 2,
    bucket: str = "saleor-scaling-models",
) -> EmulatedShop:
    region = session.region_name or "us-east-1"
    ec2 = session.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    zones = [zone["ZoneName"] for zone in ec2.describe_availability_zones()["AvailabilityZones"][:2]]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate(zones)
    ]
    elbv2 = session.client("elbv2")
    balancer_arn = elbv2.create_load_balancer(Name="saleor-alb", Subnets=subnets, Type="application")[
        "LoadBalancers"
    ][0]["LoadBalancerArn"]
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(
        LaunchTemplateName=f"{group_name}-lt",
        LaunchTemplateData={"ImageId": image_id, "InstanceType": "t3.medium"},
    )
    session.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=group_name,
        LaunchTemplate={"LaunchTemplateName": f"{group_name}-lt", "Version": "$Latest"},
        MinSize=min_size,
        MaxSize=max_size,
        DesiredCapacity=desired,
        VPCZoneIdentifier=",".join(subnets),
    )
    s3 = session.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    topic_arn = session.client("sns").create_topic(Name="saleor-scaling-notices")["TopicArn"]
    return EmulatedShop(
        group_name=group_name,
        load_balancer_full_name=load_balancer_full_name(balancer_arn),
        bucket=bucket,
        topic_arn=topic_arn,
        region=region,
    )


def load_balancer_full_name(balancer_arn: str) -> str:
    """The CloudWatch dimension value (app/name/id) from an ALB ARN."""
    return balancer_arn.split(":loadbalancer/", 1)[1]


def publish_history(
    session: boto3.session.Session,
    shop: EmulatedShop,
    history: MetricHistory,
    now: int,
    metrics: tuple[Metric, ...] = tuple(METRIC_SOURCES),
) -> int:
    """Publish each step's value as the AWS service would; returns datums written.
    Steps more than two weeks before `now` are refused, as PutMetricData refuses them.
    RequestCount goes out per minute, as the ALB publishes it (`minute_request_counts`), so
    that both its 5-minute Sum and its busiest minute read back as the history holds them."""
    oldest = history.start
    if now - oldest > PUT_METRIC_DATA_MAX_AGE_SECONDS:
        raise ValueError(
            "PutMetricData accepts timestamps at most two weeks old; keep older history in the "
            "S3 backup instead"
        )
    cloudwatch = session.client("cloudwatch")
    stamps = history.timestamps()
    written = 0
    for metric in metrics:
        namespace, name, owner = METRIC_SOURCES[metric]
        dimension = (
            {"Name": "LoadBalancer", "Value": shop.load_balancer_full_name}
            if owner == "lb"
            else {"Name": "AutoScalingGroupName", "Value": shop.group_name}
        )
        if metric is Metric.REQUESTS:
            minute_stamps, values = minute_request_counts(history)
        else:
            minute_stamps, values = stamps, history[metric]
        present = np.flatnonzero(~np.isnan(values))
        datums: list[dict[str, Any]] = [
            {
                "MetricName": name,
                "Dimensions": [dimension],
                "Timestamp": datetime.fromtimestamp(int(minute_stamps[i]), UTC),
                "Value": float(values[i]),
            }
            for i in present
        ]
        for offset in range(0, len(datums), PUT_METRIC_DATA_MAX_DATUMS):
            cloudwatch.put_metric_data(
                Namespace=namespace,
                MetricData=datums[offset : offset + PUT_METRIC_DATA_MAX_DATUMS],  # type: ignore[arg-type]
            )
        written += len(datums)
    return written


def minute_request_counts(history: MetricHistory) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Five 1-minute RequestCounts per step whose Sum is the step's count and whose largest
    is its busiest minute: that minute first, the rest spread evenly over the other four (a
    step without a known busiest minute is spread evenly over all five)."""
    minutes = STEP_SECONDS // 60
    total = history[Metric.REQUESTS]
    busiest = np.clip(np.nan_to_num(history.busiest_minute(), nan=0.0), total / minutes, total)
    rest = (total - busiest) / (minutes - 1)
    counts = np.column_stack([busiest] + [rest] * (minutes - 1))
    stamps = history.timestamps()[:, None] + 60 * np.arange(minutes)[None, :]
    return stamps.reshape(-1), counts.reshape(-1)


FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"


def load_function(function: str, functions_dir: Path = FUNCTIONS_DIR) -> ModuleType:
    """Import functions/<function>/app.py under its own module name, as Lambda imports
    the handler file of each function (both are called app.py)."""
    path = functions_dir / function / "app.py"
    name = f"{function}_app"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def set_function_clock(handler: ModuleType, clock: Callable[[], float]) -> None:
    """Replace a handler module's own clock (`clock`, time.time in Lambda), against which
    the predict function judges an event's time: tests deliver events from the past."""
    handler.__dict__["clock"] = clock


def scheduled_event(time_iso: str, **detail: Any) -> dict[str, Any]:
    """An EventBridge scheduled event, as the rule delivers it."""
    return {
        "version": "0",
        "id": f"local-{time_iso}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time_iso,
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/saleor-predict-schedule"],
        "detail": detail,
    }


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name: str = "local-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "local-request"
    timeout_seconds: int = 300

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_seconds * 1000
