"""The 5-minute CloudWatch history a simulated shop would have recorded.

Predict and the nightly job read `MetricHistory`; the backtest builds the same structure
from a simulation's minutes, so the model trains and forecasts on what CloudWatch would
have held: ALB RequestCount (Sum, and the busiest minute's 1-minute Sum), TargetResponseTime
(Average), HTTPCode_Target_5XX_Count (Sum), EC2 CPUUtilization (Average over the group) and
the group's desired and in-service counts (Average). A 5-minute step with any unknown
minute of demand is a gap (NaN), as a partly recorded bucket would read as a drop in load.
This is the history of the simulated minutes; what the strategies and the nightly training
read is `observed.Observation.observe` of it (the same on per-minute and 5-minute traces;
coarser traces are seen one closed source step at a time).

Response time and 5xx errors are synthetic (the traces do not have them): response time
grows with utilisation like a single queue, 0.1 s x (1 + u / (1 - u)) with u the CPU share
(capped at 0.95), and requests beyond what the serving instances handle at 100 % CPU fail
with a 5xx.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from saleor_scaling.backtest.traces import MINUTES_PER_STEP
from saleor_scaling.series import FloatArray, Metric, MetricHistory
from saleor_scaling.simulation.simulator import GroupSettings, SimulationRecord


def response_time_seconds(cpu_percent: FloatArray) -> FloatArray:
    """Synthetic TargetResponseTime (seconds) for a step's mean CPU (NaN stays NaN)."""
    utilisation = np.minimum(cpu_percent / 100.0, 0.95)
    return np.asarray(0.1 * (1.0 + utilisation / (1.0 - utilisation)), dtype=np.float64)


def metric_history(start: int, record: SimulationRecord, settings: GroupSettings) -> MetricHistory:
    """Aggregate a simulation's minutes into the 5-minute history CloudWatch would hold."""
    steps = len(record.demand) // MINUTES_PER_STEP

    def per_step(values: npt.NDArray[Any]) -> FloatArray:
        return np.asarray(values[: steps * MINUTES_PER_STEP], dtype=np.float64).reshape(
            steps, MINUTES_PER_STEP
        )

    demand = per_step(record.demand)
    unknown = np.any(np.isnan(demand), axis=1)
    serving = per_step(record.serving)
    cpu = per_step(record.cpu)
    saturation = serving * settings.capacity_per_instance * 100.0 / settings.target_cpu_percent
    with np.errstate(invalid="ignore"):
        errors = np.sum(np.maximum(demand - saturation, 0.0), axis=1)
        cpu_mean = np.mean(cpu, axis=1)
    response = response_time_seconds(cpu_mean)
    requests = np.sum(demand, axis=1)
    busiest = np.max(demand, axis=1)
    for series in (requests, busiest, errors, cpu_mean, response):
        series[unknown] = np.nan
    return MetricHistory(
        start=start,
        values={
            Metric.REQUESTS: requests,
            Metric.RESPONSE_TIME: response,
            Metric.ERRORS_5XX: errors,
            Metric.CPU: cpu_mean,
            Metric.DESIRED: np.mean(per_step(record.desired), axis=1),
            Metric.IN_SERVICE: np.mean(serving, axis=1),
            Metric.BUSIEST_MINUTE: busiest,
        },
    )
