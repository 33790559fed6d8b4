"""loadtest/traces.py, the load generator's pure-Python trace reader, agrees minute by
minute with the backtest's reader (saleor_scaling.backtest.traces) on every shared trace
the trace shape supports: the condition on which the duplicate is allowed to exist."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadtest import traces as lite
from loadtest.shapes import SHAPES
from saleor_scaling.backtest import traces as backtest
from tests.conftest import require_trace

DAYS_COMPARED = 14
"""The first two weeks: every format and resampling rule, NASA's start and NAB ELB whole."""


@pytest.mark.parametrize("short", sorted(lite.TRACE_FILES))
def test_the_load_generators_reader_agrees_with_the_backtests(short: str) -> None:
    require_trace(lite.TRACE_FILES[short])
    ours = lite.load_minutes(short)
    theirs = backtest.load_trace(short)
    assert (ours.name, ours.start, ours.minutes) == (theirs.name, theirs.start, theirs.minutes)
    span = DAYS_COMPARED * 1440
    expected = [float(value) for value in theirs.demand[:span]]
    got = ours.demand[:span]
    assert [math.isnan(v) for v in got] == [math.isnan(v) for v in expected]
    known = [(g, e) for g, e in zip(got, expected, strict=True) if not math.isnan(e)]
    assert known, short
    # numpy sums and interpolates in another order: equal to the last few bits
    assert [g for g, _ in known] == pytest.approx([e for _, e in known], rel=1e-9, abs=1e-9)


def test_the_known_outages_and_short_names_are_the_backtests() -> None:
    assert lite.TRACE_FILES == backtest.TRACE_FILES
    assert lite.KNOWN_OUTAGES == backtest.KNOWN_OUTAGES
    assert lite.MINUTES_PER_STEP == backtest.MINUTES_PER_STEP
    assert "trace" in SHAPES


def test_the_nasa_outage_is_missing_data_in_both() -> None:
    require_trace(lite.TRACE_FILES["nasa"])
    ours, theirs = lite.load_minutes("nasa"), backtest.load_trace("nasa")
    outage = slice(27 * 1440 + 13 * 60 + 33, 31 * 1440)  # 1995-07-28 13:33 .. 07-31 23:59
    assert all(math.isnan(v) for v in ours.demand[outage])
    assert all(math.isnan(v) for v in theirs.demand[outage])
    assert ours.demand[27 * 1440 + 13 * 60 + 32] == theirs.demand[27 * 1440 + 13 * 60 + 32] > 0


def test_resampling_keeps_each_steps_total_and_its_gaps() -> None:
    nan = math.nan
    per_step = [30.0, 60.0, nan, 90.0, 0.0, 30.0]
    for method in ("even", "linear"):
        minutes = lite.resample_steps(per_step, 30, method)
        expected = backtest.resample_steps(np.array(per_step), 30, method)
        assert len(minutes) == len(expected) == 180
        for j, total in enumerate(per_step):
            chunk = minutes[j * 30 : (j + 1) * 30]
            if math.isnan(total):
                assert all(math.isnan(v) for v in chunk)
            else:
                assert sum(chunk) == pytest.approx(total)
        assert [v for v in minutes if not math.isnan(v)] == pytest.approx(
            [float(v) for v in expected if not math.isnan(v)]
        )
    with pytest.raises(lite.TraceError, match="cubic"):
        lite.resample_steps(per_step, 30, "cubic")


def test_a_dropped_day_is_missing_data_in_both_readers(tmp_path) -> None:
    # Before: the load generator replayed a dropped export's day as an empty shop.
    rows = ["minute,count"]
    for minute in range(3 * 1440):
        day, rest = divmod(minute, 1440)
        if day == 1 or (600 <= rest < 661 and day == 2):
            continue  # the whole second day, and 61 minutes of the third: missing
        if 180 <= rest < 240 and day == 2:
            continue  # 60 minutes: a quiet hour, idle
        rows.append(f"2024-01-0{day + 1} {rest // 60:02d}:{rest % 60:02d},{minute % 13 + 1}")
    path = tmp_path / "shop.csv"
    path.write_text("\n".join(rows) + "\n")
    ours, theirs = lite.load_minutes(path), backtest.load_trace(path)
    assert lite.MAX_IDLE_MINUTES == backtest.MAX_IDLE_MINUTES == 60
    assert all(math.isnan(v) for v in ours.demand[1440:2880])
    assert all(math.isnan(v) for v in ours.demand[2880 + 600 : 2880 + 661])
    assert ours.demand[2880 + 180 : 2880 + 240] == [0.0] * 60
    assert [math.isnan(v) for v in ours.demand] == np.isnan(theirs.demand).tolist()
    assert [v for v in ours.demand if not math.isnan(v)] == theirs.demand[~np.isnan(theirs.demand)].tolist()


def test_rows_decades_apart_are_refused_by_both_readers(tmp_path) -> None:
    path = tmp_path / "typo.csv"
    path.write_text("minute,count\n1995-07-01 00:00,5\n2095-07-01 00:00,6\n")
    assert lite.MAX_SPAN_DAYS == backtest.MAX_SPAN_DAYS == 3660
    with pytest.raises(lite.TraceError, match=r"typo\.csv:3: .*spans 36525 days; a trace spans at most 3660"):
        lite.load_minutes(path)
    with pytest.raises(
        backtest.TraceError, match=r"typo\.csv:3: .*spans 36525 days; a trace spans at most 3660"
    ):
        backtest.load_trace(path)
