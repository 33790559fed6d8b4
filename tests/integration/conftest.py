"""An emulated shop with history and a published model, and the predict handler wired to it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest

from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.local.emulator import (
    EmulatedShop,
    LocalLambdaContext,
    create_shop,
    publish_history,
    scheduled_event,
    set_function_clock,
)
from saleor_scaling.model import ModelMetadata
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ModelLocation
from saleor_scaling.training import TrainingConfig, build_model
from tests.conftest import load_handler, synthetic_history

MONDAY = 1_700_438_400  # 2023-11-20 00:00 UTC
PEAK_PER_MINUTE = 20_000.0
NOW = MONDAY + 8 * 86400 + 12 * 3600 + 17  # Tuesday 12:00:17 UTC, load rising


@pytest.fixture(scope="session")
def shop_history() -> MetricHistory:
    return synthetic_history(MONDAY, 9, peak_per_minute=PEAK_PER_MINUTE)


@pytest.fixture(scope="session")
def trained_model(shop_history: MetricHistory) -> tuple[bytes, ModelMetadata]:
    training = shop_history.window(MONDAY, NOW - 86400 - NOW % 300)
    model = build_model(training, TrainingConfig(horizon_steps=4, n_estimators=30), 1000.0)
    return model.ensemble.to_npz(), model.metadata


@dataclass
class PredictWorld:
    session: boto3.session.Session
    shop: EmulatedShop
    handler: ModuleType
    history: MetricHistory
    published_until: int

    def advance(self, now: int) -> str:
        """Publish the metrics the shop emitted up to `now`, as time passes; returns its ISO time."""
        until = now - now % 300
        if until > self.published_until:
            publish_history(self.session, self.shop, self.history.window(self.published_until, until), now)
            self.published_until = until
        return iso(now)

    def invoke(
        self, time_iso: str | None = None, received_after: float = 3.0, **detail: Any
    ) -> dict[str, Any]:
        """Invoke the handler with the event of `time_iso`, delivered `received_after`
        seconds later by the function's own clock (EventBridge delivers within seconds)."""
        event = scheduled_event(time_iso or iso(NOW), **detail)
        sent = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        set_function_clock(self.handler, lambda: sent + received_after)
        result: dict[str, Any] = self.handler.lambda_handler(event, LocalLambdaContext("predict"))
        return result

    def describe(self) -> dict[str, Any]:
        groups = self.session.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.shop.group_name]
        )["AutoScalingGroups"]
        described: dict[str, Any] = dict(groups[0])
        return described

    def desired(self) -> int:
        return int(self.describe()["DesiredCapacity"])

    def set_desired(self, capacity: int) -> None:
        self.session.client("autoscaling").set_desired_capacity(
            AutoScalingGroupName=self.shop.group_name, DesiredCapacity=capacity
        )

    def registry(self) -> S3ModelRegistry:
        return S3ModelRegistry(self.session.client("s3"), ModelLocation(bucket=self.shop.bucket))

    def subscribe_queue(self) -> str:
        """An SQS queue on the notice topic, to read what SNS delivered."""
        sqs = self.session.client("sqs")
        url = sqs.create_queue(QueueName="notices")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.session.client("sns").subscribe(TopicArn=self.shop.topic_arn, Protocol="sqs", Endpoint=arn)
        return url

    def notices(self, url: str) -> list[dict[str, Any]]:
        messages = (
            self.session.client("sqs")
            .receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            .get("Messages", [])
        )
        return [json.loads(message["Body"]) for message in messages]


def iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat().replace("+00:00", "Z")


def seed_history(
    session: boto3.session.Session, shop: EmulatedShop, history: MetricHistory, now: int
) -> None:
    """The last 26 hours in CloudWatch, as the services publish them; older days in the
    S3 backup, as the nightly job leaves them."""
    cutoff = now - now % 300 - 26 * 3600
    publish_history(session, shop, history.window(cutoff, now - now % 300), now)
    S3HistoryArchive(session.client("s3"), shop.bucket, f"history/{shop.group_name}").write(
        history.window(history.start, cutoff)
    )


def overprovisioned(history: MetricHistory, fleet: int) -> MetricHistory:
    """The same load served by a fixed, oversized fleet: CPU falls as instances are added."""
    in_service = history[Metric.IN_SERVICE]
    values = dict(history.values)
    values[Metric.CPU] = history[Metric.CPU] * in_service / fleet
    values[Metric.IN_SERVICE] = np.full(len(history), float(fleet))
    values[Metric.DESIRED] = np.full(len(history), float(fleet))
    return MetricHistory(start=history.start, values=values)


def make_world(
    session: boto3.session.Session,
    monkeypatch: pytest.MonkeyPatch,
    history: MetricHistory,
    trained_model: tuple[bytes, ModelMetadata],
    desired: int,
) -> PredictWorld:
    shop = create_shop(session, desired=desired, max_size=20)
    seed_history(session, shop, history, NOW)
    blob, metadata = trained_model
    S3ModelRegistry(session.client("s3"), ModelLocation(bucket=shop.bucket)).publish(blob, metadata)
    for name, value in shop.environment().items():
        monkeypatch.setenv(name, value)
    handler = load_handler("predict")
    handler.reset_dependencies()
    return PredictWorld(session, shop, handler, history, published_until=NOW - NOW % 300)


@pytest.fixture
def world(aws, monkeypatch, shop_history, trained_model) -> PredictWorld:
    return make_world(aws, monkeypatch, shop_history, trained_model, desired=2)


@pytest.fixture
def oversized_world(aws, monkeypatch, shop_history, trained_model) -> PredictWorld:
    """A shop left at 15 instances for load that needs about 8: CPU is low."""
    return make_world(aws, monkeypatch, overprovisioned(shop_history, 15), trained_model, desired=15)


@pytest.fixture(scope="module")
def unbind_handler_loggers() -> Iterator[None]:
    """The handlers' Powertools loggers bind to the stdout of the first import; a module
    that uses this unbinds them after its last test, so that a later test (the local run,
    which redirects stdout to its log file) gets loggers of its own, as when that module
    did not run first."""
    yield
    for name in ("predict", "retrain"):
        handler_logger = logging.getLogger(name)
        for handler in list(handler_logger.handlers):
            handler_logger.removeHandler(handler)
        for attribute in ("init", "powertools_handler", "logger_handler"):
            if hasattr(handler_logger, attribute):
                delattr(handler_logger, attribute)


def emitted_metrics(output: str) -> dict[str, float]:
    """Metric values from the Embedded Metric Format lines Powertools printed."""
    values: dict[str, float] = {}
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values[metric["Name"]] = value[0] if isinstance(value, list) else value
    return values
