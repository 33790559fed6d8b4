"""The busiest minute of each step, from the ALB's 1-minute RequestCount through CloudWatch
(emulated) and the S3 backup, within CloudWatch's 15-day retention of 1-minute data."""

from __future__ import annotations

import gzip
import json
from typing import Any

import numpy as np

from saleor_scaling.adapters.cloudwatch import ONE_MINUTE_RETENTION_SECONDS, CloudWatchMetrics
from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.local.emulator import create_shop, minute_request_counts, publish_history
from saleor_scaling.series import Metric
from tests.conftest import synthetic_history

MONDAY = 1_700_438_400
DAY = 86400


class RecordingClient:
    """A CloudWatch client that keeps the queries it was asked."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queries: list[list[dict[str, Any]]] = []

    def get_metric_data(self, **request: Any) -> Any:
        self.queries.append(request["MetricDataQueries"])
        return self.client.get_metric_data(**request)


def test_minute_counts_keep_each_steps_total_and_busiest_minute() -> None:
    history = synthetic_history(MONDAY, 1)
    history.values[Metric.BUSIEST_MINUTE][10] = np.nan  # not recorded: spread evenly
    stamps, counts = minute_request_counts(history)
    per_step = counts.reshape(-1, 5)
    np.testing.assert_allclose(per_step.sum(axis=1), history[Metric.REQUESTS])
    expected = history.busiest_minute().copy()
    expected[10] = history[Metric.REQUESTS][10] / 5
    np.testing.assert_allclose(per_step.max(axis=1), expected)
    assert np.all(np.diff(stamps) == 60)


def test_cloudwatch_returns_the_busiest_minute_per_step_within_fifteen_days(aws) -> None:
    shop = create_shop(aws)
    history = synthetic_history(MONDAY, 1, peak_per_minute=8000.0)
    now = MONDAY + DAY + 600
    publish_history(aws, shop, history, now)
    client = RecordingClient(aws.client("cloudwatch"))
    metrics = CloudWatchMetrics(client, shop.group_name, shop.load_balancer_full_name)  # type: ignore[arg-type]

    fetched = metrics.fetch(MONDAY, MONDAY + DAY, now)
    np.testing.assert_allclose(fetched[Metric.REQUESTS], history[Metric.REQUESTS], rtol=1e-6)
    np.testing.assert_allclose(fetched.busiest_minute(), history.busiest_minute(), rtol=1e-6)
    periods = {query["Id"]: query["MetricStat"]["Period"] for query in client.queries[-1]}
    assert periods[Metric.BUSIEST_MINUTE.value] == 60
    assert periods[Metric.REQUESTS.value] == 300

    # Predict does not use the busiest minute, so its reads leave the 1-minute query out.
    predict_reads = CloudWatchMetrics(
        client,  # type: ignore[arg-type]
        shop.group_name,
        shop.load_balancer_full_name,
        busiest_minute=False,
    )
    assert np.isnan(predict_reads.fetch(MONDAY, MONDAY + DAY, now).busiest_minute()).all()
    assert Metric.BUSIEST_MINUTE.value not in {query["Id"] for query in client.queries[-1]}

    # Past 15 days CloudWatch answers a 60-second period with nothing: the query is left
    # out (moto would still answer it) and the busiest minute is missing, not invented.
    later = MONDAY + ONE_MINUTE_RETENTION_SECONDS + 3600
    old = metrics.fetch(MONDAY, MONDAY + DAY, later)
    assert Metric.BUSIEST_MINUTE.value not in {query["Id"] for query in client.queries[-1]}
    assert np.isnan(old.busiest_minute()).all()
    np.testing.assert_allclose(old[Metric.REQUESTS], history[Metric.REQUESTS], rtol=1e-6)


def test_backup_keeps_the_busiest_minute_and_reads_days_backed_up_before_it(aws) -> None:
    shop = create_shop(aws)
    s3 = aws.client("s3")
    archive = S3HistoryArchive(s3, shop.bucket, "history/saleor-api")
    history = synthetic_history(MONDAY, 2)
    archive.write(history)
    read = archive.read(MONDAY, MONDAY + 2 * DAY)
    np.testing.assert_allclose(read.busiest_minute(), history.busiest_minute(), rtol=1e-6)

    # A day written before the series existed: the busiest minute reads as missing.
    key = archive.key_for(MONDAY)
    document = json.loads(gzip.decompress(s3.get_object(Bucket=shop.bucket, Key=key)["Body"].read()))
    del document["series"][Metric.BUSIEST_MINUTE.value]
    s3.put_object(Bucket=shop.bucket, Key=key, Body=gzip.compress(json.dumps(document).encode()))
    old = S3HistoryArchive(s3, shop.bucket, "history/saleor-api").read(MONDAY, MONDAY + DAY)
    assert np.isnan(old.busiest_minute()).all()
    np.testing.assert_allclose(old[Metric.REQUESTS], history[Metric.REQUESTS][:288], rtol=1e-6)
