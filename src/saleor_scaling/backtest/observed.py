"""What CloudWatch would hold, and when: the one rule every predictive strategy reads by.

A trace coarser than a minute (NYC taxi: 30-minute totals; any hourly history) is spread
over minutes to drive the simulated group (`traces.resample_steps`), and the spreading
invents what the trace never recorded: linear interpolation gives the minutes of a step
part of the *next* step's total, and even a uniform spread tells the step's first minute
the whole step's total. A forecaster fed those minutes is fed the future (issue 13: on an
hourly trace the forest's error came out at 0.9 %). So the simulated demand stays as it is
(it is what the group must serve), but the metrics the nightly training and every
predictive strategy see are *observed*:

* **Units.** The observation unit is the shortest span made of whole 5-minute buckets and
  whole source steps: lcm(5, source step) minutes, starting on a bucket boundary that is
  also a step boundary (5 minutes for per-minute and 5-minute traces, 30 for a 30-minute
  trace, 60 for an hourly one).
* **Values.** Inside a unit every bucket holds the unit's own aggregate, made from its own
  minutes only: RequestCount and 5xx the unit's total spread evenly over its buckets, CPU
  and the group's desired and in-service counts the unit's mean, response time the queue
  formula (`history.response_time_seconds`) on that mean CPU, and the busiest minute
  unknown (NaN: the trace recorded no minute inside the unit, so the headroom is measured
  on the step mean, `headroom.Basis.STEP_MEAN`). A unit with any bucket of unknown demand has
  unknown demand, CPU and 5xx; a unit only partly inside the simulated span is unknown.
* **Visibility.** A bucket becomes visible when its unit has closed plus `DELAY_SECONDS`
  (one step: predict leaves the newest bucket out as possibly incomplete, which is why its
  anchor is `ANCHOR_OFFSET_STEPS` = 2 steps back). At decision time t a strategy anchors on
  the newest visible bucket (`anchor`), and the nightly job at t trains on the buckets
  before `visible_end(t)` (`walkforward.training_window`). Features and labels only look
  back from their anchor, so nothing a strategy or the training reads depends on a unit
  that had not closed.

With 5-minute units (every per-minute and 5-minute trace) `observe` returns the history
unchanged, `visible_end(t)` is the bucket before the one still filling and `anchor` is the
decision step less `ANCHOR_OFFSET_STEPS`: exactly the rules before this module, so those
traces' figures do not move (`tests/backtest/test_observed.py`).

**Horizon on coarse data.** The anchor stays on one unit's last bucket for a whole unit of
predict runs, so a forecast `horizon` steps past it would, for the later runs, size for a
moment already past. The model is trained and queried for `horizon_steps(horizon)` =
horizon + (buckets per unit - 1) steps past the anchor: the target of the *last* run that
shares the anchor, i.e. the unit after next. The earlier runs of the unit get that later
target; the scale-in stabilization window keeps the previous anchor's recommendation (made
for the unit in between) in force for its length after that anchor's last run, so with
30-minute units and the 30-minute window both units are covered. With hourly units they
are not: from 30 minutes into a unit, predict scales in toward the unit after next while
the current one is served (`tests/backtest/test_coarse_scale_in.py`; docs/backtest.md,
"Why ours sits above the reference on coarse traces": `MaxScaleInStep` 0 leaves scale-in
to target tracking and is a knob of the sweep).

What is left, and stated: the fleet columns (CPU, in-service) of a closed unit are those of
a simulated group that served the interpolated minutes, so their unit means depend on the
next unit's total only through how target tracking reacted to those minutes (what the
reactive part itself sees); with no scaling action and no CPU cap inside the unit the mean
CPU is exactly the unit's demand over its fleet, the same whatever comes next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.backtest.history import response_time_seconds
from saleor_scaling.backtest.traces import Trace
from saleor_scaling.series import FloatArray, Metric, MetricHistory
from saleor_scaling.settings import ANCHOR_OFFSET_STEPS

MINUTES_PER_STEP = STEP_SECONDS // 60
DELAY_SECONDS = (ANCHOR_OFFSET_STEPS - 1) * STEP_SECONDS
"""A bucket is read one step after it closes (the newest bucket may be incomplete)."""

_SPREAD = (Metric.REQUESTS, Metric.ERRORS_5XX)
_MEAN = (Metric.CPU, Metric.DESIRED, Metric.IN_SERVICE)
_DEMAND = (Metric.REQUESTS, Metric.ERRORS_5XX, Metric.CPU)
"""Unknown in a unit with an unknown bucket of demand (the fleet's counts stay known)."""


@dataclass(frozen=True)
class Observation:
    """The observation units of a trace: its source step and where one step starts."""

    source_step_minutes: int = 1
    source_origin: int = 0
    """Epoch seconds of any source-step boundary (a per-minute trace: any minute)."""

    @classmethod
    def of_trace(cls, trace: Trace) -> Observation:
        origin = trace.start if trace.source_origin is None else trace.source_origin
        return cls(source_step_minutes=trace.source_step_minutes, source_origin=origin)

    def __post_init__(self) -> None:
        if self.source_step_minutes < 1:
            raise ValueError("source_step_minutes must be >= 1")
        if self.source_origin % 60:
            raise ValueError(f"source origin {self.source_origin} is not on a whole minute")
        self.unit_origin  # noqa: B018 -- fail early when no bucket boundary is a step boundary

    @property
    def unit_minutes(self) -> int:
        return math.lcm(MINUTES_PER_STEP, self.source_step_minutes)

    @property
    def unit_seconds(self) -> int:
        return self.unit_minutes * 60

    @property
    def buckets_per_unit(self) -> int:
        return self.unit_minutes // MINUTES_PER_STEP

    @property
    def unit_origin(self) -> int:
        """Epoch seconds of a unit boundary: a bucket boundary that is a step boundary."""
        origin_minute = self.source_origin // 60
        for k in range(MINUTES_PER_STEP):
            minute = origin_minute + k * self.source_step_minutes
            if minute % MINUTES_PER_STEP == 0:
                return minute * 60
        raise ValueError(
            f"{self.source_step_minutes}-minute steps starting at minute {origin_minute} never start "
            "a 5-minute bucket"
        )

    def unit_start(self, epoch_seconds: int) -> int:
        """Start of the unit holding `epoch_seconds`."""
        origin = self.unit_origin
        return origin + (epoch_seconds - origin) // self.unit_seconds * self.unit_seconds

    def visible_end(self, time: int) -> int:
        """Exclusive end of the buckets visible at `time`: those whose unit closed at least
        `DELAY_SECONDS` before it."""
        return self.unit_start(time - DELAY_SECONDS)

    def anchor(self, history_start: int, decision_time: int) -> int:
        """The step index of the newest bucket visible at `decision_time` (may be negative)."""
        return (self.visible_end(decision_time) - history_start) // STEP_SECONDS - 1

    def unit_span(self, history_start: int, step: int) -> tuple[int, int]:
        """Minutes [first, end) from `history_start` of the unit holding step `step`,
        cut at the history's start."""
        begin = self.unit_start(history_start + step * STEP_SECONDS)
        first = max(0, (begin - history_start) // 60)
        return first, (begin - history_start) // 60 + self.unit_minutes

    def horizon_steps(self, horizon: int) -> int:
        """Steps from the anchor to the target of the last predict run sharing it."""
        return horizon + self.buckets_per_unit - 1

    def observe(self, history: MetricHistory) -> MetricHistory:
        """The history as CloudWatch would hold it once each unit has closed (see the
        module docstring); the same object when units are single buckets."""
        per_unit = self.buckets_per_unit
        if per_unit == 1:
            return history
        lead = (history.start - self.unit_start(history.start)) // STEP_SECONDS
        steps = len(history)
        units = -(-(lead + steps) // per_unit)
        tail = units * per_unit - lead - steps

        def grouped(metric: Metric) -> FloatArray:
            padded = np.concatenate((np.full(lead, np.nan), history[metric], np.full(tail, np.nan)))
            return np.asarray(padded.reshape(units, per_unit), dtype=np.float64)

        def spread(per_unit_values: FloatArray) -> FloatArray:
            return np.asarray(np.repeat(per_unit_values, per_unit)[lead : lead + steps], dtype=np.float64)

        unknown = np.any(np.isnan(grouped(Metric.REQUESTS)), axis=1)
        values: dict[Metric, FloatArray] = {}
        for metric in (*_SPREAD, *_MEAN):
            means = np.mean(grouped(metric), axis=1)
            if metric in _DEMAND:
                means[unknown] = np.nan
            values[metric] = spread(means)
        values[Metric.RESPONSE_TIME] = response_time_seconds(values[Metric.CPU])
        values[Metric.BUSIEST_MINUTE] = np.full(steps, np.nan)
        return MetricHistory(start=history.start, values=values, step=history.step)


PER_MINUTE = Observation()
"""Every bucket visible one step after it closes: a per-minute (or 5-minute) trace, and
CloudWatch's own 1-minute data."""
