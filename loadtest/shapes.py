"""Load shapes: how many shoppers are in the shop at each moment of a run.

Chosen with LOAD_SHAPE (step, spike, trace; unset: Locust's own -u/-r/-t) and tuned with:
PEAK_USERS (default 200), DURATION_SECONDS (default 1800), SPAWN_RATE (default 20 per s),
STEP_COUNT (step: default 5), SPIKE_BASE_SHARE (spike: default 0.2), TRACE (trace: nasa,
nab-elb, nyc-taxi or a CSV path; default nasa), TRACE_DAY (trace: which day, default 1),
TRACE_DAYS (trace: how many days, default 1).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from saleor_scaling.backtest.traces import load_trace

Tick = tuple[int, float] | None


@dataclass(frozen=True)
class StepRamp:
    """Equal steps up to the peak, each held for duration / steps."""

    peak_users: int
    duration_seconds: float
    steps: int = 5
    spawn_rate: float = 20.0

    def users_at(self, seconds: float) -> Tick:
        if seconds >= self.duration_seconds:
            return None
        step = min(self.steps, int(seconds / (self.duration_seconds / self.steps)) + 1)
        return max(1, round(self.peak_users * step / self.steps)), self.spawn_rate


@dataclass(frozen=True)
class Spike:
    """A quiet baseline, a sudden spike to the peak in the middle fifth, then quiet again:
    the case reactive scaling is slowest on."""

    peak_users: int
    duration_seconds: float
    base_share: float = 0.2
    spawn_rate: float = 100.0

    def users_at(self, seconds: float) -> Tick:
        if seconds >= self.duration_seconds:
            return None
        fraction = seconds / self.duration_seconds
        in_spike = 0.4 <= fraction < 0.6
        users = self.peak_users if in_spike else max(1, round(self.peak_users * self.base_share))
        return users, self.spawn_rate


@dataclass(frozen=True)
class TraceReplay:
    """Days of a real trace compressed into the run, scaled so its busiest minute is the
    peak. Missing data (an outage in the recording) holds the last known level: a gap in
    a recording is not an empty shop."""

    profile: tuple[float, ...]
    """Users per trace minute, already scaled."""
    duration_seconds: float
    spawn_rate: float = 20.0

    @classmethod
    def from_trace(
        cls,
        name: str,
        peak_users: int,
        duration_seconds: float,
        day: int = 1,
        days: int = 1,
        spawn_rate: float = 20.0,
    ) -> TraceReplay:
        trace = load_trace(name)
        start, end = day * 1440, (day + days) * 1440
        demand = trace.demand[start:end]
        if len(demand) < end - start:
            raise ValueError(f"trace {name} has no day {day + days - 1} (it spans {trace.days:.1f} days)")
        held = _hold_last_known(np.asarray(demand, dtype=np.float64))
        peak = float(np.max(held)) if len(held) else 0.0
        if not math.isfinite(peak) or peak <= 0:
            raise ValueError(f"trace {name} day {day} has no load")
        return cls(tuple(float(v) for v in held / peak * peak_users), duration_seconds, spawn_rate)

    def users_at(self, seconds: float) -> Tick:
        if seconds >= self.duration_seconds:
            return None
        index = min(len(self.profile) - 1, int(seconds * len(self.profile) / self.duration_seconds + 1e-9))
        return max(1, round(self.profile[index])), self.spawn_rate


def _hold_last_known(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    known = np.isfinite(values)
    if not known.any():
        return np.zeros_like(values)
    index = np.where(known, np.arange(len(values)), 0)
    np.maximum.accumulate(index, out=index)
    held: npt.NDArray[np.float64] = values[index]
    first = int(np.argmax(known))
    held[:first] = values[first]
    return held


def shape_from_env(env: dict[str, str] | None = None) -> StepRamp | Spike | TraceReplay | None:
    values = dict(os.environ if env is None else env)
    kind = values.get("LOAD_SHAPE", "").strip().lower()
    if not kind:
        return None
    peak = int(values.get("PEAK_USERS", "200"))
    duration = float(values.get("DURATION_SECONDS", "1800"))
    spawn = float(values.get("SPAWN_RATE", "20"))
    if kind == "step":
        return StepRamp(peak, duration, int(values.get("STEP_COUNT", "5")), spawn)
    if kind == "spike":
        return Spike(peak, duration, float(values.get("SPIKE_BASE_SHARE", "0.2")), max(spawn, 100.0))
    if kind == "trace":
        return TraceReplay.from_trace(
            values.get("TRACE", "nasa"),
            peak,
            duration,
            int(values.get("TRACE_DAY", "1")),
            int(values.get("TRACE_DAYS", "1")),
            spawn,
        )
    raise ValueError(f"LOAD_SHAPE={kind!r}: expected step, spike or trace")
