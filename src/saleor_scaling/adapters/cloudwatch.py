"""CloudWatch: read every series predict and retraining need in one GetMetricData request."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.series import FloatArray, Metric, MetricHistory

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
else:
    CloudWatchClient = Any

FIVE_MINUTE_RETENTION_SECONDS = 63 * 86400
"""CloudWatch keeps 5-minute datapoints for 63 days; older ones exist only hourly."""
ONE_MINUTE_RETENTION_SECONDS = 15 * 86400
"""1-minute datapoints are kept 15 days; for an older start CloudWatch answers a 60-second
period with nothing, so the busiest-minute query is left out of such requests."""
ONE_MINUTE = 60
MAX_DATAPOINTS_PER_CALL = 100_800
"""GetMetricData's limit on datapoints returned per request (the rest is paginated)."""
MAX_QUERIES_PER_CALL = 500


class MetricsUnavailableError(Exception):
    """The request itself is outside what CloudWatch can answer."""


def metric_queries(
    group_name: str, load_balancer: str, period: int = STEP_SECONDS, one_minute: bool = True
) -> list[dict[str, Any]]:
    """The GetMetricData queries, one per `Metric`, with the metric's id as query id.
    `Metric.BUSIEST_MINUTE` is RequestCount at a 60-second period (reduced to the busiest
    minute of each step by `CloudWatchMetrics.fetch`); without `one_minute` it is left out."""

    def stat(
        metric: Metric,
        namespace: str,
        name: str,
        dimension: str,
        value: str,
        statistic: str,
        seconds: int = period,
    ) -> dict[str, Any]:
        return {
            "Id": metric.value,
            "MetricStat": {
                "Metric": {
                    "Namespace": namespace,
                    "MetricName": name,
                    "Dimensions": [{"Name": dimension, "Value": value}],
                },
                "Period": seconds,
                "Stat": statistic,
            },
            "ReturnData": True,
        }

    alb, asg = ("AWS/ApplicationELB", "LoadBalancer"), ("AutoScalingGroupName",)
    queries = [
        stat(Metric.REQUESTS, alb[0], "RequestCount", alb[1], load_balancer, "Sum"),
        stat(Metric.RESPONSE_TIME, alb[0], "TargetResponseTime", alb[1], load_balancer, "Average"),
        stat(Metric.ERRORS_5XX, alb[0], "HTTPCode_Target_5XX_Count", alb[1], load_balancer, "Sum"),
        stat(Metric.CPU, "AWS/EC2", "CPUUtilization", asg[0], group_name, "Average"),
        stat(Metric.DESIRED, "AWS/AutoScaling", "GroupDesiredCapacity", asg[0], group_name, "Average"),
        stat(Metric.IN_SERVICE, "AWS/AutoScaling", "GroupInServiceInstances", asg[0], group_name, "Average"),
    ]
    if one_minute:
        queries.append(
            stat(Metric.BUSIEST_MINUTE, alb[0], "RequestCount", alb[1], load_balancer, "Sum", ONE_MINUTE)
        )
    return queries


class CloudWatchMetrics:
    def __init__(
        self,
        client: CloudWatchClient,
        group_name: str,
        load_balancer_full_name: str,
        busiest_minute: bool = True,
    ) -> None:
        """`busiest_minute=False` leaves the 1-minute query out: predict does not use it
        (only retraining measures the headroom), so its every-5-minute read stays small."""
        self._client = client
        self._group_name, self._load_balancer = group_name, load_balancer_full_name
        self._busiest_minute = busiest_minute

    def fetch(self, start: int, end: int, now: int) -> MetricHistory:
        """The 5-minute history [start, end), `now` being the run's clock (not the host's)."""
        queries = metric_queries(
            self._group_name,
            self._load_balancer,
            one_minute=self._busiest_minute and now - start <= ONE_MINUTE_RETENTION_SECONDS,
        )
        check_request_window(start, end, now, len(queries))
        points = self._points(queries, start, end)
        points[Metric.BUSIEST_MINUTE] = busiest_per_step(points[Metric.BUSIEST_MINUTE])
        return MetricHistory.from_points(start, end, points)

    def request_minutes(self, start: int, end: int, now: int) -> FloatArray:
        """ALB RequestCount (Sum) of each minute of [start, end), NaN where CloudWatch holds
        no datapoint (the ALB publishes none for a minute without requests). Refused for a
        start more than 15 days before `now`: CloudWatch answers a 60-second period there with
        nothing (moto would still answer, so the rule lives here). The backtest's own-history
        source reads these; predict and retraining read `fetch`."""
        if now - start > ONE_MINUTE_RETENTION_SECONDS:
            raise MetricsUnavailableError(
                "1-minute datapoints are kept 15 days; this window starts "
                f"{(now - start) / 86400:.1f} days ago: read it at 5 minutes (fetch)"
            )
        queries = [
            query
            for query in metric_queries(self._group_name, self._load_balancer)
            if query["Id"] == Metric.BUSIEST_MINUTE.value
        ]
        check_request_window(start, end, now, len(queries))
        minutes = np.full((end - start) // ONE_MINUTE, np.nan)
        for stamp, value in self._points(queries, start, end)[Metric.BUSIEST_MINUTE]:
            index = (int(stamp) - start) // ONE_MINUTE
            if 0 <= index < len(minutes) and math.isfinite(value):
                minutes[index] = value
        return minutes

    def _points(
        self, queries: list[dict[str, Any]], start: int, end: int
    ) -> dict[Metric, list[tuple[float, float]]]:
        """Every (epoch seconds, value) the queries return over [start, end), all pages."""
        points: dict[Metric, list[tuple[float, float]]] = {metric: [] for metric in Metric}
        request: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": datetime.fromtimestamp(start, UTC),
            "EndTime": datetime.fromtimestamp(end, UTC),
            "ScanBy": "TimestampAscending",
            "MaxDatapoints": MAX_DATAPOINTS_PER_CALL,
        }
        while True:
            response = self._client.get_metric_data(**request)
            for result in response.get("MetricDataResults", []):
                metric = Metric(result["Id"])
                stamps: Sequence[datetime] = result.get("Timestamps", [])
                points[metric].extend(
                    (stamp.timestamp(), float(value))
                    for stamp, value in zip(stamps, result.get("Values", []), strict=False)
                )
            token = response.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        return points


def busiest_per_step(minutes: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The largest 1-minute value of each 5-minute step, stamped with the step's start.
    A step is judged on the minutes CloudWatch returned: an idle minute may be absent."""
    busiest: dict[int, float] = {}
    for stamp, value in minutes:
        step = int(stamp) // STEP_SECONDS * STEP_SECONDS
        busiest[step] = max(value, busiest.get(step, value))
    return sorted((float(step), value) for step, value in busiest.items())


def check_request_window(start: int, end: int, now: int, queries: int) -> None:
    """Refuse what real CloudWatch would refuse or silently answer with nothing."""
    if start % STEP_SECONDS or end % STEP_SECONDS:
        raise MetricsUnavailableError("start and end must align to the 5-minute period")
    if end <= start:
        raise MetricsUnavailableError(f"empty window {start}..{end}")
    if now - start > FIVE_MINUTE_RETENTION_SECONDS:
        raise MetricsUnavailableError(
            "window starts beyond CloudWatch's 63-day retention of 5-minute data; "
            "read older days from the S3 history backup"
        )
    if queries > MAX_QUERIES_PER_CALL:
        raise MetricsUnavailableError(f"{queries} queries exceed {MAX_QUERIES_PER_CALL} per call")
