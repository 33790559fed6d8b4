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
