"""--from-cloudwatch and --from-bucket end to end: real boto3 calls against moto, the
adapters predict and retraining use, and CloudWatch's real retention enforced by our code
(moto answers 1-minute queries at any age and keeps 5-minute data forever)."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_scaling.adapters.cloudwatch import CloudWatchMetrics, MetricsUnavailableError
from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.backtest.cli import main
from saleor_scaling.backtest.sources import (
    SourceError,
    from_bucket,
    from_cloudwatch,
    load_balancer_dimension,
    per_minute_demand,
)
from saleor_scaling.lease import LEASE_TAG
from saleor_scaling.local.emulator import METRIC_SOURCES, EmulatedShop, create_shop, minute_request_counts
from saleor_scaling.series import Metric, MetricHistory
from tests.conftest import synthetic_history

DAY = 86400
CAPACITY = 800.0
"""The shop's real requests per minute per instance at 70 % CPU (not the 1,000 default)."""
SMALL = [
    "--n-estimators",
    "5",
    "--max-depth",
    "6",
    "--min-history-days",
    "2",
    "--holdout-days",
    "1",
    "--training-window-days",
    "3",
    "--quiet",
]


class RecordingClient:
    """A CloudWatch client that keeps every GetMetricData request."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **request: Any) -> Any:
        self.requests.append(request)
        return self.client.get_metric_data(**request)


def day_floor(epoch: float) -> int:
    return int(epoch) // DAY * DAY


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M")


def publish(session: boto3.session.Session, shop: EmulatedShop, history: MetricHistory) -> None:
    """What ALB, EC2 and Auto Scaling published at the time: RequestCount per minute, the
    rest per 5 minutes. Written straight with PutMetricData: moto takes timestamps of any
    age (AWS takes two weeks at most), which stands for data published when it was fresh.
    A minute with 0 requests is not published, as the ALB publishes nothing then."""
    cloudwatch = session.client("cloudwatch")
    for metric, (namespace, name, owner) in METRIC_SOURCES.items():
        dimension = (
            {"Name": "LoadBalancer", "Value": shop.load_balancer_full_name}
            if owner == "lb"
            else {"Name": "AutoScalingGroupName", "Value": shop.group_name}
        )
        stamps, values = (
            minute_request_counts(history)
            if metric is Metric.REQUESTS
            else (history.timestamps(), history[metric])
        )
        keep = np.isfinite(values) & ((values > 0) | (metric is not Metric.REQUESTS))
        datums = [
            {
                "MetricName": name,
                "Dimensions": [dimension],
                "Timestamp": datetime.fromtimestamp(int(stamp), UTC),
                "Value": float(value),
            }
            for stamp, value in zip(stamps[keep], values[keep], strict=True)
        ]
        for offset in range(0, len(datums), 1000):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=datums[offset : offset + 1000])  # type: ignore[arg-type]


def shop_history(start: int, days: float) -> MetricHistory:
    history = synthetic_history(start, days, peak_per_minute=4000.0, capacity_per_instance=CAPACITY)
    requests, busiest = history[Metric.REQUESTS], history.busiest_minute()
    requests[100:106] = np.nan  # half an hour with no datapoint at all: missing, not idle
    busiest[100:106] = np.nan
    return history


@pytest.fixture
def shop(aws: boto3.session.Session) -> EmulatedShop:
    return create_shop(aws, min_size=2, max_size=12, desired=3)


def test_cloudwatch_reads_minutes_within_15_days_and_5_minutes_before(
    aws: boto3.session.Session, shop: EmulatedShop
) -> None:
    now = day_floor(time.time()) + 3 * 3600 + 17
    start, end = day_floor(now) - 17 * DAY, day_floor(now) - 13 * DAY
    history = shop_history(start, 4)
    publish(aws, shop, history)
    client = RecordingClient(aws.client("cloudwatch"))

    read = from_cloudwatch(
        client,  # type: ignore[arg-type]
        aws.client("autoscaling"),
        shop.group_name,
        shop.load_balancer_full_name,
        now=now,
        start=start,
        end=end,
    )
    trace = read.trace
    assert trace.start == start
    assert trace.minutes == 4 * 1440
    _, published = minute_request_counts(history)
    one_minute_from = -(-(now - 15 * DAY) // 300) * 300
    fine = (one_minute_from - start) // 60
    # Within 15 days: the minutes as the ALB published them.
    np.testing.assert_allclose(trace.demand[fine:], published[fine:], rtol=1e-9)
    # Older: CloudWatch holds 5-minute data only, so each step's Sum spread evenly (moto
    # would have answered with the minutes; the busiest-first pattern must not appear).
    coarse = trace.demand[:fine].reshape(-1, 5)
    sums = history[Metric.REQUESTS][: fine // 5]
    known = np.isfinite(sums)
    np.testing.assert_allclose(coarse[known], np.repeat(sums[known, None] / 5, 5, axis=1), rtol=1e-9)
    assert np.isnan(coarse[~known]).all()
    assert not known.all()
    assert trace.source_step_minutes == 5
    assert trace.resample == "busiest-first"
    assert read.minute_days == pytest.approx((end - one_minute_from) / DAY)
    coarse_days = np.sum(known) / 288
    assert read.notes == [
        f"{coarse_days:.1f} days of 5-minute steps without a busiest minute: each spread evenly, so a "
        "busy minute inside them is not seen (the simulated short minutes there are a lower bound)"
    ]

    # The requests themselves keep to CloudWatch's rules, not moto's.
    for request in client.requests:
        age = now - request["StartTime"].timestamp()
        assert age <= 63 * DAY
        periods = {query["MetricStat"]["Period"] for query in request["MetricDataQueries"]}
        assert 60 not in periods or age <= 15 * DAY
        assert request["EndTime"].timestamp() - request["StartTime"].timestamp() <= DAY
    assert any(60 in {q["MetricStat"]["Period"] for q in r["MetricDataQueries"]} for r in client.requests)

    # The shop's own sizes and capacity, learned as retraining learns it.
    assert (read.min_size, read.max_size) == (2, 12)
    assert read.capacity.learned
    assert read.capacity.requests_per_minute == pytest.approx(CAPACITY, rel=1e-6)
    overrides = read.config_overrides()
    assert overrides == {
        "capacity_per_instance": pytest.approx(CAPACITY),
        "scale_factor": 1.0,
        "min_size": 2,
        "max_size": 12,
    }


def test_idle_minutes_inside_a_step_with_data_are_zero(
    aws: boto3.session.Session, shop: EmulatedShop
) -> None:
    now = day_floor(time.time()) + 3 * 3600
    start = day_floor(now) - DAY
    quiet = "app/quiet-alb/0abc"
    # Requests in the first minute of one step only: the ALB reports nothing for the other
    # four (idle), nor for any other step (missing: idle or down, nobody can tell).
    # Step 40: a good minute and a corrupt one: the whole step is missing data, not 10
    # requests and four idle minutes.
    datums: list[Any] = [
        {
            "MetricName": "RequestCount",
            "Dimensions": [{"Name": "LoadBalancer", "Value": quiet}],
            "Timestamp": datetime.fromtimestamp(stamp, UTC),
            "Value": value,
        }
        for stamp, value in (
            (start + 50 * 300, 42.0),
            (start + 40 * 300, 10.0),
            (start + 40 * 300 + 60, -5.0),
        )
    ]
    aws.client("cloudwatch").put_metric_data(Namespace="AWS/ApplicationELB", MetricData=datums)
    read = from_cloudwatch(
        aws.client("cloudwatch"), aws.client("autoscaling"), shop.group_name, quiet, now=now, days=1
    )
    assert read.trace.start == start + 50 * 300
    assert read.trace.demand.tolist() == [42.0, 0.0, 0.0, 0.0, 0.0]
    assert read.notes == ["1 impossible values dropped as missing data"]
    assert not read.capacity.learned


def test_operator_min_size_not_predicts_raised_floor(aws: boto3.session.Session, shop: EmulatedShop) -> None:
    now = day_floor(time.time()) + 3 * 3600
    publish(aws, shop, shop_history(day_floor(now) - DAY, 0.5))
    autoscaling = aws.client("autoscaling")
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=shop.group_name, MinSize=5, DesiredCapacity=5)
    autoscaling.create_or_update_tags(
        Tags=[
            {
                "ResourceId": shop.group_name,
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": value,
                "PropagateAtLaunch": False,
            }
            for key, value in (
                (LEASE_TAG, f"v1 floor=5 prior=5 base=2 until={now - 7200} slot={now - 9000}"),
            )
        ]
    )
    read = from_cloudwatch(
        aws.client("cloudwatch"), autoscaling, shop.group_name, shop.load_balancer_full_name, now=now, days=1
    )
    assert (read.min_size, read.max_size) == (2, 12)
    explicit = from_cloudwatch(
        aws.client("cloudwatch"),
        autoscaling,
        shop.group_name,
        shop.load_balancer_full_name,
        now=now,
        days=1,
        max_size=20,
    )
    assert (explicit.min_size, explicit.max_size) == (2, 20)


def test_cloudwatch_errors_say_what_is_wrong(aws: boto3.session.Session, shop: EmulatedShop) -> None:
    now = day_floor(time.time()) + 3 * 3600
    publish(aws, shop, shop_history(day_floor(now) - DAY, 0.5))
    cloudwatch, autoscaling = aws.client("cloudwatch"), aws.client("autoscaling")
    lb = shop.load_balancer_full_name

    with pytest.raises(SourceError, match=r"--group 'no-such-group'.*does not exist"):
        from_cloudwatch(cloudwatch, autoscaling, "no-such-group", lb, now=now, days=1)
    with pytest.raises(SourceError, match=r"no RequestCount for load balancer app/other/0123abcd"):
        from_cloudwatch(cloudwatch, autoscaling, shop.group_name, "app/other/0123abcd", now=now, days=1)
    for wrong in ("saleor-alb", "app/saleor-alb", "net/saleor/0123abcd", "app/saleor alb/12"):
        with pytest.raises(SourceError, match=r"expected app/NAME/ID"):
            from_cloudwatch(cloudwatch, autoscaling, shop.group_name, wrong, now=now, days=1)
    with pytest.raises(SourceError, match=r"63-day retention.*--from-bucket"):
        from_cloudwatch(cloudwatch, autoscaling, shop.group_name, lb, now=now, days=64)
    with pytest.raises(SourceError, match=r"63-day retention"):
        from_cloudwatch(cloudwatch, autoscaling, shop.group_name, lb, now=now, start=now - 70 * DAY)
    with pytest.raises(SourceError, match=r"before the oldest 5-minute data.*--from-bucket"):
        from_cloudwatch(cloudwatch, autoscaling, shop.group_name, lb, now=now, end=now - 70 * DAY, days=2)
    # Exactly CloudWatch's 63 days is fine (nothing there but the last day: no error), in
    # the requests docs/backtest.md counts: one per UTC day touched at 5 minutes (64), one
    # per day touched within 15 days at 1 minute (16); 6 + 1 metrics requested per day.
    recording = RecordingClient(cloudwatch)
    everything = from_cloudwatch(recording, autoscaling, shop.group_name, lb, now=now)  # type: ignore[arg-type]
    assert everything.trace.days <= 1
    assert len(recording.requests) == 80
    assert sum(len(request["MetricDataQueries"]) for request in recording.requests) == 400
    assert min(request["StartTime"].timestamp() for request in recording.requests) >= now - 63 * DAY
    # The adapter itself refuses a 1-minute read CloudWatch would answer with nothing.
    metrics = CloudWatchMetrics(cloudwatch, shop.group_name, lb)
    start = day_floor(now) - 16 * DAY
    with pytest.raises(MetricsUnavailableError, match="15 days"):
        metrics.request_minutes(start, start + DAY, now)


def test_load_balancer_arn_is_turned_into_its_dimension() -> None:
    arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/saleor-alb/50dc6c495c0c9188"
    assert load_balancer_dimension(arn) == "app/saleor-alb/50dc6c495c0c9188"
    assert load_balancer_dimension(" app/a-b/0f ") == "app/a-b/0f"


def backed_up(aws: boto3.session.Session, shop: EmulatedShop, history: MetricHistory) -> S3HistoryArchive:
    """The bucket as the nightly job leaves it: its own writer, one object per UTC day."""
    archive = S3HistoryArchive(aws.client("s3"), shop.bucket, f"history/{shop.group_name}")
    archive.write(history)
    return archive


def test_bucket_history_keeps_each_steps_sum_and_busiest_minute(
    aws: boto3.session.Session, shop: EmulatedShop
) -> None:
    now = day_floor(time.time()) + 3 * 3600
    start = day_floor(now) - 120 * DAY  # long past CloudWatch's retention
    history = shop_history(start, 4)
    archive = backed_up(aws, shop, history)
    s3 = aws.client("s3")
    # A day missing in the middle (a night the job did not run) and one corrupt object.
    s3.delete_object(Bucket=shop.bucket, Key=archive.key_for(start + DAY))
    s3.put_object(Bucket=shop.bucket, Key=archive.key_for(start + 2 * DAY), Body=b"not gzip")
    s3.put_object(Bucket=shop.bucket, Key=f"history/{shop.group_name}/README.txt", Body=b"not a day")

    read = from_bucket(s3, aws.client("autoscaling"), shop.bucket, shop.group_name, now=now)
    trace = read.trace
    assert trace.start == start
    assert trace.days == pytest.approx(4.0)
    per_step = trace.demand.reshape(-1, 5)
    day0 = slice(0, 288)
    known = np.isfinite(history[Metric.REQUESTS][day0])
    np.testing.assert_allclose(
        per_step[day0][known].sum(axis=1), history[Metric.REQUESTS][day0][known], rtol=1e-6
    )
    np.testing.assert_allclose(
        per_step[day0][known].max(axis=1), history.busiest_minute()[day0][known], rtol=1e-6
    )
    np.testing.assert_allclose(per_step[day0][known, 0], history.busiest_minute()[day0][known], rtol=1e-6)
    assert np.isnan(per_step[288:576]).all()  # the missing day: missing data
    assert np.isnan(per_step[576:864]).all()  # the corrupt day: missing data, and said so
    assert np.isfinite(per_step[864:]).mean() > 0.9
    assert any("unreadable" in note for note in read.notes)
    assert not any("busiest minute" in note for note in read.notes)  # the backup kept it
    assert trace.source_step_minutes == 5
    assert read.minute_days == 0
    assert read.capacity.requests_per_minute == pytest.approx(CAPACITY, rel=1e-6)
    assert (read.min_size, read.max_size) == (2, 12)

    last_day = from_bucket(
        s3, aws.client("autoscaling"), shop.bucket, shop.group_name, now=now, start=start, end=start + DAY
    )
    assert last_day.trace.days == pytest.approx(1.0)


def test_bucket_outlives_the_group_when_its_sizes_are_given(
    aws: boto3.session.Session, shop: EmulatedShop
) -> None:
    now = day_floor(time.time()) + 3 * 3600
    backed_up(aws, shop, shop_history(day_floor(now) - 80 * DAY, 1))
    s3, autoscaling = aws.client("s3"), aws.client("autoscaling")
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=shop.group_name, ForceDelete=True)
    with pytest.raises(SourceError, match=r"does not exist.*--min-size and --max-size"):
        from_bucket(s3, autoscaling, shop.bucket, shop.group_name, now=now)
    read = from_bucket(s3, autoscaling, shop.bucket, shop.group_name, now=now, min_size=1, max_size=6)
    assert (read.min_size, read.max_size) == (1, 6)
    # A declared outage is missing data; the shop's time zone reaches the features.
    day = read.trace.start
    marked = from_bucket(
        s3,
        autoscaling,
        shop.bucket,
        shop.group_name,
        now=now,
        min_size=1,
        max_size=6,
        outages=((day + 3600, day + 7200),),
        timezone="Europe/Paris",
    )
    assert np.isnan(marked.trace.demand[60:120]).all()
    np.testing.assert_array_equal(marked.trace.demand[120:], read.trace.demand[120:])
    assert marked.trace.timezone == "Europe/Paris"
    # --days counts back from the newest stored day, not from now (80 days after it).
    recent = from_bucket(
        s3, autoscaling, shop.bucket, shop.group_name, now=now, days=0.5, min_size=1, max_size=6
    )
    assert recent.trace.days == pytest.approx(0.5)
    assert recent.trace.start == read.trace.start + DAY // 2
    with pytest.raises(SourceError, match=r"holds no history"):
        from_bucket(s3, autoscaling, shop.bucket, "wrong-group", now=now, min_size=1, max_size=6)


def test_cloudwatch_minutes_and_the_backup_agree_on_the_same_days(
    aws: boto3.session.Session, shop: EmulatedShop
) -> None:
    """The emulator publishes each step's busiest minute first; the bucket's reconstruction
    puts it first too, so both sources give the same minutes for the same days."""
    now = day_floor(time.time()) + 3 * 3600
    start = day_floor(now) - 3 * DAY
    history = shop_history(start, 2)
    publish(aws, shop, history)
    backed_up(aws, shop, history)
    kwargs: dict[str, Any] = {"now": now, "start": start, "end": start + 2 * DAY}
    cloudwatch = from_cloudwatch(
        aws.client("cloudwatch"),
        aws.client("autoscaling"),
        shop.group_name,
        shop.load_balancer_full_name,
        **kwargs,
    )
    bucket = from_bucket(aws.client("s3"), aws.client("autoscaling"), shop.bucket, shop.group_name, **kwargs)
    assert cloudwatch.trace.start == bucket.trace.start
    np.testing.assert_allclose(cloudwatch.trace.demand, bucket.trace.demand, rtol=1e-6)
    assert cloudwatch.trace.source_step_minutes == 1
    assert bucket.trace.source_step_minutes == 5


@settings(max_examples=60, deadline=None)
@given(
    totals=st.lists(st.floats(0, 1e6), min_size=1, max_size=20),
    shares=st.lists(st.floats(0.2, 1.0), min_size=20, max_size=20),
    known=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_reconstructed_minutes_keep_every_steps_sum_and_busiest_minute(
    totals: list[float], shares: list[float], known: list[bool]
) -> None:
    steps = len(totals)
    history = MetricHistory.empty(0, steps)
    requests = np.array(totals)
    busiest = np.where(known[:steps], requests * np.array(shares[:steps]), np.nan)
    history.values[Metric.REQUESTS][:] = requests
    history.values[Metric.BUSIEST_MINUTE][:] = busiest
    demand = per_minute_demand(history, np.full(steps * 5, np.nan)).reshape(steps, 5)
    np.testing.assert_allclose(demand.sum(axis=1), requests, rtol=1e-9, atol=1e-6)
    expected_max = np.where(np.isfinite(busiest), np.maximum(busiest, requests / 5), requests / 5)
    np.testing.assert_allclose(demand.max(axis=1), expected_max, rtol=1e-9, atol=1e-6)
    assert (demand >= -1e-9).all()


def test_command_line_backtests_the_shops_own_cloudwatch_history(
    aws: boto3.session.Session, shop: EmulatedShop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    end = day_floor(now) - 12 * DAY
    history = shop_history(end - 4 * DAY, 4)
    publish(aws, shop, history)
    out = tmp_path / "own.json"
    code = main(
        [
            "--from-cloudwatch",
            "--group",
            shop.group_name,
            "--load-balancer",
            shop.load_balancer_full_name,
            "--end",
            iso(end),
            "--days",
            "4",
            "--json",
            str(out),
            *SMALL,
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["config"]["min_size"] == 2
    assert report["config"]["max_size"] == 12
    assert report["config"]["capacity_per_instance"] == pytest.approx(CAPACITY, rel=1e-6)
    assert report["trace"]["scale_factor"] == 1.0
    assert report["trace"]["days"] == pytest.approx(4.0)
    assert report["trace"]["source_step_minutes"] == 5  # its first days are older than 15
    assert report["walk_forward"]["nights_trained"] >= 1
    assert report["figures"]["oracle"]["instance_hours"] > 0

    # The same days from the backup, once the nightly job has written them.
    backed_up(aws, shop, history)
    code = main(["--from-bucket", shop.bucket, "--group", shop.group_name, "--json", str(out), *SMALL])
    assert code == 0, capsys.readouterr().err
    from_backup = json.loads(out.read_text())
    assert from_backup["trace"]["start"] == report["trace"]["start"]
    assert from_backup["trace"]["days"] == pytest.approx(4.0)
    assert from_backup["config"]["max_size"] == 12
    assert from_backup["config"]["capacity_per_instance"] == pytest.approx(CAPACITY, rel=1e-6)


def test_command_line_errors_for_own_history(
    aws: boto3.session.Session, shop: EmulatedShop, capsys: pytest.CaptureFixture[str]
) -> None:
    lb = shop.load_balancer_full_name
    cases = [
        (["--from-cloudwatch", "--load-balancer", lb], "--group NAME"),
        (["--from-cloudwatch", "--group", shop.group_name], "--load-balancer app/NAME/ID"),
        (["--from-cloudwatch", "--group", "ghost", "--load-balancer", lb, "--days", "1"], "does not exist"),
        (
            ["--from-cloudwatch", "--group", shop.group_name, "--load-balancer", "alb", "--days", "1"],
            "app/NAME/ID",
        ),
        (["--from-cloudwatch", "--group", shop.group_name, "--load-balancer", lb, "--days", "90"], "63-day"),
        (["--from-bucket", shop.bucket, "--group", shop.group_name], "holds no history"),
        (
            ["--from-bucket", shop.bucket, "--from-cloudwatch", "--group", "g", "--load-balancer", lb],
            "choose one",
        ),
    ]
    for argv, message in cases:
        assert main([*argv, "--quiet"]) == 2, argv
        assert message in capsys.readouterr().err, argv
    with pytest.raises(SystemExit):
        main(["nasa", "--from-cloudwatch", "--group", "g"])
    assert "not both" in capsys.readouterr().err


def test_gzip_day_written_by_hand_reads_like_the_writers(
    aws: boto3.session.Session, shop: EmulatedShop
) -> None:
    """A day object in the writer's documented format (format 1, step 300, 288 values per
    series) is read; the busiest minute may be absent in days backed up before it existed."""
    now = day_floor(time.time())
    day = now - 30 * DAY
    series: dict[str, list[float | None]] = {
        metric.value: [None] * 288 for metric in Metric if metric is not Metric.BUSIEST_MINUTE
    }
    series["requests"] = [500.0] * 288
    document = {"format": 1, "start": day, "step": 300, "series": series}
    key = S3HistoryArchive(aws.client("s3"), shop.bucket, f"history/{shop.group_name}").key_for(day)
    aws.client("s3").put_object(
        Bucket=shop.bucket, Key=key, Body=gzip.compress(json.dumps(document).encode())
    )
    read = from_bucket(aws.client("s3"), aws.client("autoscaling"), shop.bucket, shop.group_name, now=now)
    assert read.trace.minutes == 1440
    assert (read.trace.demand == 100.0).all()  # no busiest minute: the Sum spread evenly
    assert any("1.0 days of 5-minute steps without a busiest minute" in note for note in read.notes)
    assert not read.capacity.learned  # no CPU: the configured capacity, as retraining does
