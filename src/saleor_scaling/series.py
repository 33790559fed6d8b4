"""Metric history on a regular 5-minute grid.

A missing datapoint is NaN, never zero: an outage or a gap in CloudWatch is missing
data, not an idle shop. Every consumer (features, labels, training, the backtest)
reads the same structure.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from saleor_scaling import STEP_SECONDS

FloatArray = npt.NDArray[np.float64]


class Metric(enum.StrEnum):
    """The series predict reads in one GetMetricData call (the value is its query id)."""

    REQUESTS = "requests"
    """ALB RequestCount, Sum per step."""
    RESPONSE_TIME = "response_time"
    """ALB TargetResponseTime, Average seconds."""
    ERRORS_5XX = "errors_5xx"
    """ALB HTTPCode_Target_5XX_Count, Sum per step."""
    CPU = "cpu"
    """EC2 CPUUtilization, Average percent over the group."""
    DESIRED = "desired"
    """Auto Scaling GroupDesiredCapacity, Average."""
    IN_SERVICE = "in_service"
    """Auto Scaling GroupInServiceInstances, Average."""
    BUSIEST_MINUTE = "busiest_minute"
    """ALB RequestCount of the busiest minute inside the step: the largest 1-minute Sum.
    Instances must serve that minute, not the step's average; CloudWatch keeps 1-minute
    data for 15 days, so older steps hold it only where the S3 backup kept it."""


def floor_to_step(epoch_seconds: float, step: int = STEP_SECONDS) -> int:
    return int(epoch_seconds // step) * step


@dataclass(frozen=True)
class MetricHistory:
    """Values of every `Metric` for the steps start, start+step, ... (each labelled by the
    start of its bucket, as CloudWatch labels a period)."""

    start: int
    values: Mapping[Metric, FloatArray]
    step: int = STEP_SECONDS
    length: int = field(init=False)

    def __post_init__(self) -> None:
        if self.start % self.step:
            raise ValueError(f"start {self.start} is not aligned to the {self.step}s grid")
        lengths = {len(array) for array in self.values.values()}
        if len(lengths) > 1:
            raise ValueError(f"series have different lengths: {sorted(lengths)}")
        missing = set(Metric) - set(self.values)
        if missing:
            raise ValueError(f"series missing: {sorted(m.value for m in missing)}")
        object.__setattr__(self, "length", lengths.pop() if lengths else 0)

    @classmethod
    def empty(cls, start: int, length: int, step: int = STEP_SECONDS) -> MetricHistory:
        return cls(
            start=start,
            values={metric: np.full(length, np.nan) for metric in Metric},
            step=step,
        )

    @classmethod
    def from_points(
        cls,
        start: int,
        end: int,
        points: Mapping[Metric, Iterable[tuple[float, float]]],
        step: int = STEP_SECONDS,
    ) -> MetricHistory:
        """Place (epoch seconds, value) points on the grid [start, end); points off the
        grid or outside it are dropped, steps without a point stay NaN."""
        length = max(0, (end - start) // step)
        history = cls.empty(start, length, step)
        for metric, metric_points in points.items():
            target = history.values[metric]
            for timestamp, value in metric_points:
                index = (int(timestamp) - start) // step
                if 0 <= index < length and value is not None and np.isfinite(value):
                    target[index] = float(value)
        return history

    @property
    def end(self) -> int:
        """Exclusive end: the start of the step after the last one."""
        return self.start + self.length * self.step

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, metric: Metric) -> FloatArray:
        return self.values[metric]

    def timestamps(self) -> npt.NDArray[np.int64]:
        return self.start + self.step * np.arange(self.length, dtype=np.int64)

    def index_of(self, timestamp: int) -> int:
        if timestamp % self.step or not self.start <= timestamp < self.end:
            raise IndexError(f"{timestamp} is not a step of this history")
        return (timestamp - self.start) // self.step

    def window(self, start: int, end: int) -> MetricHistory:
        """The steps in [start, end), NaN where this history has none."""
        result = MetricHistory.empty(start, max(0, (end - start) // self.step), self.step)
        lo, hi = max(start, self.start), min(end, self.end)
        if lo < hi:
            src = slice((lo - self.start) // self.step, (hi - self.start) // self.step)
            dst = slice((lo - start) // self.step, (hi - start) // self.step)
            for metric in Metric:
                result.values[metric][dst] = self.values[metric][src]
        return result

    def combine(self, newer: MetricHistory) -> MetricHistory:
        """One history spanning both; where both hold a value, `newer`'s wins, and a NaN
        never overwrites a value (a late gap must not erase a backed-up datapoint)."""
        if newer.step != self.step:
            raise ValueError("cannot combine histories with different steps")
        if not len(self):
            return newer
        if not len(newer):
            return self
        start, end = min(self.start, newer.start), max(self.end, newer.end)
        result = self.window(start, end)
        overlay = newer.window(start, end)
        for metric in Metric:
            present = ~np.isnan(overlay.values[metric])
            result.values[metric][present] = overlay.values[metric][present]
        return result

    def demand_per_minute(self) -> FloatArray:
        """Requests per minute in each step: the load the shop must serve."""
        return self.values[Metric.REQUESTS] * (60.0 / self.step)

    def busiest_minute(self) -> FloatArray:
        """Requests in the busiest minute of each step (NaN where 1-minute data is missing)."""
        return self.values[Metric.BUSIEST_MINUTE]


PLAUSIBLE_RANGES: Mapping[Metric, tuple[float, float]] = {
    Metric.REQUESTS: (0.0, math.inf),
    Metric.RESPONSE_TIME: (0.0, 3600.0),
    Metric.ERRORS_5XX: (0.0, math.inf),
    Metric.CPU: (0.0, 100.0),
    Metric.DESIRED: (0.0, 10_000.0),
    Metric.IN_SERVICE: (0.0, 10_000.0),
    Metric.BUSIEST_MINUTE: (0.0, math.inf),
}
"""What each series can physically hold; anything else is corruption, read as missing."""


def drop_impossible_values(
    history: MetricHistory, ceilings: Mapping[Metric, float] | None = None
) -> tuple[MetricHistory, int]:
    """A copy with out-of-range or infinite values turned into gaps, and how many there were.
    A corrupt datapoint is missing data, never zero or extreme load. `ceilings` lowers the
    upper bound of some series below what is physically possible (in the series' own unit)."""
    values: dict[Metric, FloatArray] = {}
    dropped = 0
    for metric in Metric:
        series = np.array(history[metric], dtype=np.float64, copy=True)
        low, high = PLAUSIBLE_RANGES[metric]
        if ceilings is not None and metric in ceilings:
            high = min(high, ceilings[metric])
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(series) & (~np.isfinite(series) | (series < low) | (series > high))
        dropped += int(np.sum(bad))
        series[bad] = np.nan
        values[metric] = series
    return MetricHistory(start=history.start, values=values, step=history.step), dropped


GLITCH_NEIGHBOUR_STEPS = 3
"""A datapoint is judged against its neighbours within 15 minutes either side. So a rise
that lasts 20 minutes or more (each of its steps has at least half of its 6 neighbours in
it) is load, never a glitch; one of 15 minutes or less, 10x its surroundings and 10x the
shop's median, is read as a glitch."""
GLITCH_MIN_NEIGHBOURS = 3
"""Fewer known neighbours than this (around a gap) and the datapoint is not judged."""
GLITCH_FACTOR = 10.0
"""A glitch is more than this many times both its neighbours' median and the series'
median: the series' median keeps a burst in a quiet night (a crawler, an e-mail going out)
from being called a glitch when it is small next to the shop's usual load. Real bursts
reach several times the median (the NAB ELB trace: 5-minute steps of 6x its median
among neighbours a tenth of that, which a factor of 5 dropped); the glitches that matter
are orders of magnitude (100x the real peak). No step of the shared traces is a glitch."""
GLITCH_ROBUST_DEVIATIONS = 10.0
"""...and more than this many robust standard deviations (1.4826 x the median absolute
deviation) of its neighbours above their median, so that a noisy shop's swings are load."""
MAD_TO_STANDARD_DEVIATION = 1.4826
GLITCH_SERIES = (Metric.REQUESTS, Metric.BUSIEST_MINUTE)
"""The series a glitch can poison: the demand the model learns and its ceiling basis, and
the busiest minute the headroom is measured on."""


def glitches(series: FloatArray) -> npt.NDArray[np.bool_]:
    """Where `series` holds a datapoint far above the robust range of its neighbours
    (`GLITCH_FACTOR`, `GLITCH_ROBUST_DEVIATIONS` within `GLITCH_NEIGHBOUR_STEPS`). Only
    upward: a glitch that matters inflates demand; a drop is an outage or a quiet spell,
    and an idle anchor is never a training row."""
    found = np.zeros(len(series), dtype=np.bool_)
    known = np.isfinite(series)
    if not np.any(known):
        return found
    typical = float(np.nanmedian(series))
    # Only a datapoint above GLITCH_FACTOR x the series' median can be one: its
    # neighbourhood is looked at, not every step's (a 28-day window has a handful).
    with np.errstate(invalid="ignore"):
        candidates = np.flatnonzero(known & (series > GLITCH_FACTOR * typical))
    if not len(candidates):
        return found
    reach = GLITCH_NEIGHBOUR_STEPS
    padded = np.pad(series, reach, constant_values=np.nan)
    offsets = np.concatenate([np.arange(-reach, 0), np.arange(1, reach + 1)])
    neighbours = padded[candidates[:, None] + reach + offsets]
    judged = np.sum(np.isfinite(neighbours), axis=1) >= GLITCH_MIN_NEIGHBOURS
    candidates, neighbours = candidates[judged], neighbours[judged]
    if not len(candidates):
        return found
    median, spread = _robust_centre_and_spread(neighbours)
    value = series[candidates]
    found[candidates] = (value > GLITCH_FACTOR * np.maximum(median, typical)) & (
        value > median + GLITCH_ROBUST_DEVIATIONS * spread
    )
    return found


def _robust_centre_and_spread(rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per row: the median of its known values and 1.4826 x their median absolute deviation.
    Rows with no gap take numpy's plain median, several times faster than `nanmedian`."""
    median = np.empty(len(rows))
    mad = np.empty(len(rows))
    whole = np.isfinite(rows).all(axis=1)
    for part, middle in ((whole, np.median), (~whole, np.nanmedian)):
        if np.any(part):
            values = rows[part]
            median[part] = middle(values, axis=1)
            mad[part] = middle(np.abs(values - median[part][:, None]), axis=1)
    return median, MAD_TO_STANDARD_DEVIATION * mad


def drop_glitches(history: MetricHistory) -> tuple[MetricHistory, int]:
    """A copy with every glitch (`glitches`) of RequestCount and of the busiest minute
    turned into a gap, and how many there were. A step whose RequestCount is a glitch loses
    its busiest minute too (one bad datapoint in CloudWatch feeds both), not counted again.
    A glitch is missing data, never load: one datapoint of 100x the real peak must not
    become what the model learns or what its demand ceiling is based on."""
    values = {metric: np.array(history[metric], dtype=np.float64, copy=True) for metric in Metric}
    found = {metric: glitches(values[metric]) for metric in GLITCH_SERIES}
    for metric in GLITCH_SERIES:
        values[metric][found[metric]] = np.nan
    values[Metric.BUSIEST_MINUTE][found[Metric.REQUESTS]] = np.nan
    count = sum(int(np.sum(mask)) for mask in found.values())
    return MetricHistory(start=history.start, values=values, step=history.step), count


@dataclass(frozen=True)
class TrainingWindow:
    history: MetricHistory
    impossible_values: int
    """Datapoints dropped as physically impossible (`drop_impossible_values`)."""
    glitches: int
    """Datapoints dropped as glitches (`drop_glitches`)."""


def clean_training_window(history: MetricHistory) -> TrainingWindow:
    """What retraining, and the backtest's replay of it, learn from: impossible values and
    then glitches turned into gaps (the order matters: a negative count is no neighbour)."""
    possible, impossible = drop_impossible_values(history)
    cleaned, found = drop_glitches(possible)
    return TrainingWindow(cleaned, impossible, found)
