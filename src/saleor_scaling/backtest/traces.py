"""Real request-rate traces, read into 1-minute demand with gaps as NaN.

The shared traces live outside the project (``$SALEOR_SHARED_DIR/traces`` or
``<repo>/../shared/traces``) and are never copied into it. Two file formats, told apart by
their header line (any other header is refused with both formats spelled out, `FORMATS`):

* ``minute,count`` (the NASA Kennedy trace): one row per minute that saw a request, so an
  absent minute between the first row and the last is an idle minute (0) -- except inside a
  *known outage* of the recording (built in for NASA, `KNOWN_OUTAGES`, or declared with
  `outages`), where it is missing data (NaN), never zero load, and except in a run of more
  than `MAX_IDLE_MINUTES` (60) absent minutes: a quiet minute logs nothing, but an hour
  without a single row is an export that dropped rows (a lost day read as zero traffic
  made a backtest cheaper and shorter than the shop), so it is missing data too, and each
  such run is named (`Trace.absent_run_notes`). NASA's longest idle run outside its
  outages is 44 minutes.
* ``timestamp,value`` (NAB): one row per source step (1, 5, 30, 60 ... whole minutes, the
  most common gap between rows); a step with no row is a gap (NaN), never zero load; a row
  with 0 is an idle step. Each source step is resampled to 1-minute demand keeping its
  total exactly: ``even`` spreads it evenly over its minutes; ``linear`` (the default for
  steps longer than 5 minutes) interpolates the rate linearly between step midpoints and
  rescales the minutes of each step so that they sum to that step's value. Steps that are a
  multiple of 5 minutes are relabelled onto the 5-minute grid (NAB ELB is stamped :04, :09,
  ...: a shift of under 5 minutes), so that a source step is one CloudWatch bucket of the
  simulation. A declared outage makes every source step it overlaps a gap.

Timestamps are ISO 8601 date-times on a whole minute (``1995-07-01 00:00:00``,
``2014-04-10T00:04``); a minute index, a Unix time or seconds off the minute are refused,
and so are rows more than `MAX_SPAN_DAYS` (3660, about ten years) apart: a mistyped year
(2095 for 1995) would otherwise load a century of minutes.
Every refusal names the file, the line and the expected format. Outages and the
``--start``/``--end`` window are half-open, [START, END), in the trace's own clock.

Timestamps are kept as the trace's own wall clock, read as if UTC: hour-of-day and
day-of-week features then describe the trace's local day (NASA is US Eastern, NYC taxi is
New York time) without a time zone database or DST ambiguities, so the timezone the
backtest hands the features is "UTC".
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from saleor_scaling import STEP_SECONDS
from saleor_scaling.series import FloatArray

MINUTES_PER_STEP = STEP_SECONDS // 60

TRACE_FILES: dict[str, str] = {
    "nasa": "nasa_kennedy_1995_per_minute.csv",
    "nab-elb": "nab_elb_request_count_8c0756.csv",
    "nyc-taxi": "nab_nyc_taxi.csv",
}
"""Short names of the shared traces (see shared/traces/README.md)."""

KNOWN_OUTAGES: dict[str, tuple[tuple[str, str], ...]] = {
    # shared/traces/README.md: a gap between log files, then a hurricane shutdown. Both
    # boundary minutes are in the file; the minutes strictly between them are missing data.
    "nasa_kennedy_1995_per_minute.csv": (
        ("1995-07-28 13:32:00", "1995-08-01 00:00:00"),
        ("1995-08-01 14:52:00", "1995-08-03 04:36:00"),
    ),
}


MAX_IDLE_MINUTES = 60
"""In ``minute,count``, the longest run of absent minutes read as idle (0); a longer run
is missing data (NaN) and named (see the module docstring)."""
MAX_SPAN_DAYS = 3660
"""The longest span, first row to last, a trace file may have (about ten years: 42 MB of
minutes per series); rows further apart are refused as a mistyped date."""


class TraceError(ValueError):
    """A trace file is absent or cannot be read."""


@dataclass(frozen=True)
class Trace:
    """Requests per minute from `start` (epoch seconds on the 5-minute grid), NaN where
    the recording has no data."""

    name: str
    start: int
    demand: FloatArray
    source_step_minutes: int
    resample: str
    timezone: str = "UTC"
    scale_factor: float = 1.0
    """Multiplier applied to the file's counts (1.0 for a trace as read)."""
    source_origin: int | None = None
    """Epoch seconds at which one of the source steps starts (None: `start`); with
    `source_step_minutes` it says which minutes share a step (`observed.Observation`)."""
    absent_runs: tuple[tuple[int, int], ...] = ()
    """Runs of more than `max_idle_minutes` minutes without a row (``minute,count``), each
    [first absent minute, next row) in epoch seconds: missing data, not idle."""
    max_idle_minutes: int = MAX_IDLE_MINUTES

    def __post_init__(self) -> None:
        if self.start % STEP_SECONDS:
            raise TraceError(f"trace start {self.start} is not on the {STEP_SECONDS}s grid")
        if len(self.demand) % MINUTES_PER_STEP:
            raise TraceError("trace length must be whole 5-minute steps")

    @property
    def minutes(self) -> int:
        return len(self.demand)

    @property
    def days(self) -> float:
        return self.minutes / 1440.0

    def known_share(self) -> float:
        return float(np.mean(~np.isnan(self.demand))) if self.minutes else 0.0

    def absent_run_notes(self) -> list[str]:
        """One line per absent run that overlaps the trace (as cut), saying what it became."""
        end = self.start + 60 * self.minutes
        return [
            f"no rows from {_iso(first)} to {_iso(last)} ({_duration(last - first)}): missing data, "
            f"not idle (a run of more than {self.max_idle_minutes} absent minutes is taken for a gap "
            "in the export)"
            for first, last in self.absent_runs
            if first < end and last > self.start
        ]

    def step_means(self) -> FloatArray:
        """Mean requests per minute of each 5-minute step; NaN if any of its minutes is."""
        return np.asarray(self.demand.reshape(-1, MINUTES_PER_STEP).mean(axis=1), dtype=np.float64)

    def scaled(self, peak_instances: float, capacity_per_instance: float, percentile: float = 99.9) -> Trace:
        """The trace multiplied so that its robust peak (the `percentile` of the 5-minute
        mean demand) needs exactly `peak_instances` instances of `capacity_per_instance`
        requests per minute. A percentile rather than the maximum, so one freak minute
        does not decide the size of the whole simulated shop."""
        peak = robust_peak(self, percentile)
        if not math.isfinite(peak) or peak <= 0:
            raise TraceError(f"trace {self.name} has no positive demand to scale")
        factor = peak_instances * capacity_per_instance / peak
        return replace(self, demand=self.demand * factor, scale_factor=self.scale_factor * factor)

    def head(self, days: float) -> Trace:
        """The first `days` days (whole 5-minute steps)."""
        minutes = int(days * 1440) // MINUTES_PER_STEP * MINUTES_PER_STEP
        return replace(self, demand=self.demand[:minutes].copy())

    def between(self, start: int | None, end: int | None) -> Trace:
        """The minutes of [start, end) (epoch seconds on the 5-minute grid; None: the
        trace's own start or end)."""
        lo, hi = (
            self.start if start is None else start,
            self.start + 60 * self.minutes if end is None else end,
        )
        for label, stamp in (("start", lo), ("end", hi)):
            if stamp % STEP_SECONDS:
                raise TraceError(f"--{label} {_iso(stamp)} is not on the 5-minute grid")
        first, last = max(lo, self.start), min(hi, self.start + 60 * self.minutes)
        if first >= last:
            raise TraceError(
                f"trace {self.name} spans {_iso(self.start)} to {_iso(self.start + 60 * self.minutes)}; "
                f"[{_iso(lo)}, {_iso(hi)}) selects none of it"
            )
        offset = (first - self.start) // 60
        return replace(self, start=first, demand=self.demand[offset : offset + (last - first) // 60].copy())


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: int) -> str:
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min"


def robust_peak(trace: Trace, percentile: float = 99.9) -> float:
    means = trace.step_means()
    known = means[~np.isnan(means)]
    return float(np.percentile(known, percentile)) if len(known) else math.nan


def shared_dir() -> Path:
    """Where the shared folder is: $SALEOR_SHARED_DIR, else beside the repository."""
    configured = os.environ.get("SALEOR_SHARED_DIR")
    if configured:
        return Path(configured)
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared"


def traces_dir() -> Path:
    return shared_dir() / "traces"


def resolve_trace(name_or_path: str | Path) -> Path:
    """A short name (nasa, nab-elb, nyc-taxi), a file name in the shared traces folder, or
    a path. The error says where it looked: the shared folder only for a short or bare name,
    never for a path that was given and is not there."""
    text = str(name_or_path)
    candidates = [Path(text)]
    if text in TRACE_FILES:
        candidates.insert(0, traces_dir() / TRACE_FILES[text])
    candidates.append(traces_dir() / text)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(TRACE_FILES))
    given = Path(text)
    if given.is_dir():
        raise TraceError(
            f"{given}: is a directory; expected a CSV file with header minute,count or timestamp,value"
        )
    if text in TRACE_FILES:
        raise TraceError(
            f"shared trace {text!r} is absent: no file {traces_dir() / TRACE_FILES[text]}. "
            "Set SALEOR_SHARED_DIR to the shared/ folder that holds traces/"
        )
    if given.parent != Path(".") or given.is_absolute():
        raise TraceError(f"no such trace file: {given.resolve()}")
    raise TraceError(
        f"trace {text!r} not found: no file {given.resolve()} and none in the shared traces "
        f"folder {traces_dir()} (short names: {known}; set SALEOR_SHARED_DIR if the shared/ "
        "folder is elsewhere)"
    )


FORMATS: dict[str, str] = {
    "minute,count": (
        "one row per minute with requests: an ISO 8601 date-time on a whole minute, a comma, "
        "a request count >= 0 (e.g. 1995-07-01 00:00:00,12); an absent minute is idle (0), but a "
        f"run of more than {MAX_IDLE_MINUTES} absent minutes is missing data (and named); rows at "
        f"most {MAX_SPAN_DAYS} days apart"
    ),
    "timestamp,value": (
        "one row per step of whole minutes (1, 5, 30, 60 ...): an ISO 8601 date-time on a whole "
        "minute, a comma, the step's request count >= 0 (e.g. 2014-04-10 00:04:00,50); an "
        f"absent step is missing data; rows at most {MAX_SPAN_DAYS} days apart"
    ),
}
"""The accepted CSV formats by header line, as every parse error spells them out."""

Outage = tuple[int, int]
"""A known outage: [start, end) in epoch seconds of the trace's clock; missing data."""


def load_trace(
    name_or_path: str | Path,
    resample: str | None = None,
    outages: Sequence[Outage] = (),
    max_idle_minutes: int = MAX_IDLE_MINUTES,
) -> Trace:
    """Read a trace file into 1-minute demand (see the module docstring for the rules).
    `outages` are declared known outages, missing data whatever rows the file has there;
    in ``minute,count`` a run of more than `max_idle_minutes` absent minutes is missing."""
    if max_idle_minutes < 0:
        raise TraceError(f"max_idle_minutes must be >= 0, not {max_idle_minutes}")
    path = resolve_trace(name_or_path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            first = next(reader, None)
            if first is None:
                raise TraceError(
                    f"{path}: the file is empty; expected a header line minute,count or timestamp,value"
                )
            header = ",".join(column.strip().lower() for column in first)
            if header not in FORMATS:
                expected = "; or ".join(f"{name} ({meaning})" for name, meaning in FORMATS.items())
                raise TraceError(
                    f"{path}:{reader.line_num}: unknown header {','.join(first)!r}; expected {expected}"
                )
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise TraceError(f"{path}: cannot be read as a CSV text file: {error}") from error
    if not rows:
        raise TraceError(f"{path}: no rows after the header; expected {header} rows: {FORMATS[header]}")
    lines, minutes, values = _parse_rows(path, header, rows)
    name = next((short for short, file in TRACE_FILES.items() if file == path.name), path.stem)
    if header == "minute,count":
        known = KNOWN_OUTAGES.get(path.name, ())
        return _per_minute_counts(name, path, lines, minutes, values, known, outages, max_idle_minutes)
    return _stepped_values(name, path, lines, minutes, values, resample, outages)


def _parse_rows(
    path: Path, header: str, rows: Sequence[tuple[int, Sequence[str]]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]:
    """Line numbers, epoch minutes and values of every row, or the first bad row's error."""
    lines: list[int] = []
    minutes: list[int] = []
    values: list[float] = []
    earliest = latest = (0, 0)  # (epoch minute, line) of the earliest and latest row so far
    for line, row in rows:

        def refuse(problem: str, line: int = line) -> TraceError:
            return TraceError(f"{path}:{line}: {problem}; expected {header} rows: {FORMATS[header]}")

        if len(row) != 2:
            raise refuse(f"{len(row)} columns ({','.join(row)!r}), not 2")
        stamp, value = row[0].strip(), row[1].strip()
        try:
            minutes.append(_epoch_minutes(stamp))
        except TraceError as error:
            raise refuse(str(error)) from None
        try:
            number = float(value)
        except ValueError:
            raise refuse(f"count {value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise refuse(f"count {value!r} is not a finite number >= 0")
        # Checked row by row, before any per-minute array is made: a mistyped year is an
        # error naming its line, not a MemoryError or a century of demand.
        minute = minutes[-1]
        earliest = min(earliest, (minute, line)) if lines else (minute, line)
        latest = max(latest, (minute, line)) if lines else (minute, line)
        if latest[0] - earliest[0] > MAX_SPAN_DAYS * 1440:
            other = earliest if minute == latest[0] else latest
            raise refuse(
                f"timestamp {stamp!r}: with line {other[1]} ({_iso_minute(other[0])}) the file spans "
                f"{(latest[0] - earliest[0]) // 1440} days; a trace spans at most {MAX_SPAN_DAYS} days "
                "(about ten years): a mistyped year?"
            )
        lines.append(line)
        values.append(number)
    return np.array(lines, dtype=np.int64), np.array(minutes, dtype=np.int64), np.array(values)


def parse_time(text: str, what: str = "time") -> int:
    """Epoch seconds of an ISO 8601 date (midnight) or date-time; a time without an offset
    is the trace's own wall clock, read as UTC like the trace's timestamps."""
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TraceError(
            f"{what} {text!r} is not an ISO 8601 date or date-time (e.g. 2024-01-05 or 2024-01-05T13:30)"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp())


def parse_outage(text: str) -> Outage:
    """``START/END`` (ISO 8601 interval notation; ``START,END`` also): [START, END)."""
    parts = text.replace(",", "/").split("/")
    if len(parts) != 2:
        raise TraceError(f"outage {text!r} is not START/END (e.g. 2024-01-05T13:30/2024-01-05T15:00)")
    start, end = parse_time(parts[0], "outage start"), parse_time(parts[1], "outage end")
    if end <= start:
        raise TraceError(f"outage {text!r} ends before it starts")
    return start, end


def read_outages(path: str | Path) -> list[Outage]:
    """An outages file: one ``START/END`` (or ``START,END``) per line; blank lines and
    lines starting with # are ignored. Errors name the file and the line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise TraceError(f"outages file {file}: cannot be read: {error}") from error
    outages: list[Outage] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            outages.append(parse_outage(line))
        except TraceError as error:
            raise TraceError(f"{file}:{number}: {error}; expected one START/END per line") from None
    return outages


def mark_outages(trace: Trace, outages: Sequence[Outage]) -> Trace:
    """The trace with every minute of the outages missing (NaN): a known outage is missing
    data, never zero load. Partly covered minutes count as covered."""
    if not outages:
        return trace
    demand = trace.demand.copy()
    for first, last in outages:
        lo = max(0, (first - trace.start) // 60)
        hi = min(len(demand), -(-(last - trace.start) // 60))
        if lo < hi:
            demand[lo:hi] = np.nan
    return replace(trace, demand=demand)


def _epoch_minutes(text: str) -> int:
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        hint = (
            " (a minute index or a Unix time is not accepted)" if text.strip().lstrip("-").isdigit() else ""
        )
        raise TraceError(f"timestamp {text!r} is not an ISO 8601 date-time{hint}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    seconds = stamp.timestamp()
    if seconds % 60:
        raise TraceError(
            f"timestamp {text!r} is not on a whole minute: steps must be whole minutes (1, 5, 30, 60 ...)"
        )
    return int(seconds) // 60


def _grid(first_minute: int, last_minute: int) -> tuple[int, int]:
    """Start minute (floored to the 5-minute grid) and length (whole steps) covering both."""
    start = first_minute - first_minute % MINUTES_PER_STEP
    length = last_minute + 1 - start
    length += -length % MINUTES_PER_STEP
    return start, length


def _first_repeat(
    path: Path, lines: npt.NDArray[np.int64], minutes: npt.NDArray[np.int64], header: str
) -> None:
    seen: dict[int, int] = {}
    for line, minute in zip(lines.tolist(), minutes.tolist(), strict=True):
        if minute in seen:
            raise TraceError(
                f"{path}:{line}: timestamp {_iso_minute(minute)} repeats line {seen[minute]}; "
                f"expected {header} rows: {FORMATS[header]}"
            )
        seen[minute] = line


def _iso_minute(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M")


def _per_minute_counts(
    name: str,
    path: Path,
    lines: npt.NDArray[np.int64],
    minutes: npt.NDArray[np.int64],
    counts: FloatArray,
    known_outages: Sequence[tuple[str, str]],
    outages: Sequence[Outage],
    max_idle_minutes: int = MAX_IDLE_MINUTES,
) -> Trace:
    _first_repeat(path, lines, minutes, "minute,count")
    start, length = _grid(int(minutes.min()), int(minutes.max()))
    demand = np.zeros(length)
    # Padding before the first and after the last recorded minute is unknown, not idle.
    demand[: int(minutes.min()) - start] = np.nan
    demand[int(minutes.max()) - start + 1 :] = np.nan
    runs = absent_runs(minutes, max_idle_minutes)
    for first, last in runs:
        demand[first - start : last - start] = np.nan
    declared = [(_epoch_minutes(first) + 1, _epoch_minutes(last)) for first, last in known_outages]
    for lo, hi in declared:
        demand[max(lo - start, 0) : max(hi - start, 0)] = np.nan
    demand[minutes - start] = counts
    declared += [(lo // 60, -(-hi // 60)) for lo, hi in outages]
    # A run the outages already cover is known missing data: not worth a warning.
    named = tuple(
        (first * 60, last * 60)
        for first, last in runs
        if not any(lo <= first and last <= hi for lo, hi in declared)
    )
    trace = Trace(
        name,
        start * 60,
        demand,
        source_step_minutes=1,
        resample="none",
        absent_runs=named,
        max_idle_minutes=max_idle_minutes,
    )
    return mark_outages(trace, outages)


def absent_runs(minutes: npt.NDArray[np.int64], max_idle_minutes: int) -> list[tuple[int, int]]:
    """[first absent minute, next row's minute) of every run of more than `max_idle_minutes`
    minutes without a row, in epoch minutes."""
    present = np.unique(minutes)
    gaps = np.diff(present) - 1
    longer = np.flatnonzero(gaps > max_idle_minutes)
    return [(int(present[i]) + 1, int(present[i + 1])) for i in longer]


def _stepped_values(
    name: str,
    path: Path,
    lines: npt.NDArray[np.int64],
    minutes: npt.NDArray[np.int64],
    values: FloatArray,
    resample: str | None,
    outages: Sequence[Outage],
) -> Trace:
    header = "timestamp,value"
    if len(minutes) < 2:
        raise TraceError(
            f"{path}: needs at least two rows to tell its step; expected {header} rows: {FORMATS[header]}"
        )
    order = np.argsort(minutes, kind="stable")
    lines, minutes, values = lines[order], minutes[order], values[order]
    _first_repeat(path, lines, minutes, header)
    step = Counter(np.diff(minutes).tolist()).most_common(1)[0][0]
    method = resample or ("linear" if step > MINUTES_PER_STEP else "even")
    # One slot per source step from the first row to the last; a step without a row is a gap.
    slots = (minutes - minutes[0]) // step
    off = np.flatnonzero((minutes - minutes[0]) % step)
    if len(off):
        bad = int(off[0])
        raise TraceError(
            f"{path}:{int(lines[bad])}: timestamp {_iso_minute(int(minutes[bad]))} is off the "
            f"{step}-minute grid of the first row (line {int(lines[0])}, {_iso_minute(int(minutes[0]))}; "
            f"{step} minutes is the most common step); expected {header} rows: {FORMATS[header]}"
        )
    per_step = np.full(int(slots[-1]) + 1, np.nan)
    per_step[slots] = values
    first = int(minutes[0])
    if step % MINUTES_PER_STEP == 0:
        # Source steps are CloudWatch-like periods: put them on the 5-minute grid (NAB ELB
        # is labelled :04, :09, ...), so that one source step is one simulated bucket.
        first -= first % MINUTES_PER_STEP
    for outage_start, outage_end in outages:
        # A step's total covers the outage too: every step it overlaps is a gap.
        slot_starts = (first + step * np.arange(len(per_step))) * 60
        per_step[(slot_starts < outage_end) & (slot_starts + step * 60 > outage_start)] = np.nan
    per_minute = resample_steps(per_step, int(step), method)
    start, length = _grid(first, first + len(per_minute) - 1)
    demand = np.full(length, np.nan)
    offset = first - start
    demand[offset : offset + len(per_minute)] = per_minute
    return Trace(
        name, start * 60, demand, source_step_minutes=int(step), resample=method, source_origin=first * 60
    )


def resample_steps(per_step: FloatArray, step_minutes: int, method: str) -> FloatArray:
    """Per-minute demand from per-step totals; every step's minutes sum to its total, a NaN
    step stays NaN."""
    if method not in ("even", "linear"):
        raise TraceError(f"resample method {method!r} is not 'even' or 'linear'")
    rates = per_step / step_minutes
    even = np.repeat(rates, step_minutes)
    if method == "even" or step_minutes == 1:
        return even
    # Linear interpolation between step midpoints, within runs of known steps only.
    minute_centres = np.arange(len(per_step) * step_minutes) + 0.5
    step_centres = (np.arange(len(per_step)) + 0.5) * step_minutes
    known = ~np.isnan(rates)
    interpolated = np.interp(minute_centres, step_centres[known], rates[known]) if np.any(known) else even
    # Do not draw a slope across a gap: next to a gap, use the step's own level.
    neighbour_gap = np.zeros(len(per_step), dtype=bool)
    neighbour_gap[1:] |= ~known[:-1]
    neighbour_gap[:-1] |= ~known[1:]
    shape = np.where(np.repeat(neighbour_gap, step_minutes), even, interpolated).reshape(-1, step_minutes)
    shape = np.maximum(shape, 0.0)
    sums = shape.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(sums > 0, shape * per_step[:, None] / sums, per_step[:, None] / step_minutes)
    return np.asarray(scaled.reshape(-1), dtype=np.float64)
