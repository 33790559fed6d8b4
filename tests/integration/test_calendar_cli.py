"""`registry_cli events`: the operator's calendar of planned events in emulated S3."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from saleor_scaling import registry_cli
from saleor_scaling.adapters.calendar_store import CalendarConflictError, S3Calendar
from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.calendar import Calendar, CalendarError, PlannedEvent
from saleor_scaling.local.emulator import create_shop
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ModelLocation

NOW = 1_764_547_200
"""2025-12-01T00:00:00Z, the operator's clock."""
SALE = ["--start", "2025-12-04T08:00:00Z", "--end", "2025-12-04T09:00:00Z"]


@pytest.fixture
def bucket(aws):
    return create_shop(aws).bucket


def events(aws, *argv: str) -> int:
    return registry_cli.events_main(list(argv), client=aws.client("s3"), clock=lambda: NOW + 0.5)


def stored(aws, bucket) -> Any:
    body = aws.client("s3").get_object(Bucket=bucket, Key="calendar/events.json")["Body"].read()
    return json.loads(body)


def test_add_list_remove(aws, bucket, capsys):
    assert (
        events(
            aws, "add", "black-friday", "--bucket", bucket, *SALE, "--multiplier", "3", "--lead-minutes", "30"
        )
        == 0
    )
    assert events(aws, "add", "drop", "--bucket", bucket, "--start", "2025-12-02T18:00:00+01:00",
                  "--end", "2025-12-02T19:00:00+01:00", "--capacity", "12") == 0  # fmt: skip
    assert stored(aws, bucket) == {
        "format": 1,
        "events": [
            {"name": "drop", "start": "2025-12-02T17:00:00Z", "end": "2025-12-02T18:00:00Z", "capacity": 12},
            {
                "name": "black-friday",
                "start": "2025-12-04T08:00:00Z",
                "end": "2025-12-04T09:00:00Z",
                "multiplier": 3.0,
                "lead_minutes": 30,
            },
        ],
    }
    capsys.readouterr()
    assert events(aws, "list", "--bucket", bucket) == 0
    assert capsys.readouterr().out.splitlines() == [
        "planned  drop: 2025-12-02T17:00:00Z to 2025-12-02T18:00:00Z, 12 instances",
        "planned  black-friday: 2025-12-04T08:00:00Z to 2025-12-04T09:00:00Z, x3 normal load, "
        "raised 30 min early",
    ]
    assert events(aws, "remove", "drop", "--bucket", bucket) == 0
    assert [event["name"] for event in stored(aws, bucket)["events"]] == ["black-friday"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["--start", "2025-12-04T08:00:00", "--end", "2025-12-04T09:00:00Z", "--capacity", "5"],
            "no time zone",
        ),
        (
            ["--start", "2025-12-04T09:00:00Z", "--end", "2025-12-04T08:00:00Z", "--capacity", "5"],
            "not after",
        ),
        ([*SALE, "--multiplier", "1"], "multiplier 1.0 must be a number above 1"),
        ([*SALE, "--multiplier", "nan"], "multiplier nan"),
        ([*SALE, "--capacity", "0"], "capacity 0"),
        ([*SALE, "--capacity", "5", "--lead-minutes", "721"], "lead_minutes 721"),
        (
            ["--start", "2025-11-30T08:00:00Z", "--end", "2025-11-30T23:59:59Z", "--capacity", "5"],
            "already over",
        ),
        (["--start", "2027-01-02T08:00:00Z", "--end", "2027-01-02T09:00:00Z", "--capacity", "5"], "366 days"),
        ([*SALE, "--capacity", "5", "--past"], "has not ended: --past is for events that happened"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_nothing_written(aws, bucket, capsys, argv, says):
    assert events(aws, "add", "sale", "--bucket", bucket, *argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("events add refused: ")
    assert says in error
    assert S3Calendar(aws.client("s3"), bucket).load().version is None


def test_names_sizes_and_unknown_events_are_refused(aws, bucket, capsys):
    assert events(aws, "add", "bad name!", "--bucket", bucket, *SALE, "--capacity", "5") == 2
    assert "event name 'bad name!' must be 1-64 characters" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: one of the two, not both
        events(aws, "add", "sale", "--bucket", bucket, *SALE, "--capacity", "5", "--multiplier", "2")
    with pytest.raises(SystemExit):  # and not neither
        events(aws, "add", "sale", "--bucket", bucket, *SALE)
    assert events(aws, "add", "sale", "--bucket", bucket, *SALE, "--capacity", "5") == 0
    assert events(aws, "add", "sale", "--bucket", bucket, *SALE, "--capacity", "6") == 2
    assert "an event named 'sale' exists already" in capsys.readouterr().err
    assert events(aws, "remove", "nope", "--bucket", bucket) == 2
    assert "no event named 'nope'" in capsys.readouterr().err


def test_two_operators_cannot_lose_each_others_edit(aws, bucket):
    s3 = aws.client("s3")
    first, second = S3Calendar(s3, bucket), S3Calendar(s3, bucket)
    read_by_first, read_by_second = first.load(), second.load()
    one = PlannedEvent("one", NOW + 86400, NOW + 90000, capacity=4)
    two = PlannedEvent("two", NOW + 86400, NOW + 90000, capacity=5)
    first.save(read_by_first.calendar.with_event(one), read_by_first.version)
    with pytest.raises(CalendarConflictError, match="someone else edited the calendar"):
        second.save(read_by_second.calendar.with_event(two), read_by_second.version)
    # Read again, the second edit lands beside the first.
    again = second.load()
    second.save(again.calendar.with_event(two), again.version)
    changed = second.load()
    with pytest.raises(CalendarConflictError):
        first.save(changed.calendar.without("one"), again.version)  # a stale ETag
    assert [event.name for event in first.load().calendar.events] == ["one", "two"]


def test_an_oversized_or_forged_calendar_is_refused_before_it_is_parsed(aws, bucket):
    s3 = aws.client("s3")
    s3.put_object(Bucket=bucket, Key="calendar/events.json", Body=b"[" * 70_000)
    with pytest.raises(CalendarError, match="over the 65536 byte bound"):
        S3Calendar(s3, bucket).load()
    s3.put_object(Bucket=bucket, Key="calendar/events.json", Body=b'{"format": 1, "events": [{"name": "x"}]}')
    with pytest.raises(CalendarError, match="not an ISO 8601 time"):
        S3Calendar(s3, bucket).events(NOW)
    # What predict reads: an S3 fault is a CalendarError too (decided as without events).
    with pytest.raises(CalendarError, match="could not be read: NoSuchBucket"):
        S3Calendar(s3, "no-such-bucket-here").events(NOW)
    s3.delete_object(Bucket=bucket, Key="calendar/events.json")
    assert S3Calendar(s3, bucket).events(NOW) == Calendar()  # no calendar: no events


def test_preview_prints_capacity_by_5_minutes_and_its_instance_hours(aws, bucket, capsys, trained_model):
    s3 = aws.client("s3")
    S3ModelRegistry(s3, ModelLocation(bucket=bucket)).publish(*trained_model)  # horizon 4: 10 min ahead
    start = NOW - 14 * 86400
    steps = 14 * 288
    empty = MetricHistory.empty(start, steps)
    # 20,000 requests per 5 minutes: 4,000 per minute, every step of the last two weeks.
    history = MetricHistory(start, {**empty.values, Metric.REQUESTS: np.full(steps, 20_000.0)})
    S3HistoryArchive(s3, bucket, "history/saleor-api").write(history)
    assert events(aws, "add", "sale", "--bucket", bucket, *SALE, "--multiplier", "3") == 0
    capsys.readouterr()
    assert events(aws, "preview", "sale", "--bucket", bucket, "--group", "saleor-api",
                  "--capacity-per-instance", "1000") == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "capacity per instance 1000/min; capacity set 10 min (one boot delay) ahead"
    rows = lines[3:-1]
    # Target steps 08:00 to 09:05: the last decision before the end (08:55) sizes 09:05.
    assert [row.split()[0] for row in (rows[0], rows[-1])] == ["2025-12-04T08:00Z", "2025-12-04T09:05Z"]
    assert len(rows) == 14
    assert all(row.split()[1:] == ["4", "12"] for row in rows)
    # 14 steps of 5 minutes: 4 instances normally (4.7 h), 12 planned (14.0 h).
    assert lines[-1] == "instance-hours: normal 4.7, planned 14.0, extra 9.3"


def test_preview_needs_the_group_and_an_existing_event(aws, bucket, capsys):
    assert events(aws, "preview", "sale", "--bucket", bucket, "--group", "g") == 2
    assert "no event named 'sale'" in capsys.readouterr().err
    assert events(aws, "add", "sale", "--bucket", bucket, *SALE, "--capacity", "5") == 0
    assert events(aws, "preview", "sale", "--bucket", bucket) == 2
    assert "preview needs --group" in capsys.readouterr().err


PAST_SALE = ["--start", "2025-11-28T08:00:00Z", "--end", "2025-11-28T09:00:00Z", "--past"]
"""Last Friday 08:00-09:00, declared after it happened."""


def test_review_measures_an_ended_event_and_suggests_its_multiplier(aws, bucket, capsys):
    s3 = aws.client("s3")
    start = NOW - 14 * 86400
    steps = 14 * 288
    requests = np.full(steps, 20_000.0)  # 4,000 per minute
    first = (1_764_316_800 - start) // 300  # 2025-11-28T08:00:00Z
    requests[first : first + 12] = 52_000.0  # 10,400 per minute: x2.6
    empty = MetricHistory.empty(start, steps)
    S3HistoryArchive(s3, bucket, "history/saleor-api").write(
        MetricHistory(start, {**empty.values, Metric.REQUESTS: requests})
    )
    assert events(aws, "add", "black-friday", "--bucket", bucket, *PAST_SALE, "--capacity", "9") == 0
    assert events(aws, "list", "--bucket", bucket) == 0
    capsys.readouterr()
    assert events(aws, "review", "black-friday", "--bucket", bucket, "--group", "saleor-api") == 0
    assert capsys.readouterr().out == (
        "black-friday: observed peak 10400/min at 2025-11-28T08:00:00Z against a normal 4000/min there; "
        "x2.60 needed (12 of 12 steps observed); suggested multiplier for a similar event: 2.6\n"
    )


def test_review_needs_an_ended_event_and_its_history(aws, bucket, capsys):
    assert events(aws, "add", "sale", "--bucket", bucket, *SALE, "--capacity", "5") == 0
    assert events(aws, "review", "sale", "--bucket", bucket, "--group", "saleor-api") == 2
    assert "event 'sale' has not ended: review it after 2025-12-04T09:00Z" in capsys.readouterr().err
    assert events(aws, "add", "old", "--bucket", bucket, *PAST_SALE, "--capacity", "5") == 0
    assert events(aws, "review", "old", "--bucket", bucket) == 2
    assert "review needs --group" in capsys.readouterr().err
    assert events(aws, "review", "old", "--bucket", bucket, "--group", "saleor-api") == 2
    assert "no outcome for 'old': the history backup holds no step of it" in capsys.readouterr().err
