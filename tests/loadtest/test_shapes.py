"""Load shapes: what each one's tick() asks Locust for, second by second."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.shapes import (
    Knobs,
    ShapeError,
    SpikeShape,
    StepShape,
    TraceShape,
    hold_last_known,
    shape_class,
)
from saleor_scaling.backtest.traces import load_trace
from tests.conftest import require_trace

NASA = "nasa_kennedy_1995_per_minute.csv"


def ticks(shape, seconds):
    """tick() at each run time in `seconds` (the shape's clock replaced)."""
    answers = []
    for t in seconds:
        shape.get_run_time = lambda t=t: t
        answers.append(shape.tick())
    return answers


def users(shape, seconds):
    return [None if tick is None else tick[0] for tick in ticks(shape, seconds)]


def test_step_ramp_climbs_in_equal_steps_and_ends():
    shape = StepShape(Knobs(peak_users=100, duration_seconds=500, step_count=5, spawn_rate=7))
    assert users(shape, [0, 99.9, 100, 250, 400, 499.9]) == [20, 20, 40, 60, 100, 100]
    assert ticks(shape, [500, 600]) == [None, None]
    assert ticks(shape, [0])[0] == (20, 7)


def test_spike_rises_suddenly_and_falls_back():
    shape = SpikeShape(
        Knobs(peak_users=200, duration_seconds=1000, spike_base_share=0.1, spike_ramp_seconds=5)
    )
    assert users(shape, [0, 399, 400, 599, 600, 999]) == [20, 20, 200, 200, 20, 20]
    assert ticks(shape, [1000]) == [None]
    (tick,) = ticks(shape, [450])
    assert tick is not None
    assert tick[1] >= (200 - 20) / 5  # reaches the peak within the ramp time


def test_trace_replay_follows_the_normalised_daily_cycle():
    require_trace(NASA)
    shape = TraceShape(Knobs(trace="nasa", trace_day="2", peak_users=300, duration_seconds=288))
    day = load_trace("nasa").demand[2 * 1440 : 3 * 1440]
    assert not np.isnan(day).any()
    steps = day.reshape(-1, 5).mean(axis=1)
    expected = np.maximum(1, np.round(steps / steps.max() * 300))
    # one 5-minute step of the trace per second of this run, the busiest at the peak
    replayed = np.array(users(shape, np.arange(288) + 0.5), dtype=float)
    np.testing.assert_array_equal(replayed, expected)
    assert replayed.max() == 300
    assert ticks(shape, [288]) == [None]
    # the spawn rate keeps up with the steepest change of the replay
    assert shape.spawn_rate >= np.abs(np.diff(expected)).max()


def test_trace_day_by_date_and_by_index_agree():
    require_trace(NASA)
    by_index = TraceShape(Knobs(trace="nasa", trace_day="3", trace_days=2))
    by_date = TraceShape(Knobs(trace="nasa", trace_day="1995-07-04", trace_days=2))
    np.testing.assert_array_equal(by_index.profile, by_date.profile)
    assert len(by_index.profile) == 2 * 288


def test_trace_outage_holds_the_last_known_level():
    require_trace(NASA)
    # 1995-07-28 13:32 onwards is a gap between log files: missing data, not an empty shop.
    shape = TraceShape(Knobs(trace="nasa", trace_day="1995-07-28", trace_step_minutes=1, peak_users=100))
    profile = shape.profile
    assert np.all(np.isfinite(profile))
    outage = profile[13 * 60 + 33 :]
    assert len(set(outage)) == 1
    assert outage[0] == profile[13 * 60 + 32] > 0
    # a day wholly inside the outage cannot be replayed
    with pytest.raises(ShapeError, match="missing data"):
        TraceShape(Knobs(trace="nasa", trace_day="1995-07-30"))


def test_trace_days_outside_the_trace_are_refused():
    require_trace(NASA)
    with pytest.raises(ShapeError, match=r"whole days 0\.\.61"):
        TraceShape(Knobs(trace="nasa", trace_day="62"))


def test_replay_of_a_given_profile_ends():
    shape = TraceShape(Knobs(duration_seconds=4, spawn_rate=1), profile=[1.0, 50.0, 10.0, 0.0])
    assert users(shape, [0, 1, 2, 3, 3.99]) == [1, 50, 10, 1, 1]
    assert ticks(shape, [4]) == [None]
    assert shape.spawn_rate == 49


def test_hold_last_known():
    nan = np.nan
    held = hold_last_known([nan, 2.0, nan, nan, 0.0, nan])
    np.testing.assert_array_equal(held, [2.0, 2.0, 2.0, 2.0, 0.0, 0.0])


def test_shape_is_chosen_and_tuned_by_the_environment():
    assert shape_class("") is None
    assert shape_class("none") is None
    assert shape_class("Step") is StepShape
    assert shape_class("spike") is SpikeShape
    assert shape_class("trace") is TraceShape
    with pytest.raises(ShapeError, match="expected one of step, spike, trace"):
        shape_class("sawtooth")
    knobs = Knobs.from_env({"PEAK_USERS": "50", "DURATION_SECONDS": "60", "STEP_COUNT": "3", "TRACE_DAY": ""})
    assert (knobs.peak_users, knobs.duration_seconds, knobs.step_count, knobs.trace_day) == (50, 60, 3, "0")
    with pytest.raises(ShapeError, match="PEAK_USERS"):
        Knobs.from_env({"PEAK_USERS": "many"})
    with pytest.raises(ShapeError, match="SPIKE"):
        Knobs.from_env({"SPIKE_START": "0.7", "SPIKE_END": "0.6"})
    with pytest.raises(ShapeError, match="TRACE_STEP_MINUTES"):
        Knobs.from_env({"TRACE_STEP_MINUTES": "7"})


def test_a_shape_reads_the_environment_when_locust_builds_it(monkeypatch):
    monkeypatch.setenv("PEAK_USERS", "30")
    monkeypatch.setenv("DURATION_SECONDS", "10")
    shape = StepShape()  # as Locust instantiates it: no arguments
    assert shape.knobs.peak_users == 30
    assert ticks(shape, [9.9, 10]) == [(30, 20.0), None]
