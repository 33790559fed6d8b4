"""A synthetic shop for tests and benchmarks: a known daily and weekly cycle with noise."""

from __future__ import annotations

import math

import numpy as np

from saleor_scaling.series import Metric, MetricHistory


def synthetic_history(
    start: int,
    days: float,
    *,
    peak_per_minute: float = 4000.0,
    capacity_per_instance: float = 1000.0,
    target_cpu: float = 70.0,
    seed: int = 0,
) -> MetricHistory:
    """A shop's week: a daily cycle peaking in the evening, quieter weekends, noise, the
    busiest minute of each step, and the CPU and instance counts a fleet sized by a reactive
    policy would show."""
    steps = int(days * 288)
    rng = np.random.default_rng(seed)
    stamps = start + 300 * np.arange(steps)
    hour = (stamps % 86400) / 3600.0
    weekday = ((stamps // 86400) + 3) % 7
    daily = 0.55 + 0.45 * np.sin((hour - 14.0) / 24.0 * 2 * math.pi)
    weekly = np.where(weekday >= 5, 0.7, 1.0)
    demand = peak_per_minute * daily * weekly * rng.lognormal(0.0, 0.05, steps)
    in_service = np.maximum(1, np.ceil(demand / capacity_per_instance))
    cpu = np.clip(demand / in_service / capacity_per_instance * target_cpu, 1, 100)
    # Within a step, minutes vary too: the busiest is 5-30 % above the step's mean.
    busiest = demand * (1.0 + rng.uniform(0.05, 0.3, steps))
    return MetricHistory(
        start=start,
        values={
            Metric.REQUESTS: demand * 5,
            Metric.RESPONSE_TIME: 0.08 + 0.1 * cpu / 100,
            Metric.ERRORS_5XX: np.zeros(steps),
            Metric.CPU: cpu,
            Metric.DESIRED: in_service.astype(float),
            Metric.IN_SERVICE: in_service.astype(float),
            Metric.BUSIEST_MINUTE: busiest,
        },
    )
