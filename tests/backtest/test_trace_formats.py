"""CSV trace formats as documented (README, docs/backtest.md, --help): what an absent row
means in each, the errors (file, line, expected format), and the --start/--end, --scale and
--outage/--outages options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_scaling.backtest.cli import (
    build_parser,
    config_from_args,
    main,
    outages_from_args,
    window_options,
)
from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.runner import prepare_trace
from saleor_scaling.backtest.traces import (
    FORMATS,
    TraceError,
    load_trace,
    parse_outage,
    read_outages,
)

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def epoch(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp())


def at(trace_start: int, stamp: str) -> int:
    return (epoch(stamp) - trace_start) // 60


# --- errors: file, line, expected format -------------------------------------------------


def test_integer_minute_index_names_file_line_and_format(tmp_path: Path) -> None:
    # Before: "Invalid isoformat string: '0'", no file, no line, no format.
    path = write(tmp_path / "index.csv", "minute,count", ["0,5", "1,7"])
    with pytest.raises(TraceError) as error:
        load_trace(path)
    message = str(error.value)
    assert message.startswith(f"{path}:2: timestamp '0' is not an ISO 8601 date-time")
    assert "minute index" in message
    assert f"expected minute,count rows: {FORMATS['minute,count']}" in message


def test_hundred_second_steps_say_what_is_accepted(tmp_path: Path) -> None:
    rows = ["2024-01-01 00:00:00,10", "2024-01-01 00:01:40,11", "2024-01-01 00:03:20,12"]
    path = write(tmp_path / "fast.csv", "timestamp,value", rows)
    with pytest.raises(TraceError) as error:
        load_trace(path)
    message = str(error.value)
    assert message.startswith(f"{path}:3: timestamp '2024-01-01 00:01:40' is not on a whole minute")
    assert "steps must be whole minutes (1, 5, 30, 60" in message
    assert "expected timestamp,value rows" in message


def test_missing_path_names_the_path_not_the_shared_folder(tmp_path: Path) -> None:
    # Before: "... Set SALEOR_SHARED_DIR to the shared/ folder." although a path was given.
    missing = tmp_path / "mine" / "shop.csv"
    with pytest.raises(TraceError) as error:
        load_trace(missing)
    assert str(error.value) == f"no such trace file: {missing}"
    with pytest.raises(TraceError, match="is a directory"):
        load_trace(tmp_path)
    # A bare name may be a shared trace: there the shared folder is where it looked.
    with pytest.raises(
        TraceError, match=r"not found: no file .*shop\.csv and none in the shared traces folder"
    ):
        load_trace("shop.csv")


@pytest.mark.parametrize(
    ("header", "rows", "line", "problem"),
    [
        ("minute,count", ["1995-07-01 00:00:00,1", "1995-07-01 00:01:00"], 3, "1 columns"),
        ("minute,count", ["1995-07-01 00:00:00,1,2"], 2, "3 columns"),
        ("minute,count", ["1995-07-01 00:00:00,many"], 2, "count 'many' is not a number"),
        ("minute,count", ["1995-07-01 00:00:00,-3"], 2, "count '-3' is not a finite number >= 0"),
        ("minute,count", ["1995-07-01 00:00:00,nan"], 2, "count 'nan' is not a finite number >= 0"),
        ("minute,count", ["1995-07-01 00:00:00,1", "1995-07-01 00:00:00,2"], 3, "repeats line 2"),
        ("minute,count", ["1995-07-01 00:00:30,1"], 2, "not on a whole minute"),
        ("minute,count", ["1700000000,1"], 2, "a minute index or a Unix time is not accepted"),
        ("timestamp,value", ["2014-07-01 00:00:00,1", "2014-07-01 00:00:00,2"], 3, "repeats line 2"),
        (
            "timestamp,value",
            [
                "2014-07-01 00:00:00,1",
                "2014-07-01 00:30:00,2",
                "2014-07-01 01:00:00,2",
                "2014-07-01 01:10:00,3",
            ],
            5,
            "off the 30-minute grid of the first row (line 2",
        ),
    ],
)
def test_bad_rows_name_file_line_and_format(
    tmp_path: Path, header: str, rows: list[str], line: int, problem: str
) -> None:
    path = write(tmp_path / "bad.csv", header, rows)
    with pytest.raises(TraceError) as error:
        load_trace(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: ")
    assert problem in message
    assert f"expected {header} rows: {FORMATS[header]}" in message


def test_headers_and_empty_files_say_which_formats_exist(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.csv", "time,requests", ["2024-01-01 00:00,1"])
    with pytest.raises(TraceError) as error:
        load_trace(path)
    message = str(error.value)
    assert message.startswith(f"{path}:1: unknown header 'time,requests'")
    assert FORMATS["minute,count"] in message
    assert FORMATS["timestamp,value"] in message
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TraceError, match="the file is empty"):
        load_trace(empty)
    with pytest.raises(TraceError, match="no rows after the header"):
        load_trace(write(tmp_path / "header.csv", "minute,count", []))
    with pytest.raises(TraceError, match=r"one\.csv: needs at least two rows"):
        load_trace(write(tmp_path / "one.csv", "timestamp,value", ["2024-01-01 00:00,1"]))


def test_a_byte_order_mark_and_spaces_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("\ufeffMinute, Count\n2024-01-01 00:00, 3\n2024-01-01T00:02,4\n")
    trace = load_trace(path)
    assert trace.demand[:3].tolist() == [3.0, 0.0, 4.0]


def test_command_line_prints_the_error_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "index.csv", "minute,count", ["0,5"])
    assert main([str(path), "--quiet"]) == 2
    assert f"{path}:2: timestamp '0'" in capsys.readouterr().err
    assert main([str(tmp_path / "nope.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no such trace file" in err
    assert "SALEOR_SHARED_DIR" not in err


# --- what an absent row means --------------------------------------------------------------


def test_absent_minute_is_idle_but_absent_step_is_missing(tmp_path: Path) -> None:
    per_minute = load_trace(
        write(tmp_path / "m.csv", "minute,count", ["2024-01-01 00:00,5", "2024-01-01 00:03,6"])
    )
    assert per_minute.demand[:5].tolist()[:4] == [5.0, 0.0, 0.0, 6.0]  # absent minutes: 0
    assert np.isnan(per_minute.demand[4])  # after the last row: not recorded
    rows = ["2024-01-01 00:00,50", "2024-01-01 00:05,40", "2024-01-01 00:15,60"]
    stepped = load_trace(write(tmp_path / "s.csv", "timestamp,value", rows))
    assert stepped.source_step_minutes == 5
    assert stepped.demand[:10].tolist() == [10.0] * 5 + [8.0] * 5
    assert np.isnan(stepped.demand[10:15]).all()  # the 00:10 step has no row: missing
    assert stepped.demand[15:20].tolist() == [12.0] * 5


@settings(max_examples=40, deadline=None)
@given(
    rows=st.dictionaries(st.integers(0, 300), st.integers(0, 10_000), min_size=1, max_size=60),
    outage=st.tuples(st.integers(0, 300), st.integers(1, 60)),
)
def test_per_minute_rows_are_kept_absent_minutes_idle_outages_missing(
    tmp_path_factory: pytest.TempPathFactory, rows: dict[int, int], outage: tuple[int, int]
) -> None:
    base = epoch("2024-03-04 00:00:00")
    lines = [
        f"{datetime.fromtimestamp(base + 60 * minute, UTC):%Y-%m-%d %H:%M:%S},{count}"
        for minute, count in sorted(rows.items(), key=lambda item: -item[0])  # any order
    ]
    path = write(tmp_path_factory.mktemp("p") / "t.csv", "minute,count", lines)
    lo, length = outage
    out = (base + 60 * lo, base + 60 * (lo + length))
    trace = load_trace(path, outages=[out])
    for minute in range(min(rows), max(rows) + 1):
        value = trace.demand[(base - trace.start) // 60 + minute]
        before = max(m for m in rows if m <= minute)
        after = min(m for m in rows if m >= minute)
        if lo <= minute < lo + length or after - before - 1 > 60:
            assert np.isnan(value)  # a declared outage, or a run of over 60 absent minutes
        else:
            assert value == rows.get(minute, 0)
    kept = sum(count for minute, count in rows.items() if not lo <= minute < lo + length)
    assert np.nansum(trace.demand) == kept


# --- outages -------------------------------------------------------------------------------


def test_declared_outage_is_missing_data_in_both_formats(tmp_path: Path) -> None:
    rows = ["2024-01-01 00:00,5", "2024-01-01 00:01,6", "2024-01-01 00:02,7", "2024-01-01 00:09,1"]
    path = write(tmp_path / "m.csv", "minute,count", rows)
    outage = parse_outage("2024-01-01T00:01/2024-01-01T00:05")
    trace = load_trace(path, outages=[outage])
    assert trace.demand[0] == 5.0
    assert np.isnan(trace.demand[1:5]).all()  # a row inside a declared outage is not trusted
    assert trace.demand[5:9].tolist() == [0.0] * 4  # outside it: idle
    # timestamp,value: every 30-minute step the outage overlaps is a gap, whole.
    steps = [
        f"2024-01-01 {h:02d}:{m:02d},{v}"
        for (h, m), v in zip([(0, 0), (0, 30), (1, 0), (1, 30)], [300, 600, 900, 1200], strict=True)
    ]
    stepped = load_trace(
        write(tmp_path / "s.csv", "timestamp,value", steps),
        outages=[parse_outage("2024-01-01T00:40/2024-01-01T00:50")],
    )
    per_step = stepped.demand.reshape(4, 30)
    assert np.isnan(per_step[1]).all()
    np.testing.assert_allclose(per_step[[0, 2, 3]].sum(axis=1), [300, 900, 1200])


def test_outage_syntax_and_outages_file(tmp_path: Path) -> None:
    assert parse_outage("2024-01-01/2024-01-02") == (epoch("2024-01-01"), epoch("2024-01-02"))
    assert parse_outage("2024-01-01T10:00,2024-01-01T11:00") == (
        epoch("2024-01-01T10:00"),
        epoch("2024-01-01T11:00"),
    )
    with pytest.raises(TraceError, match="ends before it starts"):
        parse_outage("2024-01-02/2024-01-01")
    with pytest.raises(TraceError, match="is not START/END"):
        parse_outage("2024-01-02")
    with pytest.raises(TraceError, match="outage end 'soon' is not an ISO 8601 date"):
        parse_outage("2024-01-02/soon")
    file = tmp_path / "outages.txt"
    file.write_text(
        "# deploys that broke the recording\n2024-01-01T10:00/2024-01-01T11:00\n\n2024-01-05/2024-01-06\n"
    )
    assert read_outages(file) == [
        (epoch("2024-01-01T10:00"), epoch("2024-01-01T11:00")),
        (epoch("2024-01-05"), epoch("2024-01-06")),
    ]
    file.write_text("2024-01-01T10:00/2024-01-01T11:00\nyesterday\n")
    with pytest.raises(
        TraceError, match=rf"{file}:2: outage 'yesterday' is not START/END.*one START/END per line"
    ):
        read_outages(file)
    args = build_parser().parse_args(
        ["t.csv", "--outage", "2024-01-01/2024-01-02", "--outages", str(tmp_path / "none.txt")]
    )
    with pytest.raises(TraceError, match="cannot be read"):
        outages_from_args(args)


# --- --start/--end and --scale -------------------------------------------------------------


def minute_trace(tmp_path: Path, days: int = 3) -> Path:
    base = epoch("2024-01-01")
    rows = [
        f"{datetime.fromtimestamp(base + 60 * m, UTC):%Y-%m-%d %H:%M},{m % 97 + 1}"
        for m in range(days * 1440)
    ]
    return write(tmp_path / "days.csv", "minute,count", rows)


def test_start_end_cut_the_trace_before_days_and_scaling(tmp_path: Path) -> None:
    trace = load_trace(minute_trace(tmp_path))
    config = BacktestConfig(start="2024-01-02", end="2024-01-03T06:00", scale_factor=2.5)
    cut = prepare_trace(trace, config)
    assert cut.start == epoch("2024-01-02")
    assert cut.minutes == 30 * 60
    np.testing.assert_array_equal(cut.demand, trace.demand[1440 : 1440 + 1800] * 2.5)
    assert cut.scale_factor == 2.5
    assert prepare_trace(trace, BacktestConfig(start="2024-01-02", days=0.5, scale_factor=1.0)).minutes == 720
    with pytest.raises(TraceError, match="selects none of it"):
        prepare_trace(trace, BacktestConfig(start="2025-01-01"))
    with pytest.raises(TraceError, match="not on the 5-minute grid"):
        prepare_trace(trace, BacktestConfig(start="2024-01-02T00:03"))
    with pytest.raises(ValueError, match="is not after start"):
        BacktestConfig(start="2024-01-02", end="2024-01-01")
    with pytest.raises(TraceError, match="start 'Tuesday' is not an ISO 8601 date"):
        BacktestConfig(start="Tuesday")


def test_command_line_window_scale_and_timezone_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "t.csv",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-03",
            "--scale",
            "3",
            "--timezone",
            "Europe/Paris",
        ]
    )
    config = window_options(config_from_args(args), args)
    assert (config.start, config.end, config.scale_factor, config.timezone) == (
        "2024-01-02",
        "2024-01-03",
        3.0,
        "Europe/Paris",
    )
    assert (
        window_options(
            config_from_args(parser.parse_args(["t.csv"])), parser.parse_args(["t.csv"])
        ).scale_factor
        is None
    )
    path = minute_trace(tmp_path, 1)
    assert main([str(path), "--start", "2030-01-01", "--quiet"]) == 2
    assert "selects none of it" in capsys.readouterr().err
    assert main([str(path), "--scale", "-1", "--quiet"]) == 2
    assert "scale_factor must be > 0" in capsys.readouterr().err
    assert main([str(path), "--timezone", "Mars/Olympus", "--quiet"]) == 2
    assert "not an IANA time zone" in capsys.readouterr().err


def test_help_and_docs_spell_out_both_formats(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for flag in (
        "--start",
        "--end",
        "--scale",
        "--outage",
        "--outages",
        "--from-cloudwatch",
        "--from-bucket",
    ):
        assert flag in out
    assert "an absent minute is idle (0)" in out
    assert "an absent step is missing data" in out
    for doc in (REPO / "README.md", REPO / "docs" / "backtest.md"):
        text = doc.read_text()
        assert "gaps are missing data, never zero load" not in text, doc
        for needle in (
            "minute,count",
            "timestamp,value",
            "--outage",
            "--start",
            "--scale",
            "--from-cloudwatch",
            "--from-bucket",
        ):
            assert needle in text, (doc, needle)


# --- a dropped export and a mistyped year ----------------------------------------------------


def every_minute(first: str, last: str, skip: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """minute,count rows (count 7) for every minute of [first, last), none in the `skip` spans."""
    rows = []
    for stamp in range(epoch(first), epoch(last), 60):
        if not any(epoch(lo) <= stamp < epoch(hi) for lo, hi in skip):
            rows.append(f"{datetime.fromtimestamp(stamp, UTC):%Y-%m-%d %H:%M},7")
    return rows


def test_a_dropped_day_is_missing_data_and_named_not_a_day_of_zero_traffic(tmp_path: Path) -> None:
    # Before: the deleted day loaded as 1,440 idle minutes, "100.0 % of minutes known".
    rows = every_minute(
        "2024-01-01",
        "2024-01-04",
        skip=(
            ("2024-01-02 00:00", "2024-01-03 00:00"),  # an export that dropped a day
            ("2024-01-03 03:00", "2024-01-03 04:00"),  # a quiet hour: 60 minutes, idle
            ("2024-01-03 10:00", "2024-01-03 11:01"),  # 61 minutes: missing
        ),
    )
    trace = load_trace(write(tmp_path / "shop.csv", "minute,count", rows))
    assert trace.start == epoch("2024-01-01")
    day = slice(at(trace.start, "2024-01-02 00:00"), at(trace.start, "2024-01-03 00:00"))
    assert np.isnan(trace.demand[day]).all()
    quiet = slice(at(trace.start, "2024-01-03 03:00"), at(trace.start, "2024-01-03 04:00"))
    assert trace.demand[quiet].tolist() == [0.0] * 60
    assert trace.demand[at(trace.start, "2024-01-03 02:59")] == 7.0
    assert trace.demand[at(trace.start, "2024-01-03 04:00")] == 7.0
    long = slice(at(trace.start, "2024-01-03 10:00"), at(trace.start, "2024-01-03 11:01"))
    assert np.isnan(trace.demand[long]).all()
    assert trace.demand[at(trace.start, "2024-01-03 11:01")] == 7.0
    assert trace.known_share() == pytest.approx((3 * 1440 - 1440 - 61) / (3 * 1440))
    assert trace.absent_runs == (
        (epoch("2024-01-02 00:00"), epoch("2024-01-03 00:00")),
        (epoch("2024-01-03 10:00"), epoch("2024-01-03 11:01")),
    )
    assert trace.absent_run_notes() == [
        "no rows from 2024-01-02 00:00 to 2024-01-03 00:00 (24 h 0 min): missing data, not idle "
        "(a run of more than 60 absent minutes is taken for a gap in the export)",
        "no rows from 2024-01-03 10:00 to 2024-01-03 11:01 (1 h 1 min): missing data, not idle "
        "(a run of more than 60 absent minutes is taken for a gap in the export)",
    ]
    # The limit is an option; 0 makes every absent minute missing, a day keeps the day idle.
    strict = load_trace(tmp_path / "shop.csv", max_idle_minutes=0)
    assert np.isnan(strict.demand[quiet]).all()
    lenient = load_trace(tmp_path / "shop.csv", max_idle_minutes=1440)
    assert lenient.demand[day].tolist() == [0.0] * 1440
    assert lenient.absent_runs == ()
    with pytest.raises(TraceError, match="max_idle_minutes must be >= 0"):
        load_trace(tmp_path / "shop.csv", max_idle_minutes=-1)


def test_an_absent_run_inside_a_declared_outage_is_not_reported_again(tmp_path: Path) -> None:
    rows = every_minute("2024-01-01", "2024-01-02", skip=(("2024-01-01 05:00", "2024-01-01 08:00"),))
    path = write(tmp_path / "shop.csv", "minute,count", rows)
    trace = load_trace(path, outages=[parse_outage("2024-01-01T04:59/2024-01-01T08:01")])
    assert trace.absent_runs == ()
    assert np.isnan(
        trace.demand[at(trace.start, "2024-01-01 05:00") : at(trace.start, "2024-01-01 08:00")]
    ).all()


def test_the_command_line_names_a_dropped_day_on_stderr_and_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = every_minute("2024-01-01", "2024-01-04", skip=(("2024-01-02 00:00", "2024-01-03 00:00"),))
    path = write(tmp_path / "shop.csv", "minute,count", rows)
    out_json = tmp_path / "report.json"
    code = main([str(path), "--strategies", "reactive,oracle", "--quiet", "--json", str(out_json)])
    assert code == 0
    captured = capsys.readouterr()
    assert (
        "saleor-backtest: warning: no rows from 2024-01-02 00:00 to 2024-01-03 00:00 (24 h 0 min): "
        "missing data, not idle" in captured.err
    )
    assert "66.7% of minutes known" in captured.out
    assert "Note: no rows from 2024-01-02 00:00 to 2024-01-03 00:00 (24 h 0 min)" in captured.out
    assert main([str(path), "--strategies", "reactive,oracle", "--quiet", "--max-idle-minutes", "1440"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert "100.0% of minutes known" in captured.out


@pytest.mark.parametrize(
    ("header", "rows", "line", "span"),
    [
        # Before: a century of zero demand (1995 to 2095) or a MemoryError (0001 to 9999).
        ("minute,count", ["1995-07-01 00:00,5", "1995-07-01 00:01,6", "2095-07-01 00:02,7"], 4, "36525"),
        ("minute,count", ["0001-01-01 00:00,5", "9999-12-31 23:59,6"], 3, "3652058"),
        ("timestamp,value", ["1995-07-01 00:00,5", "1995-07-01 00:05,6", "2095-07-01 00:10,7"], 4, "36525"),
        ("timestamp,value", ["2024-01-01 00:00,5", "0001-01-01 00:00,6", "2024-01-01 00:01,6"], 3, "738885"),
    ],
)
def test_rows_decades_apart_are_refused_with_file_and_lines(
    tmp_path: Path, header: str, rows: list[str], line: int, span: str
) -> None:
    path = write(tmp_path / "typo.csv", header, rows)
    with pytest.raises(TraceError) as error:
        load_trace(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: ")
    assert f"spans {span} days" in message
    assert "at most 3660 days (about ten years)" in message
    assert "a mistyped year?" in message
    assert f"expected {header} rows" in message


def test_ten_years_of_rows_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "decade.csv", "minute,count", ["2014-01-01 00:00,5", "2024-01-08 00:00,6"])
    assert load_trace(path, max_idle_minutes=10**7).days == pytest.approx(3659, abs=0.01)


def test_only_the_absent_runs_of_the_window_run_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = every_minute("2024-01-01", "2024-01-04", skip=(("2024-01-03 00:00", "2024-01-03 12:00"),))
    path = write(tmp_path / "shop.csv", "minute,count", rows)
    quick = ["--strategies", "reactive,oracle", "--quiet"]
    for window in (["--days", "2"], ["--end", "2024-01-02T12:00"]):
        assert main([str(path), *quick, *window]) == 0
        captured = capsys.readouterr()
        assert "warning" not in captured.err, window
        assert "no rows from" not in captured.out, window
    assert main([str(path), *quick, "--start", "2024-01-02"]) == 0
    assert (
        "warning: no rows from 2024-01-03 00:00 to 2024-01-03 12:00 (12 h 0 min)" in capsys.readouterr().err
    )
