"""Labels: the capacity the shop needs, derived from observed load.

The label is capacity needed at t + lead time = demand / per-instance capacity, where
per-instance capacity is the requests per minute one instance serves at the target CPU.
It is never the capacity a reactive policy happened to choose: that would teach the model
to repeat the reactive policy's lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from saleor_scaling.series import FloatArray, Metric, MetricHistory

MIN_ROWS_TO_LEARN_CAPACITY = 288
"""A day of 5-minute steps: fewer points say more about noise than about the fleet."""
MIN_CPU_PERCENT = 10.0
"""Below this, CPU is dominated by idle overhead and says little about capacity."""
CAPACITY_DRIFT_FACTOR = 4.0
"""A learned per-instance capacity stays within this factor of the configured one; the
model loader refuses a manifest outside the same bounds."""


def capacity_needed(demand_per_minute: FloatArray | float, capacity_per_instance: float) -> FloatArray:
    """Instances needed (fractional) so that each serves at most its capacity."""
    if capacity_per_instance <= 0:
        raise ValueError("capacity_per_instance must be > 0")
    return np.asarray(demand_per_minute, dtype=np.float64) / capacity_per_instance


def instances_for(capacity: float) -> int:
    """Whole instances for a fractional capacity, never fewer than one."""
    if not math.isfinite(capacity):
        raise ValueError(f"capacity {capacity} is not finite")
    # A hair of tolerance so that 3.0000000001 from float noise does not buy a 4th box.
    return max(1, math.ceil(capacity - 1e-9))


def capacity_bounds(configured_requests_per_minute: float) -> tuple[float, float]:
    """The per-instance capacities retraining may learn around the configured one."""
    return (
        configured_requests_per_minute / CAPACITY_DRIFT_FACTOR,
        configured_requests_per_minute * CAPACITY_DRIFT_FACTOR,
    )


@dataclass(frozen=True)
class CapacityEstimate:
    requests_per_minute: float
    learned: bool
    rows_used: int
    reason: str


def estimate_capacity_per_instance(
    history: MetricHistory,
    target_cpu_percent: float,
    default_requests_per_minute: float,
) -> CapacityEstimate:
    """Requests per minute one instance serves at the target CPU, learned from history.

    For each step with load, in-service instances and a CPU reading well above idle, the
    per-instance request rate scaled to the target CPU estimates that capacity (CPU grows
    roughly in proportion to requests on a web tier). The median over many steps resists
    bursts and restarts. Falls back to the documented default when history is too thin,
    and never moves more than 4x from it, so that one odd month cannot halve the fleet.
    """
    demand = history.demand_per_minute()
    in_service = history[Metric.IN_SERVICE]
    cpu = history[Metric.CPU]
    usable = (demand > 0) & (in_service >= 1) & (cpu >= MIN_CPU_PERCENT)
    usable &= ~np.isnan(demand) & ~np.isnan(in_service) & ~np.isnan(cpu)
    rows = int(np.sum(usable))
    if rows < MIN_ROWS_TO_LEARN_CAPACITY:
        return CapacityEstimate(
            default_requests_per_minute,
            learned=False,
            rows_used=rows,
            reason=f"only {rows} steps with load, instances and CPU >= {MIN_CPU_PERCENT}%",
        )
    implied = demand[usable] / in_service[usable] * target_cpu_percent / cpu[usable]
    estimate = float(np.median(implied))
    low, high = capacity_bounds(default_requests_per_minute)
    clamped = min(max(estimate, low), high)
    reason = "median over history" if clamped == estimate else f"clamped from {estimate:.1f}"
    return CapacityEstimate(clamped, learned=True, rows_used=rows, reason=reason)
