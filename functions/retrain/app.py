"""Retrain handler: runs nightly from an EventBridge cron.

Thin by design: parse the event, wire the AWS adapters, call
`saleor_scaling.retrain_service.run_retrain`, log one line that explains the outcome, emit
training metrics. A refused or kept run is a success (predict keeps what serves); only an
AWS fault fails the invocation, so that the Lambda errors alarm sees it.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from saleor_scaling import METRICS_NAMESPACE
from saleor_scaling.adapters.autoscaling import AutoScalingGroup
from saleor_scaling.adapters.calendar_store import S3Calendar
from saleor_scaling.adapters.cloudwatch import CloudWatchMetrics, MetricsUnavailableError
from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.adapters.notifications import SnsNotifier
from saleor_scaling.adapters.proposal_store import S3Proposals
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.adapters.saleor import SaleorPromotions, secret_token
from saleor_scaling.events import scheduled_event_time
from saleor_scaling.handler_support import handle_scheduled_run
from saleor_scaling.retrain_service import RetrainPorts, RetrainResult, RetrainStatus, run_retrain
from saleor_scaling.settings import RetrainSettings

# Named here, not only by POWERTOOLS_SERVICE_NAME, so local runs log and measure alike.
logger = Logger(service="retrain")
tracer = Tracer(service="retrain")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="retrain")

AWS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=60
)
AWS_FAULTS = (ClientError, BotoCoreError, MetricsUnavailableError)


def build_ports(settings: RetrainSettings, session: boto3.session.Session) -> RetrainPorts:
    s3 = session.client("s3", config=AWS_CLIENT_CONFIG)
    promotions, proposals = None, None
    if settings.reads_promotions:
        secrets = session.client("secretsmanager", config=AWS_CLIENT_CONFIG)
        token = secret_token(secrets, settings.promotions_token_secret_arn)
        promotions = SaleorPromotions(settings.saleor_api_url, token)
        proposals = S3Proposals(s3, settings.model.bucket)
    return RetrainPorts(
        metrics=CloudWatchMetrics(
            session.client("cloudwatch", config=AWS_CLIENT_CONFIG),
            settings.auto_scaling_group_name,
            settings.load_balancer_full_name,
        ),
        archive=S3HistoryArchive(s3, settings.model.bucket, settings.history_prefix),
        models=S3ModelRegistry(s3, settings.model),
        notifier=SnsNotifier(session.client("sns", config=AWS_CLIENT_CONFIG), settings.topic_arn),
        calendar=S3Calendar(s3, settings.model.bucket),
        promotions=promotions,
        proposals=proposals,
        # Read only when a shortfall goal is replayed (`retrain_service._tune`): its bounds tonight.
        group=AutoScalingGroup(
            session.client("autoscaling", config=AWS_CLIENT_CONFIG), settings.auto_scaling_group_name
        ),
    )


@metrics.log_metrics  # no ColdStart metric: a cold start is the REPORT line's Init Duration
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    def run(now: int) -> RetrainResult:
        # Read per invocation: the job runs once a night, so a warm cache would only serve
        # stale settings after a redeploy. Read inside the handled run, so that a bad
        # setting gets the RetrainErrors metric and a log line like any other fault.
        settings = RetrainSettings.from_env()
        metrics.clear_default_dimensions()
        metrics.set_default_dimensions(AutoScalingGroupName=settings.auto_scaling_group_name)
        return run_retrain(now, settings, build_ports(settings, boto3.session.Session()))

    result = handle_scheduled_run(
        event,
        scheduled_event_time,
        run,
        logger=logger,
        metrics=metrics,
        faults=AWS_FAULTS,
        fault_metrics=("RetrainErrors",),
        left_undone="the serving model is unchanged",
    )
    log = logger.warning if result.warning else logger.info
    log(result.reason, extra={"retrain": result.log_record()})
    publish_metrics(result)
    return result.log_record()


def publish_metrics(result: RetrainResult) -> None:
    """What the dashboard's retraining widgets read, once a night (a metric sent once a
    night is billed for that hour only); the history fetched, the learned capacity and the
    model's size are in the run's log line (docs/operations.md)."""
    count = MetricUnit.Count
    metrics.add_metric(name="Promoted", unit=count, value=1 if result.promoted else 0)
    metrics.add_metric(name="TrainingRows", unit=count, value=result.training_rows)
    metrics.add_metric(name="TrainingDurationSeconds", unit=MetricUnit.Seconds, value=result.duration_seconds)
    for metric_name, side in (
        ("TrainingMae", "challenger"),
        ("BaselineMae", "seasonal_naive"),
        ("ChampionMae", "champion"),
    ):
        mae = result.scores.get(side, {}).get("mae")
        if mae is not None:
            metrics.add_metric(name=metric_name, unit=count, value=mae)
    if result.tuning is not None:
        # Two metrics, for an alarm on the goal; the goal and the instance-hours are in the
        # report, which the dashboard reads with Logs Insights (each metric is billed).
        chosen = result.tuning["chosen"]
        metrics.add_metric(
            name="TunedHeadroomQuantile", unit=MetricUnit.NoUnit, value=chosen["headroom_quantile"]
        )
        metrics.add_metric(
            name="ReplayShortfallPercent", unit=MetricUnit.Percent, value=chosen["replay_short_share"] * 100
        )
    # Only when they happen.
    if result.status is RetrainStatus.REFUSED:
        metrics.add_metric(name="Refused", unit=count, value=1)
    if result.history is not None and result.history.corrupt_backups:
        metrics.add_metric(
            name="CorruptHistoryObjects", unit=count, value=len(result.history.corrupt_backups)
        )
    if result.notification_error:
        metrics.add_metric(name="NotificationErrors", unit=count, value=1)
