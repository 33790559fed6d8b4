"""Real request-rate traces, read into 1-minute demand with gaps as NaN.

The shared traces live outside the project (``$SALEOR_SHARED_DIR/traces`` or
``<repo>/../shared/traces``) and are never copied into it. Two file formats:

* ``minute,count`` (the NASA Kennedy trace): one row per minute that saw a request, so an
  absent minute is an idle minute (0) -- except inside a *known outage* of the recording,
  where it is missing data (NaN), never zero load.
* ``timestamp,value`` (NAB): one row per source step (5 or 30 minutes); a step with no row
  is a gap (NaN). Each source step is resampled to 1-minute demand keeping its total exactly:
  ``even`` spreads it evenly over its minutes; ``linear`` (the default for steps longer than
  5 minutes) interpolates the rate linearly between step midpoints and rescales the minutes
  of each step so that they sum to that step's value. Steps that are a multiple of 5
  minutes are relabelled onto the 5-minute grid (NAB ELB is stamped :04, :09, ...: a shift
  of under 5 minutes), so that a source step is one CloudWatch bucket of the simulation.

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
    a path."""
    text = str(name_or_path)
    candidates = [Path(text)]
    if text in TRACE_FILES:
        candidates.insert(0, traces_dir() / TRACE_FILES[text])
    candidates.append(traces_dir() / text)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(TRACE_FILES))
    raise TraceError(
        f"trace {text!r} not found (looked in {traces_dir()}; short names: {known}). "
        "Set SALEOR_SHARED_DIR to the shared/ folder."
    )


def load_trace(name_or_path: str | Path, resample: str | None = None) -> Trace:
    """Read a trace file into 1-minute demand (see the module docstring for the rules)."""
    path = resolve_trace(name_or_path)
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = [column.strip().lower() for column in next(reader, [])]
        rows = [row for row in reader if row]
    name = next((short for short, file in TRACE_FILES.items() if file == path.name), path.stem)
    if header == ["minute", "count"]:
        return _per_minute_counts(name, rows, KNOWN_OUTAGES.get(path.name, ()))
    if header == ["timestamp", "value"]:
        return _stepped_values(name, rows, resample)
    raise TraceError(f"{path}: unknown header {header} (expected minute,count or timestamp,value)")


def _epoch_minutes(text: str) -> int:
    stamp = datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    seconds = int(stamp.timestamp())
    if seconds % 60:
        raise TraceError(f"timestamp {text!r} is not on a whole minute")
    return seconds // 60


def _grid(first_minute: int, last_minute: int) -> tuple[int, int]:
    """Start minute (floored to the 5-minute grid) and length (whole steps) covering both."""
    start = first_minute - first_minute % MINUTES_PER_STEP
    length = last_minute + 1 - start
    length += -length % MINUTES_PER_STEP
    return start, length


def _per_minute_counts(name: str, rows: Sequence[Sequence[str]], outages: Sequence[tuple[str, str]]) -> Trace:
    minutes = np.array([_epoch_minutes(row[0]) for row in rows], dtype=np.int64)
    counts = np.array([float(row[1]) for row in rows])
    if not len(minutes):
        raise TraceError(f"trace {name} is empty")
    start, length = _grid(int(minutes.min()), int(minutes.max()))
    demand = np.zeros(length)
    # Padding before the first and after the last recorded minute is unknown, not idle.
    demand[: int(minutes.min()) - start] = np.nan
    demand[int(minutes.max()) - start + 1 :] = np.nan
    for first, last in outages:
        lo, hi = _epoch_minutes(first) - start + 1, _epoch_minutes(last) - start
        demand[max(lo, 0) : max(hi, 0)] = np.nan
    demand[minutes - start] = counts
    return Trace(name, start * 60, demand, source_step_minutes=1, resample="none")


def _stepped_values(name: str, rows: Sequence[Sequence[str]], resample: str | None) -> Trace:
    minutes = np.array([_epoch_minutes(row[0]) for row in rows], dtype=np.int64)
    values = np.array([float(row[1]) for row in rows])
    if len(minutes) < 2:
        raise TraceError(f"trace {name} needs at least two rows")
    order = np.argsort(minutes)
    minutes, values = minutes[order], values[order]
    step = Counter(np.diff(minutes).tolist()).most_common(1)[0][0]
    if step < 1:
        raise TraceError(f"trace {name} has duplicate timestamps")
    method = resample or ("linear" if step > MINUTES_PER_STEP else "even")
    # One slot per source step from the first row to the last; a step without a row is a gap.
    slots = (minutes - minutes[0]) // step
    if np.any((minutes - minutes[0]) % step):
        raise TraceError(f"trace {name} has timestamps off its {step}-minute grid")
    per_step = np.full(int(slots[-1]) + 1, np.nan)
    per_step[slots] = values
    per_minute = resample_steps(per_step, int(step), method)
    first = int(minutes[0])
    if step % MINUTES_PER_STEP == 0:
        # Source steps are CloudWatch-like periods: put them on the 5-minute grid (NAB ELB
        # is labelled :04, :09, ...), so that one source step is one simulated bucket.
        first -= first % MINUTES_PER_STEP
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
