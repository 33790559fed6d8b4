"""Synthetic traces for the backtest tests (the shared traces are read, never copied)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.traces import Trace
from saleor_scaling.simulation.simulator import SimulatedGroup

MONDAY = 1_700_438_400  # 2023-11-20 00:00 UTC


def synthetic_trace(days: float, *, seed: int = 0, start: int = MONDAY, name: str = "synthetic") -> Trace:
    """Requests per minute with a daily cycle peaking in the evening, quieter weekends and
    noise (Poisson-like, per minute)."""
    minutes = int(days * 1440) // 5 * 5
    rng = np.random.default_rng(seed)
    stamps = start + 60 * np.arange(minutes)
    hour = (stamps % 86400) / 3600.0
    weekday = ((stamps // 86400) + 3) % 7
    daily = 0.5 + 0.45 * np.sin((hour - 14.0) / 24.0 * 2 * math.pi)
    weekly = np.where(weekday >= 5, 0.7, 1.0)
    demand = 100.0 * daily * weekly * rng.lognormal(0.0, 0.1, minutes)
    return Trace(name, start, demand, source_step_minutes=1, resample="none")


def small_config(**overrides: object) -> BacktestConfig:
    """A backtest that trains tiny forests from the third night on: seconds, not minutes."""
    settings: dict[str, object] = {
        "n_estimators": 5,
        "max_depth": 6,
        "min_history_days": 2,
        "holdout_days": 1,
        "training_window_days": 3,
        **overrides,
    }
    return BacktestConfig(**settings)  # type: ignore[arg-type]


class SetAt:
    """A decision maker that sets the desired capacity at given minutes."""

    def __init__(self, plan: dict[int, int]) -> None:
        self.plan = plan

    def decide(self, minute: int, group: SimulatedGroup, cpu: Sequence[float]) -> None:
        if minute in self.plan:
            group.set_desired(minute, self.plan[minute], "test")
