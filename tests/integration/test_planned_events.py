"""Predict honours the operator's planned events end to end against emulated AWS: raised
one boot delay before the start, held through the end, released the usual way; MaxSize
clamps it and a notice says so once; forecast-only mode shows it; a malformed calendar is
ignored and the run decides as without events.

Without an event the shop's forecast asks for 8 instances at each of these runs (MaxSize
20); predict sizes 10 minutes ahead (anchor 2 steps back, horizon 4 steps)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import NOW, emitted_metrics, iso

SLOT = NOW - NOW % 300
"""2023-11-28T12:00:00Z."""
STATE_KEY = "state/saleor-api/predict-state.json"


def declare(world, *events: dict[str, Any]) -> None:
    body = json.dumps({"format": 1, "events": list(events)}).encode()
    world.session.client("s3").put_object(Bucket=world.shop.bucket, Key="calendar/events.json", Body=body)


def sale(start: int, end: int, **size: Any) -> dict[str, Any]:
    return {"name": "sale", "start": iso(start), "end": iso(end), **size}


def run(world, k: int) -> dict[str, Any]:
    """The run of slot k (5 minutes apart from SLOT), the shop's metrics published up to it."""
    result: dict[str, Any] = world.invoke(world.advance(NOW + k * 300))
    return result


def state_document(world) -> dict[str, Any]:
    body = world.session.client("s3").get_object(Bucket=world.shop.bucket, Key=STATE_KEY)["Body"].read()
    document: dict[str, Any] = json.loads(body)
    return document


def test_raised_one_boot_delay_before_the_start_held_through_the_end_then_released(world):
    declare(world, sale(SLOT + 900, SLOT + 1800, capacity=14))
    before = run(world, 0)  # sizes 12:10, before the start at 12:15
    assert before["decision"]["target"] == 8
    assert "planned_event" not in before

    first = run(world, 1)  # 12:05 sizes 12:15, the start
    assert first["decision"]["target"] == 14
    assert first["decision"]["floor"] == 14
    assert "raised from 8 to 14 for event 'sale' (declared capacity 14)" in first["decision"]["explanation"]
    assert first["planned_event"] == {
        "name": "sale",
        "capacity": 14,
        "basis": "declared capacity 14",
        "start": "2023-11-28T12:15:00Z",
        "end": "2023-11-28T12:30:00Z",
    }
    described = world.describe()
    assert (described["DesiredCapacity"], described["MinSize"]) == (14, 14)

    for k in (2, 3, 4, 5):  # up to 12:25, the last run before the end
        held = run(world, k)
        assert held["decision"]["recommended"] == 14
        assert held["planned_event"]["name"] == "sale"
    assert world.describe()["MinSize"] == 14

    # From the end on the event asks for nothing: the stabilization window (30 minutes
    # since the last run that recommended 14, at 12:25) holds the capacity, then it
    # comes down one instance per run, the floor with it.
    for k in range(6, 11):
        after = run(world, k)
        assert "planned_event" not in after
        assert after["decision"]["recommended"] in (8, 9)  # the forecast alone
        assert after["decision"]["target"] == 14
    released = run(world, 11)  # 12:55: 12:25 has left the window
    assert released["decision"]["target"] == 13
    described = world.describe()
    assert (described["DesiredCapacity"], described["MinSize"]) == (13, 13)
    # The event left nothing behind to clean up: the state holds no trace of it.
    assert "event_notices" not in state_document(world)


def test_an_event_above_max_size_is_clamped_and_noticed_once(world):
    queue = world.subscribe_queue()
    declare(world, sale(SLOT + 600, SLOT + 7200, capacity=25))
    first = run(world, 0)
    assert first["decision"]["target"] == 20
    assert "clamped from 25 to MaxSize 20" in first["decision"]["explanation"]
    assert first["event_notices"] == [
        {"name": "sale", "start": "2023-11-28T12:10:00Z", "needs": 25, "limit": "MaxSize is 20"}
    ]
    subjects = sorted(notice["Subject"] for notice in world.notices(queue))
    assert subjects == [
        "Saleor predictive scaling: event sale needs 25 instances, MaxSize is 20",
        "Saleor predictive scaling: scale-out saleor-api 2 -> 20",
    ]
    assert state_document(world)["event_notices"] == {f"sale@{SLOT + 600}": SLOT + 7200}
    for k in (1, 2):
        later = run(world, k)
        assert "event_notices" not in later
        assert later["decision"]["target"] == 20
    assert world.notices(queue) == []


def test_a_notice_a_day_ahead_when_the_event_will_need_more_than_max_size(world):
    queue = world.subscribe_queue()
    # Its lead window opens in 24 hours: noticed now; one opening later is not (yet).
    declare(
        world,
        sale(SLOT + 86400 + 3600, SLOT + 90000 + 3600, capacity=30, lead_minutes=60),
        {"name": "later", "start": iso(SLOT + 86700), "end": iso(SLOT + 90000), "capacity": 30},
    )
    first = run(world, 0)
    assert first["event_notices"] == [
        {"name": "sale", "start": "2023-11-29T13:00:00Z", "needs": 30, "limit": "MaxSize is 20"}
    ]
    assert "planned_event" not in first
    assert first["decision"]["target"] == 8
    subjects = [notice["Subject"] for notice in world.notices(queue)]
    assert "Saleor predictive scaling: event sale needs 30 instances, MaxSize is 20" in subjects
    assert len(subjects) == 2  # and the scale-out


def test_forecast_only_mode_shows_the_planned_capacity(world, monkeypatch, capsys):
    monkeypatch.setenv("SCALING_MODE", "forecast-only")
    world.handler.reset_dependencies()
    declare(world, sale(SLOT + 600, SLOT + 3600, capacity=14))
    capsys.readouterr()
    result = world.invoke()
    assert result["status"] == "decided"
    assert result["decision"]["target"] == 14
    assert result["decision"]["applied"] is False
    assert result["planned_event"]["capacity"] == 14
    assert "for event 'sale'" in result["reason"]
    assert world.desired() == 2
    # The dashboard's "recommended" line (RecommendedCapacity) shows the planned capacity;
    # "predicted" (PredictedCapacity) stays the forecast's.
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["RecommendedCapacity"] == 14
    assert metrics["PredictedCapacity"] < 14


def test_a_multiplier_sizes_the_normal_load_of_the_same_time_last_week(world):
    declare(world, sale(SLOT + 600, SLOT + 3600, multiplier=2))
    result = world.invoke()
    # Last Tuesday 12:10 served 6,792 requests per minute (the synthetic shop's weekly
    # pattern): twice that at 1,000 per instance is 13.6, so 14 instances.
    assert result["planned_event"]["basis"] == "x2 the normal load 6792/min at 2023-11-28T12:10:00Z"
    assert result["decision"]["target"] == 14


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            b'{"format": 1, "events": [{"name": "sale", "start": "2023-11-28T12:10:00Z", '
            b'"end": "2023-11-28T13:00:00Z", "multiplier": 1000}]}',
            "multiplier 1000",
        ),
        (
            b'{"format": 1, "events": [{"name": "sale", "start": "2023-11-28T12:10:00Z", '
            b'"end": "2023-11-28T13:00:00Z", "capacity": "20"}]}',
            "capacity '20'",
        ),
        (b"[" * 100_000, "over the 65536 byte bound"),
        (b"\x00garbage", "unreadable"),
    ],
)
def test_a_malformed_calendar_is_ignored_and_the_run_decides_as_without_events(world, caplog, body, says):
    caplog.set_level("INFO", logger="predict")
    world.session.client("s3").put_object(Bucket=world.shop.bucket, Key="calendar/events.json", Body=body)
    result = world.invoke()
    assert result["status"] == "scaled"
    assert result["decision"]["target"] == 8
    assert "planned_event" not in result
    assert result["calendar_warning"].startswith("calendar ignored, decided as without events: ")
    assert says in result["calendar_warning"]
    warnings = [record for record in caplog.records if hasattr(record, "decision")]
    assert [record.levelname for record in warnings] == ["WARNING"]


def test_notices_of_removed_events_cannot_grow_the_state_past_its_bound(world):
    # 100 notices of events removed from the calendar before they ended (far ends), then
    # one new event that needs a notice: the state keeps the 100 latest-ending keys.
    stale = {f"gone-{k}@{SLOT}": SLOT + 10 * 86400 + k for k in range(100)}
    document = {"format": 1, "last_decision_time": SLOT - 300, "event_notices": stale}
    world.session.client("s3").put_object(Bucket=world.shop.bucket, Key=STATE_KEY, Body=json.dumps(document))
    declare(world, sale(SLOT + 3600, SLOT + 13 * 86400, capacity=30))
    first = run(world, 0)
    assert "state_reset" not in first
    assert first["event_notices"][0]["name"] == "sale"
    kept = state_document(world)["event_notices"]
    assert len(kept) == 100
    assert kept[f"sale@{SLOT + 3600}"] == SLOT + 13 * 86400
    assert f"gone-0@{SLOT}" not in kept  # the earliest-ending stale key made room
    second = run(world, 1)
    assert "state_reset" not in second
    assert "event_notices" not in second


def test_last_weeks_event_is_not_the_normal_load_yesterday_is(world):
    # The same sale a week ago, declared: its load is no normal Tuesday. Last Tuesday
    # 12:10 served 6,792/min, yesterday 12:10 6,512/min (the synthetic shop's data):
    # x2.3 is 15.0 instances of 1,000 from yesterday, 15.6 (16) from last week.
    week = 7 * 86400
    declare(
        world,
        {
            "name": "last-sale",
            "start": iso(SLOT + 600 - week),
            "end": iso(SLOT + 3600 - week),
            "capacity": 12,
        },
        sale(SLOT + 600, SLOT + 3600, multiplier=2.3),
    )
    result = world.invoke()
    assert result["planned_event"]["basis"] == "x2.3 the normal load 6512/min at 2023-11-28T12:10:00Z"
    assert result["decision"]["target"] == 15


class QuotaOf:
    """The account's On-Demand quota as Service Quotas would give it (moto has no EC2 quotas)."""

    def __init__(self, instances: int) -> None:
        self.instances = instances
        self.asked: list[tuple[str, ...]] = []

    def instances_allowed(self, instance_types: tuple[str, ...]) -> tuple[int, str]:
        self.asked.append(instance_types)
        return self.instances, f"the quota allows at most {self.instances} instances"


def with_quota(world, quota: Any) -> None:
    world.handler.dependencies()[1].quota = quota


def test_an_event_the_instance_quota_cannot_hold_is_noticed_once_and_scaled_as_declared(world):
    queue = world.subscribe_queue()
    quota = QuotaOf(10)
    with_quota(world, quota)
    declare(world, sale(SLOT + 600, SLOT + 3600, capacity=14))
    first = run(world, 0)
    assert first["event_notices"] == [
        {
            "name": "sale",
            "start": "2023-11-28T12:10:00Z",
            "needs": 14,
            "limit": "the quota allows at most 10 instances",
        }
    ]
    # The notice warns; it does not size: AWS refuses what the quota cannot hold, not predict.
    assert first["decision"]["target"] == 14
    assert quota.asked == [("t3.medium",)]
    subjects = sorted(notice["Subject"] for notice in world.notices(queue))
    assert subjects[0] == "Saleor predictive scaling: event sale needs 14 instances, over the instance quota"
    later = run(world, 1)
    assert "event_notices" not in later
    assert len(quota.asked) == 1  # noticed: not read again for this event


def test_an_event_exactly_within_the_quota_gives_no_notice_and_the_quota_is_read_only_before_events(world):
    quota = QuotaOf(14)  # exactly what the event needs: within it
    with_quota(world, quota)
    assert "event_notices" not in run(world, 0)
    assert quota.asked == []  # no event ahead: nothing to check
    declare(world, sale(SLOT + 1200, SLOT + 3600, capacity=14))
    result = run(world, 1)
    assert "event_notices" not in result
    assert "quota_warning" not in result
    assert quota.asked == [("t3.medium",)]


def test_an_unreadable_quota_is_a_warning_and_changes_nothing(world):
    # The real adapter against the emulator, which has no EC2 quotas: Service Quotas
    # answers NoSuchResourceException, as it would for a Region without the quota.
    declare(world, sale(SLOT + 600, SLOT + 3600, capacity=14))
    result = run(world, 0)
    assert result["decision"]["target"] == 14
    assert "event_notices" not in result
    assert result["quota_warning"].startswith("instance quota not checked before the event: ")
    assert "NoSuchResource" in result["quota_warning"]
