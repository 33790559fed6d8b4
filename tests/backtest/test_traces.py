"""Trace loaders: gaps are NaN, idle minutes are 0, resampling keeps every step's total."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from saleor_scaling.backtest.traces import (
    TRACE_FILES,
    Trace,
    TraceError,
    load_trace,
    resample_steps,
    robust_peak,
)
from tests.conftest import require_trace

NASA_FILE = TRACE_FILES["nasa"]


def minute_of(trace: Trace, stamp: str) -> int:
    from datetime import UTC, datetime

    epoch = int(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp())
    return (epoch - trace.start) // 60


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_per_minute_counts_absent_minutes_are_idle_but_outages_are_missing(tmp_path: Path) -> None:
    # The NASA file's name carries its known outages; this tiny file only borrows the name.
    rows = [
        "1995-07-28 13:30:00,75",
        "1995-07-28 13:32:00,42",  # 13:31 absent: idle
        "1995-08-01 00:00:00,51",  # everything strictly between is the outage
        "1995-08-01 00:03:00,36",
    ]
    trace = load_trace(write(tmp_path / NASA_FILE, "minute,count", rows))
    assert trace.start % 300 == 0
    assert trace.minutes % 5 == 0
    assert trace.demand[minute_of(trace, "1995-07-28 13:30:00")] == 75
    assert trace.demand[minute_of(trace, "1995-07-28 13:31:00")] == 0
    assert trace.demand[minute_of(trace, "1995-07-28 13:32:00")] == 42
    assert np.isnan(trace.demand[minute_of(trace, "1995-07-28 13:33:00")])
    assert np.isnan(trace.demand[minute_of(trace, "1995-07-31 23:59:00")])
    assert trace.demand[minute_of(trace, "1995-08-01 00:00:00")] == 51
    assert trace.demand[minute_of(trace, "1995-08-01 00:01:00")] == 0
    # Padding to the 5-minute grid is unknown, not idle.
    assert np.isnan(trace.demand[0]) or minute_of(trace, "1995-07-28 13:30:00") == 0


def test_stepped_values_gap_is_missing_and_grid_is_aligned(tmp_path: Path) -> None:
    rows = ["2014-04-10 00:04:00,50", "2014-04-10 00:09:00,100", "2014-04-10 00:19:00,25"]
    trace = load_trace(write(tmp_path / "elb.csv", "timestamp,value", rows))
    assert trace.source_step_minutes == 5
    assert trace.resample == "even"
    # Relabelled onto the 5-minute grid: the 00:04 step is the bucket 00:00-00:05.
    assert trace.demand[:5].tolist() == [10.0] * 5
    assert trace.demand[5:10].tolist() == [20.0] * 5
    assert np.all(np.isnan(trace.demand[10:15]))  # the missing 00:14 step
    assert trace.demand[15:20].tolist() == [5.0] * 5


def test_thirty_minute_steps_resample_keeping_totals(tmp_path: Path) -> None:
    values = [1000, 3000, 2000, 6000, 5000, 400]
    rows = [
        f"2014-07-01 {h:02d}:{m:02d}:00,{v}"
        for (h, m), v in zip([(0, 0), (0, 30), (1, 0), (1, 30), (2, 0), (2, 30)], values, strict=True)
    ]
    trace = load_trace(write(tmp_path / "taxi.csv", "timestamp,value", rows))
    assert trace.resample == "linear"
    assert trace.source_step_minutes == 30
    per_step = trace.demand[: 6 * 30].reshape(6, 30)
    np.testing.assert_allclose(per_step.sum(axis=1), values)
    assert np.all(per_step >= 0)
    # Linear, not a staircase: inside a step the rate moves toward the next step's.
    assert per_step[0, -1] > per_step[0, 0]


def test_resampling_leaves_gaps_as_gaps_and_never_slopes_across_them() -> None:
    per_step = np.array([300.0, np.nan, 600.0, 900.0])
    minutes = resample_steps(per_step, 30, "linear")
    assert np.all(np.isnan(minutes[30:60]))
    np.testing.assert_allclose(minutes[:30], 10.0)  # next to the gap: flat
    np.testing.assert_allclose(np.nansum(minutes.reshape(4, 30), axis=1), [300, 0, 600, 900])


def test_scaling_puts_the_robust_peak_at_the_requested_instances() -> None:
    demand = np.concatenate([np.full(995, 10.0), np.full(5, 1000.0)])  # one freak step
    trace = Trace("t", 0, demand, 1, "none").scaled(8, 1000.0, percentile=99.9)
    assert robust_peak(trace, 99.9) == pytest.approx(8000.0)
    assert trace.scale_factor == pytest.approx(8000.0 / robust_peak(Trace("t", 0, demand, 1, "none"), 99.9))


def test_unknown_trace_names_say_where_they_looked() -> None:
    with pytest.raises(TraceError, match="SALEOR_SHARED_DIR"):
        load_trace("no-such-trace")


def test_real_nasa_trace_outages_and_idle_minutes() -> None:
    require_trace(NASA_FILE)
    trace = load_trace("nasa")
    assert trace.days == pytest.approx(62.0, abs=0.01)
    assert np.isnan(trace.demand[minute_of(trace, "1995-07-30 12:00:00")])
    assert np.isnan(trace.demand[minute_of(trace, "1995-08-02 12:00:00")])
    assert trace.demand[minute_of(trace, "1995-08-01 14:44:00")] == 0  # absent, outside outages
    outage = np.isnan(trace.demand)
    assert 0.07 < outage.mean() < 0.09  # the two outages, about 5 days of 62
    assert np.nansum(trace.demand) == 3_461_612


def test_real_taxi_trace_keeps_its_total() -> None:
    path = require_trace(TRACE_FILES["nyc-taxi"])
    total = sum(float(line.split(",")[1]) for line in path.read_text().splitlines()[1:] if line)
    trace = load_trace("nyc-taxi")
    assert np.nansum(trace.demand) == pytest.approx(total, rel=1e-9)
    assert trace.known_share() == 1.0
