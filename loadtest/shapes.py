"""Load shapes: how many shoppers are in the shop at each moment of a run.

LOAD_SHAPE picks one (unset: no shape, Locust's own -u/-r/-t apply); knobs, from the
environment (defaults in brackets):

* every shape: PEAK_USERS [200], DURATION_SECONDS [1800], SPAWN_RATE [20 users/s];
* step:  STEP_COUNT [5] equal steps up to the peak, each held DURATION_SECONDS/STEP_COUNT;
* spike: SPIKE_BASE_SHARE [0.2] of the peak as the baseline, the peak from SPIKE_START
  [0.4] to SPIKE_END [0.6] of the run, reached within SPIKE_RAMP_SECONDS [10];
* trace: TRACE [nasa] (nasa, nab-elb, nyc-taxi or a CSV path, read by loadtest.traces,
  which agrees with saleor_scaling.backtest.traces), TRACE_DAY [0] (index of the trace's first calendar day
  to replay, or a date YYYY-MM-DD), TRACE_DAYS [1], TRACE_STEP_MINUTES [5] (the trace is
  averaged over steps this long before replay: one step per CloudWatch period).

The trace shape compresses its days into DURATION_SECONDS and scales them so that the
busiest step equals PEAK_USERS. Missing data (an outage of the recording) holds the last
known level, from before the window if need be: a gap in a recording is not an empty shop.
A step with no demand still has 1 user. The spawn rate is raised where the trace moves
faster than SPAWN_RATE could follow. Every shape's tick() answers None at the end.

Pure Python besides Locust: a load-generator machine installs loadtest/requirements.txt
only (no numpy, no backtest package; tests/loadtest/test_locust_only.py proves it).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from locust import LoadTestShape

from loadtest.traces import load_minutes

Tick = tuple[int, float] | None


class ShapeError(ValueError):
    """A knob is out of range, or the trace window cannot be replayed."""


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ShapeError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise ShapeError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Knobs:
    """The environment's settings for a shape, checked."""

    peak_users: int = 200
    duration_seconds: float = 1800.0
    spawn_rate: float = 20.0
    step_count: int = 5
    spike_base_share: float = 0.2
    spike_start: float = 0.4
    spike_end: float = 0.6
    spike_ramp_seconds: float = 10.0
    trace: str = "nasa"
    trace_day: str = "0"
    trace_days: int = 1
    trace_step_minutes: int = 5

    def __post_init__(self) -> None:
        if self.peak_users < 1 or self.duration_seconds <= 0 or self.spawn_rate <= 0:
            raise ShapeError("PEAK_USERS, DURATION_SECONDS and SPAWN_RATE must be positive")
        if self.step_count < 1 or self.trace_days < 1:
            raise ShapeError("STEP_COUNT and TRACE_DAYS must be at least 1")
        if not 0 <= self.spike_base_share <= 1 or not 0 <= self.spike_start < self.spike_end <= 1:
            raise ShapeError("need 0 <= SPIKE_BASE_SHARE <= 1 and 0 <= SPIKE_START < SPIKE_END <= 1")
        if self.trace_step_minutes < 1 or 1440 % self.trace_step_minutes:
            raise ShapeError("TRACE_STEP_MINUTES must divide a day (1, 5, 10, 15, 30, 60, ...)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Knobs:
        values = os.environ if env is None else env
        d = cls()
        return cls(
            peak_users=int(_number(values, "PEAK_USERS", d.peak_users, minimum=1)),
            duration_seconds=_number(values, "DURATION_SECONDS", d.duration_seconds, minimum=1),
            spawn_rate=_number(values, "SPAWN_RATE", d.spawn_rate, minimum=0.01),
            step_count=int(_number(values, "STEP_COUNT", d.step_count, minimum=1)),
            spike_base_share=_number(values, "SPIKE_BASE_SHARE", d.spike_base_share),
            spike_start=_number(values, "SPIKE_START", d.spike_start),
            spike_end=_number(values, "SPIKE_END", d.spike_end),
            spike_ramp_seconds=_number(values, "SPIKE_RAMP_SECONDS", d.spike_ramp_seconds, minimum=0.1),
            trace=values.get("TRACE", "").strip() or d.trace,
            trace_day=values.get("TRACE_DAY", "").strip() or d.trace_day,
            trace_days=int(_number(values, "TRACE_DAYS", d.trace_days, minimum=1)),
            trace_step_minutes=int(_number(values, "TRACE_STEP_MINUTES", d.trace_step_minutes, minimum=1)),
        )


class ScheduledShape(LoadTestShape):
    """A shape that is a function of the run time: tick() is users_at(run time)."""

    abstract = True

    def __init__(self, knobs: Knobs | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.knobs = knobs or Knobs.from_env()

    def tick(self) -> Tick:
        return self.users_at(float(self.get_run_time()))  # type: ignore[no-untyped-call]

    def users_at(self, seconds: float) -> Tick:
        raise NotImplementedError


class StepShape(ScheduledShape):
    """STEP_COUNT equal steps up to PEAK_USERS, each held DURATION_SECONDS / STEP_COUNT."""

    def users_at(self, seconds: float) -> Tick:
        k = self.knobs
        if seconds >= k.duration_seconds:
            return None
        step = min(k.step_count, int(seconds * k.step_count / k.duration_seconds) + 1)
        return max(1, round(k.peak_users * step / k.step_count)), k.spawn_rate


class SpikeShape(ScheduledShape):
    """A baseline, a sudden spike to the peak, then the baseline again: the case reactive
    scaling is slowest on. The spawn rate reaches the peak within SPIKE_RAMP_SECONDS."""

    def users_at(self, seconds: float) -> Tick:
        k = self.knobs
        if seconds >= k.duration_seconds:
            return None
        base = max(1, round(k.peak_users * k.spike_base_share))
        fraction = seconds / k.duration_seconds
        users = k.peak_users if k.spike_start <= fraction < k.spike_end else base
        return users, max(k.spawn_rate, (k.peak_users - base) / k.spike_ramp_seconds)


class TraceShape(ScheduledShape):
    """TRACE_DAYS days of a shared trace, compressed into DURATION_SECONDS, its busiest
    step at PEAK_USERS (see the module docstring)."""

    def __init__(self, knobs: Knobs | None = None, profile: Sequence[float] | None = None) -> None:
        super().__init__(knobs)
        self.profile = trace_profile(self.knobs) if profile is None else [float(p) for p in profile]
        """Users per trace step, already scaled to the peak."""
        step_seconds = self.knobs.duration_seconds / len(self.profile)
        users = [max(1, round(p)) for p in self.profile]
        steepest = max((abs(b - a) for a, b in itertools.pairwise(users)), default=0)
        self.spawn_rate = max(self.knobs.spawn_rate, math.ceil(steepest / step_seconds))

    def users_at(self, seconds: float) -> Tick:
        if seconds >= self.knobs.duration_seconds:
            return None
        index = min(len(self.profile) - 1, int(seconds * len(self.profile) / self.knobs.duration_seconds))
        return max(1, round(float(self.profile[index]))), self.spawn_rate


def hold_last_known(values: Sequence[float]) -> list[float]:
    """NaN replaced by the last known value before it; leading NaN by the first known one."""
    first = next((float(v) for v in values if math.isfinite(v)), math.nan)
    held: list[float] = []
    last = first
    for value in values:
        if math.isfinite(value):
            last = float(value)
        held.append(last)
    return held


def trace_day_index(day: str, trace_start: int) -> int:
    """TRACE_DAY as an index of the trace's calendar days (0: the day the trace starts)."""
    if day.lstrip("-").isdigit():
        return int(day)
    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        raise ShapeError(f"TRACE_DAY={day!r} is neither a day index nor a date YYYY-MM-DD") from None
    return (wanted - datetime.fromtimestamp(trace_start, UTC).date()).days


def trace_profile(knobs: Knobs) -> list[float]:
    """Users per step of the chosen days (see the module docstring)."""
    trace = load_minutes(knobs.trace)
    day = trace_day_index(knobs.trace_day, trace.start)
    # Calendar day `day` of the trace, in minutes from the trace's first minute (negative
    # when the trace starts after midnight: those minutes are unknown).
    begin = day * 1440 - (trace.start % 86400) // 60
    end = begin + knobs.trace_days * 1440
    if day < 0 or end > trace.minutes:
        last_day = (trace.minutes + (trace.start % 86400) // 60) // 1440 - 1
        raise ShapeError(
            f"trace {trace.name} has whole days 0..{last_day}: TRACE_DAY={knobs.trace_day} "
            f"with TRACE_DAYS={knobs.trace_days} is outside it"
        )
    pad = max(-begin, 0)
    demand = [math.nan] * pad + trace.demand[:end]
    if not any(math.isfinite(value) for value in demand[begin + pad :]):
        raise ShapeError(f"trace {trace.name}: TRACE_DAY={knobs.trace_day} lies wholly in missing data")
    # Held over everything before the window too, so a window that opens in an outage
    # starts from the level the recording last had.
    window = hold_last_known(demand)[begin + pad :]
    size = knobs.trace_step_minutes
    steps = [sum(window[i : i + size]) / size for i in range(0, len(window), size)]
    peak = max(steps)
    if peak <= 0:
        raise ShapeError(f"trace {trace.name}: TRACE_DAY={knobs.trace_day} has no demand")
    return [step / peak * knobs.peak_users for step in steps]


SHAPES: dict[str, type[ScheduledShape]] = {"step": StepShape, "spike": SpikeShape, "trace": TraceShape}


def shape_class(name: str) -> type[ScheduledShape] | None:
    """The shape class LOAD_SHAPE names; None for no shape."""
    key = name.strip().lower()
    if key in ("", "none"):
        return None
    if key not in SHAPES:
        raise ShapeError(f"LOAD_SHAPE={name!r}: expected one of {', '.join(SHAPES)} (or unset)")
    return SHAPES[key]
