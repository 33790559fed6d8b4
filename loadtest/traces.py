"""The shared traces as 1-minute demand, in pure Python: what the trace shape replays.

This is a deliberate, minimal duplicate of ``saleor_scaling.backtest.traces.load_trace``
(same files, same rules: see that module's docstring). The project keeps logic shared by
predict, retrain and backtest once, in ``src/saleor_scaling``; but the load generator is a
separate deployable that must install with ``loadtest/requirements.txt`` alone (Locust),
and the backtest package pulls in numpy, scikit-learn, scipy, matplotlib, boto3 and
Powertools. So this reader exists only on the condition that
``tests/loadtest/test_traces.py`` proves it agrees with the backtest's reader, minute by
minute, on every shared trace the trace shape supports. Change both or neither.

The rules, in short:

* ``minute,count`` (NASA): an absent minute is idle (0), except inside a known outage of
  the recording, and in a run of more than `MAX_IDLE_MINUTES` absent minutes (a dropped
  export, not a quiet shop), where it is missing (NaN); padding to the 5-minute grid is
  missing too;
* rows more than `MAX_SPAN_DAYS` apart are refused (a mistyped year);
* ``timestamp,value`` (NAB): one row per source step, a step without a row is a gap
  (NaN); steps of 5 minutes are spread evenly over their minutes, longer steps
  ("linear") follow a line between step midpoints, rescaled so that each step keeps its
  total; steps that are a multiple of 5 minutes are relabelled onto the 5-minute grid.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MINUTES_PER_STEP = 5
"""One CloudWatch period: traces start on this grid and last whole steps."""
NAN = math.nan
MAX_IDLE_MINUTES = 60
"""The longest run of absent minutes read as idle in minute,count; as the backtest's."""
MAX_SPAN_DAYS = 3660
"""The longest span, first row to last, of a trace file; as the backtest's."""

TRACE_FILES: dict[str, str] = {
    "nasa": "nasa_kennedy_1995_per_minute.csv",
    "nab-elb": "nab_elb_request_count_8c0756.csv",
    "nyc-taxi": "nab_nyc_taxi.csv",
}
"""Short names of the shared traces (shared/traces/README.md); as the backtest's."""

KNOWN_OUTAGES: dict[str, tuple[tuple[str, str], ...]] = {
    # shared/traces/README.md: both boundary minutes are in the file, the minutes strictly
    # between them are missing data (a gap between log files, then a hurricane shutdown).
    "nasa_kennedy_1995_per_minute.csv": (
        ("1995-07-28 13:32:00", "1995-08-01 00:00:00"),
        ("1995-08-01 14:52:00", "1995-08-03 04:36:00"),
    ),
}


class TraceError(ValueError):
    """A trace file is absent or cannot be read."""


@dataclass(frozen=True)
class MinuteTrace:
    """Requests per minute from `start` (epoch seconds, on the 5-minute grid), NaN where
    the recording has no data."""

    name: str
    start: int
    demand: list[float]

    @property
    def minutes(self) -> int:
        return len(self.demand)


def shared_dir() -> Path:
    """$SALEOR_SHARED_DIR, else the shared/ folder beside the repository."""
    configured = os.environ.get("SALEOR_SHARED_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1].parent / "shared"


def resolve_trace(name_or_path: str | Path) -> Path:
    """A short name (nasa, nab-elb, nyc-taxi), a file name in the shared traces folder, or
    a path."""
    text = str(name_or_path)
    folder = shared_dir() / "traces"
    candidates = [Path(text)]
    if text in TRACE_FILES:
        candidates.insert(0, folder / TRACE_FILES[text])
    candidates.append(folder / text)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise TraceError(
        f"trace {text!r} not found (looked in {folder}; short names: {', '.join(sorted(TRACE_FILES))}). "
        "Set SALEOR_SHARED_DIR to the shared/ folder."
    )


def load_minutes(name_or_path: str | Path) -> MinuteTrace:
    """Read a trace file into 1-minute demand (see the module docstring)."""
    path = resolve_trace(name_or_path)
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = [column.strip().lower() for column in next(reader, [])]
        numbered = [(reader.line_num, row) for row in reader if row]
    rows = [row for _, row in numbered]
    _check_span(path, [(line, _epoch_minutes(row[0])) for line, row in numbered])
    name = next((short for short, file in TRACE_FILES.items() if file == path.name), path.stem)
    if header == ["minute", "count"]:
        return _per_minute_counts(name, rows, KNOWN_OUTAGES.get(path.name, ()))
    if header == ["timestamp", "value"]:
        return _stepped_values(name, rows)
    raise TraceError(f"{path}: unknown header {header} (expected minute,count or timestamp,value)")


def _epoch_minutes(text: str) -> int:
    stamp = datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)  # the trace's own wall clock, read as UTC
    seconds = int(stamp.timestamp())
    if seconds % 60:
        raise TraceError(f"timestamp {text!r} is not on a whole minute")
    return seconds // 60


def _check_span(path: Path, rows: Sequence[tuple[int, int]]) -> None:
    """Refuse the first row, in file order, that puts the rows more than MAX_SPAN_DAYS apart."""
    if not rows:
        return
    earliest = latest = rows[0][1]
    for line, minute in rows:
        earliest, latest = min(earliest, minute), max(latest, minute)
        if latest - earliest > MAX_SPAN_DAYS * 1440:
            raise TraceError(
                f"{path}:{line}: the file spans {(latest - earliest) // 1440} days; a trace spans at most "
                f"{MAX_SPAN_DAYS} days (about ten years): a mistyped year?"
            )


def _grid(first_minute: int, last_minute: int) -> tuple[int, int]:
    """Start minute (floored to the 5-minute grid) and length (whole steps) covering both."""
    start = first_minute - first_minute % MINUTES_PER_STEP
    length = last_minute + 1 - start
    length += -length % MINUTES_PER_STEP
    return start, length


def _per_minute_counts(
    name: str, rows: Sequence[Sequence[str]], outages: Sequence[tuple[str, str]]
) -> MinuteTrace:
    minutes = [_epoch_minutes(row[0]) for row in rows]
    if not minutes:
        raise TraceError(f"trace {name} is empty")
    first, last = min(minutes), max(minutes)
    start, length = _grid(first, last)
    # Padding before the first and after the last recorded minute is unknown, not idle.
    demand = [NAN if m < first - start or m > last - start else 0.0 for m in range(length)]
    present = sorted(set(minutes))
    for before, after in itertools.pairwise(present):
        if after - before - 1 > MAX_IDLE_MINUTES:  # a dropped export, not a quiet shop
            demand[before + 1 - start : after - start] = [NAN] * (after - before - 1)
    for begin, end in outages:
        lo, hi = max(_epoch_minutes(begin) - start + 1, 0), max(_epoch_minutes(end) - start, 0)
        demand[lo:hi] = [NAN] * len(demand[lo:hi])
    for minute, row in zip(minutes, rows, strict=True):
        demand[minute - start] = float(row[1])
    return MinuteTrace(name, start * 60, demand)


def _stepped_values(name: str, rows: Sequence[Sequence[str]]) -> MinuteTrace:
    pairs = sorted((_epoch_minutes(row[0]), float(row[1])) for row in rows)
    if len(pairs) < 2:
        raise TraceError(f"trace {name} needs at least two rows")
    minutes = [minute for minute, _ in pairs]
    step = Counter(b - a for a, b in itertools.pairwise(minutes)).most_common(1)[0][0]
    if step < 1:
        raise TraceError(f"trace {name} has duplicate timestamps")
    if any((minute - minutes[0]) % step for minute in minutes):
        raise TraceError(f"trace {name} has timestamps off its {step}-minute grid")
    per_step = [NAN] * ((minutes[-1] - minutes[0]) // step + 1)
    for minute, value in pairs:
        per_step[(minute - minutes[0]) // step] = value
    per_minute = resample_steps(per_step, step, "linear" if step > MINUTES_PER_STEP else "even")
    first = minutes[0]
    if step % MINUTES_PER_STEP == 0:
        first -= first % MINUTES_PER_STEP  # one source step is one 5-minute bucket
    start, length = _grid(first, first + len(per_minute) - 1)
    demand = [NAN] * length
    offset = first - start
    demand[offset : offset + len(per_minute)] = per_minute
    return MinuteTrace(name, start * 60, demand)


def _interpolate(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Linear interpolation through (xs, ys), held flat beyond both ends (as numpy.interp)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    right = bisect.bisect_right(xs, x)
    left = right - 1
    slope = (ys[right] - ys[left]) / (xs[right] - xs[left])
    return slope * (x - xs[left]) + ys[left]


def resample_steps(per_step: Sequence[float], step_minutes: int, method: str) -> list[float]:
    """Per-minute demand from per-step totals; every step's minutes sum to its total, a NaN
    step stays NaN."""
    if method not in ("even", "linear"):
        raise TraceError(f"resample method {method!r} is not 'even' or 'linear'")
    rates = [total / step_minutes for total in per_step]
    if method == "even" or step_minutes == 1:
        return [rate for rate in rates for _ in range(step_minutes)]
    known = [not math.isnan(rate) for rate in rates]
    centres = [(j + 0.5) * step_minutes for j, ok in enumerate(known) if ok]
    levels = [rate for rate, ok in zip(rates, known, strict=True) if ok]
    result: list[float] = []
    for j, total in enumerate(per_step):
        # Do not draw a slope across a gap: next to a gap, use the step's own level.
        beside_gap = (j > 0 and not known[j - 1]) or (j + 1 < len(known) and not known[j + 1])
        if beside_gap or not centres:
            shape = [max(rates[j], 0.0)] * step_minutes  # max() keeps NaN, as numpy's
        else:
            first = j * step_minutes + 0.5
            shape = [max(_interpolate(first + i, centres, levels), 0.0) for i in range(step_minutes)]
        weight = sum(shape)
        if weight > 0:  # False for NaN too
            result.extend(value * total / weight for value in shape)
        else:
            result.extend([total / step_minutes] * step_minutes)
    return result
