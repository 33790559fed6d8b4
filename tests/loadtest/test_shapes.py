"""Load shapes: what each one asks Locust for, second by second."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.shapes import Spike, StepRamp, TraceReplay, shape_from_env
from saleor_scaling.backtest.traces import load_trace
from tests.conftest import require_trace


def users(shape, seconds):
    tick = shape.users_at(seconds)
    return None if tick is None else tick[0]


def test_step_ramp_climbs_in_equal_steps_and_ends():
    shape = StepRamp(peak_users=100, duration_seconds=500, steps=5)
    assert [users(shape, t) for t in (0, 99, 100, 250, 499)] == [20, 20, 40, 60, 100]
    assert shape.users_at(500) is None


def test_spike_rises_suddenly_and_falls_back():
    shape = Spike(peak_users=200, duration_seconds=1000, base_share=0.1)
    assert [users(shape, t) for t in (0, 399, 400, 599, 600, 999)] == [20, 20, 200, 200, 20, 20]
    assert shape.users_at(1000) is None
    tick = shape.users_at(450)
    assert tick is not None
    assert tick[1] >= 100  # spawned fast enough to be a spike


def test_trace_replay_follows_the_days_shape():
    require_trace("nasa_kennedy_1995_per_minute.csv")
    shape = TraceReplay.from_trace("nasa", peak_users=300, duration_seconds=1440, day=2)
    day = load_trace("nasa").demand[2 * 1440 : 3 * 1440]
    replayed = np.array([users(shape, t) for t in range(1440)], dtype=float)
    assert replayed.max() == 300
    assert not np.isnan(day).any()
    expected = np.maximum(1, np.round(day / day.max() * 300))
    np.testing.assert_array_equal(replayed, expected)  # minute for minute, scaled to the peak
    assert shape.users_at(1440) is None


def test_trace_outage_holds_the_last_known_level():
    require_trace("nasa_kennedy_1995_per_minute.csv")
    # 1995-08-01 14:52 onwards is a hurricane shutdown: missing data, not an empty shop.
    shape = TraceReplay.from_trace("nasa", peak_users=100, duration_seconds=1440, day=31)
    profile = np.array(shape.profile)
    assert np.all(np.isfinite(profile))
    outage = slice(14 * 60 + 52, 24 * 60)
    assert len(set(profile[outage])) == 1
    assert profile[outage][0] > 0


def test_shape_is_chosen_by_environment():
    assert shape_from_env({}) is None
    assert isinstance(shape_from_env({"LOAD_SHAPE": "step", "PEAK_USERS": "50"}), StepRamp)
    assert isinstance(shape_from_env({"LOAD_SHAPE": "spike"}), Spike)
    with pytest.raises(ValueError, match="expected step, spike or trace"):
        shape_from_env({"LOAD_SHAPE": "sawtooth"})
