"""Predict handler: runs every 5 minutes from an EventBridge schedule.

Thin by design: parse the event, wire the AWS adapters (once per container), call
`saleor_scaling.predict_service.run_predict`, log one decision line, emit metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from saleor_scaling import METRICS_NAMESPACE
from saleor_scaling.adapters.autoscaling import AutoScalingGroup, GroupNotFoundError, WarmPool
from saleor_scaling.adapters.calendar_store import S3Calendar
from saleor_scaling.adapters.cloudwatch import CloudWatchMetrics, MetricsUnavailableError
from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.adapters.notifications import SnsNotifier
from saleor_scaling.adapters.quotas import OnDemandQuota
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.adapters.state_store import S3DecisionState
from saleor_scaling.events import scheduled_event_time
from saleor_scaling.handler_support import handle_scheduled_run
from saleor_scaling.predict_service import (
    PredictPorts,
    PredictResult,
    Status,
    run_predict,
)
from saleor_scaling.settings import PredictSettings, ScalingMode

# Named here, not only by POWERTOOLS_SERVICE_NAME, so local runs log and measure alike.
logger = Logger(service="predict")
tracer = Tracer(service="predict")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="predict")

# Throttling is retried by botocore with backoff; what still fails after that is a fault.
AWS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20
)
AWS_FAULTS = (ClientError, BotoCoreError, GroupNotFoundError, MetricsUnavailableError)

_dependencies: tuple[PredictSettings, PredictPorts] | None = None
clock: Callable[[], float] = time.time
"""The function's own clock, against which an event's time is judged (tests replace it)."""


def build_ports(settings: PredictSettings, session: boto3.session.Session) -> PredictPorts:
    s3 = session.client("s3", config=AWS_CLIENT_CONFIG)
    autoscaling = session.client("autoscaling", config=AWS_CLIENT_CONFIG)
    return PredictPorts(
        metrics=CloudWatchMetrics(
            session.client("cloudwatch", config=AWS_CLIENT_CONFIG),
            settings.auto_scaling_group_name,
            settings.load_balancer_full_name,
            busiest_minute=False,
        ),
        archive=S3HistoryArchive(s3, settings.model.bucket, settings.history_prefix),
        group=AutoScalingGroup(autoscaling, settings.auto_scaling_group_name),
        models=S3ModelRegistry(s3, settings.model),
        state=S3DecisionState(s3, settings.model.bucket, settings.state_key),
        notifier=SnsNotifier(session.client("sns", config=AWS_CLIENT_CONFIG), settings.topic_arn),
        calendar=S3Calendar(s3, settings.model.bucket),
        quota=OnDemandQuota(
            session.client("service-quotas", config=AWS_CLIENT_CONFIG),
            session.client("ec2", config=AWS_CLIENT_CONFIG),
        ),
        # Only where predict sizes the pool: otherwise it never reads or changes it.
        warm_pool=WarmPool(autoscaling, settings.auto_scaling_group_name)
        if settings.warm_pool_bounds
        else None,
    )


def dependencies() -> tuple[PredictSettings, PredictPorts]:
    """Settings and adapters, built on the first invocation and kept while warm (the model
    cache inside the ports lives as long)."""
    global _dependencies
    if _dependencies is None:
        settings = PredictSettings.from_env()
        _dependencies = (settings, build_ports(settings, boto3.session.Session()))
        metrics.clear_default_dimensions()
        metrics.set_default_dimensions(AutoScalingGroupName=settings.auto_scaling_group_name)
    return _dependencies


def reset_dependencies() -> None:
    """Forget settings and clients (tests change the environment between cases)."""
    global _dependencies
    _dependencies = None


def parse_event(event: Mapping[str, Any]) -> tuple[int, ScalingMode | None, bool]:
    """The run's clock, an optional mode override and the dry-run flag from a scheduled event."""
    now = scheduled_event_time(event)
    detail = event.get("detail") or {}
    if not isinstance(detail, dict):
        raise ValueError("event 'detail' must be an object")
    dry_run = detail.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ValueError(f"detail.dry_run {dry_run!r} is not true or false")
    raw_mode = detail.get("mode")
    if raw_mode is None:
        return now, None, dry_run
    try:
        return now, ScalingMode(raw_mode), dry_run
    except ValueError as error:
        raise ValueError(f"detail.mode {raw_mode!r} is not forecast-only or forecast-and-scale") from error


@metrics.log_metrics  # no ColdStart metric: a cold start is the REPORT line's Init Duration
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    received_at = clock()

    def run(parsed: tuple[int, ScalingMode | None, bool]) -> PredictResult:
        # Settings are read inside the handled run: a bad one gets the metric and the log
        # line of every other fault.
        settings, ports = dependencies()
        now, mode, dry_run = parsed
        return run_predict(now, settings, ports, mode, received_at=received_at, dry_run=dry_run)

    result = handle_scheduled_run(
        event,
        parse_event,
        run,
        logger=logger,
        metrics=metrics,
        faults=AWS_FAULTS,
        fault_metrics=("PredictErrors", "FallbackUsed"),
        left_undone="nothing scaled",
    )
    if (
        result.status is Status.REJECTED
        or result.state_reset
        or result.floor_note.startswith("warning")
        or result.horizon_note
        or result.warm_pool_note.startswith("warning")
        or result.calendar_warning
    ):
        logger.warning(result.reason, extra={"decision": result.log_record()})
    else:
        logger.info(result.reason, extra={"decision": result.log_record()})
    if result.status is not Status.DRY_RUN:  # a rehearsal must not move the dashboard or page anyone
        publish_metrics(result)
    return result.log_record()


def publish_metrics(result: PredictResult) -> None:
    """Only what the dashboard and the alarms read (infra-cfn/monitoring.yaml): a custom
    metric is billed for every hour it is sent, whatever its value. Everything else a run
    knows (desired and in-service capacity, the headroom, the action applied, the forecast
    error, which the dashboard reads from the log) is in its decision log line, queryable
    with Logs Insights (docs/operations.md); the group's own capacity is in AWS/AutoScaling."""
    count = MetricUnit.Count
    if result.predicted_capacity is not None:
        metrics.add_metric(name="PredictedCapacity", unit=count, value=result.predicted_capacity)
    if result.group:
        # What predict would have the group at: the decision's target, or in a fallback the
        # capacity it holds. Published by every run that read the group, so that its absence
        # is the no-decision alarm.
        recommended = result.decision.target if result.decision else result.group.desired
        metrics.add_metric(name="RecommendedCapacity", unit=count, value=recommended)
    # Counters are emitted only when their event happens (alarms treat missing data as not
    # breaching, and a run without a fallback is a missing FallbackUsed).
    for name, happened in (
        ("FallbackUsed", result.fallback_used),
        ("WarmingUp", result.status is Status.WARMING_UP),
        ("ScalingActions", result.changed_group),
        ("DuplicateEvents", result.status is Status.DUPLICATE),
        ("RejectedEvents", result.status is Status.REJECTED),
        ("StateResets", bool(result.state_reset)),
        ("NotificationErrors", bool(result.notification_error)),
    ):
        if happened:
            metrics.add_metric(name=name, unit=count, value=1)
    if result.corrupt_history:
        metrics.add_metric(name="CorruptHistoryObjects", unit=count, value=len(result.corrupt_history))
    if result.warm_up is not None:
        # The dashboard's "first model expected in" line: sent only while warming up.
        metrics.add_metric(
            name="HoursToFirstModel",
            unit=MetricUnit.Count,
            value=round(result.warm_up.hours_to_first_model(result.decision_time), 2),
        )
