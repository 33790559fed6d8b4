"""Planned events in the backtest: NASA's 1995 trace holds the launch of STS-70 on 13 July,
the day the site knew was coming and its largest spike. Declared as an event (x4 the
normal load, 07:00 to 11:00 in the trace's clock), predict's code removes the short minutes
of its rise at the cost the preview predicted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from saleor_scaling.backtest import BacktestConfig, load_trace, run_backtest
from saleor_scaling.backtest.cli import main
from saleor_scaling.backtest.peers.common import NO_ACTION
from saleor_scaling.backtest.planned import EventPlanner, event_windows, load_events, scheduled_plan
from saleor_scaling.backtest.traces import TRACE_FILES
from saleor_scaling.calendar import PlannedEvent
from tests.conftest import require_trace

LAUNCH_START = 805_618_800
"""1995-07-13T07:00:00Z in the trace's clock (its local time read as UTC)."""


def launch(tmp_path: Path, multiplier: float) -> Path:
    path = tmp_path / "events.json"
    event = {"name": "sts-70-launch", "start": "1995-07-13T07:00:00Z", "end": "1995-07-13T11:00:00Z"}
    path.write_text(json.dumps({"format": 1, "events": [{**event, "multiplier": multiplier}]}))
    return path


@pytest.fixture(scope="module")
def nasa_report(tmp_path_factory: pytest.TempPathFactory):
    require_trace(TRACE_FILES["nasa"])
    events = load_events(launch(tmp_path_factory.mktemp("events"), 4))
    config = BacktestConfig(
        n_estimators=10,
        workers=1,
        start="1995-07-01",
        end="1995-07-15",
        strategies=("reactive", "predictive", "oracle"),
    )
    return run_backtest(load_trace("nasa"), config, events=events)


def test_a_declared_launch_removes_the_short_minutes_of_its_rise(nasa_report):
    figures = nasa_report.events["figures"]
    inside = {name: parts["inside"] for name, parts in figures.items()}
    assert inside["predictive"]["minutes"] == 240
    # Without the event the forecast follows the rise a step late: dozens of short minutes.
    assert inside["predictive-without-events"]["short_minutes"] >= 40
    # With it, only the minute no strategy can serve (it needs more than MaxSize 10),
    # which the oracle misses too.
    assert inside["predictive"]["short_minutes"] == inside["oracle"]["short_minutes"] == 1
    start = (LAUNCH_START - nasa_report.start) // 60
    demand = nasa_report.demand[start : start + 90]
    serving = nasa_report.series["predictive"].serving[start : start + 90]
    assert not np.any(demand > serving * 1000.0)  # the first 90 minutes: the rise
    # Outside the event nothing changes.
    assert (
        figures["predictive"]["outside"]["short_minutes"]
        == figures["predictive-without-events"]["outside"]["short_minutes"]
    )


def test_at_the_cost_the_preview_predicted(nasa_report):
    preview = nasa_report.events["preview"]["sts-70-launch"]
    # The preview (registry_cli events preview): 446 five-minute steps of capacity, from
    # x4 the load of the same time a week before, 37.2 instance-hours.
    assert round(preview["planned"], 1) == 37.2
    inside = nasa_report.events["figures"]["predictive"]["inside"]["instance_hours"]
    assert inside == pytest.approx(preview["planned"], rel=0.05)
    # What the event added to the whole run is less than the preview's extra over the
    # normal load: the forecast alone already follows part of the rise.
    total = {
        name: parts["inside"]["instance_hours"] + parts["outside"]["instance_hours"]
        for name, parts in nasa_report.events["figures"].items()
    }
    added = total["predictive"] - total["predictive-without-events"]
    assert 0 < added <= preview["extra"]


def test_the_aws_peer_with_a_scheduled_action_holds_the_declared_capacity(nasa_report):
    figures = nasa_report.events["figures"]["aws-predictive+scheduled"]
    # x4 the normal load asks for more than MaxSize: the scheduled action holds 10 for the
    # event's 4 hours (240 minutes at 10 instances).
    assert figures["inside"]["instance_hours"] == 40.0
    assert figures["inside"]["short_minutes"] == 1
    assert "Planned events (sts-70-launch" in nasa_report.table()


def test_the_scheduled_plan_overrides_the_hourly_floor_inside_the_event_only():
    start = 0
    minutes = 240
    aws = np.full(minutes, NO_ACTION, dtype=np.int64)
    aws[[0, 60, 120, 200]] = [2, 3, 4, 2]
    event = PlannedEvent("sale", 3600, 3 * 3600, capacity=6)
    planner = EventPlanner((event,), start, np.full(48, np.nan), 4, 1000.0)
    plan = scheduled_plan(aws, start, planner, max_size=10)
    # One boot delay (10 minutes: horizon 4 steps less the anchor's 2) before the start.
    assert plan[50] == 6
    assert plan[60] == 6  # the hourly action inside cannot lower it
    assert plan[120] == 6
    assert plan[180] == 4  # at the end, the last hourly floor is restored
    assert plan[200] == 2
    assert plan[0] == 2
    assert list(np.flatnonzero(event_windows([event], start, minutes))[[0, -1]]) == [60, 179]


def test_a_bad_events_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = launch(tmp_path, 0.5)
    assert main(["nasa", "--events", str(bad)]) == 2
    assert "multiplier 0.5 must be a number above 1" in capsys.readouterr().err
    assert main(["nasa", "--events", str(tmp_path / "absent.json")]) == 2
    assert "absent.json" in capsys.readouterr().err
